package agent

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// kickagent_rules_info carries the active rule set's revision, one series,
// replaced on a reload, so a kick in the audit log (rev=…) can be matched
// with what the agent was running.
func TestRulesInfoFollowsReload(t *testing.T) {
	r := newRig(t, "rules:\n  - {name: a, users: [alice], dry_run: true}\n", Settings{}, sessions(1, func(int) string { return "alice" }))
	want := func(rev string) string {
		return `
# HELP kickagent_rules_info Always 1; rev is the revision of the active rule set (rules files, drop-ins and Rego policy together), as in every decision log line.
# TYPE kickagent_rules_info gauge
kickagent_rules_info{rev="` + rev + `"} 1
`
	}
	rev1 := r.a.Rules().Rev()
	if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want(rev1)), "kickagent_rules_info"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.rules, []byte("rules:\n  - {name: b, users: [bob], dry_run: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !r.a.Reload(context.Background()) {
		t.Fatal("reload failed")
	}
	rev2 := r.a.Rules().Rev()
	if rev2 == rev1 {
		t.Fatalf("the revision did not change: %s", rev1)
	}
	if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want(rev2)), "kickagent_rules_info"); err != nil {
		t.Fatal(err)
	}
}
