package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// The Rego fault tests use client addresses 127.0.3.1-127.0.3.20 only.

// faultRegoPolicy kicks carol, and fails the whole evaluation whenever
// jane is logged in (kickagent's builtins never fail silently): a policy
// whose failure depends on the session data, which check and reload
// cannot see.
const faultRegoPolicy = `package kickagent

kick contains {"session": s.id, "rule": "rego-carol", "reason": "policy kicks carol"} if {
	some s in input.sessions
	s.user == "carol"
}

kick contains {"session": s.id, "rule": "rego-broken", "reason": "never"} if {
	some s in input.sessions
	s.user == "jane"
	kickagent.in_networks(s.user, "10.0.0.0/8")
}
`

// TestFaultRego: a Rego policy that fails at run time does not stop the
// YAML rules or the job rules (issue 12 item 5). Before, every cycle
// failed while jane was logged in, so eve, blocked by a YAML rule, and
// dave, blocked by "kickagent block", stayed connected. Now they are
// kicked, the failure shows in the metrics, /healthz and the audit log,
// the policy's own decision (carol) waits until the policy evaluates
// again, and nobody else is touched.
func TestFaultRego(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			faultRego(t, instance(t, name))
		})
	}
}

func faultRego(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	cs := holdListed(t, ctx, inst,
		login{"jane", "127.0.3.1", "imap"},  // makes the policy fail
		login{"eve", "127.0.3.2", "imap"},   // YAML block
		login{"carol", "127.0.3.3", "imap"}, // the policy's kick
		login{"bob", "127.0.3.4", "pop3"},   // nobody's
		login{"dave", "127.0.3.5", "imap"},  // blocked by a job later
	)
	jane, eve, carol, bob, dave := cs[0], cs[1], cs[2], cs[3], cs[4]

	policy := filepath.Join(t.TempDir(), "policy")
	if err := os.Mkdir(policy, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileT(t, filepath.Join(policy, "fault.rego"), faultRegoPolicy)
	a := startAgent(t, inst, agentOpts{rules: "rules:\n  - name: block-eve\n    users: [eve]\n", args: []string{"--policy", policy}})

	t.Run("YAML rule enforced while the policy fails", func(t *testing.T) {
		closeTime(t, ctx, eve, a.started, 10*time.Second)
		a.waitMetricMin(t, 1, 10*time.Second, "kickagent_policy_errors_total", "reason", "error")
		a.waitMetric(t, 1, 5*time.Second, "kickagent_policy_failing")
		// Degraded once the first cycle, kicks included, has completed.
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body, err := a.get("/healthz")
			if err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "degraded: Rego policy failing (error)") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /healthz: %d %q %v; want 503 degraded", inst.Name, code, body, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		a.waitLog(t, "Rego policy failed; enforcing the YAML rules without it", 1, 5*time.Second)
	})

	t.Run("job rule enforced while the policy fails", func(t *testing.T) {
		start := time.Now()
		a.mustJob(t, ctx, "block", "dave", "--for", "10m", "--reason", "fault test")
		closeTime(t, ctx, dave, start, 10*time.Second)
		if v, _ := a.metric(t, "kickagent_policy_failing"); v != 1 {
			t.Errorf("%s: kickagent_policy_failing = %v while jane is logged in", inst.Name, v)
		}
	})

	t.Run("nothing else kicked", func(t *testing.T) {
		stayOpen(t, ctx, 2, jane, carol, bob)
		recs := a.auditLog(t)
		if got := results(recs, "policy-failed"); len(got) != 1 {
			t.Errorf("%s: policy-failed records %q, want one for the whole failure", inst.Name, got)
		}
		want := []string{"block-eve eve 127.0.3.2 kicked"}
		for _, r := range results(recs, "kicked") {
			if strings.Contains(r, "127.0.3.") && !strings.HasPrefix(r, "block-eve ") && !strings.Contains(r, " dave ") {
				t.Errorf("%s: unexpected kick %q", inst.Name, r)
			}
		}
		if got := results(recs, "kicked"); !containsAll(got, want) {
			t.Errorf("%s: kicked %q, want %q", inst.Name, got, want)
		}
	})

	t.Run("policy evaluates again when jane leaves", func(t *testing.T) {
		start := time.Now()
		if err := jane.Close(); err != nil {
			t.Fatal(err)
		}
		closeTime(t, ctx, carol, start, 15*time.Second)
		a.waitMetric(t, 0, 5*time.Second, "kickagent_policy_failing")
		a.waitHealthy(t, 5*time.Second)
		// The audit log is flushed at the end of the cycle that kicked.
		recs := waitAuditWhere(t, a, 5*time.Second, func(recs []auditRec) bool {
			return containsAll(results(recs, "kicked"), []string{"rego-carol carol 127.0.3.3 kicked"})
		})
		if got := results(recs, "policy-recovered"); len(got) != 1 {
			t.Errorf("%s: policy-recovered records %q, want one", inst.Name, got)
		}
		assertOpen(t, ctx, bob)
	})
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// waitAuditWhere reads the audit log until ok holds, or fails the test.
func waitAuditWhere(t *testing.T, a *agentProc, within time.Duration, ok func([]auditRec) bool) []auditRec {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		recs := a.auditLog(t)
		if ok(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: audit log never had what the test waits for:\n%v", a.inst.Name, recs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slowRegoPolicy takes far longer than a cycle whenever jano is logged
// in: the session data decides whether the policy finishes.
const slowRegoPolicy = `package kickagent

kick contains {"session": s.id, "rule": "rego-slow", "reason": "never"} if {
	some s in input.sessions
	s.user == "jano"
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
}
`

// TestFaultRegoSlowAndBadReload: a policy slow for one user is stopped by
// its own budget each cycle while the YAML rules are enforced; and a
// policy that compiles but cannot work (kick := 5) is refused by check
// and by the reload, which keeps the last good rules. Before, the slow
// policy timed the whole cycle out (eve stayed), and kick := 5 passed
// check and reload (config_last_reload_successful 1), then failed every
// cycle.
func TestFaultRegoSlowAndBadReload(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			faultRegoSlow(t, instance(t, name))
		})
	}
}

func faultRegoSlow(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	cs := holdListed(t, ctx, inst,
		login{"jano", "127.0.3.11", "imap"}, // makes the policy slow
		login{"eve", "127.0.3.12", "imap"},  // YAML block
		login{"bob", "127.0.3.13", "pop3"},  // nobody's
	)
	jano, eve, bob := cs[0], cs[1], cs[2]
	policy := filepath.Join(t.TempDir(), "policy")
	if err := os.Mkdir(policy, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(policy, "slow.rego")
	writeFileT(t, file, slowRegoPolicy)
	a := startAgent(t, inst, agentOpts{rules: "rules:\n  - name: block-eve\n    users: [eve]\n", args: []string{"--policy", policy}})

	t.Run("slow policy stopped by its budget, YAML enforced", func(t *testing.T) {
		closeTime(t, ctx, eve, a.started, 10*time.Second)
		a.waitMetricMin(t, 1, 10*time.Second, "kickagent_policy_errors_total", "reason", "timeout")
		a.waitLog(t, "policy evaluation exceeded its time budget", 1, 5*time.Second)
		assertOpen(t, ctx, jano, bob)
	})

	t.Run("kick := 5 refused by check and reload", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad")
		if err := os.Mkdir(bad, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFileT(t, filepath.Join(bad, "p.rego"), "package kickagent\n\nkick := 5\n")
		_, errOut, code := kickagent(t, ctx, "check", "--policy", bad)
		if code != 78 || !strings.Contains(errOut, "p.rego:3: data.kickagent.kick is number") {
			t.Errorf("%s: check: exit %d, stderr %q; want 78 and the kick rule's line", inst.Name, code, errOut)
		}
		writeFileT(t, file, "package kickagent\n\nkick := 5\n")
		a.waitMetric(t, 0, 10*time.Second, "kickagent_config_last_reload_successful")
		a.waitLog(t, "data.kickagent.kick is number", 1, 5*time.Second)
		// The last good rules still run: a new blocked session is closed.
		start := time.Now()
		again := holdListed(t, ctx, inst, login{"eve", "127.0.3.14", "imap"})
		closeTime(t, ctx, again[0], start, 10*time.Second)
		assertOpen(t, ctx, jano, bob)
	})
}
