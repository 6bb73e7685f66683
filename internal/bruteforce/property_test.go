package bruteforce

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// exact is the reference: every failure's time per key, counted naively.
type exact map[netip.Addr][]time.Time

// in counts k's failures in (from, to]; with toExcl, in (from, to).
func (r exact) in(k netip.Addr, from, to time.Time, toExcl bool) int {
	n := 0
	for _, t := range r[k] {
		if t.After(from) && (t.Before(to) || !toExcl && t.Equal(to)) {
			n++
		}
	}
	return n
}

// atLeast counts k's failures in [from, to].
func (r exact) atLeast(k netip.Addr, from, to time.Time) int {
	return r.in(k, from.Add(-1), to, false)
}

type propConfig struct {
	capacity int     // keys the counter may hold
	keys     int     // distinct keys used
	jitter   float64 // probability that an Add is stamped before the clock (by up to 2 buckets)
	stepBack bool    // and sometimes by up to 1.5 windows, as if the wall clock stepped back
}

// checkBound runs random failures and queries against a Counter and the
// exact reference and checks the documented bound on every answer:
//
//	exact[now−(Buckets−1)·w, now] ≤ count ≤ exact(now−window, now]
//
// The lower bound is skipped when the counter may evict (capacity < keys)
// or the clock steps back, since both only lower counts. An Add stamped
// before the clock is checked against (now−window, end of now's slot), as
// documented.
func checkBound(t *testing.T, seed uint64, cfg propConfig) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	window := time.Second + time.Duration(rng.Int64N(int64(2*time.Hour)))
	w := window / Buckets
	clock := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(time.Hour))))
	if seed%5 == 0 {
		clock = time.Date(1969, 12, 31, 23, 30, 0, 0, time.UTC) // negative slots
	}
	c := New(ScopeIP, window, cfg.capacity)
	ref := exact{}
	exactBelow := cfg.capacity >= cfg.keys && !cfg.stepBack
	fail := func(step int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d step %d (window %v, bucket %v): %s", seed, step, window, w, fmt.Sprintf(format, args...))
	}
	for step := range 400 {
		switch rng.IntN(4) { // gaps from none to several windows
		case 0:
		case 1:
			clock = clock.Add(time.Duration(rng.Int64N(int64(w / 4))))
		case 2:
			clock = clock.Add(time.Duration(rng.Int64N(int64(2 * w))))
		case 3:
			clock = clock.Add(time.Duration(rng.Int64N(int64(window))))
		}
		k := nthIP(rng.IntN(cfg.keys))
		if rng.IntN(10) < 6 {
			stamp := clock
			if rng.Float64() < cfg.jitter {
				d := 2 * w
				if cfg.stepBack && rng.IntN(8) == 0 {
					d = 3 * window / 2
				}
				stamp = clock.Add(-time.Duration(rng.Int64N(int64(d))))
			}
			ref[k] = append(ref[k], stamp)
			got := c.Add(k, "", stamp)
			slotEnd := time.Unix(0, (floorDiv(stamp.UnixNano(), int64(w))+1)*int64(w))
			if hi := ref.in(k, stamp.Add(-window), slotEnd, true); got > hi {
				fail(step, "Add at %v returned %d > %d failures in (now-window, end of slot)", stamp, got, hi)
			}
			if stamp.Equal(clock) && exactBelow {
				if lo := ref.atLeast(k, stamp.Add(-(Buckets-1)*w), stamp); got < lo {
					fail(step, "Add returned %d < %d failures in [now-(B-1)w, now]", got, lo)
				}
			}
		} else {
			now := clock
			if rng.IntN(2) == 0 {
				now = clock.Add(time.Duration(rng.Int64N(int64(3 * window / 2))))
			}
			got := c.Count(k, "", now)
			if hi := ref.in(k, now.Add(-window), now, false); got > hi {
				fail(step, "Count at %v returned %d > %d failures in (now-window, now]", now, got, hi)
			}
			if exactBelow {
				if lo := ref.atLeast(k, now.Add(-(Buckets-1)*w), now); got < lo {
					fail(step, "Count at %v returned %d < %d failures in [now-(B-1)w, now]", now, got, lo)
				}
			}
		}
		if n := c.Len(); n > cfg.capacity {
			fail(step, "Len %d > capacity %d", n, cfg.capacity)
		}
	}
}

func TestBoundAgainstExactReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  propConfig
	}{
		{"in order", propConfig{capacity: 64, keys: 5}},
		{"out of order", propConfig{capacity: 64, keys: 5, jitter: 0.5}},
		{"clock steps back", propConfig{capacity: 64, keys: 5, jitter: 0.5, stepBack: true}},
		{"evicting", propConfig{capacity: 4, keys: 12, jitter: 0.2, stepBack: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(300) {
				checkBound(t, seed, tc.cfg)
			}
		})
	}
}
