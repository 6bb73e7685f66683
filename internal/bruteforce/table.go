package bruteforce

// gen is one generation of keys. The map points into a slab of entries, so
// a hit updates its entry in place (one hash lookup, no write-back) and
// neither the map nor the slab holds pointers for the GC to scan.
type gen[K comparable] struct {
	idx  map[K]int32
	ents []entry
}

// take removes k from the generation and returns its entry, or a new
// entry for slot s if k is not there. The slab slot is zeroed (never
// reused before the generation is dropped) so that dropping the generation
// does not count it as an eviction.
func (g *gen[K]) take(k K, s int64) entry {
	i, ok := g.idx[k]
	if !ok {
		return entry{last: s}
	}
	e := g.ents[i]
	g.ents[i] = entry{}
	delete(g.idx, k)
	return e
}

// table holds at most 2·half keys in two generations (see the package
// documentation). Not safe for concurrent use; Counter locks around it.
type table[K comparable] struct {
	cur, old gen[K]
	half     int
	evicted  uint64
}

func newTable[K comparable](half int) table[K] {
	return table[K]{
		cur:  gen[K]{idx: make(map[K]int32)},
		old:  gen[K]{idx: make(map[K]int32)},
		half: half,
	}
}

func (t *table[K]) len() int { return len(t.cur.idx) + len(t.old.idx) }

// add records one failure for k in slot s and returns its count at s.
func (t *table[K]) add(k K, s int64) int {
	if i, ok := t.cur.idx[k]; ok {
		return t.cur.ents[i].add(s)
	}
	return t.insert(k, s)
}

// count returns k's count at slot s, 0 for an unknown key.
func (t *table[K]) count(k K, s int64) int {
	if i, ok := t.cur.idx[k]; ok {
		return t.cur.ents[i].count(s)
	}
	if i, ok := t.old.idx[k]; ok {
		return t.old.ents[i].count(s)
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
	n := e.add(s)
	t.cur.idx[k] = int32(len(t.cur.ents))
	t.cur.ents = append(t.cur.ents, e)
	return n
}

// rotate drops the previous generation and makes the full current one the
// previous. Both maps and slabs keep their storage, so a flood reuses
// memory instead of allocating a generation per rotation.
func (t *table[K]) rotate(s int64) {
	for i := range t.old.ents {
		if t.old.ents[i].count(s) > 0 {
			t.evicted++
		}
	}
	clear(t.old.idx)
	t.old.ents = t.old.ents[:0]
	t.cur, t.old = t.old, t.cur
}
