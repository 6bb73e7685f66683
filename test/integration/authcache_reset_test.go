package integration

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// TestResetFlushesAuthCache: on Dovecot 2.3 and 2.4 with an SQL passdb and
// the auth cache (p23, p24), a phone holds a session with its stored
// password and logs in again with it whenever it is disconnected. The
// password changes in the db; the cache still lets the old one in. Then:
//   - kickagent reset USER flushes the cache first: the phone's session
//     is kicked and every reconnect with the old password is refused,
//     while a login with the new password works and stays;
//   - the same with --no-cache-flush: the old password gets back in right
//     after the kick, as a new session the reset leaves alone (what the
//     flush is for, and why this test can fail);
//   - a login as BOB is flushed by reset Bob (cached as bob), and the
//     other sockets of base_dir are refused with what they are.
//
// Each run starts its instance afresh (passwords "pass", empty cache).
// Client addresses 127.0.0.71-127.0.0.79.
func TestResetFlushesAuthCache(t *testing.T) {
	for _, name := range []string{testrig.P23, testrig.P24} {
		t.Run(name, func(t *testing.T) {
			t.Run("flush", func(t *testing.T) { resetAuthCache(t, name, true) })
			t.Run("no-cache-flush", func(t *testing.T) { resetAuthCache(t, name, false) })
			t.Run("names and sockets", func(t *testing.T) { resetFlushReal(t, testrig.StartSQLT(t, name, testrig.Policy{})) })
		})
	}
}

const (
	oldPass = "pass"
	newPass = "n3w-Pass"
)

func resetAuthCache(t *testing.T, name string, flush bool) {
	inst := testrig.StartSQLT(t, name, testrig.Policy{})
	// Leave the instance as a fresh start leaves it (alice's password
	// "pass", nothing cached) for whoever uses it next.
	t.Cleanup(func() { testrig.StartSQLT(t, name, testrig.Policy{}) })
	ctx := testCtx(t)
	socket := inst.AuthMaster()
	if socket == "" {
		t.Fatalf("%s: the env file has no KA_AUTH_MASTER", name)
	}
	a := startAgent(t, inst, agentOpts{rules: noRules})
	a.waitHealthy(t, 10*time.Second)

	ph := startPhone(t, inst, "alice", oldPass, "127.0.0.71")
	first := ph.waitFirst(t, 15*time.Second)
	waitListed(t, ctx, inst, []*held{{login: login{"alice", "127.0.0.71", "imap"}}})

	inst.PasswdT(t, "alice", newPass)
	// The cache still knows the old password: the premise of the test.
	probe, err := testrig.DialIMAP(ctx, netip.MustParseAddr("127.0.0.72"), inst.IMAPPort, "alice", oldPass)
	if err != nil {
		t.Fatalf("%s: after the password change the cached old password should still log in: %v", name, err)
	}
	probe.Close()

	args := []string{"reset", "alice", "--auth-master", socket}
	if !flush {
		args = []string{"reset", "alice", "--no-cache-flush"}
	}
	start := time.Now()
	out := a.mustJob(t, ctx, args...)
	m := regexp.MustCompile(`auth cache: (\d+) entries flushed for "alice"`).FindStringSubmatch(out)
	switch {
	case flush && (m == nil || m[1] == "0"):
		t.Errorf("%s: reset did not report flushing alice's entries:\n%s", name, out)
	case !flush && strings.Contains(out, "auth cache"):
		t.Errorf("%s: reset --no-cache-flush talks of a flush:\n%s", name, out)
	}
	if m != nil {
		t.Logf("%s: %s", name, m[0])
	}

	kicked := ph.waitClosed(t, first, 2*agentInterval+10*time.Second)
	t.Logf("%s: reset → the phone's session closed in %v", name, kicked.Sub(start))

	if !flush {
		// The old password gets back in: a new session, left alone.
		at := ph.waitLoginAfter(t, kicked, 20*time.Second)
		t.Logf("%s: --no-cache-flush: the old password logged in again %v after the kick", name, at.Sub(kicked))
		return
	}
	// Every reconnect with the old password is refused: wait for a few
	// refusals (Dovecot delays each failure by seconds) and no login.
	ph.waitRefusedAfter(t, kicked, 2, 40*time.Second)
	fresh, err := testrig.DialIMAP(ctx, netip.MustParseAddr("127.0.0.73"), inst.IMAPPort, "alice", newPass)
	if err != nil {
		t.Fatalf("%s: the new password does not log in: %v", name, err)
	}
	t.Cleanup(func() { fresh.Close() })
	stayOpen(t, ctx, 3, fresh)
	if n := ph.loginsAfter(kicked); n != 0 {
		t.Errorf("%s: the old password logged in %d times after the flush and the kick", name, n)
	}
}

// resetFlushReal: what reset flushes and says on real Dovecot. A login as
// "BOB" is cached under "bob" (auth_username_format %Lu), so reset Bob
// flushes it through the lowercase name; the other auth sockets are
// refused with what they are, and the reset is installed all the same.
func resetFlushReal(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	c, err := testrig.DialIMAP(ctx, netip.MustParseAddr("127.0.0.75"), inst.IMAPPort, "BOB", oldPass)
	if err != nil {
		t.Fatalf("%s: log in as BOB: %v", inst.Name, err)
	}
	c.Close()
	dir := filepath.Join(t.TempDir(), "rules.d")
	out, errOut, code := kickagent(t, ctx, "reset", "Bob", "--auth-master", inst.AuthMaster(), "--rules-dir", dir)
	m := regexp.MustCompile(`auth cache: (\d+) entries flushed for "Bob", "bob"`).FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] == "0" {
		t.Errorf("%s: reset Bob: exit %d, want bob's cached entries flushed:\n%s%s", inst.Name, code, out, errOut)
	}
	if n, err := inst.FlushAuthCache(ctx, "bob"); err != nil || n != 0 {
		t.Errorf("%s: doveadm auth cache flush bob after the reset: %d %v, want nothing left", inst.Name, n, err)
	}
	// 2.3's anvil hangs up on our handshake; 2.4's greets as anvil.
	anvilSays := "the auth process closed the connection while waiting for the greeting"
	if inst.Is24() {
		anvilSays = `unexpected answer from the auth process in the greeting: a bad version number: "VERSION\tanvil-server`
	}
	for sock, want := range map[string]string{
		"auth-userdb": "refuses CACHE-FLUSH on a socket that is not auth-master",
		"auth-client": "not an auth-master socket: it greets as an auth client socket",
		"anvil":       anvilSays,
		"nonexistent": "does not exist",
	} {
		os.RemoveAll(dir)
		out, errOut, code := kickagent(t, ctx, "reset", "bob", "--auth-master", filepath.Join(inst.BaseDir, sock), "--rules-dir", dir, "--timeout", "10s")
		if code != 2 || !strings.Contains(errOut, "WARNING: the auth cache was NOT flushed") || !strings.Contains(errOut, want) ||
			!strings.HasPrefix(out, "reset: ") {
			t.Errorf("%s: reset with --auth-master %s: exit %d, want 2 with %q and the reset installed:\n%s%s", inst.Name, sock, code, want, out, errOut)
		}
	}
}

// phone is a client that logs in with its stored password and, whenever
// the server closes its session, logs in again at once, as mail apps do.
// Only its goroutine uses the connections; tests read what it records.
type phone struct {
	inst       *testrig.Instance
	user, pass string
	src        netip.Addr

	mu       sync.Mutex
	sessions []*phoneSession
	refused  []time.Time // when a login was refused
	other    []string    // other failures (connect errors), for the log
	changed  chan struct{}
}

// phoneSession is one login that succeeded.
type phoneSession struct {
	conn     *testrig.Conn
	loggedIn time.Time
	closed   time.Time // zero while open
}

func startPhone(t *testing.T, inst *testrig.Instance, user, pass, src string) *phone {
	ph := &phone{inst: inst, user: user, pass: pass, src: netip.MustParseAddr(src), changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ph.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		ph.mu.Lock()
		defer ph.mu.Unlock()
		for _, s := range ph.sessions {
			s.conn.Close()
		}
		t.Logf("%s: phone %s from %s: %d logins, %d refused, other failures %q", inst.Name, user, src, len(ph.sessions), len(ph.refused), ph.other)
	})
	return ph
}

func (ph *phone) run(ctx context.Context) {
	for ctx.Err() == nil {
		c, err := testrig.DialIMAP(ctx, ph.src, ph.inst.IMAPPort, ph.user, ph.pass)
		s := &phoneSession{conn: c, loggedIn: time.Now()}
		ph.record(func() {
			switch {
			case err == nil:
				ph.sessions = append(ph.sessions, s)
			case strings.Contains(err.Error(), "LOGIN") && strings.Contains(err.Error(), "a NO"):
				ph.refused = append(ph.refused, s.loggedIn)
			case ctx.Err() == nil:
				ph.other = append(ph.other, err.Error())
			}
		})
		if err != nil {
			// Do not hammer the server; Dovecot delays failures anyway.
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		// Hold the session until the server closes it.
		if c.WaitClosed(ctx) == nil {
			ph.record(func() { s.closed = time.Now() })
		}
	}
}

// record changes the phone's records under its lock and wakes a waiter.
func (ph *phone) record(f func()) {
	ph.mu.Lock()
	f()
	ph.mu.Unlock()
	select {
	case ph.changed <- struct{}{}:
	default:
	}
}

// loginsAfter counts the sessions that logged in after since.
func (ph *phone) loginsAfter(since time.Time) int {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	n := 0
	for _, s := range ph.sessions {
		if s.loggedIn.After(since) {
			n++
		}
	}
	return n
}

// wait polls cond (called with ph.mu held) until it returns true.
func (ph *phone) wait(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		ph.mu.Lock()
		ok := cond()
		logins, refused, other := len(ph.sessions), len(ph.refused), ph.other
		ph.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ph.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: the phone saw no %s within %v (%d logins, %d refused, other failures %q)",
				ph.inst.Name, what, within, logins, refused, other)
		}
	}
}

// waitFirst waits for the phone's first session.
func (ph *phone) waitFirst(t *testing.T, within time.Duration) *phoneSession {
	t.Helper()
	ph.wait(t, within, "first login", func() bool { return len(ph.sessions) > 0 })
	ph.mu.Lock()
	defer ph.mu.Unlock()
	return ph.sessions[0]
}

// waitClosed waits until the server closed s and returns when.
func (ph *phone) waitClosed(t *testing.T, s *phoneSession, within time.Duration) time.Time {
	t.Helper()
	ph.wait(t, within, "close of its session", func() bool { return !s.closed.IsZero() })
	ph.mu.Lock()
	defer ph.mu.Unlock()
	return s.closed
}

// waitLoginAfter waits for a login after since and returns when it was.
func (ph *phone) waitLoginAfter(t *testing.T, since time.Time, within time.Duration) time.Time {
	t.Helper()
	var at time.Time
	ph.wait(t, within, "login after the kick", func() bool {
		for _, s := range ph.sessions {
			if s.loggedIn.After(since) {
				at = s.loggedIn
				return true
			}
		}
		return false
	})
	return at
}

// waitRefusedAfter waits for n refused logins after since.
func (ph *phone) waitRefusedAfter(t *testing.T, since time.Time, n int, within time.Duration) {
	t.Helper()
	ph.wait(t, within, strconv.Itoa(n)+" refused logins after the kick", func() bool {
		k := 0
		for _, at := range ph.refused {
			if at.After(since) {
				k++
			}
		}
		return k >= n
	})
}
