package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kickagent/kickagent/internal/anvil"
)

// The decision cache.
//
// Rego costs ~46 µs per session naively and ~10 µs with the builtins
// (opa-performance.md), but sessions live for many poll cycles and do
// not change. So each Policy keeps, per session id, the session's input
// (fields, first_seen, aggregates), its input *ast.Term and the verdicts
// the policy gave it. A cycle evaluates, in one batched Eval (split over
// up to regoMaxWorkers goroutines when large), only the sessions that are
// new or whose input changed; the others reuse their verdicts. Ids no
// longer in the snapshot are dropped.
//
// Invalidation:
//   - a new Policy (reload) starts with an empty cache: full evaluation;
//   - a volatile policy (reads the time, correlates sessions; see
//     analyzePolicy) evaluates every session every cycle; only the input
//     terms are reused. At 100k sessions that is the full cold cost (about
//     a second of CPU) every cycle: keep time out of policies, or compare
//     against first_seen_ns instead;
//   - a changed session (2.3 refcount, alt fields, first_seen) is
//     re-evaluated;
//   - changed aggregates (user_sessions, ip_sessions) re-evaluate the
//     session only if the policy reads them; a new session of a user with
//     n sessions then re-evaluates n+1 sessions;
//   - a different Allow (pointer) re-evaluates everything if the policy
//     reads input.allow;
//   - a different protocol (2.3 ↔ 2.4) empties the cache.
//
// The cache holds ~2 KB per session (input term, a copy of the session).

// regoCache is a Policy's decision cache; guarded by Policy.mu.
type regoCache struct {
	proto     anvil.Protocol
	allow     *Allow
	allowTerm *ast.Term
	entries   map[string]*regoEntry
	gen       uint64
}

type regoEntry struct {
	id           string
	sess         anvil.Session
	firstSeen    time.Time
	userSessions int
	ipSessions   int
	term         *ast.Term // nil: to build
	verdicts     []regoVerdict
	decided      bool
	gen          uint64 // last Evaluate that saw the id
}

type regoVerdict struct {
	rule, reason string
	action       Action
}

// PolicyStats describes the last Evaluate.
type PolicyStats struct {
	Sessions  int  // sessions in the snapshot
	Evaluated int  // sessions given to the policy
	Reused    int  // sessions whose cached decisions were reused
	Evals     int  // OPA evaluations run (batches)
	Decisions int  // decisions returned
	Full      bool // every session was evaluated (reload, volatile policy)
	Duration  time.Duration
}

// Stats returns the figures of the last Evaluate.
func (p *Policy) Stats() PolicyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

const (
	// regoParallelMin is the batch size from which Eval is split across
	// goroutines (one Eval runs on one core).
	regoParallelMin = 2048
	regoMaxWorkers  = 4
)

// Evaluate returns the policy's decisions on the snapshot, in snapshot
// order (then by rule). Actions are kick or dry-run: the caller applies
// the allow list.
func (p *Policy) Evaluate(ctx context.Context, in PolicyInput) ([]Decision, error) {
	snap := in.Snapshot
	if snap == nil {
		return nil, fmt.Errorf("policy %s: no snapshot", p.name)
	}
	now := in.Now
	if now.IsZero() {
		now = snap.Taken
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	c := &p.cache
	full := c.entries == nil
	if c.entries == nil || c.proto != snap.Protocol {
		c.entries = make(map[string]*regoEntry, len(snap.Sessions))
		c.proto = snap.Protocol
		full = true
	}
	if c.allowTerm == nil || in.Allow != c.allow {
		if c.allowTerm != nil && p.deps.allow {
			full = true
		}
		c.allow, c.allowTerm = in.Allow, allowTerm(in.Allow)
	}
	if p.deps.volatile != "" {
		full = true
	}
	c.gen++

	aggs := countAggregates(snap)
	ents := make([]*regoEntry, len(snap.Sessions))
	var batch []*regoEntry
	seen := 0
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		id := SessionID(s)
		e := c.entries[id]
		switch {
		case e == nil:
			fs := now
			if in.FirstSeen != nil {
				fs = in.FirstSeen(id)
			}
			e = &regoEntry{id: id}
			e.set(s, fs, &aggs)
			c.entries[id] = e
		case e.gen == c.gen:
			// The same id twice in one snapshot: evaluated once, its
			// decisions apply to both records.
			ents[i] = e
			continue
		default:
			fs := e.firstSeen
			if in.FirstSeen != nil {
				fs = in.FirstSeen(id)
			}
			us, is := aggs.of(s)
			same := sameSession(&e.sess, s) && fs.Equal(e.firstSeen)
			sameAggs := us == e.userSessions && is == e.ipSessions
			if !same || (!sameAggs && p.deps.aggregates) {
				e.decided = false
			}
			if !same || !sameAggs {
				e.set(s, fs, &aggs)
			}
		}
		seen++
		e.gen = c.gen
		if full {
			e.decided = false
		}
		if !e.decided {
			batch = append(batch, e)
		}
		ents[i] = e
	}
	if len(c.entries) > seen {
		for id, e := range c.entries {
			if e.gen != c.gen {
				delete(c.entries, id)
			}
		}
	}

	evals := 0
	if len(batch) > 0 {
		var err error
		if evals, err = p.evalBatch(ctx, batch, now, snap.Protocol, c.allowTerm); err != nil {
			return nil, fmt.Errorf("policy %s: %w", p.name, err)
		}
	}

	n := 0
	for _, e := range ents {
		n += len(e.verdicts)
	}
	out := make([]Decision, 0, n)
	for i, e := range ents {
		for _, v := range e.verdicts {
			out = append(out, Decision{
				Session: &snap.Sessions[i],
				ID:      e.id,
				Rule:    v.rule,
				Engine:  EngineRego,
				Reason:  v.reason,
				Action:  v.action,
			})
		}
	}
	p.stats = PolicyStats{
		Sessions:  len(snap.Sessions),
		Evaluated: len(batch),
		Reused:    seen - len(batch),
		Evals:     evals,
		Decisions: len(out),
		Full:      full,
		Duration:  time.Since(start),
	}
	return out, nil
}

// set records s's input in e; the term is rebuilt when next needed.
func (e *regoEntry) set(s *anvil.Session, firstSeen time.Time, aggs *regoAggregates) {
	e.sess = *s
	e.firstSeen = firstSeen
	e.userSessions, e.ipSessions = aggs.of(s)
	e.term = nil
	e.decided = false
}

// evalBatch evaluates the entries, in one Eval or, when large, in one
// Eval per worker over equal parts, and stores their verdicts. On error
// nothing is marked decided.
func (p *Policy) evalBatch(ctx context.Context, batch []*regoEntry, now time.Time, proto anvil.Protocol, allow *ast.Term) (int, error) {
	ctx, berrs := withRegoBuiltinErrs(ctx)
	workers := 1
	if len(batch) >= regoParallelMin {
		workers = min(runtime.GOMAXPROCS(0), regoMaxWorkers, len(batch)/(regoParallelMin/2))
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		part := batch[w*len(batch)/workers : (w+1)*len(batch)/workers]
		wg.Go(func() { errs[w] = p.evalPart(ctx, part, now, proto, allow) })
	}
	wg.Wait()
	err := errors.Join(errs...)
	if berr := berrs.err(); berr != nil {
		err = berr // ours say more than OPA's (if strict) and must not be lost (if not)
	}
	if err != nil {
		return workers, err
	}
	for _, e := range batch {
		slices.SortFunc(e.verdicts, func(a, b regoVerdict) int {
			return cmp.Or(cmp.Compare(a.rule, b.rule), cmp.Compare(a.reason, b.reason))
		})
		e.decided = true
	}
	return workers, nil
}

func (p *Policy) evalPart(ctx context.Context, part []*regoEntry, now time.Time, proto anvil.Protocol, allow *ast.Term) error {
	terms := make([]*ast.Term, len(part))
	byID := make(map[string]*regoEntry, len(part))
	for i, e := range part {
		if e.term == nil {
			e.term = sessionTerm(e.id, &e.sess, e.firstSeen, e.userSessions, e.ipSessions)
		}
		terms[i] = e.term
		e.verdicts = nil
		byID[e.id] = e
	}
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(inputValue(terms, now, proto, allow)))
	if err != nil {
		return err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil // kick undefined: no decisions
	}
	return collectVerdicts(rs[0].Expressions[0].Value, byID)
}

// collectVerdicts maps data.kickagent.kick back to the entries.
func collectVerdicts(v any, byID map[string]*regoEntry) error {
	items, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s: want a set of objects, got %T", policyQuery, v)
	}
	for _, it := range items {
		obj, ok := it.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: element %v: want an object", policyQuery, it)
		}
		id, err := stringField(obj, "session")
		if err != nil {
			return err
		}
		rule, err := stringField(obj, "rule")
		if err != nil {
			return err
		}
		reason, err := stringField(obj, "reason")
		if err != nil {
			return err
		}
		action := ActionKick
		if dr, ok := obj["dry_run"]; ok {
			b, ok := dr.(bool)
			if !ok {
				return fmt.Errorf("%s: element %v: dry_run: want a boolean", policyQuery, obj)
			}
			if b {
				action = ActionDryRun
			}
		}
		e := byID[id]
		if e == nil {
			return fmt.Errorf("%s: element %v: unknown session %q (not in this evaluation's input.sessions)", policyQuery, obj, id)
		}
		e.verdicts = append(e.verdicts, regoVerdict{rule: rule, reason: reason, action: action})
	}
	return nil
}

func stringField(obj map[string]any, key string) (string, error) {
	v, ok := obj[key]
	if !ok {
		return "", fmt.Errorf("%s: element %v: missing %q", policyQuery, obj, key)
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return "", fmt.Errorf("%s: element %v: %q: want a non-empty string", policyQuery, obj, key)
	}
	return s, nil
}
