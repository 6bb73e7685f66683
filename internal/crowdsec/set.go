package crowdsec

import (
	"time"

	"github.com/crowdsecurity/crowdsec/pkg/models"
)

// entryKey identifies a decision: by the LAPI's id, or when it sent none by
// everything that makes one decision differ from another.
type entryKey struct {
	id  int64
	alt string
}

func keyOf(d Decision) entryKey {
	if d.ID != 0 {
		return entryKey{id: d.ID}
	}
	v := d.Value
	if d.Scope == ScopeUsername {
		v = d.user
	}
	return entryKey{alt: d.Type + "\x00" + d.Scope.String() + "\x00" + v + "\x00" + d.Origin + "\x00" + d.Scenario}
}

// sameTarget reports whether a and b name the same thing.
func sameTarget(a, b Decision) bool {
	return a.Scope == b.Scope && a.prefix == b.prefix && a.user == b.user
}

// set holds the decisions in force. It is not safe for concurrent use: the
// Source serialises writers and publishes immutable Views to readers.
type set struct {
	filter
	entries map[entryKey]Decision
}

func newSet(f filter) *set { return &set{filter: f, entries: map[entryKey]Decision{}} }

// outcome counts what one apply or expire did.
type outcome struct {
	added, deleted, expired int
	noopDeletes             int // repeated or unknown deletions (the LAPI re-sends them)
	duplicates              int // a decision already held, re-sent
	skipped                 map[skip]int
	errs                    []error // invalid decisions, one error each
}

func (o outcome) changed() bool { return o.added+o.deleted+o.expired > 0 }

// apply takes one stream response: deletions first (the same pull never
// lists a decision both as new and deleted, and a stale deletion must not
// lift a decision that arrives in the same response), then new decisions.
// Deletions match by key and target, so a deletion re-sent after its id was
// reused for another value lifts nothing.
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
		d, sk, err := parseTarget(m)
		if err != nil || sk != skipNone {
			o.noopDeletes++ // nothing unparsable or out of scope was ever held
			continue
		}
		k := keyOf(d)
		if old, ok := s.entries[k]; ok && sameTarget(old, d) {
			delete(s.entries, k)
			o.deleted++
		} else {
			o.noopDeletes++
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
		k := keyOf(d)
		if old, ok := s.entries[k]; ok && sameTarget(old, d) {
			// LAPI decisions do not change once made, but keep the
			// later end should one be re-sent with more time.
			if d.Until.After(old.Until.Add(time.Second)) {
				s.entries[k] = d
				o.added++
			} else {
				o.duplicates++
			}
			continue
		}
		s.entries[k] = d
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
