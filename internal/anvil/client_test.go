package anvil_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

const (
	dump23 = "imap/192.0.2.10/alice@example.com\t12345\t1\nimap/198.51.100.3/bob\t12400\t2\nlmtp/carol@example.com\t12500\t1\n\n"
	dump24 = "user_alias\n" +
		"23456\talice@example.com\timap\t192.0.2.10\t" + guidA + "\t\talice\n" +
		"23999\talice@example.com\timap-login\t198.51.100.7\t" + guidB + "\t10.0.0.5\n\n"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestClientDetects23(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto23, anviltest.WithDump(dump23))
	snap, err := (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Protocol != anvil.Proto23 || snap.ServerMinor != 0 {
		t.Errorf("protocol %v minor %d, want 2.3", snap.Protocol, snap.ServerMinor)
	}
	if len(snap.Sessions) != 3 || snap.Sessions[1].Connections != 2 {
		t.Errorf("sessions: %+v", snap.Sessions)
	}
	if snap.Bytes != len(dump23) {
		t.Errorf("Bytes = %d, want %d", snap.Bytes, len(dump23))
	}
	if snap.Taken.IsZero() {
		t.Error("Taken not set")
	}
	if want := []string{anviltest.Handshake23, "CONNECT-DUMP"}; !slices.Equal(srv.Lines(), want) {
		t.Errorf("server received %q, want %q", srv.Lines(), want)
	}
}

func TestClientDetects24(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump(dump24),
		anviltest.WithGreeting("VERSION\tanvil-server\t2\t3\n"))
	snap, err := (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Protocol != anvil.Proto24 || snap.ServerMinor != 3 {
		t.Errorf("protocol %v minor %d, want 2.4 minor 3", snap.Protocol, snap.ServerMinor)
	}
	if !slices.Equal(snap.AltNames, []string{"user_alias"}) || len(snap.Sessions) != 2 {
		t.Errorf("alt names %q, %d sessions", snap.AltNames, len(snap.Sessions))
	}
	if want := []string{anviltest.Handshake24, "", "CONNECT-DUMP"}; !slices.Equal(srv.Lines(), want) {
		t.Errorf("server received %q, want %q", srv.Lines(), want)
	}
}

// With a 2.3 hint (an ipc socket in base_dir) the client still notices a
// 2.4 greeting if it comes at once.
func TestClientHint23StillSees24(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithHint23(), anviltest.WithDump(dump24))
	snap, err := (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Protocol != anvil.Proto24 {
		t.Errorf("protocol %v", snap.Protocol)
	}
}

func TestClientHint23Is23(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto23, anviltest.WithHint23(), anviltest.WithDump(dump23))
	start := time.Now()
	snap, err := (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Protocol != anvil.Proto23 {
		t.Errorf("protocol %v", snap.Protocol)
	}
	t.Logf("2.3 with ipc hint took %v", time.Since(start))
}

// A srv.* directory says 2.4: a greeting that comes after the default greet
// timeout is still awaited on the first connection.
func TestClientHint24DelayedGreeting(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithHint24(),
		anviltest.WithGreetDelay(300*time.Millisecond), anviltest.WithDump(dump24))
	snap, err := (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Protocol != anvil.Proto24 {
		t.Errorf("protocol %v", snap.Protocol)
	}
	if n := srv.Conns(); n != 1 {
		t.Errorf("%d connections, want 1 (no retry)", n)
	}
}

// Without a hint, a greeting later than the greet timeout makes the client
// assume 2.3; the 2.4 server then rejects the 2.3 handshake, the client sees
// the late greeting and retries once with the 2.4 handshake.
func TestClientLateGreetingRetries24(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto24,
		anviltest.WithGreetDelay(anvil.DefaultGreetTimeout+250*time.Millisecond), anviltest.WithDump(dump24))
	snap, err := (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Protocol != anvil.Proto24 || len(snap.Sessions) != 2 {
		t.Errorf("protocol %v, %d sessions", snap.Protocol, len(snap.Sessions))
	}
	if n := srv.Conns(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	if got := srv.ConnLines(0); len(got) == 0 || got[0] != anviltest.Handshake23 {
		t.Errorf("first connection: %q, want the 2.3 handshake first", got)
	}
	if want := []string{anviltest.Handshake24, "", "CONNECT-DUMP"}; !slices.Equal(srv.ConnLines(1), want) {
		t.Errorf("second connection: %q, want %q", srv.ConnLines(1), want)
	}
}

func TestClientGreetTimeoutOption(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithGreetDelay(300*time.Millisecond), anviltest.WithDump(dump24))
	snap, err := (&anvil.Client{Path: srv.Path, GreetTimeout: 2 * time.Second}).Dump(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if snap.Protocol != anvil.Proto24 || srv.Conns() != 1 {
		t.Errorf("protocol %v after %d connections, want 2.4 after 1", snap.Protocol, srv.Conns())
	}
}

func TestClientUnsupportedVersion(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithGreeting("VERSION\tanvil-server\t3\t0\n"))
	_, err := (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
	if !errors.Is(err, anvil.ErrUnsupportedVersion) {
		t.Fatalf("got %v, want ErrUnsupportedVersion", err)
	}
	if !strings.Contains(err.Error(), "3.0") {
		t.Errorf("error %q does not name the version", err)
	}
	if n := len(srv.Lines()); n != 0 {
		t.Errorf("client sent %q to an unknown version", srv.Lines())
	}
}

func TestClientBadGreeting(t *testing.T) {
	for _, g := range []string{
		"HELLO\n",
		"VERSION\tanvil\t1\t0\n",           // 2.3's client line, not a server greeting
		"VERSION\tanvil-server\t2\n",       // too few fields
		"VERSION\tanvil-server\tx\t0\n",    // bad major
		"VERSION\tanvil-server\t2\t0\tx\n", // too many fields
	} {
		srv := anviltest.New(t, anvil.Proto24, anviltest.WithGreeting(g))
		_, err := (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
		if !errors.Is(err, anvil.ErrProtocol) {
			t.Errorf("greeting %q: got %v, want ErrProtocol", g, err)
		}
	}
}

func TestClientMissingSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "anvil")
	_, err := (&anvil.Client{Path: path}).Dump(testCtx(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "is Dovecot running") || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error naming %s and asking whether Dovecot runs", err, path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%v does not wrap os.ErrNotExist", err)
	}
}

// A socket file nobody listens on (Dovecot stopped without cleaning up).
func TestClientStaleSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "ka")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "anvil")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	_, err = (&anvil.Client{Path: path}).Dump(testCtx(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "refuses connections") {
		t.Fatalf("got %v, want a refused-connection explanation", err)
	}
}

func TestClientClosedMidDump(t *testing.T) {
	for _, tc := range []struct {
		proto anvil.Protocol
		dump  string
		n     int
	}{
		{anvil.Proto23, dump23, 20},
		{anvil.Proto23, dump23, 0},
		{anvil.Proto23, dump23, len(dump23) - 1}, // all but the terminator
		{anvil.Proto24, dump24, 30},
		{anvil.Proto24, dump24, 0},
		{anvil.Proto24, "\n\n", 1}, // the empty header, then EOF
	} {
		srv := anviltest.New(t, tc.proto, anviltest.WithDump(tc.dump), anviltest.WithCloseMidDump(tc.n),
			anviltest.WithHint23())
		_, err := (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
		if !errors.Is(err, anvil.ErrClosed) {
			t.Errorf("%v after %d bytes: got %v, want ErrClosed", tc.proto, tc.n, err)
			continue
		}
		if !strings.Contains(err.Error(), "Dovecot's log") || !strings.Contains(err.Error(), srv.Path) {
			t.Errorf("error %q should point to Dovecot's log and name the socket", err)
		}
	}
}

// Forcing 2.3 against a 2.4 anvil: the server rejects the handshake and
// closes, which the client reports as ErrClosed rather than a bad dump.
func TestClientForced23Against24(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump(dump24))
	_, err := (&anvil.Client{Path: srv.Path, Protocol: anvil.Proto23}).Dump(testCtx(t, 10*time.Second))
	if !errors.Is(err, anvil.ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

func TestClientForced24Against23(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto23, anviltest.WithDump(dump23))
	start := time.Now()
	_, err := (&anvil.Client{Path: srv.Path, Protocol: anvil.Proto24}).Dump(testCtx(t, 300*time.Millisecond))
	if err == nil {
		t.Fatal("no error from a server that never greets")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if n := len(srv.Lines()); n != 0 {
		t.Errorf("client sent %q", srv.Lines())
	}
}

func TestClientDeadline(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto anvil.Protocol
		opts  []anviltest.Option
	}{
		{"2.3 never answers the dump", anvil.Proto23, []anviltest.Option{anviltest.WithStallDump()}},
		{"2.4 never answers the dump", anvil.Proto24, []anviltest.Option{anviltest.WithStallDump()}},
		{"2.4 hinted but never greets", anvil.Proto24, []anviltest.Option{anviltest.WithNoGreeting(), anviltest.WithHint24()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := anviltest.New(t, tc.proto, tc.opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := (&anvil.Client{Path: srv.Path}).Dump(ctx)
			if d := time.Since(start); d > time.Second {
				t.Errorf("Dump returned after %v, want about 200ms", d)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v, want context.DeadlineExceeded in the chain", err)
			}
		})
	}
}

func TestClientCancel(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto23, anviltest.WithStallDump(), anviltest.WithHint23())
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := (&anvil.Client{Path: srv.Path}).Dump(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}

// TestClientMalformedDump: a bad session line is skipped and recorded,
// the other sessions are served; a bad header fails the dump.
func TestClientMalformedDump(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump("\n1\tu\timap\t\tnot-a-guid\t\n2\tv\timap\tfe80::1%lo\t"+guidA+"\t\n\n"))
	snap, err := (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Sessions) != 1 || snap.Sessions[0].User != "v" || snap.Sessions[0].IP.String() != "fe80::1%lo" {
		t.Errorf("sessions %+v", snap.Sessions)
	}
	if snap.BadLines.Count != 1 || snap.BadLines.Problems[0].Kind != anvil.BadGUID || snap.BadLines.Problems[0].Line != 2 {
		t.Errorf("bad lines %+v", snap.BadLines)
	}

	srv = anviltest.New(t, anvil.Proto24, anviltest.WithDump("user_a\t\n1\tu\timap\t\t"+guidA+"\t\n\n"))
	_, err = (&anvil.Client{Path: srv.Path}).Dump(testCtx(t, 10*time.Second))
	if !errors.Is(err, anvil.ErrProtocol) || !strings.Contains(err.Error(), srv.Path) {
		t.Fatalf("got %v, want ErrProtocol naming the socket", err)
	}
}

// A persistent connection serves several dumps; the second sees the new
// table.
func TestConnReuse(t *testing.T) {
	for _, proto := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		t.Run(proto.Dovecot(), func(t *testing.T) {
			first, second := dump23, "imap/192.0.2.99/zoe\t1\t1\n\n"
			if proto == anvil.Proto24 {
				first, second = dump24, "\n1\tzoe\timap\t\t"+guidA+"\t\n\n"
			}
			srv := anviltest.New(t, proto, anviltest.WithDump(first))
			ctx := testCtx(t, 10*time.Second)
			// Open does not retry a wrong guess, so the protocol is given.
			c, err := (&anvil.Client{Path: srv.Path, Protocol: proto}).Open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Protocol() != proto {
				t.Fatalf("protocol %v", c.Protocol())
			}
			if _, err := c.Dump(ctx); err != nil {
				t.Fatal(err)
			}
			srv.SetDump(second)
			snap, err := c.Dump(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Sessions) != 1 || snap.Sessions[0].User != "zoe" {
				t.Errorf("second dump: %+v", snap.Sessions)
			}
			if srv.Conns() != 1 {
				t.Errorf("%d connections", srv.Conns())
			}
		})
	}
}

// Lines longer than the client's read buffer (64 KiB) are reassembled,
// up to Limits.MaxLineBytes (limits_test.go has the lines beyond).
func TestClientLongLines(t *testing.T) {
	user := strings.Repeat("u", 200<<10)
	for _, proto := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		t.Run(proto.Dovecot(), func(t *testing.T) {
			s := anvil.Session{Service: "imap", User: user, PID: 42, Connections: 1, ConnGUID: guidA}
			d := anvil.FormatDump23([]anvil.Session{s, s})
			if proto == anvil.Proto24 {
				long := strings.Repeat("n", 100<<10)
				s.SetAlt([]string{long}, []string{"v"})
				d = anvil.FormatDump24([]string{long}, []anvil.Session{s, s})
			}
			srv := anviltest.New(t, proto, anviltest.WithDump(d), anviltest.WithHint23())
			cl := &anvil.Client{Path: srv.Path, Limits: anvil.Limits{MaxLineBytes: 1 << 20}}
			snap, err := cl.Dump(testCtx(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Sessions) != 2 || snap.Sessions[1].User != user {
				t.Fatalf("%d sessions", len(snap.Sessions))
			}
			if snap.Bytes != len(d) {
				t.Errorf("Bytes = %d, want %d", snap.Bytes, len(d))
			}
		})
	}
}

// TestDumpEachSkipsBadLines: bad lines take no index, so DumpEach's indexes
// stay those of Snapshot.Sessions and InOrder sees the whole dump.
func TestDumpEachSkipsBadLines(t *testing.T) {
	const g = "0123456789abcdef0123456789abcdef"
	for proto, reply := range map[anvil.Protocol]string{
		anvil.Proto23: "imap/192.0.2.1/a\t1\t1\nimap/192.0.2.2/b\tx\t1\n\t\t\nimap/192.0.2.3/c\t3\t1\nimap/fe80::1%lo/d\t4\t1\n\n",
		anvil.Proto24: "user_x\n1\ta\timap\t\t" + g + "\t\n2\tb\timap\tbad\t" + g + "\t\n3\tc\timap\t\t" + g +
			"\t\t\n4\tbroken\n5\td\timap\tfe80::1%lo\t" + g + "\tfe80::2%lo\tD\n\n",
	} {
		t.Run(proto.Dovecot(), func(t *testing.T) {
			srv := anviltest.New(t, proto, anviltest.WithDump(reply))
			c, err := (&anvil.Client{Path: srv.Path, Protocol: proto}).Open(testCtx(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var order anvil.InOrder
			var users []string
			snap, err := c.DumpEach(testCtx(t, 10*time.Second), func(i int, s *anvil.Session) {
				order.Next(i)
				users = append(users, strings.Clone(s.User))
			})
			if err != nil {
				t.Fatal(err)
			}
			if !order.Whole(len(snap.Sessions)) || len(snap.Sessions) != 3 {
				t.Errorf("%d sessions, in order: %v", len(snap.Sessions), order.Whole(len(snap.Sessions)))
			}
			for i := range snap.Sessions {
				if i >= len(users) || snap.Sessions[i].User != users[i] {
					t.Errorf("session %d is %q, DumpEach passed %q", i, snap.Sessions[i].User, users)
				}
			}
			if snap.BadLines.Count != 2 {
				t.Errorf("bad lines %+v", snap.BadLines)
			}
		})
	}
}
