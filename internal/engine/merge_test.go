package engine

import (
	"fmt"
	"github.com/kickagent/kickagent/internal/match"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
)

// mergeByIndex is how Evaluate combined YAML and Rego decisions before
// merge: a decision slot per session, the YAML one first, a Rego one
// taking an empty slot or replacing a dry run with a kick.
func mergeByIndex(rs *Ruleset, n int, ys, pds []Decision) []Decision {
	byIdx := make([]*Decision, n)
	for k := range ys {
		byIdx[ys[k].Index] = &ys[k]
	}
	for j := range pds {
		pd := &pds[j]
		if cur := byIdx[pd.Index]; cur == nil || (cur.Action == ActionDryRun && pd.Action == ActionKick) {
			byIdx[pd.Index] = pd
		}
	}
	var out []Decision
	for _, d := range byIdx {
		if d == nil {
			continue
		}
		if d.Engine != EngineYAML && rs.Allow.Protects(d.Session) {
			d.Action = ActionAllowed
		}
		out = append(out, *d)
	}
	return out
}

// TestMergeEqualsByIndex: merge, walking both lists in order, decides as
// the per-session slots did, for random YAML and Rego decisions (several
// Rego ones per session, kicks and dry runs, allow-listed sessions).
func TestMergeEqualsByIndex(t *testing.T) {
	rs := &Ruleset{Allow: &Allow{Networks: []match.Network{{Prefix: netip.MustParsePrefix("10.0.0.0/30")}}}}
	rs.Allow.compile()
	for seed := range uint64(500) {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := 1 + rng.IntN(30)
		sessions := make([]anvil.Session, n)
		for i := range sessions {
			sessions[i].IP = netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(8))})
		}
		actions := []Action{ActionKick, ActionDryRun, ActionAllowed}
		gen := func(engine Engine, maxPer int) []Decision {
			var ds []Decision
			for i := range n {
				for k := range rng.IntN(maxPer + 1) {
					a := actions[rng.IntN(2)]
					if engine == EngineYAML {
						a = actions[rng.IntN(3)]
					}
					ds = append(ds, Decision{Session: &sessions[i], Index: i, Engine: engine,
						Rule: fmt.Sprintf("%s%d", engine, k), Action: a})
				}
			}
			return ds
		}
		ys, pds := gen(EngineYAML, 1), gen(EngineRego, 3)
		want := mergeByIndex(rs, n, append([]Decision(nil), ys...), append([]Decision(nil), pds...))
		got := rs.merge(ys, pds)
		if g, w := fmt.Sprint(mergeSummary(got)), fmt.Sprint(mergeSummary(want)); g != w {
			t.Fatalf("seed %d:\ngot  %s\nwant %s", seed, g, w)
		}
	}
}

func mergeSummary(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%d:%s:%s", d.Index, d.Rule, d.Action))
	}
	return out
}
