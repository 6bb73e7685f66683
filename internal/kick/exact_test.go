package kick

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/sockdiag"
)

// fakeSockets is a SocketCloser over a table of connections per pid. A
// closed connection ends its session in the fake anvil once no connection
// from its address is left in the process (as Dovecot drops a client whose
// socket fails).
type fakeSockets struct {
	anvil   *fakeAnvil
	conns   map[int64][]TCPConn
	connErr error
	procErr map[int64]error
	lookups int
	closeFn func(c TCPConn) error // nil: close succeeds
	closed  []string
}

var listener = netip.MustParseAddrPort("127.0.0.1:143")

// conn is a client connection from ip:port to the listener.
func conn(ip string, port uint16) TCPConn {
	return TCPConn{Local: listener, Remote: netip.AddrPortFrom(netip.MustParseAddr(ip), port)}
}

func (f *fakeSockets) Conns(ctx context.Context, procs map[int64]string) (map[int64]ProcConns, error) {
	f.lookups++
	if f.connErr != nil {
		return nil, f.connErr
	}
	out := make(map[int64]ProcConns)
	for pid := range procs {
		out[pid] = ProcConns{Conns: slices.Clone(f.conns[pid]), Err: f.procErr[pid]}
	}
	return out, nil
}

func (f *fakeSockets) Close(ctx context.Context, c TCPConn) error {
	if f.closeFn != nil {
		if err := f.closeFn(c); err != nil {
			return err
		}
	}
	f.closed = append(f.closed, c.Remote.String())
	for pid, cs := range f.conns {
		i := slices.Index(cs, c)
		if i < 0 {
			continue
		}
		f.conns[pid] = slices.Delete(cs, i, i+1)
		ip := bare(c.Remote.Addr())
		if !slices.ContainsFunc(f.conns[pid], func(o TCPConn) bool { return bare(o.Remote.Addr()) == ip }) {
			f.anvil.remove(func(s *anvil.Session) bool { return s.PID == pid && bare(s.IP) == ip })
		}
	}
	return nil
}

// shared23 is a 2.3 imap-hibernate (or client_limit > 1) process 300 with
// alice (2 connections) and bob, and dave and eve from one address.
func shared23() (*fakeAnvil, *fakeSockets) {
	a := &fakeAnvil{proto: anvil.Proto23, sessions: []anvil.Session{
		s23(300, "imap", "alice", "127.0.0.2", 2),
		s23(300, "imap", "bob", "127.0.0.3", 1),
		s23(300, "imap", "dave", "127.0.0.5", 1),
		s23(300, "imap", "eve", "127.0.0.5", 1),
	}}
	return a, &fakeSockets{anvil: a, conns: map[int64][]TCPConn{300: {
		conn("127.0.0.2", 40001), conn("127.0.0.3", 40002), conn("::ffff:127.0.0.2", 40003),
		conn("127.0.0.5", 40004), conn("127.0.0.5", 40005),
	}}}
}

func byUserIP(user, ip string) func(*anvil.Session) bool {
	return func(s *anvil.Session) bool { return s.User == user && (ip == "" || s.IP == netip.MustParseAddr(ip)) }
}

func TestRunExact23(t *testing.T) {
	a, fs := shared23()
	sig := &fakeSig{anvil: a}
	opt := fast
	opt.Sockets = fs
	rs, err := run(t, a, sig, byUserIP("alice", ""), opt)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, "alice@300 kicked socket-destroy")
	if len(sig.calls) != 0 {
		t.Errorf("signalled %v; the process holds other users", sig.calls)
	}
	if want := []string{"127.0.0.2:40001", "[::ffff:127.0.0.2]:40003"}; !slices.Equal(fs.closed, want) {
		t.Errorf("closed %v, want %v", fs.closed, want)
	}
	if !a.has("bob", 300) || !a.has("dave", 300) || a.has("alice", 300) {
		t.Errorf("sessions left: %+v", a.sessions)
	}
}

func TestRunExactAmbiguous(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sel   func(*anvil.Session) bool
		setup func(*fakeSockets)
		why   string
	}{
		{"two users from one address", byUserIP("dave", ""), nil, "eve (imap) connects from the same address 127.0.0.5"},
		{"more sockets than anvil counts", byUserIP("bob", ""), func(f *fakeSockets) {
			f.conns[300] = append(f.conns[300], conn("127.0.0.3", 40009))
		}, "holds 2 connection(s) from 127.0.0.3 to this Dovecot's listeners, anvil lists 1"},
		{"fewer sockets than anvil counts", byUserIP("alice", ""), func(f *fakeSockets) {
			f.conns[300] = f.conns[300][1:]
		}, "holds 1 connection(s) from 127.0.0.2"},
		{"the kernel refuses", byUserIP("alice", ""), func(f *fakeSockets) {
			f.closeFn = func(TCPConn) error { return fmt.Errorf("%w: %w", ErrExactUnavailable, syscall.EOPNOTSUPP) }
		}, "operation not supported"},
		{"no capability", byUserIP("alice", ""), func(f *fakeSockets) {
			f.connErr = fmt.Errorf("%w: no CAP_NET_ADMIN", ErrExactUnavailable)
		}, "no CAP_NET_ADMIN"},
		{"process not verified", byUserIP("alice", ""), func(f *fakeSockets) {
			f.procErr = map[int64]error{300: errors.New(`pid 300 is "bash", not a Dovecot imap process`)}
		}, "not a Dovecot imap process"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, fs := shared23()
			if tc.setup != nil {
				tc.setup(fs)
			}
			sig := &fakeSig{anvil: a}
			opt := fast
			opt.Sockets = fs
			rs, err := run(t, a, sig, tc.sel, opt)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.Outcome != RefusedCollateral || r.Err == nil || !strings.Contains(r.Err.Error(), tc.why) {
					t.Errorf("result %s: %v; want refused-collateral saying %q", resDesc([]Result{r}), r.Err, tc.why)
				}
			}
			if len(rs) == 0 || len(fs.closed) != 0 || len(sig.calls) != 0 || len(a.sessions) != 4 {
				t.Errorf("%d results; closed %v, signalled %v, %d sessions left", len(rs), fs.closed, sig.calls, len(a.sessions))
			}
		})
	}
}

// A forced kick whose exact close the kernel refuses falls back to the
// protocol's kick, collateral included.
func TestRunExactRefusedForced(t *testing.T) {
	a, fs := shared23()
	fs.closeFn = func(TCPConn) error { return fmt.Errorf("%w: %w", ErrExactUnavailable, syscall.EPERM) }
	sig := &fakeSig{anvil: a}
	opt := fast
	opt.Sockets, opt.Force = fs, true
	rs, err := run(t, a, sig, byUserIP("alice", ""), opt)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, "alice@300 kicked sigterm", "bob@300 kicked sigterm collateral",
		"dave@300 kicked sigterm collateral", "eve@300 kicked sigterm collateral")
}

// The process gains a session from the target's address between the
// socket lookup and the kick: nothing is closed.
func TestRunExactChangedMeanwhile(t *testing.T) {
	a, fs := shared23()
	inner := fs
	sc := &hookSockets{SocketCloser: inner, afterConns: func() {
		a.sessions = append(a.sessions, s23(300, "imap", "mallory", "127.0.0.2", 1))
	}}
	sig := &fakeSig{anvil: a}
	opt := fast
	opt.Sockets = sc
	rs, err := run(t, a, sig, byUserIP("alice", ""), opt)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, "alice@300 refused-collateral sigterm err")
	if len(fs.closed) != 0 || !strings.Contains(rs[0].Err.Error(), "changed while its sockets were looked up") {
		t.Errorf("closed %v; err %v", fs.closed, rs[0].Err)
	}
}

type hookSockets struct {
	SocketCloser
	afterConns func()
}

func (h *hookSockets) Conns(ctx context.Context, procs map[int64]string) (map[int64]ProcConns, error) {
	cs, err := h.SocketCloser.Conns(ctx, procs)
	h.afterConns()
	return cs, err
}

func TestRunExactDryRun(t *testing.T) {
	a, fs := shared23()
	sig := &fakeSig{anvil: a}
	opt := fast
	opt.Sockets, opt.DryRun, opt.Force = fs, true, true
	rs, err := run(t, a, sig, byUserIP("alice", ""), opt)
	if err != nil {
		t.Fatal(err)
	}
	// No collateral listed: the exact close would not touch it.
	checkResults(t, rs, "alice@300 dry-run socket-destroy")
	if len(fs.closed) != 0 || len(a.sessions) != 4 {
		t.Errorf("a dry run closed %v", fs.closed)
	}
}

// 2.4: KICK-USER closes all of alice's connections in login process 10;
// naming one address closes that one socket alone.
func TestRunExact24ByAddress(t *testing.T) {
	a := new24()
	fs := &fakeSockets{anvil: a, conns: map[int64][]TCPConn{10: {
		conn("127.0.0.2", 50001), conn("127.0.0.3", 50002), conn("127.0.0.4", 50003),
	}}}
	sig := &fakeSig{anvil: a}
	opt := fast
	opt.Sockets = fs
	rs, err := run(t, a, sig, func(s *anvil.Session) bool { return aliceFrom("127.0.0.2")(s) && s.PID == 10 }, opt)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, "alice@10/0001 kicked socket-destroy")
	if !slices.Equal(fs.closed, []string{"127.0.0.2:50001"}) || len(a.kicks) != 0 {
		t.Errorf("closed %v, KICK-USER %v", fs.closed, a.kicks)
	}
	if !a.has("bob", 10) || !slices.ContainsFunc(a.sessions, func(s anvil.Session) bool { return s.User == "alice" && s.PID == 10 }) {
		t.Errorf("sessions left: %+v", a.sessions)
	}
}

// Units without collateral keep the protocol's kick: the SocketCloser is
// not even asked.
func TestRunExactOnlyForCollateral(t *testing.T) {
	a := new23()
	fs := &fakeSockets{anvil: a, connErr: errors.New("must not be asked")}
	sig := &fakeSig{anvil: a}
	opt := fast
	opt.Sockets = fs
	rs, err := run(t, a, sig, byUserIP("carol", ""), opt)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, "carol@500 kicked sigterm")
}

func TestListens(t *testing.T) {
	listen := map[netip.AddrPort]bool{
		netip.MustParseAddrPort("127.0.0.1:143"): true,
		netip.MustParseAddrPort("[::]:110"):      true,
	}
	for _, tc := range []struct {
		fam   uint8
		local string
		want  bool
	}{
		{syscall.AF_INET, "127.0.0.1:143", true},
		{syscall.AF_INET, "127.0.0.2:143", false}, // another address on that port
		{syscall.AF_INET, "127.0.0.1:40000", false},
		{syscall.AF_INET6, "[::1]:110", true},
		{syscall.AF_INET6, "[::ffff:127.0.0.1]:110", true}, // dual-stack [::] listener
		{syscall.AF_INET, "127.0.0.1:110", false},          // [::] listens on IPv6 sockets only
	} {
		s := sockdiag.Socket{Family: tc.fam, Local: netip.MustParseAddrPort(tc.local)}
		if got := listens(listen, s); got != tc.want {
			t.Errorf("listens(%d %s) = %v, want %v", tc.fam, tc.local, got, tc.want)
		}
	}
}

func TestNetAdmin(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ status, want string }{
		{"Name:\tx\nCapEff:\t000001ffffffffff\n", ""},
		{"Name:\tx\nCapEff:\t0000000000000000\n", "lacks CAP_NET_ADMIN"},
		{"Name:\tx\nCapEff:\t0000000000001000\n", ""},
		{"Name:\tx\n", "no CapEff"},
	} {
		if err := os.MkdirAll(filepath.Join(dir, "self"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "self", "status"), []byte(tc.status), 0o644); err != nil {
			t.Fatal(err)
		}
		err := netAdmin(dir)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrExactUnavailable)) {
			t.Errorf("CapEff %q: %v, want %q", tc.status, err, tc.want)
		}
	}
}

// Several shared processes, one exact and one ambiguous: one socket lookup
// for the round, and each unit judged on its own.
func TestRunExactSeveralProcesses(t *testing.T) {
	a, fs := shared23()
	a.sessions = append(a.sessions, s23(600, "pop3", "dave", "127.0.0.8", 1), s23(600, "pop3", "frank", "127.0.0.8", 1),
		s23(700, "imap", "dave", "127.0.0.9", 1), s23(700, "imap", "gina", "127.0.0.10", 1))
	fs.conns[600] = []TCPConn{conn("127.0.0.8", 1), conn("127.0.0.8", 2)}
	fs.conns[700] = []TCPConn{conn("127.0.0.9", 3), conn("127.0.0.10", 4)}
	sig := &fakeSig{anvil: a}
	opt := fast
	opt.Sockets = fs
	rs, err := run(t, a, sig, byUserIP("dave", ""), opt)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, "dave@300 refused-collateral sigterm err", "dave@600 refused-collateral sigterm err", "dave@700 kicked socket-destroy")
	if fs.lookups != 1 || !slices.Equal(fs.closed, []string{"127.0.0.9:3"}) {
		t.Errorf("%d socket lookups, closed %v; want 1 and dave's in pid 700", fs.lookups, fs.closed)
	}
}

// One process's sessions change between the socket lookup and the kick:
// that unit is refused, and the next process's exact unit still goes out
// (the re-check's error once leaked into the units after it).
func TestRunExactChangedOneOfTwo(t *testing.T) {
	a, fs := shared23()
	a.sessions = append(a.sessions, s23(700, "imap", "alice", "127.0.0.9", 1), s23(700, "imap", "gina", "127.0.0.10", 1))
	fs.conns[700] = []TCPConn{conn("127.0.0.9", 3), conn("127.0.0.10", 4)}
	sc := &hookSockets{SocketCloser: fs, afterConns: func() {
		a.sessions = append(a.sessions, s23(300, "imap", "mallory", "127.0.0.2", 1))
	}}
	opt := fast
	opt.Sockets = sc
	rs, err := run(t, a, &fakeSig{anvil: a}, byUserIP("alice", ""), opt)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, "alice@300 refused-collateral sigterm err", "alice@700 kicked socket-destroy")
	if !slices.Equal(fs.closed, []string{"127.0.0.9:3"}) {
		t.Errorf("closed %v, want alice's socket in pid 700 alone", fs.closed)
	}
}
