package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// The job tests run `kickagent run` against real Dovecot and drive it only
// through the job commands (block, unblock, blocks, reset, drain) with
// --rules-dir, as an operator or a script does. They use client addresses
// 127.0.0.21-127.0.0.60 and users that no other job test on the same
// instance touches: dave (network block), jane/jano/james (user-mask
// block), alice/bob/carol (reset), eve and "john doe" (drain).
//
// Dovecot 2.3 is tested directly (v23): the agent does not drain 2.3
// login proxies, whose proxied sessions are only in the ipc socket (only
// `kickagent kick -h` reaches them there).

const noRules = "rules: []\n"

// TestJobs runs the block and reset workflows on 2.3 and 2.4 and the drain
// on the 2.4 login proxies, in parallel where the instances and users do
// not overlap: the v24proxyhp drain spreads its sessions over the users the
// v24 tests block and reset, so it runs after them.
func TestJobs(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inst := instance(t, name)
			t.Run("block", func(t *testing.T) { jobBlock(t, inst) })
			t.Run("reset", func(t *testing.T) { jobReset(t, inst) })
			if inst.Is24() {
				// Many connections per login process: drained a kick unit (a
				// user in a process) at a time.
				t.Run("drain "+testrig.V24ProxyHP, func(t *testing.T) {
					var ls []login
					for i, u := range []string{"alice", "bob", "carol", "dave", "eve", "jane", "jano", "james"} {
						for j := 0; j < 5; j++ {
							ls = append(ls, login{u, fmt.Sprintf("127.0.0.%d", 40+(i*5+j)/2), "imap"})
						}
					}
					jobDrain(t, instance(t, testrig.V24ProxyHP), ls)
				})
			}
		})
	}
	// One login process per connection: drained a session at a time.
	t.Run("drain "+testrig.V24Proxy, func(t *testing.T) {
		t.Parallel()
		jobDrain(t, instance(t, testrig.V24Proxy), drainLogins("eve", 40, 40))
	})
}

// jobBlock: kickagent block NETWORK --for, blocks, expiry cleanup; a user
// mask block and unblock.
func jobBlock(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	a := startAgent(t, inst, agentOpts{rules: noRules})
	a.waitHealthy(t, 5*time.Second)

	t.Run("network for 3s", func(t *testing.T) {
		cs := holdListed(t, ctx, inst,
			login{"dave", "127.0.0.21", "imap"},
			login{"dave", "127.0.0.22", "imap"},
			login{"dave", "127.0.0.21", "pop3"},
		)
		blocked, other := []*testrig.Conn{cs[0], cs[2]}, cs[1]
		start := time.Now()
		file := a.jobFile(t, a.mustJob(t, ctx, "block", "127.0.0.21/32", "--for", "3s", "--reason", "test"))
		blocks := a.mustJob(t, ctx, "blocks")
		if l := lineWith(blocks, "block", "127.0.0.21/32", "active", "test"); l == "" {
			t.Errorf("%s: blocks does not list the block as active:\n%s", inst.Name, blocks)
		}
		for _, c := range blocked {
			d := closeTime(t, ctx, c, start, 2*agentInterval+time.Second)
			t.Logf("%s: block → %s session from 127.0.0.21 closed in %v", inst.Name, c.Proto, d)
		}
		assertOpen(t, ctx, other)

		gone := a.waitRemoved(t, file, 3*time.Second+3*agentInterval)
		t.Logf("%s: expired block file removed %v after the block", inst.Name, gone.Sub(start))
		if gone.Sub(start) < 3*time.Second {
			t.Errorf("%s: the block file was removed after %v, before it expired", inst.Name, gone.Sub(start))
		}
		a.waitLog(t, "job finished; its rule file removed", 1, time.Second)
		if out := a.mustJob(t, ctx, "blocks"); strings.Contains(out, "127.0.0.21") {
			t.Errorf("%s: blocks still lists the expired block:\n%s", inst.Name, out)
		}
		again := holdListed(t, ctx, inst, login{"dave", "127.0.0.21", "imap"})
		stayOpen(t, ctx, 3, append(again, other)...)
	})

	t.Run("user mask and unblock", func(t *testing.T) {
		cs := holdListed(t, ctx, inst,
			login{"jane", "127.0.0.25", "imap"},
			login{"jano", "127.0.0.26", "pop3"},
			login{"james", "127.0.0.25", "imap"},
		)
		start := time.Now()
		file := a.jobFile(t, a.mustJob(t, ctx, "block", "jan?", "--for", "10m", "--reason", "compromised accounts"))
		for _, c := range cs[:2] {
			d := closeTime(t, ctx, c, start, 2*agentInterval+time.Second)
			t.Logf("%s: block jan? → %s closed in %v", inst.Name, c.User, d)
		}
		assertOpen(t, ctx, cs[2])
		blocks := a.mustJob(t, ctx, "blocks")
		if lineWith(blocks, "block", "jan?", "active", "compromised accounts") == "" {
			t.Errorf("%s: blocks:\n%s", inst.Name, blocks)
		}
		// Still blocked: a new login of jane is kicked too.
		relog := holdListed(t, ctx, inst, login{"jane", "127.0.0.27", "imap"})
		assertClosed(t, ctx, relog...)

		if out := a.mustJob(t, ctx, "unblock", "jan?"); !strings.Contains(out, "unblocked jan?") {
			t.Errorf("%s: unblock: %q", inst.Name, out)
		}
		a.waitRemoved(t, file, time.Second)
		if _, errOut, code := a.job(t, ctx, "unblock", "jan?"); code != 68 {
			t.Errorf("%s: second unblock: exit %d, want 68 (%s)", inst.Name, code, errOut)
		}
		after := holdListed(t, ctx, inst, login{"jane", "127.0.0.27", "imap"}, login{"jano", "127.0.0.26", "pop3"})
		stayOpen(t, ctx, 3, append(after, cs[2])...)
	})
}

// jobReset: kickagent reset USER kicks the sessions from before the reset
// and leaves the ones after it; -f user_alt on 2.4.
func jobReset(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	a := startAgent(t, inst, agentOpts{rules: noRules})
	a.waitHealthy(t, 5*time.Second)

	cs := holdListed(t, ctx, inst,
		login{"alice", "127.0.0.23", "imap"},
		login{"alice", "127.0.0.24", "pop3"},
		login{"bob", "127.0.0.23", "imap"},
	)
	alice, bob := cs[:2], cs[2]
	start := time.Now()
	// These instances have a passwd-file passdb, which Dovecot never
	// caches: nothing to flush (TestResetFlushesAuthCache tests the flush).
	a.jobFile(t, a.mustJob(t, ctx, "reset", "alice", "--no-cache-flush"))
	// carol has no session at her reset: her next login is new.
	a.mustJob(t, ctx, "reset", "carol", "--no-cache-flush")
	for _, c := range alice {
		d := closeTime(t, ctx, c, start, 2*agentInterval+time.Second)
		t.Logf("%s: reset alice → %s session from %s closed in %v", inst.Name, c.Proto, c.Src, d)
	}
	if l := lineWith(a.mustJob(t, ctx, "blocks"), "reset", "alice", "active"); l == "" {
		t.Errorf("%s: blocks does not list the reset", inst.Name)
	}
	// A snapshot after the reset took effect has been taken (the agent
	// reloaded, which runs a cycle); sessions from now on are new.
	time.Sleep(agentInterval)
	fresh := holdListed(t, ctx, inst,
		login{"alice", "127.0.0.23", "imap"},
		login{"carol", "127.0.0.24", "imap"},
	)
	stayOpen(t, ctx, 3, append(fresh, bob)...)

	if !inst.Is24() {
		return
	}
	t.Run("alt username", func(t *testing.T) {
		recs := whoJSON(t, ctx, inst, "alice")
		if len(recs) == 0 || recs[0].Alt["user_alt"] != "alice-alt" {
			t.Fatalf("%s: alice's sessions carry no user_alt=alice-alt: %+v", inst.Name, recs)
		}
		start := time.Now()
		a.mustJob(t, ctx, "reset", "-f", "user_alt", "alice-alt", "--no-cache-flush")
		d := closeTime(t, ctx, fresh[0], start, 2*agentInterval+time.Second)
		t.Logf("%s: reset -f user_alt alice-alt → alice closed in %v", inst.Name, d)
		time.Sleep(agentInterval)
		again := holdListed(t, ctx, inst, login{"alice", "127.0.0.24", "imap"})
		stayOpen(t, ctx, 3, append(again, bob, fresh[1])...)
	})
}

// drainLogins are n logins of user over imap from 127.0.0.<first>… (two
// per address).
func drainLogins(user string, first, n int) []login {
	var ls []login
	for i := 0; i < n; i++ {
		ls = append(ls, login{user, fmt.Sprintf("127.0.0.%d", first+i/2), "imap"})
	}
	return ls
}

// waitProxied waits until the proxy's anvil lists n sessions proxied to
// dest, and returns the most sessions one kick unit (a user in a login
// process) holds.
func waitProxied(t *testing.T, ctx context.Context, proxy *testrig.Instance, dest string, n int) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, units := 0, map[string]int{}
		for _, r := range whoJSON(t, ctx, proxy) {
			if r.DestIP == dest {
				got += max(r.Connections, 1)
				units[fmt.Sprint(r.PID, r.User)] += max(r.Connections, 1)
			}
		}
		if got == n {
			unit := 0
			for _, c := range units {
				unit = max(unit, c)
			}
			return unit
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d sessions proxied to %s, want %d", proxy.Name, got, dest, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// closeTimes waits concurrently for every connection to close and returns
// when each did, measured from since (a connection still open after
// within is reported as within+1h).
func closeTimes(ctx context.Context, hs []*held, since time.Time, within time.Duration) []time.Duration {
	out := make([]time.Duration, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, cancel := context.WithDeadline(ctx, since.Add(within))
			defer cancel()
			if h.conn.WaitClosed(wctx) != nil {
				out[i] = within + time.Hour
				return
			}
			out[i] = time.Since(since)
		}()
	}
	wg.Wait()
	return out
}

// jobDrain: the logins (40), proxied to the backend 127.0.0.1, are drained
// at 10/s while 10 direct sessions on the backend (not proxied: no dest)
// stay; drain --status and the drain metric while it runs; the agent
// removes the finished drain; --cancel stops one.
//
// The rig has one backend per proxy (every user is routed to 127.0.0.1),
// so the sessions that must stay are the backend's own direct sessions.
func jobDrain(t *testing.T, proxy *testrig.Instance, logins []login) {
	ctx := testCtx(t)
	backend := instance(t, proxy.Backend)
	a := startAgent(t, proxy, agentOpts{rules: noRules})
	a.waitHealthy(t, 5*time.Second)

	n, rate := len(logins), 10.0
	drained := holdAll(t, ctx, proxy, logins...)
	direct := holdAll(t, ctx, backend, drainLogins("john doe", 30, 10)...)
	unit := waitProxied(t, ctx, proxy, "127.0.0.1", n)
	var directConns []*testrig.Conn
	for _, h := range direct {
		directConns = append(directConns, h.conn)
	}

	// A drain of a backend nobody is proxied to ends at once.
	a.waitRemoved(t, a.jobFile(t, a.mustJob(t, ctx, "drain", "--dest", "127.0.0.2", "--rate", "10/s")), 3*agentInterval)

	start := time.Now()
	file := a.jobFile(t, a.mustJob(t, ctx, "drain", "--dest", "127.0.0.1", "--rate", "10/s"))
	status, errOut, code := kickagent(t, ctx, "drain", "--status", "--rules-dir", a.rulesD, "-a", proxy.Anvil)
	if l := lineWith(status, "dest 127.0.0.1", "10/s"); code != 0 || l == "" {
		t.Errorf("%s: drain --status: exit %d:\n%s%s", proxy.Name, code, status, errOut)
	} else {
		t.Logf("%s: drain --status: %s", proxy.Name, l)
		if f := strings.Fields(l); len(f) < 4 || f[2] == "0" {
			t.Errorf("%s: drain --status shows nothing remaining while the drain runs: %q", proxy.Name, l)
		}
	}
	// The gauge is set by the agent's first cycle with the drain rule, which
	// may still be running (it began when the file appeared).
	rule := strings.TrimSuffix(filepath.Base(file), ".yaml")
	a.waitMetricFunc(t, func(v float64) bool { return v > 0 && v <= float64(n) }, fmt.Sprintf("in (0, %d]", n),
		agentInterval, "kickagent_drain_remaining_sessions", "rule", rule)
	v, _ := a.metric(t, "kickagent_drain_remaining_sessions", "rule", rule)
	t.Logf("%s: kickagent_drain_remaining_sessions = %v while the drain runs (%v after the command)", proxy.Name, v, time.Since(start).Round(time.Millisecond))

	// The bucket starts with one kick and earns rate per second, and a kick
	// unit goes only when the bucket holds it whole: the last of n sessions
	// goes no sooner than (n-1)/rate after the drain began.
	least := time.Duration(float64(n-1) / rate * float64(time.Second))
	ts := closeTimes(ctx, drained, start, 2*least+3*agentInterval)
	slices.Sort(ts)
	if open := n - sort.Search(n, func(i int) bool { return ts[i] > 2*least+3*agentInterval }); open > 0 {
		t.Fatalf("%s: %d of %d sessions were not drained within %v:\n%s", proxy.Name, open, n, 2*least+3*agentInterval, a.stderr.String())
	}
	first, last := ts[0], ts[n-1]
	t.Logf("%s: drain of %d sessions (kick units of up to %d) at %v/s: first close %v, last %v after the command (span %v; the rate allows no less than %v)",
		proxy.Name, n, unit, rate, first.Round(time.Millisecond), last.Round(time.Millisecond), (last - first).Round(time.Millisecond), least)
	const slack = 300 * time.Millisecond
	if last < least-slack {
		t.Errorf("%s: %d sessions drained %v after the command: faster than %v/s allows (%v)", proxy.Name, n, last, rate, least)
	}
	if unit == 1 && last-first < least-slack {
		t.Errorf("%s: first to last close %v: faster than %v/s allows (%v)", proxy.Name, last-first, rate, least)
	}
	if last > 2*least {
		t.Errorf("%s: %d sessions drained in %v, more than twice count/rate (%v)", proxy.Name, n, last, 2*least)
	}
	gone := a.waitRemoved(t, file, 3*agentInterval)
	t.Logf("%s: finished drain file removed %v after the command", proxy.Name, gone.Sub(start).Round(time.Millisecond))
	a.waitLog(t, "drain complete", 2, time.Second) // 127.0.0.2's and this one
	if out, _, _ := kickagent(t, ctx, "drain", "--status", "--rules-dir", a.rulesD, "-a", proxy.Anvil); !strings.Contains(out, "no drain in progress") {
		t.Errorf("%s: drain --status after the drain: %q", proxy.Name, out)
	}
	assertOpen(t, ctx, directConns...)

	t.Run("cancel", func(t *testing.T) {
		hs := holdAll(t, ctx, proxy, drainLogins("eve", 55, 6)...)
		hs = append(hs, holdAll(t, ctx, proxy, drainLogins("john doe", 55, 4)...)...)
		unit := waitProxied(t, ctx, proxy, "127.0.0.1", 10)
		file := a.jobFile(t, a.mustJob(t, ctx, "drain", "--dest", "127.0.0.1", "--rate", "2/s"))
		time.Sleep(agentInterval + agentInterval/2)
		out := a.mustJob(t, ctx, "drain", "--dest", "127.0.0.1", "--cancel")
		if !strings.Contains(out, "cancelled") {
			t.Errorf("%s: drain --cancel: %q", proxy.Name, out)
		}
		a.waitRemoved(t, file, time.Second)
		time.Sleep(agentInterval) // a cycle already under way may still kick
		var open []*testrig.Conn
		for _, h := range hs {
			if !h.conn.Closed(10 * time.Millisecond) {
				open = append(open, h.conn)
			}
		}
		t.Logf("%s: drain at 2/s cancelled after 1.5s: %d of 10 kicked (kick units of up to %d)", proxy.Name, 10-len(open), unit)
		if len(open) == 10 || len(open) < 10-4-unit {
			t.Errorf("%s: %d of 10 sessions open after a 2/s drain cancelled after ~1.5s", proxy.Name, len(open))
		}
		stayOpen(t, ctx, 3, append(open, directConns...)...)
		if _, _, code := a.job(t, ctx, "drain", "--dest", "127.0.0.1", "--cancel"); code != 68 {
			t.Errorf("%s: second cancel: exit %d, want 68", proxy.Name, code)
		}
	})
}
