package bruteforce

import (
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

// benchKeys returns n distinct addresses and logins.
func benchKeys(n int) ([]netip.Addr, []string) {
	ips := make([]netip.Addr, n)
	logins := make([]string, n)
	for i := range n {
		ips[i] = nthIP(i * 7919 % (1 << 24)) // spread over many /24s
		logins[i] = "user" + strconv.Itoa(i) + "@example.com"
	}
	return ips, logins
}

// BenchmarkAddSteady is Add at steady state: 10,000 keys failing in turn
// in a counter of capacity 100,000, time moving 1 ms per failure so that
// buckets roll over. No eviction and no allocation.
func BenchmarkAddSteady(b *testing.B) {
	const keys = 10_000
	ips, logins := benchKeys(keys)
	for _, scope := range []Scope{ScopeIP, ScopeNetwork, ScopeLogin} {
		b.Run(scope.String(), func(b *testing.B) {
			c := New(scope, 10*time.Minute, 100_000)
			now := t0
			for i := range keys {
				c.Add(ips[i], logins[i], now)
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				now = now.Add(time.Millisecond)
				c.Add(ips[i], logins[i], now)
				if i++; i == keys {
					i = 0
				}
			}
			b.ReportMetric(float64(c.Len()), "keys")
		})
	}
}

// BenchmarkAddParallel is BenchmarkAddSteady (ScopeIP) from all cores.
func BenchmarkAddParallel(b *testing.B) {
	const keys = 10_000
	ips, _ := benchKeys(keys)
	c := New(ScopeIP, 10*time.Minute, 100_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		now := t0
		for pb.Next() {
			now = now.Add(time.Millisecond)
			c.Add(ips[i], "", now)
			if i++; i == keys {
				i = 0
			}
		}
	})
}

// BenchmarkAddFlood is Add when every failure comes from a new address, in
// a counter of capacity 100,000: the generation swaps (with their eviction
// count) are included, amortized.
func BenchmarkAddFlood(b *testing.B) {
	c := New(ScopeIP, 10*time.Minute, 100_000)
	now := t0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Add(nthIP(i&(1<<24-1)), "", now)
		i++
	}
	b.ReportMetric(float64(c.Evictions())/float64(b.N), "evictions/op")
}

// BenchmarkRotation is the one Add in capacity/2 that swaps generations:
// the Add that holds the lock longest, since it clears the dropped
// generation's map. Every key is still counting, as in a flood.
func BenchmarkRotation(b *testing.B) {
	for _, capacity := range []int{100_000, 1_000_000} {
		b.Run("capacity="+strconv.Itoa(capacity), func(b *testing.B) {
			c := New(ScopeIP, 10*time.Minute, capacity)
			next := 0
			add := func() {
				c.Add(nthIP(next&(1<<24-1)), "", t0)
				next++
			}
			for range capacity { // both generations full
				add()
			}
			for b.Loop() {
				add() // swaps: the current generation is full
				b.StopTimer()
				for range capacity/2 - 1 {
					add()
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(c.Evictions())/float64(b.N), "evictions/op")
		})
	}
}

// BenchmarkFloodPause feeds 5 × capacity new addresses (10 generation
// swaps) to a new counter per iteration and reports the longest single
// Add, the pause a policy request may see: while the two generations first
// grow (their slabs and maps reallocate and copy), and after that, when
// only swaps remain. The median Add is for scale.
func BenchmarkFloodPause(b *testing.B) {
	for _, capacity := range []int{100_000, 1_000_000} {
		b.Run("capacity="+strconv.Itoa(capacity), func(b *testing.B) {
			var growing, grown, median time.Duration
			took := make([]time.Duration, 5*capacity)
			next := 0
			for b.Loop() {
				c := New(ScopeIP, 10*time.Minute, capacity)
				for i := range took {
					start := time.Now()
					c.Add(nthIP(next&(1<<24-1)), "", t0)
					took[i] = time.Since(start)
					next++
				}
				// The first capacity keys fill both generations once.
				growing = max(growing, slices.Max(took[:capacity]))
				grown = max(grown, slices.Max(took[capacity:]))
				slices.Sort(took)
				median = took[len(took)/2]
			}
			b.ReportMetric(float64(growing)/1e6, "max-growing-ms")
			b.ReportMetric(float64(grown)/1e6, "max-grown-ms")
			b.ReportMetric(float64(median), "median-ns")
		})
	}
}

// BenchmarkMemory1M inserts 1,000,000 distinct keys and reports the heap
// in use afterwards (after a GC, less the heap before), in MB and per key
// held. Run with -benchtime=1x: each iteration builds a new counter.
func BenchmarkMemory1M(b *testing.B) {
	const n = 1_000_000
	ips, logins := benchKeys(n)
	for _, tc := range []struct {
		name     string
		scope    Scope
		capacity int
	}{
		{"ip/capacity=100k", ScopeIP, 100_000},
		{"ip/capacity=1M", ScopeIP, 1_000_000},
		{"login/capacity=100k", ScopeLogin, 100_000},
		{"login/capacity=1M", ScopeLogin, 1_000_000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var inUse uint64
			var held int
			for b.Loop() {
				before := heapInUse()
				c := New(tc.scope, 10*time.Minute, tc.capacity)
				now := t0
				for i := range n {
					c.Add(ips[i], logins[i], now)
				}
				inUse = heapInUse() - before
				held = c.Len()
				runtime.KeepAlive(c)
			}
			b.ReportMetric(float64(inUse)/1e6, "MB")
			b.ReportMetric(float64(inUse)/float64(held), "B/key")
			b.ReportMetric(float64(held), "keys")
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
