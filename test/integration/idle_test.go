package integration

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// idleRules select only clients from 127.0.6.0/24, which no session here
// has until the test logs one in.
const idleRules = `rules:
  - name: idle-net
    networks: [127.0.6.0/24]
`

// TestAgentIdleSnapshots (issue 15): with 30,000 sessions in a real anvil
// and a rule that selects none of them, the agent spaces its snapshots out
// (one interval per 10,000 sessions: 3 s at the tests' 1 s interval), still
// kicks a client the rule names that logs in meanwhile (within the gap),
// reports anvil's CPU time per snapshot, and takes no snapshot at all once
// no rule can select anything.
func TestAgentIdleSnapshots(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			ctx := testCtx(t)
			ss := holdSynthetic(t, inst, testrig.SyntheticMix(30000, 15), netip.MustParsePrefix("127.0.6.0/24"))
			a := startAgent(t, inst, agentOpts{rules: idleRules})
			// Three snapshots a tick apart select nothing; then ticks go by
			// without one.
			a.waitMetricMin(t, 3, 30*time.Second, "kickagent_dumps_skipped_total", "reason", "idle")
			// 2.3 folds some synthetic sessions into one line (same user, IP
			// and pid): 20,000 lines or more, a gap of 2 s or more.
			a.waitMetricMin(t, 2, 5*time.Second, "kickagent_dump_gap_seconds")
			if v, _ := a.metric(t, "kickagent_anvil_dump_cpu_seconds_count"); v < 1 {
				t.Errorf("%s: kickagent_anvil_dump_cpu_seconds_count = %v: anvil's process not found", inst.Name, v)
			}
			sum, _ := a.metric(t, "kickagent_anvil_dump_cpu_seconds_sum")
			n, _ := a.metric(t, "kickagent_anvil_dump_cpu_seconds_count")
			if sum <= 0 {
				t.Errorf("%s: kickagent_anvil_dump_cpu_seconds_sum = %v, want > 0 (anvil formats 30,000 lines)", inst.Name, sum)
			}
			t.Logf("%s: anvil CPU per snapshot of %d sessions: %.1f ms (mean of %v)", inst.Name, len(ss), 1000*sum/max(n, 1), n)

			// A client the rule names logs in during the idle spell: closed
			// at the next snapshot, at most one gap (≤ 3 s) and a tick later.
			since := time.Now()
			bob := holdListed(t, ctx, inst, login{"bob", "127.0.6.7", "imap"})[0]
			d := closeTime(t, ctx, bob, since, 15*time.Second)
			t.Logf("%s: bob from 127.0.6.7 closed %v after logging in, during an idle spell", inst.Name, d)
			// The record is written once the kick is confirmed.
			recs := waitAuditWhere(t, a, 10*time.Second, func(r []auditRec) bool { return len(results(r, "kicked")) > 0 })
			if got := results(recs, "kicked", "failed", "dry-run"); len(got) != 1 || got[0] != "idle-net bob 127.0.6.7 kicked" {
				t.Errorf("%s: audit %q, want only bob kicked by idle-net", inst.Name, got)
			}
			// The kick brought back a snapshot every interval.
			a.waitMetric(t, 1, 5*time.Second, "kickagent_dump_gap_seconds")

			// No rule can select anything: no snapshot at all.
			writeFileT(t, a.rules, noRules)
			a.waitMetricMin(t, 2, 20*time.Second, "kickagent_dumps_skipped_total", "reason", "nothing_selectable")
			before, _ := a.metric(t, "kickagent_cycles_total", "result", "ok")
			time.Sleep(3 * agentInterval)
			if after, _ := a.metric(t, "kickagent_cycles_total", "result", "ok"); after != before {
				t.Errorf("%s: %v cycles with snapshots while no rule can select, want none", inst.Name, after-before)
			}
			a.waitHealthy(t, 5*time.Second)
		})
	}
}

// holdSynthetic registers synthetic sessions in inst's anvil (2.3: in its
// form) until the test ends, none of them from away (moved to 192.0.2.1):
// the test's own logins come from there.
func holdSynthetic(t *testing.T, inst *testrig.Instance, ss []testrig.SyntheticSession, away ...netip.Prefix) []testrig.SyntheticSession {
	t.Helper()
	if !inst.Is24() {
		ss = testrig.StripFor23(ss)
	}
	for i := range ss {
		for _, p := range away {
			if p.Contains(ss[i].IP) {
				ss[i].IP = netip.MustParseAddr("192.0.2.1")
			}
		}
	}
	sc, err := testrig.RegisterSynthetic(testCtx(t), inst, ss)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sc.Disconnect(testCtx(t)); err != nil {
			t.Errorf("%s: disconnect the synthetic sessions: %v", inst.Name, err)
		}
	})
	return ss
}
