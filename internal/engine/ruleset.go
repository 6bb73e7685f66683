package engine

import (
	"context"
	"hash/maphash"
	"slices"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Ruleset is one loaded, valid set of YAML rules and Rego policies. It is
// immutable: a reload builds a new one and swaps it in whole.
type Ruleset struct {
	Allow  *Allow
	rules  []*rule
	index  *ruleIndex
	policy *Policy
	rev    string
	files  []string
	// cache remembers static rule matches per session (yaml_cache.go);
	// the one mutable part, guarded by its own lock.
	cache *yamlCache
}

// Rev identifies the rule and policy contents (a short sha256), for logs
// and the audit trail.
func (rs *Ruleset) Rev() string { return rs.rev }

// RuleCount is the number of YAML rules.
func (rs *Ruleset) RuleCount() int { return len(rs.rules) }

// HasPolicy reports whether Rego policies are loaded.
func (rs *Ruleset) HasPolicy() bool { return rs.policy != nil }

// PolicyVolatile says why the Rego policy must be evaluated whole every
// cycle (it reads the time, or relates sessions to each other), or "".
func (rs *Ruleset) PolicyVolatile() string {
	if rs.policy == nil {
		return ""
	}
	return rs.policy.Volatile()
}

// Files are the rule files loaded, in order.
func (rs *Ruleset) Files() []string { return rs.files }

// ExpiredRule is a YAML rule that is past its expiry and inactive.
type ExpiredRule struct {
	Name, File string
	Line       int
	Expired    time.Time
}

// Expired lists the rules inactive at now.
func (rs *Ruleset) Expired(now time.Time) []ExpiredRule {
	var out []ExpiredRule
	for _, r := range rs.rules {
		if !r.active(now) {
			out = append(out, ExpiredRule{r.name, r.file, r.line, r.expires})
		}
	}
	return out
}

// Input is what one evaluation sees.
type Input struct {
	Snapshot *anvil.Snapshot
	Now      time.Time
	// FirstSeen returns when a session id was first seen by the caller
	// (nil: Now). Rego policies receive it as first_seen.
	FirstSeen func(id string) time.Time
	// SnapshotAfter returns the time of the first snapshot the caller took
	// at or after t, or false while t is in the future. It is the cutoff
	// of logged_in_before rules (nil: Now once t has passed).
	SnapshotAfter func(t time.Time) (time.Time, bool)
}

// RuleRef names a YAML rule and where it is defined.
type RuleRef struct {
	Name, File string
	Line       int
}

// DrainRules lists the active drain rules.
func (rs *Ruleset) DrainRules() []RuleRef {
	var out []RuleRef
	for _, r := range rs.rules {
		if r.drain {
			out = append(out, RuleRef{r.name, r.file, r.line})
		}
	}
	return out
}

// Evaluate decides on every session of the snapshot: at most one decision
// per session, in snapshot order. A session that a kick rule selects gets
// ActionKick (the first such YAML rule in load order, else the first Rego
// result); one only dry-run rules select gets ActionDryRun; either becomes
// ActionAllowed when the allow list covers the session.
func (rs *Ruleset) Evaluate(ctx context.Context, in Input) ([]Decision, error) {
	snap := in.Snapshot
	// byIdx[i] is session i's decision; most sessions have none.
	byIdx := make([]*Decision, len(snap.Sessions))
	n := 0
	if in.SnapshotAfter != nil {
		// Fix every reset's cutoff at the first snapshot at or after its
		// time, whether or not a session matches now: a user with no
		// session then who logs in later is new, not old.
		for _, r := range rs.rules {
			if !r.loggedInBefore.IsZero() && r.active(in.Now) {
				in.SnapshotAfter(r.loggedInBefore)
			}
		}
	}
	if len(rs.rules) > 0 {
		n += rs.evaluateYAML(&in, byIdx)
	}
	if rs.policy != nil {
		pds, err := rs.policy.Evaluate(ctx, PolicyInput{Snapshot: snap, Now: in.Now, FirstSeen: in.FirstSeen, Allow: rs.Allow})
		if err != nil {
			return nil, err
		}
		index := sessionIndex(snap)
		for j := range pds {
			pd := &pds[j]
			i, ok := index[pd.ID]
			if !ok {
				continue
			}
			if cur := byIdx[i]; cur == nil || (cur.Action == ActionDryRun && pd.Action == ActionKick) {
				if cur == nil {
					n++
				}
				pd.Session, pd.Index = &snap.Sessions[i], i
				byIdx[i] = pd
			}
		}
	}
	out := make([]Decision, 0, n)
	for _, d := range byIdx {
		if d == nil {
			continue
		}
		if d.Engine != EngineYAML && rs.Allow.Protects(d.Session) {
			d.Action = ActionAllowed // YAML decisions come with it applied
		}
		out = append(out, *d)
	}
	return out, nil
}

// evaluateYAML fills byIdx with the YAML rules' decisions and returns
// how many it made. Static matches come from the cache when the session
// was evaluated before; time-dependent conditions are applied every time.
func (rs *Ruleset) evaluateYAML(in *Input, byIdx []*Decision) int {
	c := rs.cache
	c.begin(len(in.Snapshot.Sessions))
	defer c.end()
	sc := rs.index.newScratch()
	var h, h2 maphash.Hash
	h.SetSeed(c.seed)
	h2.SetSeed(c.check)
	var static []int32
	var slab []Decision
	n := 0
	for i := range in.Snapshot.Sessions {
		s := &in.Snapshot.Sessions[i]
		key := c.hash(&h, s)
		hit, known := c.lookup(key)
		if hit != nil && hit.check != c.hash(&h2, s) {
			known = false // a hash collision: never trusted
		}
		if !known {
			static = static[:0]
			for _, id := range rs.index.candidates(sc, s) {
				if rs.rules[id].matches(s) {
					static = append(static, id)
				}
			}
			slices.Sort(static)
			if len(static) > 0 {
				hit = newHit(static, s, c.hash(&h2, s), rs.Allow)
			} else {
				hit = nil
			}
		}
		c.record(key, hit)
		if hit == nil {
			continue
		}
		var best *rule
		bestID := int32(-1)
		for _, id := range hit.rules {
			r := rs.rules[id]
			if !r.active(in.Now) || !r.oldEnough(s, in) {
				continue
			}
			if best == nil || better(r, best) {
				best, bestID = r, id
			}
		}
		if best == nil {
			continue
		}
		if hit.reasonOf != bestID {
			hit.reason, hit.reasonOf = best.explain(s), bestID
		}
		if len(slab) == cap(slab) {
			// Decisions in blocks: pointers into a block stay valid.
			slab = make([]Decision, 0, 1024)
		}
		slab = append(slab, Decision{Session: s, Index: i, ID: SessionID(s), Rule: best.name, Engine: EngineYAML,
			Reason: hit.reason, Action: ActionKick, MaxKicksPerCycle: best.maxKicks,
			Rate: best.rate, Drain: best.drain, File: best.file})
		d := &slab[len(slab)-1]
		switch {
		case hit.allowed:
			d.Action = ActionAllowed
		case best.dryRun:
			d.Action = ActionDryRun
		}
		byIdx[i] = d
		n++
	}
	return n
}

// better: a kick rule beats a dry-run rule; then load order.
func better(r, than *rule) bool {
	if r.dryRun != than.dryRun {
		return !r.dryRun
	}
	return r.order < than.order
}

func sessionIndex(snap *anvil.Snapshot) map[string]int {
	m := make(map[string]int, len(snap.Sessions))
	for i := range snap.Sessions {
		m[SessionID(&snap.Sessions[i])] = i
	}
	return m
}
