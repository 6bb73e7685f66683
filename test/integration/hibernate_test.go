package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// Issue 16: IMAP clients in IDLE are handed to one imap-hibernate process,
// where anvil lists them under that process's pid. On Dovecot 2.3 a kick is
// a SIGTERM of a whole process, so before socket-destroy kicking one of
// them was refused (refused-collateral). These tests run on h23 and h24,
// which hibernate after 1 s in IDLE.

// TestHibernate23ExactKick: alice, bob and carol, from three addresses,
// hibernated in one process: kick alice closes only alice's connection
// (method socket-destroy); kick bob with his address closes only bob's.
// dave and eve from one address in that process cannot be told apart by
// their sockets: kick dave is refused and nothing is closed.
func TestHibernate23ExactKick(t *testing.T) {
	inst := instance(t, testrig.H23)
	ctx := testCtx(t)
	waitQuiet(t, ctx, inst)
	hs := holdIdle(t, ctx, inst,
		login{"alice", "127.0.0.140", "imap"},
		login{"bob", "127.0.0.141", "imap"},
		login{"carol", "127.0.0.142", "imap"},
	)
	pid := waitHibernated(t, ctx, inst, hs)
	t.Logf("%s: alice, bob, carol hibernated in pid %d (%s)", inst.Name, pid, procTitle(pid))

	recs, code := kickJSON(t, ctx, inst, "alice")
	if code != 0 {
		t.Errorf("%s: kick alice: exit %d, want 0", inst.Name, code)
	}
	checkKicks(t, inst, recs, "alice 127.0.0.140 kicked socket-destroy")
	checkClosed(t, ctx, inst, hs, 0)

	// checkClosed's NOOPs woke bob and carol up; they go back to sleep.
	waitHibernated(t, ctx, inst, hs[1:])
	recs, code = kickJSON(t, ctx, inst, "BOB", "127.0.0.141")
	if code != 0 {
		t.Errorf("%s: kick BOB 127.0.0.141: exit %d, want 0", inst.Name, code)
	}
	checkKicks(t, inst, recs, "bob 127.0.0.141 kicked socket-destroy")
	checkClosed(t, ctx, inst, hs, 0, 1)

	t.Run("one address", func(t *testing.T) {
		two := holdIdle(t, ctx, inst, login{"dave", "127.0.0.143", "imap"}, login{"eve", "127.0.0.143", "imap"})
		all := append([]*held{hs[2]}, two...)
		pid := waitHibernated(t, ctx, inst, all)
		t.Logf("%s: carol, dave and eve (one address) hibernated in pid %d", inst.Name, pid)
		for _, args := range [][]string{{"dave"}, {"dave", "127.0.0.143"}} {
			recs, code := kickJSON(t, ctx, inst, args...)
			if code != 2 {
				t.Errorf("%s: kick %q: exit %d, want 2 (refused)", inst.Name, args, code)
			}
			checkOutcomes(t, inst, recs, "dave refused-collateral")
			checkClosed(t, ctx, inst, all)
			waitHibernated(t, ctx, inst, all)
		}
		// The text form names the session it would also close and --force.
		_, errOut, code := kickagent(t, ctx, "kick", "-a", inst.Anvil, "dave")
		if code != 2 || !strings.Contains(errOut, "eve") || !strings.Contains(errOut, "--force") {
			t.Errorf("%s: kick dave: exit %d, stderr %q; want 2 naming eve and --force", inst.Name, code, errOut)
		}
		checkClosed(t, ctx, inst, all)
	})
}

// TestHibernate23AgentBlockReset: the agent closes exactly one hibernated
// session for a network block and for a reset, within a cycle or two, and
// audits it as kicked by socket-destroy; the sessions sharing the
// imap-hibernate process stay.
func TestHibernate23AgentBlockReset(t *testing.T) {
	inst := instance(t, testrig.H23)
	ctx := testCtx(t)
	waitQuiet(t, ctx, inst)
	a := startAgent(t, inst, agentOpts{rules: noRules})
	a.waitHealthy(t, 5*time.Second)
	others := holdIdle(t, ctx, inst,
		login{"jano", "127.0.0.151", "imap"},
		login{"james", "127.0.0.152", "imap"},
	)

	t.Run("block", func(t *testing.T) {
		victim := holdIdle(t, ctx, inst, login{"jane", "127.0.0.150", "imap"})
		all := append(slices.Clone(others), victim...)
		pid := waitHibernated(t, ctx, inst, all)
		start := time.Now()
		a.mustJob(t, ctx, "block", "127.0.0.150/32", "--for", "10m", "--reason", "issue 16")
		d := closeTime(t, ctx, victim[0].conn, start, 2*agentInterval+time.Second)
		t.Logf("%s: block 127.0.0.150/32 → jane, hibernated in pid %d, closed in %v", inst.Name, pid, d)
		waitAuditFor(t, a, "jane", 5*time.Second)
		stayOpen(t, ctx, 2, connsOf(others)...)
		if got, want := auditKicks(a.auditLog(t)), []string{"jane 127.0.0.150 kicked socket-destroy"}; !slices.Equal(got, want) {
			t.Errorf("%s: audit %q, want %q", inst.Name, got, want)
		}
	})

	t.Run("reset", func(t *testing.T) {
		victim := holdIdle(t, ctx, inst, login{"carol", "127.0.0.153", "imap"})
		all := append(slices.Clone(others), victim...)
		waitHibernated(t, ctx, inst, all)
		// A reset kicks the sessions the agent saw before it: let a cycle
		// see carol's in the hibernate process first.
		time.Sleep(agentInterval + agentInterval/2)
		pid := waitHibernated(t, ctx, inst, all)
		start := time.Now()
		a.mustJob(t, ctx, "reset", "carol", "--no-cache-flush")
		d := closeTime(t, ctx, victim[0].conn, start, 2*agentInterval+time.Second)
		t.Logf("%s: reset carol → carol, hibernated in pid %d, closed in %v", inst.Name, pid, d)
		waitAuditFor(t, a, "carol", 5*time.Second)
		stayOpen(t, ctx, 2, connsOf(others)...)
		want := []string{"carol 127.0.0.153 kicked socket-destroy", "jane 127.0.0.150 kicked socket-destroy"}
		if got := auditKicks(a.auditLog(t)); !slices.Equal(got, want) {
			t.Errorf("%s: audit %q, want %q", inst.Name, got, want)
		}
	})
}

// TestHibernate24Exact: on 2.4 kick alice is a KICK-USER, which the
// hibernate process runs for alice's connections only. alice with a second
// connection from another address in that process: kick alice ADDRESS
// would close both by KICK-USER, so only the named one's socket is
// destroyed.
func TestHibernate24Exact(t *testing.T) {
	inst := instance(t, testrig.H24)
	ctx := testCtx(t)
	waitQuiet(t, ctx, inst)
	hs := holdIdle(t, ctx, inst,
		login{"alice", "127.0.0.160", "imap"},
		login{"bob", "127.0.0.161", "imap"},
	)
	pid := waitHibernated(t, ctx, inst, hs)
	t.Logf("%s: alice and bob hibernated in pid %d (%s)", inst.Name, pid, procTitle(pid))
	recs, code := kickJSON(t, ctx, inst, "alice")
	if code != 0 {
		t.Errorf("%s: kick alice: exit %d, want 0", inst.Name, code)
	}
	// KICK-USER hits alice alone here; destroying her socket would do too.
	if len(recs) != 1 || !slices.Contains([]string{"kick-user", "socket-destroy"}, recs[0].Method) {
		t.Errorf("%s: kick alice: records %+v, want one by kick-user or socket-destroy", inst.Name, recs)
	}
	checkOutcomes(t, inst, recs, "alice kicked")
	checkClosed(t, ctx, inst, hs, 0)

	two := holdIdle(t, ctx, inst,
		login{"alice", "127.0.0.160", "imap"},
		login{"alice", "127.0.0.162", "imap"},
	)
	all := []*held{hs[1], two[0], two[1]}
	pid = waitHibernated(t, ctx, inst, all)
	t.Logf("%s: bob and alice (.160, .162) hibernated in pid %d", inst.Name, pid)
	recs, code = kickJSON(t, ctx, inst, "alice", "127.0.0.160")
	if code != 0 {
		t.Errorf("%s: kick alice 127.0.0.160: exit %d, want 0", inst.Name, code)
	}
	checkKicks(t, inst, recs, "alice 127.0.0.160 kicked socket-destroy")
	checkClosed(t, ctx, inst, all, 1)
}

// connsOf returns the held connections.
func connsOf(hs []*held) []*testrig.Conn {
	cs := make([]*testrig.Conn, len(hs))
	for i, h := range hs {
		cs[i] = h.conn
	}
	return cs
}

// TestHibernate23ResetFollowsWake: alice and bob, hibernated in one process
// from one address, cannot be told apart by their sockets, so a reset of
// alice is refused there. When alice's client wakes (DONE), Dovecot moves
// her connection to an imap process of its own, under a new pid: it is
// still the session from before the reset, and the agent kicks it there.
// Before, the agent took the moved session for a login made after the
// reset and left it open.
func TestHibernate23ResetFollowsWake(t *testing.T) {
	inst := instance(t, testrig.H23)
	ctx := testCtx(t)
	waitQuiet(t, ctx, inst)
	a := startAgent(t, inst, agentOpts{rules: noRules})
	a.waitHealthy(t, 5*time.Second)
	hs := holdIdle(t, ctx, inst, login{"alice", "127.0.0.175", "imap"}, login{"bob", "127.0.0.175", "imap"})
	pid := waitHibernated(t, ctx, inst, hs)
	// Let a cycle see both in the hibernate process before the reset.
	time.Sleep(agentInterval + agentInterval/2)
	a.mustJob(t, ctx, "reset", "alice", "--no-cache-flush")
	waitAuditFor(t, a, "alice", 5*time.Second)
	if got, want := auditKicks(a.auditLog(t)), []string{"alice 127.0.0.175 refused-collateral sigterm"}; !slices.Equal(got, want) {
		t.Fatalf("%s: audit %q, want %q (alice and bob share pid %d and an address)", inst.Name, got, want, pid)
	}
	// Refused on every try while she sleeps (a NOOP here would wake her).
	time.Sleep(2 * agentInterval)

	start := time.Now()
	if err := hs[0].conn.Done(ctx); err != nil {
		t.Fatalf("%s: wake alice: %v", inst.Name, err)
	}
	d := closeTime(t, ctx, hs[0].conn, start, 3*agentInterval+time.Second)
	t.Logf("%s: alice woke out of pid %d and was closed %v later", inst.Name, pid, d)
	stayOpen(t, ctx, 1, hs[1].conn)
	got := auditKicks(a.auditLog(t))
	if len(got) != 2 || got[0] != "alice 127.0.0.175 kicked sigterm" {
		t.Errorf("%s: audit %q, want alice kicked (sigterm of her own imap process) after the refusal", inst.Name, got)
	}
}
