package agent

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// kickagent_decisions and kickagent_sessions hold the last cycle only: a
// rule or service that no longer appears loses its series.
func TestDecisionAndSessionGauges(t *testing.T) {
	snap := sessions(3, func(i int) string { return []string{"alice", "bob", "carol"}[i] })
	snap.Sessions[2].Service = "pop3"
	r := newRig(t, `
allow: {users: [carol]}
rules:
  - {name: w2, users: [bob], dry_run: true}
  - {name: w1, users: [alice, bob, carol], dry_run: true}
`, Settings{}, snap)
	want := `
# HELP kickagent_decisions Decisions of the last cycle, by rule and action (kick, dry-run, allowed).
# TYPE kickagent_decisions gauge
kickagent_decisions{action="allowed",rule="w1"} 1
kickagent_decisions{action="dry-run",rule="w1"} 1
kickagent_decisions{action="dry-run",rule="w2"} 1
# HELP kickagent_sessions Sessions in the last anvil snapshot, by service.
# TYPE kickagent_sessions gauge
kickagent_sessions{service="imap"} 2
kickagent_sessions{service="pop3"} 1
`
	if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "kickagent_decisions", "kickagent_sessions"); err != nil {
		t.Fatal(err)
	}
	r.src.snap = sessions(1, func(int) string { return "alice" })
	r.cycle(t)
	want = `
# HELP kickagent_decisions Decisions of the last cycle, by rule and action (kick, dry-run, allowed).
# TYPE kickagent_decisions gauge
kickagent_decisions{action="dry-run",rule="w1"} 1
# HELP kickagent_sessions Sessions in the last anvil snapshot, by service.
# TYPE kickagent_sessions gauge
kickagent_sessions{service="imap"} 1
`
	if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "kickagent_decisions", "kickagent_sessions"); err != nil {
		t.Fatal(err)
	}
}
