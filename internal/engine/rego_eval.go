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

const (
	// regoChunk is the most sessions one Eval gets. A poll cycle's new
	// sessions fit in one; a cold evaluation of 100k runs in chunks, so
	// that only a few chunks' input terms are alive at once (an OPA object
	// is a Go map: ~1.5 KB per session) instead of the whole snapshot's.
	// Only per-session policies are chunked: a cross-session policy
	// (policyDeps.cross) always gets the whole snapshot in one Eval.
	regoChunk = 8192
	// regoParallelMin is the batch size from which chunks are evaluated
	// by several goroutines (one Eval runs on one core).
	regoParallelMin = 2048
	regoMaxWorkers  = 4
)

// evalBatch evaluates the entries and stores their verdicts: with whole,
// in one Eval whose input.sessions is the batch (a cross-session policy,
// given the whole snapshot); otherwise in one Eval or, when large, in
// chunks spread over up to regoMaxWorkers goroutines. It returns the
// number of Evals. On error nothing is marked decided.
func (p *Policy) evalBatch(ctx context.Context, batch []*regoEntry, now time.Time, proto anvil.Protocol, allow *ast.Term, keepTerms, whole bool) (int, error) {
	ctx, berrs := withRegoBuiltinErrs(ctx)
	workers, chunks := 1, 1
	if !whole {
		if len(batch) >= regoParallelMin {
			workers = max(1, min(runtime.GOMAXPROCS(0), regoMaxWorkers, len(batch)/(regoParallelMin/2)))
		}
		// Equal chunks, at most regoChunk, at least one per worker.
		chunks = max(workers, (len(batch)+regoChunk-1)/regoChunk)
	}
	errs := make([]error, chunks)
	next := make(chan int, chunks)
	for i := range chunks {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				part := batch[i*len(batch)/chunks : (i+1)*len(batch)/chunks]
				errs[i] = p.evalPart(ctx, part, now, proto, allow)
				if !keepTerms {
					for _, e := range part {
						e.term = nil // built again only if the session changes
					}
				}
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if berr := berrs.err(); berr != nil {
		err = berr // ours say more than OPA's (if strict) and must not be lost (if not)
	}
	if err != nil {
		return chunks, err
	}
	for _, e := range batch {
		slices.SortFunc(e.verdicts, func(a, b regoVerdict) int {
			return cmp.Or(cmp.Compare(a.rule, b.rule), cmp.Compare(a.reason, b.reason))
		})
		e.decided = true
	}
	return chunks, nil
}

func (p *Policy) evalPart(ctx context.Context, part []*regoEntry, now time.Time, proto anvil.Protocol, allow *ast.Term) error {
	terms := make([]*ast.Term, len(part))
	byID := make(map[string]*regoEntry, len(part))
	b := newTermBuilder()
	for i, e := range part {
		if e.term == nil {
			e.term = b.session(e)
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
