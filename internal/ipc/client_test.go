package ipc

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseListRealCapture(t *testing.T) {
	raw, err := os.ReadFile("testdata/real-2.3.19.1-list-full.txt")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		if strings.HasPrefix(l, ":") {
			lines = append(lines, l[1:])
		}
	}
	got, err := parseList(lines)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d proxies, want 3: %+v", len(got), got)
	}
	// bob's process had no user_ext column; alice's did.
	if got[0].User != "bob" || got[0].SrcIP != netip.MustParseAddr("::1") || got[0].Alt["user_alt"] != "bob-alt" || len(got[0].Alt) != 1 {
		t.Errorf("bob: %+v", got[0])
	}
	a := got[1]
	if a.User != "alice" || a.Service != "imap" || a.DestIP != netip.MustParseAddr("127.0.0.1") || a.DestPort != 31143 || a.Alt["user_ext"] != "alice-alt@ext.example" {
		t.Errorf("alice: %+v", a)
	}
	s := a.Session()
	if v, ok := s.Alt("user_alt"); !ok || v != "alice-alt" || s.Service != "imap-login" || !s.DestIP.IsValid() {
		t.Errorf("alice as session: %+v", s)
	}
}

func TestParseListMalformed(t *testing.T) {
	for _, lines := range [][]string{
		{"alice\timap\t127.0.0.2\t127.0.0.1\t143"},                                                     // row before any header
		{"username\tservice\tsrc-ip\tdest-ip\tdest-port", "alice\tx\timap\t127.0.0.2\t127.0.0.1\t143"}, // more columns than the header
		{"username\tservice\tsrc-ip\tdest-ip\tdest-port", "alice\timap\tnot-an-ip\t127.0.0.1\t143"},    // bad src ip
		{"username\tservice\tsrc-ip\tdest-ip\tdest-port", "alice\timap\t127.0.0.2\t127.0.0.1\tport"},   // bad port
		{"short"},
	} {
		if _, err := parseList(lines); !errors.Is(err, ErrFormat) {
			t.Errorf("%q: err = %v, want ErrFormat", lines, err)
		}
	}
}

// TestKickEscapesUser proves a crafted username stays one field of one
// command line.
func TestKickEscapesUser(t *testing.T) {
	dir, err := os.MkdirTemp("", "ka")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ipc")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		r := bufio.NewReader(c)
		l, _ := r.ReadString('\n')
		c.Write([]byte("+1\n"))
		rest, _ := r.ReadString('\n') // must be nothing more
		got <- []string{l, rest}
	}()
	cl := &Client{Path: path}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := cl.Kick(ctx, "evil\n\tproxy\t*\tKICK-HOST\t127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	lines := <-got
	if lines[0] != "proxy\t*\tKICK\tevil\x01n\x01tproxy\x01t*\x01tKICK-HOST\x01t127.0.0.1\n" || lines[1] != "" {
		t.Fatalf("server read %q", lines)
	}
}
