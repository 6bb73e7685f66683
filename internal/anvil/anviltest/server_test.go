package anviltest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// dial connects to srv and returns a line reader; the connection has a
// 5 s deadline so that a broken fake fails the test instead of hanging.
func dial(t *testing.T, srv *Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", srv.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	l, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, l)
	}
	return l
}

// expectEOF checks that the server hung up, anvil's only error signal.
func expectEOF(t *testing.T, r *bufio.Reader) {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("want EOF, got %v", err)
	}
	if len(b) != 0 {
		t.Fatalf("want EOF, got %q", b)
	}
}

func TestSocketPathShort(t *testing.T) {
	srv := New(t, anvil.Proto23)
	if len(srv.Path) >= sunPathMax {
		t.Errorf("socket path %q is %d bytes", srv.Path, len(srv.Path))
	}
	if filepath.Dir(srv.Path) != srv.Dir {
		t.Errorf("Dir %q, Path %q", srv.Dir, srv.Path)
	}
}

func TestServer24Session(t *testing.T) {
	dump := anvil.FormatDump24(AltNames24, Sessions24(3))
	srv := New(t, anvil.Proto24, WithDump(dump), WithReply("KICK-USER", "2\n"))
	c, r := dial(t, srv)
	if g := readLine(t, r); g != Greeting24 {
		t.Fatalf("greeting %q", g)
	}
	send(t, c, Handshake24+"\n\nCONNECT-DUMP\nKICK-USER\talice\nKICK-ALT-USER\tuser_alias\tally\n")
	var got strings.Builder
	for !strings.HasSuffix(got.String(), "\n\n") || got.Len() < len(dump) {
		got.WriteString(readLine(t, r))
	}
	if got.String() != dump {
		t.Fatalf("dump %q, want %q", got.String(), dump)
	}
	if l := readLine(t, r); l != "2\n" {
		t.Errorf("KICK-USER reply %q", l)
	}
	if l := readLine(t, r); l != "0\n" {
		t.Errorf("KICK-ALT-USER default reply %q", l)
	}
	c.Close()
	want := []string{Handshake24, "", "CONNECT-DUMP", "KICK-USER\talice", "KICK-ALT-USER\tuser_alias\tally"}
	waitLines(t, srv, want)
}

func waitLines(t *testing.T, srv *Server, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(srv.Lines(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("server received %q, want %q", srv.Lines(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServer23Session(t *testing.T) {
	srv := New(t, anvil.Proto23, WithDump("imap/192.0.2.1/a\t1\t1\n\n"))
	c, r := dial(t, srv)
	// 2.3 is silent until asked, and ignores empty lines.
	send(t, c, Handshake23+"\n\nCONNECT-DUMP\nLOOKUP\timap/192.0.2.1/a\n")
	if l := readLine(t, r); l != "imap/192.0.2.1/a\t1\t1\n" {
		t.Fatalf("first line %q (a 2.3 anvil sends no greeting)", l)
	}
	if l := readLine(t, r); l != "\n" {
		t.Fatalf("terminator %q", l)
	}
	if l := readLine(t, r); l != "0\n" {
		t.Fatalf("LOOKUP reply %q", l)
	}
	// KICK-USER does not exist in 2.3: the connection is closed.
	send(t, c, "KICK-USER\ta\n")
	expectEOF(t, r)
}

func TestServerClosesOnBadInput(t *testing.T) {
	tests := []struct {
		name  string
		proto anvil.Protocol
		send  string
	}{
		{"2.3 gets the 2.4 handshake", anvil.Proto23, Handshake24 + "\n\nCONNECT-DUMP\n"},
		{"2.3 wrong major", anvil.Proto23, "VERSION\tanvil\t2\t0\nCONNECT-DUMP\n"},
		{"2.3 bad minor", anvil.Proto23, "VERSION\tanvil\t1\tx\nCONNECT-DUMP\n"},
		{"2.3 unknown command", anvil.Proto23, Handshake23 + "\nHELLO\n"},
		{"2.4 gets the 2.3 handshake", anvil.Proto24, Handshake23 + "\nCONNECT-DUMP\n"},
		{"2.4 command instead of handshake line", anvil.Proto24, Handshake24 + "\nCONNECT-DUMP\n"},
		{"2.4 service handshake line", anvil.Proto24, Handshake24 + "\nimap\t123\nCONNECT-DUMP\n"},
		{"2.4 empty line after handshake", anvil.Proto24, Handshake24 + "\n\n\nCONNECT-DUMP\n"},
		{"2.4 unknown command", anvil.Proto24, Handshake24 + "\n\nLOOKUP\tx\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := New(t, tc.proto)
			c, r := dial(t, srv)
			if tc.proto == anvil.Proto24 {
				readLine(t, r)
			}
			send(t, c, tc.send)
			expectEOF(t, r)
		})
	}
}

func TestServerGreetingOptions(t *testing.T) {
	srv := New(t, anvil.Proto24, WithGreeting("VERSION\tanvil-server\t3\t1\n"))
	_, r := dial(t, srv)
	if l := readLine(t, r); l != "VERSION\tanvil-server\t3\t1\n" {
		t.Errorf("greeting %q", l)
	}

	srv = New(t, anvil.Proto24, WithGreetDelay(200*time.Millisecond))
	start := time.Now()
	_, r = dial(t, srv)
	readLine(t, r)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("greeting after %v, want ≥ 200ms", d)
	}

	srv = New(t, anvil.Proto24, WithNoGreeting())
	c, r := dial(t, srv)
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if l, err := r.ReadString('\n'); err == nil {
		t.Errorf("got %q from a server told not to greet", l)
	}
}

func TestServerCloseMidDump(t *testing.T) {
	dump := "imap/192.0.2.1/alice\t1\t1\nimap/192.0.2.2/bob\t2\t1\n\n"
	srv := New(t, anvil.Proto23, WithDump(dump), WithCloseMidDump(10))
	c, r := dial(t, srv)
	send(t, c, Handshake23+"\nCONNECT-DUMP\n")
	b, _ := io.ReadAll(r)
	if string(b) != dump[:10] {
		t.Errorf("got %q, want %q then EOF", b, dump[:10])
	}
}

func TestServerStallDump(t *testing.T) {
	srv := New(t, anvil.Proto23, WithStallDump())
	c, r := dial(t, srv)
	send(t, c, Handshake23+"\nCONNECT-DUMP\n")
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := r.ReadByte(); err == nil {
		t.Error("stalled server answered")
	}
	srv.Close() // must not hang with a stalled connection
}

func TestServerEndlessDump(t *testing.T) {
	srv := New(t, anvil.Proto24, WithEndlessDump("\n", "x"))
	c, r := dial(t, srv)
	if l := readLine(t, r); l != Greeting24 {
		t.Fatalf("greeting %q", l)
	}
	send(t, c, Handshake24+"\n\nCONNECT-DUMP\n")
	if l := readLine(t, r); l != "\n" {
		t.Fatalf("header %q, want the empty prefix line", l)
	}
	// Far more than any buffer on the way: the server keeps writing.
	b := make([]byte, 4<<20)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	if strings.Trim(string(b), "x") != "" {
		t.Error("the endless line holds other bytes than the repeat")
	}
	srv.Close() // must not hang while the server is writing
}

func TestServerHints(t *testing.T) {
	srv := New(t, anvil.Proto24, WithHint24())
	if fi, err := os.Stat(filepath.Join(srv.Dir, "srv.imap")); err != nil || !fi.IsDir() {
		t.Errorf("srv.imap: %v", err)
	}
	srv = New(t, anvil.Proto23, WithHint23())
	if _, err := os.Stat(filepath.Join(srv.Dir, "ipc")); err != nil {
		t.Errorf("ipc: %v", err)
	}
}

func TestServerConnLines(t *testing.T) {
	srv := New(t, anvil.Proto23)
	for i := 0; i < 2; i++ {
		c, r := dial(t, srv)
		send(t, c, Handshake23+"\nCONNECT-DUMP\n")
		readLine(t, r)
		c.Close()
	}
	if srv.Conns() != 2 || !slices.Equal(srv.ConnLines(1), []string{Handshake23, "CONNECT-DUMP"}) || srv.ConnLines(5) != nil {
		t.Errorf("Conns %d, ConnLines(1) %q", srv.Conns(), srv.ConnLines(1))
	}
	srv.SetDump("x\t1\t1\n\n")
	c, r := dial(t, srv)
	send(t, c, Handshake23+"\nCONNECT-DUMP\n")
	if l := readLine(t, r); l != "x\t1\t1\n" {
		t.Errorf("after SetDump: %q", l)
	}
}

func TestGenerators(t *testing.T) {
	ss := Sessions23(100)
	out, bad, err := anvil.ParseDump23(strings.TrimSuffix(anvil.FormatDump23(ss), "\n"))
	if err != nil || len(out) != 100 || bad.Count != 0 {
		t.Fatalf("Sessions23 round trip: %d, %v", len(out), err)
	}
	s24 := Sessions24(100)
	names, out, bad, err := anvil.ParseDump24(strings.TrimSuffix(anvil.FormatDump24(AltNames24, s24), "\n"))
	if err != nil || len(out) != 100 || !slices.Equal(names, AltNames24) || bad.Count != 0 {
		t.Fatalf("Sessions24 round trip: %d, %v", len(out), err)
	}
	if v, ok := out[5].Alt("user_ext"); !ok || out[5].Service != "imap-login" || !out[5].DestIP.IsValid() || v == "" {
		t.Errorf("session 5: %+v", out[5])
	}
}
