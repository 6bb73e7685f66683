package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/authpolicy"
	"github.com/kickagent/kickagent/internal/testrig"
)

// The auth policy tests use client addresses 127.0.0.81-127.0.0.89, the
// instances p23 and p24 (SQL passdb, auth cache) and users alice, bob,
// dave (allow-listed).

const policyHeader = "X-Kickagent-Key:it-secret"

// policyAgent starts p23/p24 asking an agent on a free port, and that agent.
func policyAgent(t *testing.T, name, rules string, p testrig.Policy, args ...string) (*testrig.Instance, *agentProc, string) {
	t.Helper()
	addr := freeLoopbackPort(t)
	p.URL, p.Header = "http://"+addr+"/", policyHeader
	inst := testrig.StartSQLT(t, name, p)
	return inst, startPolicyAgent(t, inst, addr, rules, args...), addr
}

// startPolicyAgent starts an agent whose auth policy listener is on addr.
func startPolicyAgent(t *testing.T, inst *testrig.Instance, addr, rules string, args ...string) *agentProc {
	t.Helper()
	a := startAgent(t, inst, agentOpts{rules: rules, args: args,
		config: fmt.Sprintf("auth_policy:\n  listen: %q\n  api_header: %q\n", addr, policyHeader)})
	a.waitHealthy(t, 10*time.Second)
	a.waitLog(t, "auth policy listening", 1, 5*time.Second)
	return a
}

// try logs user in once from src; it fails the test on connection trouble.
func try(t *testing.T, ctx context.Context, inst *testrig.Instance, p testrig.Protocol, src, user, pass string) testrig.LoginResult {
	t.Helper()
	r, err := inst.TryLogin(ctx, p, netip.MustParseAddr(src), user, pass)
	if err != nil {
		t.Fatalf("%s: login %s from %s: %v", inst.Name, user, src, err)
	}
	return r
}

func wantRefused(t *testing.T, r testrig.LoginResult, what string) {
	t.Helper()
	if r.OK {
		t.Errorf("%s: logged in, want refused", what)
	} else if !strings.Contains(r.Line, authpolicy.DefaultRefuseMessage) {
		t.Errorf("%s: refused without kickagent's message: %q", what, r.Line)
	}
}

func wantOK(t *testing.T, r testrig.LoginResult, what string) {
	t.Helper()
	if !r.OK {
		t.Errorf("%s: refused (%q), want logged in", what, r.Line)
	}
}

// TestAuthPolicyBlock: `kickagent block NET` closes the sessions from NET
// and refuses new logins from it, on IMAP and POP3; other networks and the
// allow list are unaffected; unblock lets NET in again at once; with the
// agent stopped logins work again (Dovecot's default fails open).
func TestAuthPolicyBlock(t *testing.T) {
	for _, name := range []string{testrig.P23, testrig.P24} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			const timeout = time.Second // Dovecot's policy request timeout
			inst, a, _ := policyAgent(t, name, "allow: {users: [dave]}\nrules: []\n", testrig.Policy{Timeout: timeout})
			hs := holdListed(t, ctx, inst, login{"alice", "127.0.0.81", "imap"}, login{"bob", "127.0.0.81", "pop3"},
				login{"dave", "127.0.0.81", "imap"}, login{"alice", "127.0.0.82", "imap"})
			start := time.Now()
			a.mustJob(t, ctx, "block", "127.0.0.81/32")
			for _, c := range hs[:2] {
				t.Logf("%s: %s from %s closed after %v", name, c.User, c.Src, closeTime(t, ctx, c, start, 5*time.Second))
			}
			wantRefused(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.81", "alice", "pass"), "IMAP alice from the blocked net")
			wantRefused(t, try(t, ctx, inst, testrig.POP3, "127.0.0.81", "bob", "pass"), "POP3 bob from the blocked net")
			wantOK(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.81", "dave", "pass"), "allow-listed dave from the blocked net")
			wantOK(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.82", "alice", "pass"), "alice from another net")
			assertOpen(t, ctx, hs[2], hs[3])
			recs := a.auditLog(t)
			refused := results(recs, "login-refused")
			if len(refused) < 2 {
				t.Errorf("%s: %d login-refused audit records, want 2 or more: %v", name, len(refused), refused)
			}

			// Unblock: the next reload lets 127.0.0.81 in.
			reloads := a.count("rules reloaded")
			start = time.Now()
			a.mustJob(t, ctx, "unblock", "127.0.0.81/32")
			a.waitLog(t, "rules reloaded", reloads+1, 5*time.Second)
			took := time.Since(start)
			wantOK(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.81", "alice", "pass"), "alice after unblock")
			t.Logf("%s: unblock to the reload that lets logins in: %v", name, took)
			if took > 2*time.Second {
				t.Errorf("%s: unblock took %v to take effect, want about a second", name, took)
			}

			// The agent stopped: Dovecot fails open.
			a.mustJob(t, ctx, "block", "127.0.0.81/32")
			a.waitLog(t, "rules reloaded", reloads+2, 5*time.Second)
			wantRefused(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.81", "alice", "pass"), "alice blocked again")
			a.stop(t)
			// Each login asks twice (before and after authentication);
			// once Dovecot's HTTP client backs off, each ask waits the
			// timeout, then allows.
			var waits []time.Duration
			for i := range 3 {
				t0 := time.Now()
				wantOK(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.81", "alice", "pass"), fmt.Sprintf("alice with the agent stopped (%d)", i+1))
				d := time.Since(t0)
				waits = append(waits, d)
				if d > 2*timeout+time.Second {
					t.Errorf("%s: login %d with the agent stopped took %v (two policy requests of at most %v)", name, i+1, d, timeout)
				}
			}
			t.Logf("%s: logins with the agent stopped (fail open, timeout %v): %v", name, timeout, waits)
		})
	}
}

// TestAuthPolicyBruteForce: failed logins from one IP reach a brute-force
// rule's threshold: that IP's established sessions are kicked and its
// next login with the right password refused; another IP and the allow
// list are unaffected; the block ends after block_for.
func TestAuthPolicyBruteForce(t *testing.T) {
	const blockFor = 20 * time.Second
	rules := fmt.Sprintf(`allow: {users: [dave]}
rules:
  - name: brute
    failed_logins: 10
    within: 1m
    block_for: %s
`, blockFor)
	for _, name := range []string{testrig.P23, testrig.P24} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			state := t.TempDir()
			inst, a, addr := policyAgent(t, name, rules, testrig.Policy{}, "--state-dir", state)
			hs := holdListed(t, ctx, inst, login{"alice", "127.0.0.85", "imap"}, login{"bob", "127.0.0.86", "imap"},
				login{"dave", "127.0.0.85", "imap"})
			// Ten wrong passwords at once (Dovecot delays each failure's
			// answer by about 2 s; in parallel the ten take that long).
			var wg sync.WaitGroup
			fails := make([]testrig.LoginResult, 10)
			for i := range fails {
				wg.Go(func() {
					r, err := inst.TryLogin(ctx, testrig.IMAP, netip.MustParseAddr("127.0.0.85"), "alice", fmt.Sprintf("wrong%d", i))
					if err != nil {
						t.Errorf("wrong password %d: %v", i, err)
					}
					fails[i] = r
				})
			}
			wg.Wait()
			start := time.Now()
			for i, r := range fails {
				if r.OK {
					t.Fatalf("%s: wrong password %d logged in", name, i)
				}
			}
			a.waitMetric(t, 1, 10*time.Second, "kickagent_bruteforce_blocks_total", "rule", "brute")
			t.Logf("%s: alice's session from the attacking IP closed %v after the last failure",
				name, closeTime(t, ctx, hs[0], start, 10*time.Second))
			blockedAt := time.Now()
			wantRefused(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.85", "alice", "pass"), "the right password from the blocked IP")
			wantOK(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.86", "bob", "pass"), "bob from another IP")
			wantOK(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.85", "dave", "pass"), "allow-listed dave from the blocked IP")
			assertOpen(t, ctx, hs[1], hs[2])
			if rs := results(a.auditLog(t), "blocked"); len(rs) != 1 {
				t.Errorf("%s: blocked audit records %v, want one", name, rs)
			}
			// A restarted agent still refuses the blocked IP (state_dir).
			a.stop(t)
			a = startPolicyAgent(t, inst, addr, rules, "--state-dir", state)
			if a.count("brute-force blocks restored") != 1 {
				t.Errorf("%s: no \"brute-force blocks restored\" after the restart", name)
			}
			wantRefused(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.85", "alice", "pass"), "the blocked IP after the agent restarted")
			// The block ends block_for after it started.
			time.Sleep(time.Until(blockedAt.Add(blockFor + time.Second)))
			wantOK(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.85", "alice", "pass"), "alice after block_for")
			a.waitMetric(t, 0, 5*time.Second, "kickagent_bruteforce_blocks")
		})
	}
}

// TestAuthPolicyUnixSocket: Dovecot 2.4 reaches the listener on a UNIX
// socket through its HTTP client's proxy socket (absolute-form request
// lines): a blocked network is refused there too. 2.3's policy client
// speaks only TCP.
func TestAuthPolicyUnixSocket(t *testing.T) {
	ctx := testCtx(t)
	root, err := testrig.Root()
	if err != nil {
		t.Fatal(err)
	}
	// Inside the chroot, where Dovecot 2.4 runs; short (socket paths are
	// limited to about 100 bytes).
	sock := fmt.Sprintf("%s/trixie/run/ka-policy-%d.sock", root, time.Now().UnixNano()%100000)
	t.Cleanup(func() { _ = os.Remove(sock) })
	inst := testrig.StartSQLT(t, testrig.P24, testrig.Policy{URL: "http://kickagent.invalid/", Header: policyHeader, Socket: sock})
	// The auth process runs as the chroot's dovecot user: the socket is
	// that user's group's (a number: the host has its own /etc/group).
	gid := chrootGID(t, root+"/trixie", "dovecot")
	a := startAgent(t, inst, agentOpts{rules: "rules: []\n",
		config: fmt.Sprintf("auth_policy:\n  listen: %q\n  socket_group: %q\n  api_header: %q\n", "unix:"+sock, gid, policyHeader)})
	a.waitHealthy(t, 10*time.Second)
	a.waitLog(t, "auth policy listening", 1, 5*time.Second)
	wantOK(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.87", "alice", "pass"), "alice before the block")
	reloads := a.count("rules reloaded")
	a.mustJob(t, ctx, "block", "127.0.0.87/32")
	a.waitLog(t, "rules reloaded", reloads+1, 5*time.Second)
	wantRefused(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.87", "alice", "pass"), "alice blocked, asked over the UNIX socket")
	wantOK(t, try(t, ctx, inst, testrig.IMAP, "127.0.0.88", "alice", "pass"), "alice from another net")
	if n, _ := a.metric(t, "kickagent_auth_policy_requests_total", "command", "allow", "verdict", "refuse"); n < 1 {
		t.Errorf("no refusal counted: %v", n)
	}
}

// chrootGID is group's gid in the chroot's /etc/group.
func chrootGID(t *testing.T, chroot, group string) string {
	t.Helper()
	data, err := os.ReadFile(chroot + "/etc/group")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Split(l, ":"); len(f) >= 3 && f[0] == group {
			return f[2]
		}
	}
	t.Fatalf("no group %s in %s/etc/group", group, chroot)
	return ""
}
