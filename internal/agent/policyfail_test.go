package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
)

// brokenPolicy fails the evaluation whenever mallory is logged in (our
// builtins never fail silently); it kicks nobody.
const brokenPolicy = `package kickagent

kick contains {"session": s.id, "rule": "rego-broken", "reason": "x"} if {
	some s in input.sessions
	s.user == "mallory"
	kickagent.in_networks(s.user, "10.0.0.0/8")
}
`

func newPolicyRig(t *testing.T, snap *anvil.Snapshot) *rig {
	t.Helper()
	dir := t.TempDir()
	rules, pol := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "policy")
	if err := os.WriteFile(rules, []byte("rules:\n  - name: block-eve\n    users: [eve]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pol, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pol, "p.rego"), []byte(brokenPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{snap: snap}
	r := &rig{src: src, kicker: &fakeKicker{src: src}, audit: &bytes.Buffer{}, reg: prometheus.NewRegistry(), rules: rules}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	r.a = New(Settings{}, Deps{Source: src, Kicker: r.kicker, Audit: audit.New(r.audit), Metrics: NewMetrics(r.reg),
		Now: func() time.Time { return now },
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			return engine.Load(ctx, engine.Sources{Rules: []string{rules}, Policies: []string{pol}})
		}})
	if err := r.a.Run(context.Background(), nil, true); err != nil {
		t.Fatalf("first cycle: %v", err)
	}
	return r
}

// A policy that fails while mallory is logged in: before, every cycle
// failed and eve, blocked by a YAML rule, stayed; now eve is kicked, the
// failure is counted, /healthz is degraded, and the audit log says once
// when the policy stopped and when it came back.
func TestPolicyFailureKeepsYAMLEnforced(t *testing.T) {
	users := []string{"alice", "eve", "mallory"}
	r := newPolicyRig(t, sessions(3, func(i int) string { return users[i] }))
	if !slices.Equal(r.kicker.kicked, []string{"eve"}) {
		t.Fatalf("kicked %q, want eve (the YAML block)", r.kicker.kicked)
	}
	if d := r.a.Degraded(); !strings.Contains(d, "Rego policy failing (error)") {
		t.Errorf("Degraded() = %q", d)
	}
	r.cycle(t) // still failing: counted, not audited again
	want := `
# HELP kickagent_policy_errors_total Cycles in which the Rego policy failed and only the YAML rules were enforced, by reason (error, timeout, memory).
# TYPE kickagent_policy_errors_total counter
kickagent_policy_errors_total{reason="error"} 2
kickagent_policy_errors_total{reason="memory"} 0
kickagent_policy_errors_total{reason="timeout"} 0
# HELP kickagent_policy_failing 1 while the Rego policy fails (its decisions are missing; the YAML rules are enforced).
# TYPE kickagent_policy_failing gauge
kickagent_policy_failing 1
`
	if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "kickagent_policy_errors_total", "kickagent_policy_failing"); err != nil {
		t.Error(err)
	}
	if got := r.results(t); !slices.Equal(got, []string{":policy-failed:", "eve:kick-intent:block-eve", "eve:kicked:block-eve"}) {
		t.Errorf("audit %q, want eve kicked and one policy-failed", got)
	}

	// mallory leaves: the policy evaluates again.
	r.src.snap = sessions(1, func(int) string { return "alice" })
	r.cycle(t)
	if d := r.a.Degraded(); d != "" {
		t.Errorf("Degraded() = %q after recovery", d)
	}
	if g := testutil.ToFloat64(r.a.m.policy.failing); g != 0 {
		t.Errorf("kickagent_policy_failing = %v after recovery", g)
	}
	if got := r.results(t); got[len(got)-1] != ":policy-recovered:" {
		t.Errorf("audit %q, want a policy-recovered record last", got)
	}
}
