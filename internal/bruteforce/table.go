package bruteforce

import "math"

// gen is one generation of keys. The map indexes a slab of entries, so
// a hit updates its entry in place (one hash lookup, no write-back) and
// neither the map nor the slab holds pointers for the GC to scan.
//
// minLast and maxLast bound the entries' newest slots (minLast may lag
// behind, since entries only move forward or are reset to a slot that is
// noted too), so that dropping a generation whose keys are all still
// counting, or all expired, needs no walk over its entries.
type gen[K comparable] struct {
	idx              map[K]int32
	ents             slab
	minLast, maxLast int64
}

func newGen[K comparable]() gen[K] {
	return gen[K]{idx: make(map[K]int32), minLast: math.MaxInt64, maxLast: math.MinInt64}
}

// hit records one failure in slot s for the entry at i.
func (g *gen[K]) hit(i int32, s int64) int {
	e := g.ents.at(i)
	n := e.add(s)
	g.note(e.last)
	return n
}

func (g *gen[K]) note(last int64) {
	g.minLast = min(g.minLast, last)
	g.maxLast = max(g.maxLast, last)
}

// take removes k from the generation and returns its entry, or a new
// entry for slot s if k is not there. The slab slot is never reused before
// the generation is dropped; it is marked so that dropping the generation
// does not count it as an eviction.
func (g *gen[K]) take(k K, s int64) entry {
	i, ok := g.idx[k]
	if !ok {
		return entry{last: s}
	}
	e := g.ents.at(i)
	taken := *e
	*e = entry{last: math.MinInt64}
	delete(g.idx, k)
	return taken
}

// reset empties the generation, keeping its storage.
func (g *gen[K]) reset() {
	clear(g.idx)
	g.ents.reset()
	g.minLast, g.maxLast = math.MaxInt64, math.MinInt64
}

// table holds at most 2·half keys in two generations (see the package
// documentation). Not safe for concurrent use; Counter locks around it.
type table[K comparable] struct {
	cur, old gen[K]
	half     int
	evicted  uint64
}

func newTable[K comparable](half int) table[K] {
	return table[K]{cur: newGen[K](), old: newGen[K](), half: half}
}

func (t *table[K]) len() int { return len(t.cur.idx) + len(t.old.idx) }

// add records one failure for k in slot s and returns its count at s.
func (t *table[K]) add(k K, s int64) int {
	if i, ok := t.cur.idx[k]; ok {
		return t.cur.hit(i, s)
	}
	return t.insert(k, s)
}

// count returns k's count at slot s, 0 for an unknown key.
func (t *table[K]) count(k K, s int64) int {
	if i, ok := t.cur.idx[k]; ok {
		return t.cur.ents.at(i).count(s)
	}
	if i, ok := t.old.idx[k]; ok {
		return t.old.ents.at(i).count(s)
	}
	return 0
}

// insert adds k, which is not in the current generation, to it: with its
// entry from the previous generation if it is there, else with a new one.
func (t *table[K]) insert(k K, s int64) int {
	e := t.old.take(k, s)
	if len(t.cur.idx) >= t.half {
		t.rotate(s)
	}
	i := t.cur.ents.push(e)
	t.cur.idx[k] = i
	return t.cur.hit(i, s)
}

// rotate drops the previous generation and makes the full current one the
// previous. Both maps and slabs keep their storage, so a flood reuses
// memory instead of allocating a generation per rotation. A dropped key is
// an eviction if its newest failure is still in the window at s.
func (t *table[K]) rotate(s int64) {
	old := &t.old
	expired := s - Buckets // an entry whose last slot is this or older counts 0
	switch {
	case old.minLast > expired: // all counting: the usual case in a flood
		t.evicted += uint64(len(old.idx))
	case old.maxLast <= expired: // all expired: the usual case otherwise
	default:
		old.ents.each(func(e *entry) {
			if e.last > expired {
				t.evicted++
			}
		})
	}
	old.reset()
	t.cur, t.old = t.old, t.cur
}
