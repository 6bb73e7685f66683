package authpolicy

import (
	"net/netip"
	"sync"
	"time"

	"github.com/kickagent/kickagent/internal/engine"
)

// blocks are the brute-force blocks in force: client IPs (/32, /128) and
// networks (/24, /64 by default), each until its expiry. The table is
// bounded: when full, a new block replaces one that ends early (sampled),
// and the replacement is counted, so that a flood of attacking
// addresses costs memory in proportion to maxBlocks, not to the flood.
type blocks struct {
	mu     sync.RWMutex
	m      map[netip.Prefix]blockEntry
	max    int
	lens4  map[int]int // prefix lengths in use → entries, for Lookup
	lens6  map[int]int
	evicts int
	dirty  bool // changed since the last save
}

// evictSample is how many blocks a full table compares to pick one to drop.
const evictSample = 8

type blockEntry struct {
	engine.Block
	until time.Time
}

func newBlocks(max int) *blocks {
	return &blocks{m: map[netip.Prefix]blockEntry{}, max: max, lens4: map[int]int{}, lens6: map[int]int{}}
}

// add blocks p until the given time (extending an existing block of p);
// it reports whether p was not blocked before.
func (b *blocks) add(p netip.Prefix, until time.Time, e engine.Block) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.m[p]; ok {
		if until.After(old.until) {
			old.until = until
		}
		if old.DryRun && !e.DryRun {
			old.Block = e
		}
		b.m[p] = old
		b.dirty = true
		return false
	}
	if len(b.m) >= b.max {
		// Evict the earliest-ending of a few entries: Go starts each map
		// walk at a random place, so this samples (as Redis does for its
		// LRU) at a constant cost however large the table.
		var first netip.Prefix
		var t time.Time
		n := 0
		for k, v := range b.m {
			if t.IsZero() || v.until.Before(t) {
				first, t = k, v.until
			}
			if n++; n == evictSample {
				break
			}
		}
		b.del(first)
		b.evicts++
	}
	b.m[p] = blockEntry{Block: e, until: until}
	b.lens(p)[p.Bits()]++
	b.dirty = true
	return true
}

func (b *blocks) lens(p netip.Prefix) map[int]int {
	if p.Addr().Is4() {
		return b.lens4
	}
	return b.lens6
}

func (b *blocks) del(p netip.Prefix) {
	if _, ok := b.m[p]; !ok {
		return
	}
	delete(b.m, p)
	b.dirty = true
	l := b.lens(p)
	if l[p.Bits()]--; l[p.Bits()] == 0 {
		delete(l, p.Bits())
	}
}

// lookup returns the block covering ip at now, the longest prefix first.
func (b *blocks) lookup(ip netip.Addr, now time.Time) (engine.Block, bool) {
	ip = ip.Unmap().WithZone("")
	b.mu.RLock()
	defer b.mu.RUnlock()
	if len(b.m) == 0 {
		return engine.Block{}, false
	}
	lens := b.lens6
	if ip.Is4() {
		lens = b.lens4
	}
	var best blockEntry
	bestBits := -1
	for bits := range lens {
		p, err := ip.Prefix(bits)
		if err != nil {
			continue
		}
		if e, ok := b.m[p]; ok && now.Before(e.until) && bits > bestBits {
			best, bestBits = e, bits
		}
	}
	return best.Block, bestBits >= 0
}

// expire drops the blocks over at now and returns how many remain.
func (b *blocks) expire(now time.Time) (left int, ended []netip.Prefix) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for p, e := range b.m {
		if !now.Before(e.until) {
			b.del(p)
			ended = append(ended, p)
		}
	}
	return len(b.m), ended
}

// len is the number of blocks held (some may be over until expire runs).
func (b *blocks) len() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.m)
}
