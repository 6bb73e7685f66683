package bruteforce

import "math"

// Buckets is the number of time buckets per key: the window is cut into
// this many slots, and a count may miss up to one slot's worth of the
// oldest failures. A power of two, so a slot's bucket is slot&bucketMask.
const Buckets = 8

const bucketMask = Buckets - 1

// entry is one key's failures: n[k&bucketMask] counts slot k for the
// Buckets slots ending at last. Buckets for slots past last are stale and
// cleared as time moves on. 40 bytes, no pointers.
type entry struct {
	last int64
	n    [Buckets]uint32
}

// add records one failure in slot s and returns the count at s.
func (e *entry) add(s int64) int {
	switch {
	case s > e.last:
		if s-e.last >= Buckets {
			e.n = [Buckets]uint32{}
		} else {
			for k := e.last + 1; k <= s; k++ {
				e.n[k&bucketMask] = 0
			}
		}
		e.last = s
	case s <= e.last-Buckets:
		// Older than the window of the key's newest failure: requests are
		// stamped on arrival, so the wall clock stepped back. Restart the
		// key from here (an undercount) rather than ignore its failures
		// until the clock catches up, which would stop counting the very
		// key that kept failing.
		e.n = [Buckets]uint32{}
		e.last = s
	}
	if b := &e.n[s&bucketMask]; *b < math.MaxUint32 {
		*b++
	}
	return e.count(s)
}

// count sums the slots of the window ending in slot s that the entry
// still holds; slots after s (failures stamped later than the query) are
// left out.
func (e *entry) count(s int64) int {
	lo := max(e.last, s) - Buckets + 1
	hi := min(e.last, s)
	total := 0
	for k := lo; k <= hi; k++ {
		total += int(e.n[k&bucketMask])
	}
	return total
}

// floorDiv is a/b rounded toward minus infinity (b > 0), so times before
// 1970 fall in the right slot too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
