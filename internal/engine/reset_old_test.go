package engine

import (
	"context"
	"slices"
	"testing"
	"time"
)

// Input.Old hears of exactly the sessions a logged_in_before rule judged
// old. The agent keeps those across restarts; it used to keep every
// session whose first_seen a Rego policy read (all 100,000 of them, the
// state file rewritten whenever one left).
func TestInputOldOnlyResetSessions(t *testing.T) {
	rs := mustLoadRulesAndPolicy(t, `rules:
  - name: reset-alice
    users: [alice@example.com]
    logged_in_before: "2025-03-02T00:00:00Z"
`, `package kickagent

kick contains {"session": s.id, "rule": "old", "reason": "x"} if {
	some s in input.sessions
	s.first_seen_ns < 0
}
`)
	early := regoNow.Add(-48 * time.Hour)
	var old []string
	in := Input{Snapshot: isolationSnap("bob@example.com"), Now: regoNow,
		FirstSeen:     func(int, string) time.Time { return early },
		SnapshotAfter: func(time.Time) (time.Time, bool) { return regoNow.Add(-time.Hour), true },
		Old:           func(_ int, id string, first time.Time) { old = append(old, id+"@"+first.Format(time.RFC3339)) }}
	ds, err := rs.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := brief(ds), []string{"a reset-alice kick"}; !slices.Equal(got, want) {
		t.Errorf("decisions %q, want %q", got, want)
	}
	if want := []string{"a@" + early.Format(time.RFC3339)}; !slices.Equal(old, want) {
		t.Errorf("Old told of %q, want only alice's session %q", old, want)
	}
}
