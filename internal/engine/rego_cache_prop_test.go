package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// A policy reading fields, alt values and the per-user aggregate.
const propPolicy = `package kickagent

kick contains {"session": s.id, "rule": "net", "reason": sprintf("%s from %s", [s.user, s.ip])} if {
	some s in input.sessions
	kickagent.in_networks(s.ip, ["192.0.2.0/29", "2001:db8::/32"])
}

kick contains {"session": s.id, "rule": "alt", "reason": "legacy", "dry_run": true} if {
	some s in input.sessions
	s.alt.user_alt == "legacy-a"
}

kick contains {"session": s.id, "rule": "busy", "reason": sprintf("%d sessions", [s.user_sessions])} if {
	some s in input.sessions
	s.user_sessions > 3
	s.service == "imap"
}
`

// TestPolicyCacheEqualsFresh: one Policy evaluated cycle after cycle (its
// cache warm, entries found by the cursor or the map) decides exactly as
// a new Policy on the same snapshot, while sessions come and go, change
// alt fields under the same id, appear twice, and the dump is reordered;
// with GUIDs (2.4) and without (2.3 ids).
func TestPolicyCacheEqualsFresh(t *testing.T) {
	iterations := 30
	if testing.Short() {
		iterations = 6
	}
	decided, reused := 0, 0
	for seed := range uint64(iterations) {
		rng := rand.New(rand.NewPCG(seed, 0x7265676f))
		guids := seed%2 == 0
		policy := propPolicy
		if seed%3 == 1 { // without aggregates: nearly everything reused
			policy = policy[:strings.Index(policy, "kick contains {\"session\": s.id, \"rule\": \"busy\"")]
		}
		warm := mustLoadPolicy(t, policy)
		snap := randomSnapshot(rng, 80)
		now := regoNow
		for cycle := range 10 {
			now = now.Add(5 * time.Second)
			snap = churn(rng, snap)
			if rng.IntN(4) == 0 && len(snap.Sessions) > 0 { // one record twice
				snap.Sessions = slices.Insert(snap.Sessions, rng.IntN(len(snap.Sessions)), snap.Sessions[rng.IntN(len(snap.Sessions))])
			}
			if guids {
				for i := range snap.Sessions {
					s := &snap.Sessions[i]
					s.ConnGUID = fmt.Sprintf("%032x", s.PID)
				}
			} else {
				snap.Protocol = anvil.Proto23
			}
			in := PolicyInput{Snapshot: snap, Now: now}
			got := mustEvaluate(t, warm, in)
			reused += warm.Stats().Reused
			want := mustEvaluate(t, mustLoadPolicy(t, policy), in)
			g, w := policyLines(got), policyLines(want)
			if !slices.Equal(g, w) {
				t.Fatalf("seed %d cycle %d: cached\n%v\nfresh\n%v", seed, cycle, g, w)
			}
			decided += len(got)
		}
	}
	if decided < iterations*40 || reused < iterations*150 {
		t.Errorf("%d decisions, %d reused: the generator proves little", decided, reused)
	}
}

func policyLines(ds []Decision) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%d %s %s %s %s %p", d.Index, d.ID, d.Rule, d.Action, d.Reason, d.Session)
	}
	return out
}
