package authmaster_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/authmaster"
	"github.com/kickagent/kickagent/internal/authmaster/authmastertest"
)

func flush(t *testing.T, path string, timeout time.Duration, users ...string) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return (&authmaster.Client{Path: path}).FlushUsers(ctx, users)
}

// The exchange on both versions: the client waits for the greeting,
// answers VERSION 1.0 and sends one CACHE-FLUSH with request id 1; the
// count covers passdb and userdb entries of exactly that name.
func TestFlushUsers(t *testing.T) {
	for _, mode := range []authmastertest.Mode{authmastertest.Master23, authmastertest.Master24} {
		s := authmastertest.Start(t, &authmastertest.Server{Mode: mode, Cache: []string{
			"P1\talice", "U1\talice", "P1+admin\talice", "P1\talice2", "P1\tbob", "P2\talice\timap", "P1\tAlice",
		}})
		n, err := flush(t, s.Path, 5*time.Second, "alice")
		if err != nil || n != 4 {
			t.Fatalf("mode %d: %d, %v; want 4 entries", mode, n, err)
		}
		if got := s.Received(); !slices.Equal(got, []string{"VERSION\t1\t0", "CACHE-FLUSH\t1\talice"}) {
			t.Errorf("mode %d: server got %q", mode, got)
		}
		if left := s.CacheNow(); !slices.Equal(left, []string{"P1\talice2", "P1\tbob", "P1\tAlice"}) {
			t.Errorf("mode %d: left %q", mode, left)
		}
	}
}

// Several names go in one command; names are tab-escaped as Dovecot
// unescapes them; an auth process without a cache answers 0.
func TestFlushUsersEscapesAndCacheOff(t *testing.T) {
	s := authmastertest.Start(t, &authmastertest.Server{Cache: []string{"P1\ta\tb", "P1\tc\x01d", "P1\tkeep"}})
	n, err := flush(t, s.Path, 5*time.Second, "a\tb", "c\x01d", "e\r\nf")
	if err != nil || n != 2 {
		t.Fatalf("%d, %v", n, err)
	}
	if got := s.Received()[1]; got != "CACHE-FLUSH\t1\ta\x01tb\tc\x011d\te\x01r\x01nf" {
		t.Errorf("sent %q", got)
	}
	off := authmastertest.Start(t, &authmastertest.Server{CacheOff: true})
	if n, err := flush(t, off.Path, 5*time.Second, "alice"); err != nil || n != 0 {
		t.Errorf("no cache: %d, %v", n, err)
	}
}

// Names that cannot be sent are refused before connecting; an empty list
// would flush the whole cache.
func TestFlushUsersRefusesBadNames(t *testing.T) {
	s := authmastertest.Start(t, &authmastertest.Server{Cache: []string{"P1\talice"}})
	for _, users := range [][]string{nil, {}, {""}, {"alice", ""}, {"al\x00ice"}, {strings.Repeat("u", 990)}} {
		if _, err := flush(t, s.Path, 5*time.Second, users...); !errors.Is(err, authmaster.ErrBadUser) {
			t.Errorf("%q: %v, want ErrBadUser", users, err)
		}
	}
	if got := s.Received(); len(got) != 0 || len(s.CacheNow()) != 1 {
		t.Errorf("the server saw %q", got)
	}
}

// Every surprise in the greeting or the reply is an error saying what came.
func TestFlushUsersProtocolSurprises(t *testing.T) {
	for _, tc := range []struct {
		name     string
		srv      *authmastertest.Server
		want     error
		contains string
	}{
		{"garbage greeting", &authmastertest.Server{Greeting: "HELLO\n"}, authmaster.ErrProtocol, `"HELLO"`},
		{"version without minor", &authmastertest.Server{Greeting: "VERSION\t1\nSPID\t1\n"}, authmaster.ErrProtocol, "bad VERSION"},
		{"version not a number", &authmastertest.Server{Greeting: "VERSION\tx\t0\nSPID\t1\n"}, authmaster.ErrProtocol, "bad version number"},
		{"future major", &authmastertest.Server{Greeting: "VERSION\t2\t0\nSPID\t1\n"}, authmaster.ErrUnsupportedVersion, "2.0"},
		{"SPID first", &authmastertest.Server{Greeting: "SPID\t1\n"}, authmaster.ErrProtocol, "SPID before VERSION"},
		{"two versions", &authmastertest.Server{Greeting: "VERSION\t1\t1\nVERSION\t1\t1\n"}, authmaster.ErrProtocol, "bad VERSION"},
		{"anvil 2.4", &authmastertest.Server{Greeting: "VERSION\tanvil-server\t2\t0\n"}, authmaster.ErrProtocol, "bad version number"},
		{"auth-client socket", &authmastertest.Server{Mode: authmastertest.AuthClient}, authmaster.ErrNotMaster, "auth client socket"},
		{"2.4 auth-client socket", &authmastertest.Server{Mode: authmastertest.AuthClient, GreetAfterClient: true}, authmaster.ErrNotMaster, "auth client socket"},
		{"endless line", &authmastertest.Server{Greeting: strings.Repeat("x", 9000) + "\n"}, authmaster.ErrProtocol, "longer than 8192"},
		{"greeting cut short", &authmastertest.Server{Greeting: "VERSION\t1\t1\n", HangUpAfterGreeting: true}, authmaster.ErrClosed, "waiting for the greeting"},
		{"userdb socket", &authmastertest.Server{Mode: authmastertest.Userdb}, authmaster.ErrClosed, "auth-userdb"},
		{"FAIL", &authmastertest.Server{Reply: say("FAIL\t1\n")}, authmaster.ErrProtocol, "the request failed"},
		{"other id", &authmastertest.Server{Reply: say("OK\t2\t1\n")}, authmaster.ErrProtocol, "not a reply to request 1"},
		{"no id", &authmastertest.Server{Reply: say("OK\n")}, authmaster.ErrProtocol, "not a reply to request 1"},
		{"no count", &authmastertest.Server{Reply: say("OK\t1\n")}, authmaster.ErrProtocol, "no count"},
		{"negative count", &authmastertest.Server{Reply: say("OK\t1\t-1\n")}, authmaster.ErrProtocol, "bad count"},
		{"word count", &authmastertest.Server{Reply: say("OK\t1\tmany\n")}, authmaster.ErrProtocol, "bad count"},
		{"count over 32 bits", &authmastertest.Server{Reply: say("OK\t1\t4294967296\n")}, authmaster.ErrProtocol, "bad count"},
		{"empty line", &authmastertest.Server{Reply: say("\n")}, authmaster.ErrProtocol, "not a reply"},
		{"reply without newline", &authmastertest.Server{Reply: sayAndClose("OK\t1\t1")}, authmaster.ErrClosed, "CACHE-FLUSH"},
	} {
		s := authmastertest.Start(t, tc.srv)
		n, err := flush(t, s.Path, 5*time.Second, "alice")
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.contains) || !strings.Contains(err.Error(), s.Path) {
			t.Errorf("%s: %d, %v; want %v containing %q and the path", tc.name, n, err, tc.want, tc.contains)
		}
	}
}

// Fields after the count are ignored, as doveadm ignores them.
func TestFlushUsersExtraFields(t *testing.T) {
	s := authmastertest.Start(t, &authmastertest.Server{Reply: say("OK\t1\t3\tmore\n")})
	if n, err := flush(t, s.Path, 5*time.Second, "alice"); err != nil || n != 3 {
		t.Errorf("%d, %v", n, err)
	}
}

func say(text string) func(string) (string, bool) {
	return func(string) (string, bool) { return text, true }
}

// sayAndClose sends text and hangs up.
func sayAndClose(text string) func(string) (string, bool) {
	return func(string) (string, bool) { return text, false }
}

// An auth process that never greets, or never answers, runs into the
// context's deadline with an error that says so; a cancel ends the wait.
func TestFlushUsersNoAnswer(t *testing.T) {
	silent := authmastertest.Start(t, &authmastertest.Server{Silent: true})
	start := time.Now()
	_, err := flush(t, silent.Path, 300*time.Millisecond, "alice")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within") ||
		!strings.Contains(err.Error(), "greeting") {
		t.Errorf("silent: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the deadline was not kept: %v", time.Since(start))
	}
	mute := authmastertest.Start(t, &authmastertest.Server{Reply: func(string) (string, bool) { return "", true }})
	if _, err := flush(t, mute.Path, 300*time.Millisecond, "alice"); !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "reply to CACHE-FLUSH") {
		t.Errorf("no reply: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := (&authmaster.Client{Path: silent.Path}).FlushUsers(ctx, []string{"alice"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// What is at the path decides the error: nothing, a stale socket, a
// directory, a regular file.
func TestFlushUsersDialErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := flush(t, filepath.Join(dir, "auth-master"), time.Second, "alice"); !errors.Is(err, fs.ErrNotExist) ||
		!strings.Contains(err.Error(), "does not exist: is Dovecot running") {
		t.Errorf("missing: %v", err)
	}
	short, err := os.MkdirTemp("", "kam")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(short)
	stale := filepath.Join(short, "auth-master")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := flush(t, stale, time.Second, "alice"); !errors.Is(err, syscall.ECONNREFUSED) ||
		!strings.Contains(err.Error(), "Dovecot is not running") {
		t.Errorf("stale: %v", err)
	}
	if _, err := flush(t, dir, time.Second, "alice"); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := flush(t, file, time.Second, "alice"); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("file: %v", err)
	}
}

func TestSocketNextTo(t *testing.T) {
	if got := authmaster.SocketNextTo("/run/dovecot/anvil"); got != "/run/dovecot/auth-master" {
		t.Errorf("got %s", got)
	}
}
