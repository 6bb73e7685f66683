package kick

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// fakeAnvil is a Conn over a live session table. KICK-USER user guid
// removes user's sessions in the processes holding guid (as anvil and the
// processes do), except stuck ones; a removed session may linger for a few
// dumps (lag), as a disconnect reaches anvil only after the kick.
type fakeAnvil struct {
	proto    anvil.Protocol
	sessions []anvil.Session
	// stuck sessions survive KICK-USER (a process that ignores the kick).
	stuck func(s *anvil.Session) bool
	// lag is how many more dumps list a kicked or signalled session.
	lag     int
	leaving map[string]int // session key -> dumps left

	dumps   int
	dumpErr error // returned by dumps after the first kick or signal
	kicks   []string
	kickErr error
	acted   bool
}

func key(s *anvil.Session) string {
	return fmt.Sprintf("%d/%s/%s/%v/%s", s.PID, s.Service, s.User, s.IP, s.ConnGUID)
}

func (f *fakeAnvil) Dump(ctx context.Context) (*anvil.Snapshot, error) {
	f.dumps++
	if f.acted && f.dumpErr != nil {
		return nil, f.dumpErr
	}
	snap := &anvil.Snapshot{Protocol: f.proto, Sessions: slices.Clone(f.sessions)}
	for k, n := range f.leaving {
		if n <= 0 {
			f.sessions = slices.DeleteFunc(f.sessions, func(s anvil.Session) bool { return key(&s) == k })
			delete(f.leaving, k)
		} else {
			f.leaving[k] = n - 1
		}
	}
	return snap, nil
}

// remove drops the sessions for which drop is true, after f.lag dumps.
func (f *fakeAnvil) remove(drop func(s *anvil.Session) bool) int {
	f.acted = true
	if f.leaving == nil {
		f.leaving = map[string]int{}
	}
	n := 0
	for i := range f.sessions {
		s := &f.sessions[i]
		if drop(s) {
			n++
			if _, ok := f.leaving[key(s)]; !ok {
				f.leaving[key(s)] = f.lag
			}
		}
	}
	// Apply lag 0 at once.
	for k, left := range f.leaving {
		if left == 0 && f.lag == 0 {
			f.sessions = slices.DeleteFunc(f.sessions, func(s anvil.Session) bool { return key(&s) == k })
			delete(f.leaving, k)
		}
	}
	return n
}

func (f *fakeAnvil) KickUser(ctx context.Context, user, guid string) (int, error) {
	f.kicks = append(f.kicks, user+" "+guid)
	if f.kickErr != nil {
		return 0, f.kickErr
	}
	pids := map[int64]bool{}
	for _, s := range f.sessions {
		if s.ConnGUID == guid {
			pids[s.PID] = true
		}
	}
	return f.remove(func(s *anvil.Session) bool {
		return s.User == user && pids[s.PID] && (f.stuck == nil || !f.stuck(s))
	}), nil
}

func (f *fakeAnvil) has(user string, pid int64) bool {
	return slices.ContainsFunc(f.sessions, func(s anvil.Session) bool { return s.User == user && s.PID == pid })
}

// fakeSig is a Signaler: a signalled process exits and its sessions leave
// anvil, unless errs names an error for its pid.
type fakeSig struct {
	anvil *fakeAnvil
	calls []string
	errs  map[int64]error
}

func (f *fakeSig) Terminate(pid int64, service string) error {
	f.calls = append(f.calls, fmt.Sprintf("%d %s", pid, service))
	if err := f.errs[pid]; err != nil {
		return err
	}
	f.anvil.remove(func(s *anvil.Session) bool { return s.PID == pid })
	return nil
}

var fast = Options{Settle: 300 * time.Millisecond, Poll: time.Millisecond, KickTimeout: time.Second}

// resDesc renders results as "user@pid outcome method [collateral] [err]".
func resDesc(rs []Result) []string {
	var out []string
	for _, r := range rs {
		d := fmt.Sprintf("%s@%d %s %s", r.Session.User, r.Session.PID, r.Outcome, r.Method)
		if r.Session.ConnGUID != "" {
			d = fmt.Sprintf("%s@%d/%s %s %s", r.Session.User, r.Session.PID, r.Session.ConnGUID[28:], r.Outcome, r.Method)
		}
		if r.Collateral {
			d += " collateral"
		}
		if r.Err != nil {
			d += " err"
		}
		out = append(out, d)
	}
	return out
}

func checkResults(t *testing.T, rs []Result, want ...string) {
	t.Helper()
	got := resDesc(rs)
	if !slices.Equal(got, want) {
		t.Errorf("results:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func new23() *fakeAnvil {
	return &fakeAnvil{proto: anvil.Proto23, sessions: []anvil.Session{
		s23(100, "imap", "alice", "127.0.0.2", 1),
		s23(300, "imap", "alice", "127.0.0.3", 1),
		s23(300, "imap", "bob", "127.0.0.4", 1),
		s23(400, "lmtp", "alice", "", 1),
		s23(500, "imap", "carol", "127.0.0.5", 1),
	}}
}

func run(t *testing.T, a *fakeAnvil, sig *fakeSig, sel func(*anvil.Session) bool, opt Options) ([]Result, error) {
	t.Helper()
	snap, err := a.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a.dumps = 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Run(ctx, a, sig, NewPlan(snap, sel), opt)
}

func TestRun23RefusesCollateral(t *testing.T) {
	a := new23()
	sig := &fakeSig{anvil: a}
	rs, err := run(t, a, sig, byUser("alice"), fast)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs,
		"alice@400 skipped  err",
		"alice@100 kicked sigterm",
		"alice@300 refused-collateral sigterm")
	if want := []string{"100 imap"}; !slices.Equal(sig.calls, want) {
		t.Errorf("signals %q, want %q", sig.calls, want)
	}
	if len(a.kicks) != 0 {
		t.Errorf("KICK-USER sent on 2.3: %q", a.kicks)
	}
	if !a.has("bob", 300) || !a.has("alice", 300) || !a.has("carol", 500) || !a.has("alice", 400) {
		t.Errorf("sessions left: %+v", a.sessions)
	}
}

func TestRun23Force(t *testing.T) {
	a := new23()
	sig := &fakeSig{anvil: a}
	opt := fast
	opt.Force = true
	rs, err := run(t, a, sig, byUser("alice"), opt)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs,
		"alice@400 skipped  err",
		"alice@100 kicked sigterm",
		"alice@300 kicked sigterm",
		"bob@300 kicked sigterm collateral")
	if want := []string{"100 imap", "300 imap"}; !slices.Equal(sig.calls, want) {
		t.Errorf("signals %q, want %q", sig.calls, want)
	}
	if !a.has("carol", 500) || !a.has("alice", 400) {
		t.Errorf("sessions left: %+v", a.sessions)
	}
}

func TestRunDryRun(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprint("force=", force), func(t *testing.T) {
			a := new23()
			sig := &fakeSig{anvil: a}
			opt := fast
			opt.DryRun, opt.Force = true, force
			rs, err := run(t, a, sig, byUser("alice"), opt)
			if err != nil {
				t.Fatal(err)
			}
			if force {
				// --force --dry-run shows what --force would close.
				checkResults(t, rs,
					"alice@400 skipped  err",
					"alice@100 dry-run sigterm",
					"alice@300 dry-run sigterm",
					"bob@300 dry-run sigterm collateral")
			} else {
				checkResults(t, rs,
					"alice@400 skipped  err",
					"alice@100 dry-run sigterm",
					"alice@300 refused-collateral sigterm")
			}
			if len(sig.calls)+len(a.kicks)+a.dumps != 0 {
				t.Errorf("dry run signalled %q, kicked %q, dumped %d times", sig.calls, a.kicks, a.dumps)
			}
			if len(a.sessions) != 5 {
				t.Errorf("sessions left: %+v", a.sessions)
			}
		})
	}
}

func TestRun23SignalErrors(t *testing.T) {
	a := new23()
	a.sessions = slices.DeleteFunc(a.sessions, func(s anvil.Session) bool { return s.PID == 100 }) // exited meanwhile
	sig := &fakeSig{anvil: a, errs: map[int64]error{
		100: fmt.Errorf("pid 100: %w", ErrGone),
		500: errors.New(`pid 500 is "bash", not a Dovecot imap process (pid reused?); not signalled`),
	}}
	snap := snap23(s23(100, "imap", "alice", "127.0.0.2", 1), s23(500, "imap", "carol", "127.0.0.5", 1))
	rs, err := Run(context.Background(), a, sig, NewPlan(snap, byUser("alice", "carol")), fast)
	if err != nil {
		t.Fatal(err)
	}
	// A process already gone is no failure: the dump decides. A refused
	// signal is a failure and is not confirmed.
	checkResults(t, rs, "alice@100 kicked sigterm", "carol@500 failed sigterm err")
	if !a.has("carol", 500) {
		t.Error("carol's session was removed")
	}
}

func TestRun23GoneButListed(t *testing.T) {
	// ErrGone, yet anvil still lists the record after Settle: reported as
	// still connected, never as kicked.
	a := &fakeAnvil{proto: anvil.Proto23, sessions: []anvil.Session{s23(100, "imap", "alice", "127.0.0.2", 1)}}
	sig := &fakeSig{anvil: a, errs: map[int64]error{100: ErrGone}}
	rs, err := run(t, a, sig, byUser("alice"), fast)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, "alice@100 still-connected sigterm")
}

func new24() *fakeAnvil {
	return &fakeAnvil{proto: anvil.Proto24, sessions: []anvil.Session{
		s24(10, "imap-login", "alice", "127.0.0.2", 1, "127.0.0.1"),
		s24(10, "imap-login", "alice", "127.0.0.3", 2, "127.0.0.1"),
		s24(10, "imap-login", "bob", "127.0.0.4", 3, "127.0.0.1"),
		s24(20, "imap", "alice", "127.0.0.2", 4, ""),
		s24(30, "lmtp", "alice", "", 5, ""),
		s24(40, "pop3", "carol", "::1", 6, ""),
	}}
}

func aliceFrom(ip string) func(*anvil.Session) bool {
	return func(s *anvil.Session) bool { return s.User == "alice" && s.IP == netip.MustParseAddr(ip) }
}

func TestRun24KickUserUnits(t *testing.T) {
	a := new24()
	sig := &fakeSig{anvil: a}
	rs, err := run(t, a, sig, aliceFrom("127.0.0.2"), fast)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs,
		"alice@10/0001 refused-collateral kick-user",
		"alice@20/0004 kicked kick-user")
	if want := []string{"alice " + guidN(4)}; !slices.Equal(a.kicks, want) {
		t.Errorf("KICK-USER %q, want %q", a.kicks, want)
	}
	if len(sig.calls) != 0 {
		t.Errorf("signals %q", sig.calls)
	}
	if !a.has("alice", 10) || !a.has("bob", 10) || !a.has("carol", 40) {
		t.Errorf("sessions left: %+v", a.sessions)
	}
}

func TestRun24Force(t *testing.T) {
	a := new24()
	sig := &fakeSig{anvil: a}
	opt := fast
	opt.Force = true
	rs, err := run(t, a, sig, aliceFrom("127.0.0.2"), opt)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs,
		"alice@10/0001 kicked kick-user",
		"alice@10/0002 kicked kick-user collateral",
		"alice@20/0004 kicked kick-user")
	if want := []string{"alice " + guidN(1), "alice " + guidN(4)}; !slices.Equal(a.kicks, want) {
		t.Errorf("KICK-USER %q, want %q", a.kicks, want)
	}
	if !a.has("bob", 10) || !a.has("alice", 30) || !a.has("carol", 40) {
		t.Errorf("sessions left: %+v", a.sessions)
	}
}

func TestRun24OneKickPerPIDAndUser(t *testing.T) {
	a := new24()
	sig := &fakeSig{anvil: a}
	rs, err := run(t, a, sig, byUser("alice", "bob"), fast)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs,
		"alice@30/0005 skipped  err",
		"alice@10/0001 kicked kick-user",
		"alice@10/0002 kicked kick-user",
		"bob@10/0003 kicked kick-user",
		"alice@20/0004 kicked kick-user")
	want := []string{"alice " + guidN(1), "bob " + guidN(3), "alice " + guidN(4)}
	if !slices.Equal(a.kicks, want) {
		t.Errorf("KICK-USER %q, want %q", a.kicks, want)
	}
}

func TestRunSettleWaitsForAnvil(t *testing.T) {
	a := new24()
	a.lag = 5 // the disconnect reaches anvil five dumps after the kick
	rs, err := run(t, a, &fakeSig{anvil: a}, byUser("carol"), fast)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, "carol@40/0006 kicked kick-user")
	if a.dumps < 6 {
		t.Errorf("%d confirming dumps, want at least 6", a.dumps)
	}
}

func TestRunStillConnected(t *testing.T) {
	a := new24()
	a.stuck = func(s *anvil.Session) bool { return s.User == "carol" }
	start := time.Now()
	rs, err := run(t, a, &fakeSig{anvil: a}, byUser("carol"), fast)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs, "carol@40/0006 still-connected kick-user")
	if d := time.Since(start); d < fast.Settle {
		t.Errorf("gave up after %v, before Settle %v", d, fast.Settle)
	}
}

// TestRunStuckLogins: anvil's kick leaves proxied sessions of
// one-connection login processes open (Dovecot 2.4.0-2.4.4); Run then
// signals such a login process, but only when it holds exactly that one
// session, and never a mail process.
func TestRunStuckLogins(t *testing.T) {
	a := &fakeAnvil{proto: anvil.Proto24, sessions: []anvil.Session{
		s24(10, "imap-login", "alice", "127.0.0.2", 1, "127.0.0.1"), // alone in its login process
		s24(11, "imap-login", "alice", "127.0.0.3", 2, "127.0.0.1"), // shares pid 11 with bob
		s24(11, "imap-login", "bob", "127.0.0.4", 3, "127.0.0.1"),
		s24(12, "imap", "alice", "127.0.0.2", 4, ""),       // mail process ignoring the kick
		s24(13, "pop3-login", "alice", "::1", 5, "::1"),    // alone, signal refused
		s24(14, "pop3-login", "alice", "::1", 6, "::1"),    // alone, already gone
		s24(15, "imap-login", "alice", "127.0.0.9", 7, ""), // login session without dest: not a proxy
	}}
	a.stuck = func(*anvil.Session) bool { return true }
	sig := &fakeSig{anvil: a, errs: map[int64]error{
		13: errors.New("pid 13: parent is not a dovecot master; not signalled"),
		14: fmt.Errorf("pid 14: %w", ErrGone),
	}}
	rs, err := run(t, a, sig, byUser("alice"), fast)
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rs,
		"alice@10/0001 kicked login-sigterm",
		"alice@11/0002 still-connected kick-user",
		"alice@12/0004 still-connected kick-user",
		"alice@13/0005 still-connected kick-user err",
		"alice@14/0006 still-connected kick-user",
		"alice@15/0007 still-connected kick-user")
	if want := []string{"10 imap-login", "13 pop3-login", "14 pop3-login"}; !slices.Equal(sig.calls, want) {
		t.Errorf("signals %q, want %q", sig.calls, want)
	}
}

func TestRunKickErrors(t *testing.T) {
	t.Run("anvil closed", func(t *testing.T) {
		a := new24()
		a.kickErr = fmt.Errorf("%w (x) during KICK-USER", anvil.ErrClosed)
		rs, err := run(t, a, &fakeSig{anvil: a}, byUser("alice", "carol"), fast)
		if !errors.Is(err, anvil.ErrClosed) {
			t.Fatalf("Run error %v, want ErrClosed", err)
		}
		checkResults(t, rs,
			"alice@30/0005 skipped  err",
			"alice@10/0001 failed kick-user err",
			"alice@10/0002 failed kick-user err")
		if len(a.kicks) != 1 {
			t.Errorf("kicks after anvil closed: %q", a.kicks)
		}
	})
	t.Run("other error", func(t *testing.T) {
		a := new24()
		a.kickErr = errors.New("anvil: kick: bad connection guid")
		rs, err := run(t, a, &fakeSig{anvil: a}, byUser("bob", "carol"), fast)
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, rs, "bob@10/0003 failed kick-user err", "carol@40/0006 failed kick-user err")
		if a.dumps != 0 {
			t.Errorf("%d dumps with nothing to confirm", a.dumps)
		}
	})
	t.Run("confirming dump fails", func(t *testing.T) {
		a := new24()
		a.dumpErr = fmt.Errorf("%w (x) during CONNECT-DUMP", anvil.ErrClosed)
		rs, err := run(t, a, &fakeSig{anvil: a}, byUser("carol"), fast)
		if !errors.Is(err, anvil.ErrClosed) {
			t.Fatalf("Run error %v, want ErrClosed", err)
		}
		checkResults(t, rs, "carol@40/0006 failed kick-user err")
	})
}

func TestPresent(t *testing.T) {
	s2 := s24(10, "imap", "alice", "127.0.0.2", 1, "")
	other := s24(10, "imap", "alice", "127.0.0.2", 2, "")
	if present(snap24(other), &s2) {
		t.Error("2.4: another GUID of the same user, pid and ip counts as present")
	}
	if !present(snap24(other, s2), &s2) {
		t.Error("2.4: same GUID not present")
	}
	s3 := s23(100, "imap", "alice", "127.0.0.2", 1)
	for _, o := range []anvil.Session{
		s23(101, "imap", "alice", "127.0.0.2", 1), // same user in a new process
		s23(100, "pop3", "alice", "127.0.0.2", 1),
		s23(100, "imap", "alice", "127.0.0.3", 1),
		s23(100, "imap", "bob", "127.0.0.2", 1),
	} {
		if present(snap23(o), &s3) {
			t.Errorf("2.3: %+v counts as %+v", o, s3)
		}
	}
	if !present(snap23(s23(100, "imap", "alice", "127.0.0.2", 3)), &s3) {
		t.Error("2.3: same record with another refcount not present")
	}
}

// TestCloseStuckLogins calls the workaround directly on one snapshot.
func TestCloseStuckLogins(t *testing.T) {
	alone := s24(10, "imap-login", "alice", "127.0.0.2", 1, "127.0.0.1")
	shared1 := s24(11, "imap-login", "alice", "127.0.0.3", 2, "127.0.0.1")
	shared2 := s24(11, "imap-login", "bob", "127.0.0.4", 3, "127.0.0.1")
	gone := s24(12, "imap-login", "alice", "127.0.0.5", 4, "127.0.0.1")
	snap := snap24(alone, shared1, shared2)
	pending := []*Result{{Session: &alone, Method: "kick-user"}, {Session: &shared1, Method: "kick-user"}, {Session: &gone, Method: "kick-user"}}
	a := &fakeAnvil{proto: anvil.Proto24}
	sig := &fakeSig{anvil: a}
	if !closeStuckLogins(snap, indexOf(snap), sig, pending) {
		t.Error("reported no signal")
	}
	if want := []string{"10 imap-login"}; !slices.Equal(sig.calls, want) {
		t.Errorf("signals %q, want %q", sig.calls, want)
	}
	if pending[0].Method != "login-sigterm" || pending[1].Method != "kick-user" || pending[2].Method != "kick-user" {
		t.Errorf("methods %s %s %s", pending[0].Method, pending[1].Method, pending[2].Method)
	}
	sig.calls = nil
	if closeStuckLogins(snap24(shared1, shared2), indexOf(snap24(shared1, shared2)), sig, pending[1:2]) || len(sig.calls) != 0 {
		t.Errorf("signalled a login process holding two sessions: %q", sig.calls)
	}
}
