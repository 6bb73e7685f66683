package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// TestYAMLCacheEqualsFresh: one Ruleset evaluated cycle after cycle (its
// match cache warm) decides exactly as a Ruleset evaluating the same
// snapshot for the first time, while sessions come and go, change their
// alt fields under the same id, and time passes expires and
// logged_in_before boundaries.
func TestYAMLCacheEqualsFresh(t *testing.T) {
	iterations := 60
	if testing.Short() {
		iterations = 10
	}
	decided := 0
	for seed := range uint64(iterations) {
		rng := rand.New(rand.NewPCG(seed, 0x79616d6c))
		text := randomRules(rng, 1+rng.IntN(40))
		jobs := timedRules(rng)
		warm := MustLoadYAML(t, text, jobs)
		snap := randomSnapshot(rng, 120)
		firstSeen := map[string]time.Time{}
		cutoffs := map[time.Time]time.Time{}
		now := testNow.Add(-90 * time.Minute)
		for cycle := range 12 {
			now = now.Add(time.Duration(rng.IntN(40)) * time.Minute)
			snap = churn(rng, snap)
			for i := range snap.Sessions {
				id := snap.Sessions[i].ID()
				if _, ok := firstSeen[id]; !ok {
					firstSeen[id] = now
				}
			}
			in := func() Input {
				return Input{Snapshot: snap, Now: now,
					FirstSeen: func(_ int, id string) time.Time { return firstSeen[id] },
					SnapshotAfter: func(at time.Time) (time.Time, bool) {
						if now.Before(at) {
							return time.Time{}, false
						}
						if c, ok := cutoffs[at]; ok {
							return c, true
						}
						cutoffs[at] = now
						return now, true
					}}
			}
			wi := in()
			wi.Prepared = prepareSome(rng, warm, MustLoadYAML(t, text, jobs), snap)
			got, err := warm.Evaluate(context.Background(), wi)
			if err != nil {
				t.Fatal(err)
			}
			want, err := MustLoadYAML(t, text, jobs).Evaluate(context.Background(), in())
			if err != nil {
				t.Fatal(err)
			}
			if g, w := decisionLines(got), decisionLines(want); g != w {
				t.Fatalf("seed %d cycle %d: cached\n%s\nfresh\n%s\nrules:\n%s%s", seed, cycle, g, w, text, jobs)
			}
			decided += len(got)
		}
	}
	if decided < iterations*50 {
		t.Errorf("only %d decisions: the generator proves little", decided)
	}
}

// prepareSome returns, at random, no Prepared, a whole one for rs, one
// whose dump was retried, or one Evaluate must not use (made for other, or
// with a session left out).
func prepareSome(rng *rand.Rand, rs, other *Ruleset, snap *anvil.Snapshot) *Prepared {
	add := func(p *Prepared, n, skip int) *Prepared {
		for i := range n {
			if i != skip {
				p.Add(i, &snap.Sessions[i])
			}
		}
		return p
	}
	n := len(snap.Sessions)
	switch rng.IntN(5) {
	case 0:
		return nil
	case 1:
		return add(rs.Prepare(nil), n, -1)
	case 2:
		return add(add(rs.Prepare(nil), n/2, -1), n, -1) // retried from 0
	case 3:
		return add(other.Prepare(nil), n, -1)
	}
	return add(rs.Prepare(nil), n, rng.IntN(n+1))
}

// A Prepared is used only when made by the Ruleset for exactly the
// snapshot's sessions in order.
func TestPreparedUsedOnlyWhenWhole(t *testing.T) {
	rs := MustLoadYAML(t, "rules:\n  - name: a\n    users: [alice]\n")
	other := MustLoadYAML(t, "rules:\n  - name: a\n    users: [alice]\n")
	snap := randomSnapshot(rand.New(rand.NewPCG(1, 2)), 50)
	n := len(snap.Sessions)
	add := func(p *Prepared, order ...int) *Prepared {
		for _, i := range order {
			p.Add(i, &snap.Sessions[i])
		}
		return p
	}
	seq := func(from, to int) []int {
		var o []int
		for i := from; i < to; i++ {
			o = append(o, i)
		}
		return o
	}
	for _, tc := range []struct {
		name string
		p    *Prepared
		use  bool
	}{
		{"whole", add(rs.Prepare(nil), seq(0, n)...), true},
		{"retried", add(add(rs.Prepare(nil), seq(0, n-3)...), seq(0, n)...), true},
		{"reused", add(rs.Prepare(add(rs.Prepare(nil), seq(0, n)...)), seq(0, n)...), true},
		{"none", nil, false},
		{"short", add(rs.Prepare(nil), seq(0, n-1)...), false},
		{"gap", add(rs.Prepare(nil), append(seq(0, 10), seq(11, n)...)...), false},
		{"other ruleset", add(other.Prepare(nil), seq(0, n)...), false},
	} {
		keys := rs.yamlKeys(&Input{Snapshot: snap, Prepared: tc.p})
		if (keys != nil) != tc.use {
			t.Errorf("%s: used %v, want %v", tc.name, keys != nil, tc.use)
		}
		for i := range keys {
			c, s := rs.cache, &snap.Sessions[i]
			if keys[i] != s.ContentHash(c.seed) {
				t.Fatalf("%s: key %d is not session %d's", tc.name, i, i)
			}
		}
	}
	long := &anvil.Snapshot{Protocol: snap.Protocol, Sessions: snap.Sessions[:n-1]}
	if rs.yamlKeys(&Input{Snapshot: long, Prepared: add(rs.Prepare(nil), seq(0, n)...)}) != nil {
		t.Error("a Prepared of more sessions than the snapshot was used")
	}
}

// timedRules are rules whose outcome changes with time alone.
func timedRules(rng *rand.Rand) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range 1 + rng.IntN(3) {
		at := testNow.Add(time.Duration(rng.IntN(240)-120) * time.Minute).Format(time.RFC3339)
		fmt.Fprintf(&b, "  - name: reset%d\n    users: [%q]\n    logged_in_before: %q\n", i, pick(rng, randUsers[:7]), at)
		fmt.Fprintf(&b, "  - name: until%d\n    networks: [%q]\n    expires: %q\n", i, randomNetwork(rng),
			testNow.Add(time.Duration(rng.IntN(240)-120)*time.Minute).Format(time.RFC3339))
	}
	return b.String()
}

// churn drops some sessions, changes the alt fields of some (same pid and
// id fields), adds new ones at the end, and sometimes reorders all.
func churn(rng *rand.Rand, snap *anvil.Snapshot) *anvil.Snapshot {
	next := &anvil.Snapshot{Protocol: snap.Protocol, AltNames: snap.AltNames}
	for _, s := range snap.Sessions {
		switch rng.IntN(10) {
		case 0:
			continue
		case 1:
			s.SetAlt(altNames, []string{pick(rng, randAlt), pick(rng, randAlt)})
		}
		next.Sessions = append(next.Sessions, s)
	}
	fresh := randomSnapshot(rng, 5+rng.IntN(20))
	for _, s := range fresh.Sessions {
		s.PID += int64(1000 + rng.IntN(1_000_000))
		next.Sessions = append(next.Sessions, s)
	}
	if rng.IntN(3) == 0 { // anvil's table resized: a new order
		rng.Shuffle(len(next.Sessions), func(i, j int) {
			next.Sessions[i], next.Sessions[j] = next.Sessions[j], next.Sessions[i]
		})
	}
	return next
}

func decisionLines(ds []Decision) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s %s %s %s | %s\n", d.ID, d.Rule, d.Action, filepath.Base(d.File), d.Reason)
	}
	return b.String()
}

// TestYAMLCacheCursor: sessions are found when the dump keeps its order
// with sessions gone in between, and after a reorder (an anvil table
// resize) within yamlResync misses.
func TestYAMLCacheCursor(t *testing.T) {
	c := newYAMLCache()
	fill := func(keys []uint64) (found int) {
		c.begin(len(keys))
		for _, k := range keys {
			h, known := c.lookup(k)
			if known {
				found++
				if h == nil || h.rules[0] != int32(k) {
					t.Fatalf("key %d: wrong entry %+v", k, h)
				}
			}
			c.record(k, &yamlHit{rules: []int32{int32(k)}})
		}
		c.end()
		return found
	}
	var all []uint64
	for k := range uint64(1000) {
		all = append(all, k)
	}
	if n := fill(all); n != 0 {
		t.Fatalf("empty cache found %d", n)
	}
	// Every third gone, a run of nearly yamlLookahead gone, a few new ones.
	var thinned []uint64
	for _, k := range all {
		if k%3 == 0 || (k >= 501 && k < 501+yamlLookahead-4) {
			continue
		}
		thinned = append(thinned, k)
		if k%50 == 0 {
			thinned = append(thinned, 5000+k)
		}
	}
	fresh := 0
	for _, k := range thinned {
		if k >= 5000 {
			fresh++
		}
	}
	if n, want := fill(thinned), len(thinned)-fresh; n != want {
		t.Errorf("thinned: found %d of %d known", n, want)
	}
	slices.Reverse(thinned)
	if n := fill(thinned); n < len(thinned)-yamlResync {
		t.Errorf("reordered: found %d of %d", n, len(thinned))
	}
}

// TestYAMLCacheLyingEntryNeverKicks: an entry that passes both hashes but
// is not the session's (a 128-bit collision, forced here) never turns
// into a kick the rules do not make: a cached kick is verified against
// the rule's selectors and the allow list.
func TestYAMLCacheLyingEntryNeverKicks(t *testing.T) {
	rules := "allow:\n  users: [boss@x]\nrules:\n" +
		"  - name: a\n    users: [a@x]\n" +
		"  - name: b\n    users: [b@x]\n" +
		"  - name: all\n    users: [\"*@x\"]\n    dry_run: true\n"
	snap := &anvil.Snapshot{Protocol: anvil.Proto24}
	for i, u := range []string{"a@x", "b@x", "c@x", "boss@x"} {
		snap.Sessions = append(snap.Sessions, anvil.Session{User: u, Service: "imap", PID: int64(100 + i),
			ConnGUID: fmt.Sprintf("%032x", i), IP: netip.MustParseAddr("192.0.2.1")})
	}
	in := Input{Snapshot: snap, Now: testNow}
	want, err := MustLoadYAML(t, rules).Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	rs := MustLoadYAML(t, rules)
	if _, err := rs.Evaluate(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	// Every session's entry now claims kick rule a (id 0) and no allow.
	c := rs.cache
	for i := range snap.Sessions {
		c.hits[i] = &yamlHit{rules: []int32{0}, check: snap.Sessions[i].ContentHash(c.check), reasonOf: -1}
	}
	got, err := rs.Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := decisionLines(got), decisionLines(want); g != w {
		t.Fatalf("lying cache:\n%s\nfresh:\n%s", g, w)
	}
}
