package engine

import (
	"hash/maphash"
	"slices"
	"sync"
)

// The YAML match cache.
//
// Matching a session against the rule index costs ~1 µs at 1,000 rules,
// 0.1 s per cycle at 100,000 sessions, but a session's fields never
// change while it lasts and neither do a Ruleset's selectors. So a Ruleset
// remembers, per session content, which rules' static selectors (users,
// networks, services, dest_hosts, alt values and their exceptions) match
// it; usually none. A later cycle looks the session up instead of
// matching it, then applies what depends on time — expires,
// logged_in_before, first seen — to the cached matches only, exactly as an
// uncached evaluation does.
//
// The key is the session's anvil.Session.ContentHash: a 64-bit hash of
// everything matching reads (user, service, IP, dest IP, alt fields as an
// unordered set), plus the pid and GUID, so that two sessions never share
// an entry by design, and the 2.3 refcount, which no YAML rule reads (a
// change costs one match). A changed session has a new key and is matched
// afresh. A reload builds a new Ruleset, so
// rule changes never meet stale entries.
//
// Finding the entry: anvil dumps its hash table, whose order stays the
// same from dump to dump (new sessions are inserted, gone ones removed;
// a table resize reorders once). So the cache is the previous dump's keys
// in dump order, and a cursor walks them alongside the new dump: a
// session is usually the next key, or a few keys ahead when sessions left.
// Only a longer run of misses falls back to a map of the previous keys.
// That touches memory in order; a 100,000-entry map looked up at random
// cost more than the matching it saved.
//
// Safety: an entry with matches also keeps a second, independently
// seeded hash of the same fields, and is used only for a session with
// both hashes equal; and a kick from a cached entry is verified: the
// deciding rule's selectors and the allow list are evaluated on the
// session itself (the dry runs and allowed sessions, harmless, are not).
// So even a 128-bit collision cannot kick a session the rules do not
// name, and a 64-bit one cannot change a decision: it can only hide a
// match (probability about n²/2⁶⁵ per table: 3·10⁻¹⁰ at 100,000
// sessions). Verifying every cached rule instead cost 10 ms per cycle at
// 1,000 rules (wildcard masks on 31,000 matched sessions); a copy of the
// session instead of the second hash, ~300 B per matched session.
//
// Concurrency: a Ruleset is shared (agent, plan, check) and otherwise
// immutable; the cache is its one mutable part, behind its own mutex:
// one evaluation at a time uses it, whole (begin … end).
//
// Memory: 16 B per session (×2: this and the last dump); a matched
// session also holds its rule ids and the reason of its last decision.
type yamlCache struct {
	mu   sync.Mutex // one evaluation at a time uses the cache
	seed maphash.Seed
	// check seeds the second hash of matched sessions.
	check maphash.Seed
	// keys/hits: the last evaluation's sessions in dump order (hit nil:
	// no rule's static selectors match); next*: this evaluation's.
	keys, nextKeys []uint64
	hits, nextHits []*yamlHit
	cur            int            // cursor into keys
	misses         int            // consecutive misses
	pos            map[uint64]int // keys → index, built after a run of misses
	// decided is the last evaluation's number of decisions: the next
	// one's first guess.
	decided int
}

// yamlLookahead is how many gone sessions in a row the cursor steps over;
// yamlResync the misses in a row after which the map is built.
const (
	yamlLookahead = 32
	yamlResync    = 64
)

// yamlHit is a session whose static selectors match some rules.
type yamlHit struct {
	rules []int32 // ascending
	check uint64  // the session's second hash (see above)
	// allowed: the allow list protects the session.
	allowed bool
	// reason explains the last decision (rule reasonOf); explain is
	// costly and a session is decided the same way cycle after cycle.
	reasonOf int32
	reason   string
}

func newYAMLCache() *yamlCache {
	return &yamlCache{seed: maphash.MakeSeed(), check: maphash.MakeSeed()}
}

// begin starts one evaluation's use of the cache.
func (c *yamlCache) begin(n int) {
	c.mu.Lock()
	c.cur, c.misses, c.pos = 0, 0, nil
	c.nextKeys = slices.Grow(c.nextKeys[:0], n)
	c.nextHits = slices.Grow(c.nextHits[:0], n)
}

// lookup returns the cached matches of the session with key and whether
// the cache knows it.
func (c *yamlCache) lookup(key uint64) (*yamlHit, bool) {
	for i := c.cur; i < len(c.keys) && i < c.cur+yamlLookahead; i++ {
		if c.keys[i] == key {
			c.cur, c.misses = i+1, 0
			return c.hits[i], true
		}
	}
	c.misses++
	if c.misses < yamlResync {
		return nil, false
	}
	if c.pos == nil {
		c.pos = make(map[uint64]int, len(c.keys))
		for i, k := range c.keys {
			c.pos[k] = i
		}
	}
	if i, ok := c.pos[key]; ok {
		c.cur = i + 1 // resume the walk from here
		return c.hits[i], true
	}
	return nil, false
}

// record notes the session's static matches (hit nil: none) for the next
// evaluation.
func (c *yamlCache) record(key uint64, hit *yamlHit) {
	c.nextKeys = append(c.nextKeys, key)
	c.nextHits = append(c.nextHits, hit)
}

// end makes this evaluation's sessions the cache.
func (c *yamlCache) end() {
	c.keys, c.nextKeys = c.nextKeys, c.keys
	c.hits, c.nextHits = c.nextHits, c.hits
	clear(c.nextHits[:cap(c.nextHits)]) // drop the gone sessions' entries
	c.pos = nil
	c.mu.Unlock()
}
