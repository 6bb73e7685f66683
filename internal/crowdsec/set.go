package crowdsec

import (
	"time"

	"github.com/crowdsecurity/crowdsec/pkg/models"
)

// entryKey is what the LAPI tells decisions apart by when it streams them:
// type, scope and value, as sent (it compares them as exact strings). Of
// several decisions with one key it sends only the one that ends last, and
// a deletion only once none is left in force, so a bouncer holds one entry
// per key, as CrowdSec's own bouncers do. (Keyed by id, a block would
// outlive its decisions: ban A for 1h and B for 2h, delete B: the LAPI says
// nothing, as A still holds; an hour later it deletes A, never B.)
type entryKey struct{ typ, scope, value string }

func keyOf(m *models.Decision) entryKey {
	return entryKey{str(m.Type), str(m.Scope), str(m.Value)}
}

// set holds the decisions in force. It is not safe for concurrent use: the
// Source serialises writers and publishes immutable Views to readers.
type set struct {
	filter
	entries map[entryKey]*Decision
}

func newSet(f filter) *set { return &set{filter: f, entries: map[entryKey]*Decision{}} }

// outcome counts what one apply or expire did.
type outcome struct {
	added, deleted, expired int
	noopDeletes             int // repeated or unknown deletions (the LAPI re-sends them)
	duplicates              int // a decision already held, re-sent
	skipped                 map[skip]int
	errs                    []error // invalid decisions, one error each
}

func (o outcome) changed() bool { return o.added+o.deleted+o.expired > 0 }

// apply takes one stream response: deletions first, so that a deletion
// re-sent in the same response as a newer decision for the key does not
// undo it, then new decisions, each replacing what its key held.
func (s *set) apply(r *models.DecisionsStreamResponse, now time.Time) outcome {
	o := outcome{skipped: map[skip]int{}}
	if r == nil {
		return o
	}
	for _, m := range r.Deleted {
		if m == nil {
			o.noopDeletes++
			continue
		}
		k := keyOf(m)
		if _, ok := s.entries[k]; ok {
			delete(s.entries, k)
			o.deleted++
		} else {
			o.noopDeletes++ // re-sent, or never held (another type, invalid)
		}
	}
	for _, m := range r.New {
		d, sk, err := s.parseNew(m, now)
		switch {
		case err != nil:
			o.errs = append(o.errs, err)
			continue
		case sk != skipNone:
			o.skipped[sk]++
			continue
		}
		k := keyOf(m)
		if old, ok := s.entries[k]; ok && old.ID == d.ID && !d.Until.After(old.Until.Add(time.Second)) {
			o.duplicates++ // the same decision again (a minute on, a minute less left)
			continue
		}
		s.entries[k] = &d
		o.added++
	}
	return o
}

// expire drops decisions over at now.
func (s *set) expire(now time.Time) int {
	n := 0
	for k, d := range s.entries {
		if !d.Active(now) {
			delete(s.entries, k)
			n++
		}
	}
	return n
}
