package bruteforce

import (
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"
)

// nthIP returns a distinct IPv4 address for each n < 2²⁴ (10.0.0.0/8).
func nthIP(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
}

// A flood of 10 × capacity distinct addresses evicts cold keys but not a
// key that keeps failing, and never holds more than capacity keys.
func TestEvictionKeepsHotKey(t *testing.T) {
	const capacity = 5000 // generations span several slab chunks
	c := New(ScopeIP, 10*time.Minute, capacity)
	hot := netip.MustParseAddr("198.51.100.7")
	now := t0
	hotAdds := 0
	for i := range 10 * capacity {
		now = now.Add(time.Millisecond)
		c.Add(nthIP(i), "", now)
		// Once per 100 new keys: well within the 2500 of a generation.
		if i%100 == 0 {
			hotAdds++
			if got := c.Add(hot, "", now); got != hotAdds {
				t.Fatalf("after %d distinct keys: hot key counts %d, want %d", i+1, got, hotAdds)
			}
		}
		if n := c.Len(); n > capacity {
			t.Fatalf("after %d distinct keys: Len %d > capacity %d", i+1, n, capacity)
		}
	}
	wantCount(t, "hot key", c.Count(hot, "", now), hotAdds)
	wantCount(t, "first cold key", c.Count(nthIP(0), "", now), 0)
	wantCount(t, "newest cold key", c.Count(nthIP(10*capacity-1), "", now), 1)
	if n := c.Len(); n < capacity/2 {
		t.Errorf("Len %d, want at least capacity/2 = %d after the flood", n, capacity/2)
	}
	// Every cold key dropped so far still had its failure in the window.
	if got, want := c.Evictions(), uint64(10*capacity+1-c.Len()); got != want {
		t.Errorf("Evictions %d, want %d (keys added %d, held %d)", got, want, 10*capacity+1, c.Len())
	}
}

// A key failing less often than once per capacity/2 new keys is evicted:
// its count restarts, an undercount.
func TestEvictionLosesColdKeyCount(t *testing.T) {
	c := New(ScopeIP, 10*time.Minute, 100)
	c.Add(ipA, "", t0)
	c.Add(ipA, "", t0)
	for i := range 100 { // two generations of 50
		c.Add(nthIP(i), "", t0)
	}
	wantCount(t, "evicted key", c.Count(ipA, "", t0), 0)
	wantCount(t, "evicted key restarts", c.Add(ipA, "", t0), 1)
}

// Dropping keys whose window is empty loses nothing and is not an eviction.
func TestEvictionsCountOnlyKeysWithFailures(t *testing.T) {
	c := New(ScopeLogin, window80, 100)
	for i := range 100 {
		c.Add(netip.Addr{}, "user"+strconv.Itoa(i), t0)
	}
	later := t0.Add(2 * window80)
	for i := range 100 {
		c.Add(netip.Addr{}, "later"+strconv.Itoa(i), later)
	}
	if got := c.Evictions(); got != 0 {
		t.Errorf("Evictions %d after dropping expired keys, want 0", got)
	}
	for i := range 100 {
		c.Add(netip.Addr{}, "latest"+strconv.Itoa(i), later)
	}
	if got := c.Evictions(); got != 100 {
		t.Errorf("Evictions %d after dropping 100 keys with failures, want 100", got)
	}
	if got := c.Len(); got != 100 {
		t.Errorf("Len %d, want 100", got)
	}
}

// A dropped generation holding both expired keys and keys still counting
// counts only the latter as evictions.
func TestEvictionsInMixedGeneration(t *testing.T) {
	c := New(ScopeIP, window80, 100) // generations of 50
	later := t0.Add(2 * window80)
	for i := range 23 {
		c.Add(nthIP(i), "", t0)
	}
	// Later's window is slots later-70 s … later (10 s buckets).
	c.Add(nthIP(23), "", later.Add(-window80))                // just expired
	c.Add(nthIP(24), "", later.Add(-window80+10*time.Second)) // still counting
	for i := 25; i < 50; i++ {
		c.Add(nthIP(i), "", later)
	}
	c.Add(nthIP(100), "", later) // swaps: the first generation is full
	// Keys 40–49 fail again: moved to the second generation, so not
	// evicted when the first is dropped.
	for i := 40; i < 50; i++ {
		c.Add(nthIP(i), "", later)
	}
	for i := 101; i < 141; i++ { // fills the second generation, then swaps
		c.Add(nthIP(i), "", later)
	}
	if got := c.Evictions(); got != 16 {
		t.Errorf("Evictions %d, want 16 (keys 24–39)", got)
	}
	wantCount(t, "refreshed key", c.Count(nthIP(45), "", later), 2)
	wantCount(t, "evicted key", c.Count(nthIP(30), "", later), 0)
}

// Concurrent Adds to one key all count; run with -race.
func TestConcurrentAdds(t *testing.T) {
	for _, scope := range []Scope{ScopeIP, ScopeNetwork, ScopeLogin} {
		t.Run(scope.String(), func(t *testing.T) {
			const workers, perWorker = 8, 2000
			c := New(scope, time.Hour, 4*workers*perWorker)
			hot := netip.MustParseAddr("198.51.100.7")
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range perWorker {
						now := t0.Add(time.Duration(i) * time.Millisecond)
						c.Add(hot, "Hot", now)
						c.Add(nthIP(w*perWorker+i), "user"+strconv.Itoa(w*perWorker+i), now)
						c.Count(hot, "hot", now)
						c.Len()
						c.Evictions()
					}
				})
			}
			wg.Wait()
			// The other keys are 10.x addresses and "user…" logins,
			// never the hot key's network.
			wantCount(t, "hot key", c.Count(hot, "HOT", t0.Add(perWorker*time.Millisecond)), workers*perWorker)
		})
	}
}
