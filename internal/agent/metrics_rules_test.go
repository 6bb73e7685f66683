package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
)

// blockRules is one rule per client address, as fail2ban's per-IP blocks
// make them: block-0 … block-(n-1) for 10.0.0.0 ….
func blockRules(n int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - {name: block-%d, networks: [10.0.0.%d/32]}\n", i, i)
	}
	return b.String()
}

// TestMetricsForgetRemovedRules: a reload deletes the kicks_total and
// repeat_kicks_total series of rules no longer loaded, so that per-IP
// blocks that come and go do not grow the metrics without bound; the
// series of rules still loaded keep their counts.
func TestMetricsForgetRemovedRules(t *testing.T) {
	const n = 30
	snap := sessions(n, func(int) string { return "u" }) // one user: repeats
	r := newRig(t, blockRules(n), Settings{BreakerFraction: 1}, snap)
	if got := testutil.CollectAndCount(r.a.m.kicks); got != n {
		t.Fatalf("%d kicks_total series after the blocks, want %d", got, n)
	}
	if got := testutil.CollectAndCount(r.a.m.repeatKicks); got != n-2 {
		t.Fatalf("%d repeat_kicks_total series, want %d", got, n-2)
	}
	writeFile(t, r.rules, "rules:\n  - {name: block-0, networks: [10.0.0.0/32]}\n")
	if !r.a.Reload(context.Background()) {
		t.Fatal("reload did not change the rules")
	}
	want := `
# HELP kickagent_kicks_total Decisions acted on, by rule and result (kicked, still-connected, refused-collateral, failed, dry-run, held-back, breaker).
# TYPE kickagent_kicks_total counter
kickagent_kicks_total{result="kicked",rule="block-0"} 1
`
	if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "kickagent_kicks_total", "kickagent_repeat_kicks_total"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, r.rules, "rules: []\n")
	r.a.Reload(context.Background())
	if got := testutil.CollectAndCount(r.a.m.kicks); got != 0 {
		t.Fatalf("%d kicks_total series with no rules, want 0", got)
	}
}

// TestMetricsForgetRegoRules: a Rego rule's series stay while a policy is
// loaded (its rule names cannot be listed) and go with the policy.
func TestMetricsForgetRegoRules(t *testing.T) {
	dir := t.TempDir()
	rules, pol := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "policy")
	writeFile(t, rules, "rules: []\n")
	if err := os.Mkdir(pol, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(pol, "k.rego"), `package kickagent

kick contains {"session": s.id, "rule": "rego-u", "reason": "test"} if {
	some s in input.sessions
	s.user == "u"
}
`)
	withPolicy := true
	src := &fakeSource{snap: sessions(1, func(int) string { return "u" })}
	reg := prometheus.NewRegistry()
	a := New(Settings{}, Deps{Source: src, Kicker: &fakeKicker{src: src}, Audit: audit.New(&strings.Builder{}), Metrics: NewMetrics(reg),
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			s := engine.Sources{Rules: []string{rules}}
			if withPolicy {
				s.Policies = []string{pol}
			}
			return engine.Load(ctx, s)
		}})
	if err := a.Run(context.Background(), nil, true); err != nil {
		t.Fatal(err)
	}
	if got := testutil.CollectAndCount(a.m.kicks); got != 1 {
		t.Fatalf("%d kicks_total series, want the Rego rule's", got)
	}
	writeFile(t, rules, "rules: [{name: other, users: [nobody]}]\n")
	a.Reload(context.Background())
	if got := testutil.CollectAndCount(a.m.kicks); got != 1 {
		t.Fatalf("%d kicks_total series with the policy still loaded, want 1", got)
	}
	withPolicy = false
	a.Reload(context.Background())
	if got := testutil.CollectAndCount(a.m.kicks); got != 0 {
		t.Fatalf("%d kicks_total series with no policy, want 0", got)
	}
}
