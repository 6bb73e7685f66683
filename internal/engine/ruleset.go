package engine

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Ruleset is one loaded, valid set of YAML rules and Rego policies. It is
// immutable: a reload builds a new one and swaps it in whole.
type Ruleset struct {
	Allow *Allow
	rules []*rule
	// bfRules are the brute-force rules: they count failed logins and
	// block (door.go), and are never matched against sessions.
	bfRules []*rule
	index   *ruleIndex
	policy  *Policy
	rev     string
	files   []string
	// mains: what each rules path given as a file (not a directory or a
	// drop-in in one) defined; see Replaces.
	mains map[string]mainFile
	// dropIns: the content of each drop-in file loaded, the version a
	// broken edit falls back to (LoadKeeping); rejected and kept say
	// which drop-ins were not loaded as they are on disk (keep.go).
	dropIns  map[string][]byte
	rejected Errors
	kept     []string
	// cache remembers static rule matches per session (yaml_cache.go);
	// the one mutable part, guarded by its own lock.
	cache *yamlCache
	// allowTerm is input.allow for a policy judging logins (door.go).
	allowOnce sync.Once
	allowTerm *ast.Term
}

// Rev identifies the rule and policy contents (a short sha256), for logs
// and the audit trail.
func (rs *Ruleset) Rev() string { return rs.rev }

// RuleCount is the number of YAML rules.
func (rs *Ruleset) RuleCount() int { return len(rs.rules) + len(rs.bfRules) }

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
	// FirstSeen returns when session i of Snapshot, whose id is id, was
	// first seen by the caller (nil: Now); the index lets the caller find
	// it without a lookup by id. Rego policies receive it as first_seen.
	FirstSeen func(i int, id string) time.Time
	// SnapshotAfter returns the time of the first snapshot the caller took
	// at or after t, or false while t is in the future. It is the cutoff
	// of logged_in_before rules (nil: Now once t has passed).
	SnapshotAfter func(t time.Time) (time.Time, bool)
	// Old, if set, is told of each session a logged_in_before rule judged
	// old, with its first-seen time: the ones a restarted caller must
	// still judge old (only these: a Rego policy sees every session's
	// first_seen, which says nothing about resets).
	Old func(i int, id string, firstSeen time.Time)
	// Prepared, if set, holds per-session work done during the dump
	// (Ruleset.Prepare).
	Prepared *Prepared
	// PolicyBudget bounds the Rego policy's evaluation (zero: half the
	// context's remaining time, DefaultPolicyMemory).
	PolicyBudget Budget
	// Blocked, if set, reports a brute-force block covering a client IP:
	// its sessions are kicked (door.go addBlocks); BlockedUser, if set, a
	// block of a user (CrowdSec's username decisions).
	Blocked     func(ip netip.Addr) (Block, bool)
	BlockedUser func(user string) (Block, bool)
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
//
// When the Rego policy fails (an error, or its Budget exceeded), Evaluate
// returns the YAML rules' decisions, complete, with a *PolicyError: the
// caller enforces them and reports the policy failure (rego_budget.go).
// Any other error comes with no decisions.
func (rs *Ruleset) Evaluate(ctx context.Context, in Input) ([]Decision, error) {
	snap := in.Snapshot
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
	var ys []Decision
	if len(rs.rules) > 0 {
		ys = rs.evaluateYAML(&in)
	}
	if rs.policy == nil {
		return rs.addBlocks(&in, ys), nil
	}
	pctx, stop := in.PolicyBudget.Guard(ctx)
	pds, err := rs.policy.Evaluate(pctx, PolicyInput{Snapshot: snap, Now: in.Now, FirstSeen: in.FirstSeen, Allow: rs.Allow})
	if over := stop(); over != nil && err != nil {
		err = fmt.Errorf("policy %s: %w", rs.policy.name, over) // OPA only says "cancelled"
	}
	if err != nil {
		return rs.addBlocks(&in, ys), policyError(err)
	}
	return rs.addBlocks(&in, rs.merge(ys, pds)), nil
}

// evaluateYAML returns the YAML rules' decisions in snapshot order.
// Static matches come from the cache when the session was evaluated
// before; time-dependent conditions and the allow list are applied every
// time, and cached matches are verified (see yaml_cache.go).
func (rs *Ruleset) evaluateYAML(in *Input) []Decision {
	c := rs.cache
	c.begin(len(in.Snapshot.Sessions))
	defer c.end()
	sc := rs.index.newScratch()
	var static []int32 // scratch
	out := make([]Decision, 0, c.decided+c.decided/8)
	keys := rs.yamlKeys(in)
	for i := range in.Snapshot.Sessions {
		s := &in.Snapshot.Sessions[i]
		var key uint64
		if keys != nil {
			key = keys[i]
		} else {
			key = s.ContentHash(c.seed)
		}
		hit, known := c.lookup(key)
		// The second hash only where an entry with matches is used or
		// made: most sessions match nothing.
		if hit != nil && hit.check != s.ContentHash(c.check) {
			known = false // a hash collision: never trusted
		}
		if !known {
			hit = rs.static(sc, s, &static)
		}
		// Decided in place, in the next element of out: a Decision is
		// 120 bytes, copied twice per decision when returned and appended.
		if len(out) == cap(out) {
			out = slices.Grow(out, 1)
		}
		out = out[:len(out)+1]
		d := &out[len(out)-1]
		if !rs.decide(in, hit, s, i, known, d) {
			// A cached match that does not hold: matched afresh.
			hit = rs.static(sc, s, &static)
			rs.decide(in, hit, s, i, false, d)
		}
		c.record(key, hit)
		if d.Rule == "" {
			if d.Session != nil { // a rule without a name: cannot be, but d must be zero
				*d = Decision{}
			}
			out = out[:len(out)-1]
		}
	}
	c.decided = len(out)
	return out
}

// static is s's cache entry: the rules whose static selectors select it
// (nil when none do); scratch is reused.
func (rs *Ruleset) static(sc *scratch, s *anvil.Session, scratch *[]int32) *yamlHit {
	ids := (*scratch)[:0]
	for _, id := range rs.index.candidates(sc, s) {
		if rs.rules[id].matches(s) {
			ids = append(ids, id)
		}
	}
	*scratch = ids
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	return &yamlHit{rules: slices.Clone(ids), check: s.ContentHash(rs.cache.check), allowed: rs.Allow.Protects(s), reasonOf: -1}
}

// decide applies the time-dependent conditions to the session's static
// matches: its decision (Rule "" if none). A kick from a cached entry is
// verified first, the rule's selectors and the allow list evaluated
// afresh: false says the entry is not s's (see yaml_cache.go). The
// decision is written to d, which must be zero, and left zero if none.
func (rs *Ruleset) decide(in *Input, hit *yamlHit, s *anvil.Session, i int, cached bool, d *Decision) bool {
	if hit == nil {
		return true
	}
	var best *rule
	bestID := int32(-1)
	for _, id := range hit.rules {
		r := rs.rules[id]
		if !r.active(in.Now) || !r.oldEnough(s, i, in) {
			continue
		}
		if best == nil || better(r, best) {
			best, bestID = r, id
		}
	}
	if best == nil {
		return true
	}
	action := ActionKick
	switch {
	case hit.allowed:
		action = ActionAllowed
	case best.dryRun:
		action = ActionDryRun
	}
	if cached && action == ActionKick && (!best.matches(s) || rs.Allow.Protects(s)) {
		return false
	}
	if hit.reasonOf != bestID {
		hit.reason, hit.reasonOf = best.explain(s), bestID
	}
	d.Session, d.Index, d.ID, d.Rule, d.Engine = s, i, s.ID(), best.name, EngineYAML
	d.Reason, d.Action, d.MaxKicksPerCycle = hit.reason, action, best.maxKicks
	d.Rate, d.Drain, d.File = best.rate, best.drain, best.file
	return true
}

// merge combines the YAML decisions with the policy's, both in snapshot
// order (by Index), into one per session: the YAML one, unless it is a dry
// run and the policy kicks; else the policy's first kick, else its first.
func (rs *Ruleset) merge(ys, pds []Decision) []Decision {
	out := make([]Decision, 0, len(ys)+len(pds))
	k, j := 0, 0
	for k < len(ys) || j < len(pds) {
		// The next session decided, i, and its YAML decision if any.
		var y *Decision
		i := math.MaxInt
		if k < len(ys) {
			y, i = &ys[k], ys[k].Index
		}
		if j < len(pds) && pds[j].Index < i {
			y, i = nil, pds[j].Index
		}
		if y != nil {
			k++
		}
		var first, kick *Decision
		for ; j < len(pds) && pds[j].Index == i; j++ {
			if first == nil {
				first = &pds[j]
			}
			if kick == nil && pds[j].Action == ActionKick {
				kick = &pds[j]
			}
		}
		d := y
		switch {
		case kick != nil && (y == nil || y.Action == ActionDryRun):
			d = kick
		case y == nil:
			d = first
		}
		if d.Engine != EngineYAML && rs.Allow.Protects(d.Session) {
			d.Action = ActionAllowed // YAML decisions come with it applied
		}
		out = append(out, *d)
	}
	return out
}

// better: a kick rule beats a dry-run rule; then load order.
func better(r, than *rule) bool {
	if r.dryRun != than.dryRun {
		return !r.dryRun
	}
	return r.order < than.order
}
