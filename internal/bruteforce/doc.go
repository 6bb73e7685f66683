// Package bruteforce counts authentication failures per key (client IP,
// client network or login name) over a sliding time window, in bounded
// memory, so that rules such as "at least 20 failures from one IP within
// 10 minutes" can be checked on every new failure even while a flood of
// distinct addresses is arriving.
//
// A Counter holds one scope, one window and one capacity. Each key keeps
// Buckets counts, one per window/Buckets of time, so Add and Count are
// constant time and the count is approximate in one direction only.
//
// # Error bound
//
// Let w = window/Buckets (integer nanoseconds, rounded down) and let time
// be cut into slots [k·w, (k+1)·w). A count at time now is the exact number
// of recorded failures in the Buckets slots ending with the one holding now,
// that is in [start, now] with
//
//	now − window < start ≤ now − (Buckets−1)·w
//
// so it never exceeds the true number of failures in (now − window, now]
// (it never makes a key look worse than it is) and it includes at least
// every failure in [now − (Buckets−1)·w, now]. It may undercount by the
// failures in the oldest part of the window, less than w + Buckets ns long
// (at most 1/8 of the window plus rounding). A key evicted for space loses
// its count (again an undercount), and a bucket saturates at 2³²−1.
//
// Times are the caller's: Add and Count take now, and the caller stamps
// each failure when it arrives. Concurrent requests may pass times slightly
// out of order: a failure stamped earlier than the key's newest is counted
// in its own slot, and a query does not count slots later than its own
// (within now's own slot, though, a failure stamped after now is counted).
// A failure older than the window of the key's newest one means the wall
// clock stepped back: the key's count restarts from it, an undercount,
// so that the key goes on being counted while the clock catches up.
//
// # Memory
//
// At most capacity keys are held, in two generations of capacity/2 each.
// New keys go into the current generation; a failure for a key of the
// previous generation moves it to the current one. When the current
// generation is full it becomes the previous one and the previous one is
// dropped. A key with at least one failure per capacity/2 new distinct keys
// is therefore never evicted: a flood of new addresses pushes out cold keys,
// not the one an attacker keeps failing with. Evictions counts the dropped
// keys whose window still held failures. The swap clears the dropped
// generation's map under the lock: constant time per new key amortized,
// but the one Add in capacity/2 that swaps waits for it (about 0.3 ms at a
// capacity of 100,000 and 5 ms at 1,000,000 on the 2-core test machine;
// figures in BENCHMARKS.md). A key costs about 70–90 bytes (an address) or
// 100–125 bytes (a short login), map and entries included.
//
// Keys: ScopeIP uses the address with IPv4-mapped IPv6 unmapped and the
// zone dropped; ScopeNetwork masks that address to a prefix (/24 and /64
// unless WithPrefixes says otherwise); ScopeLogin uses the login as sent,
// ASCII case-folded as match.FoldASCII does. A failure without a usable key
// (an invalid address, an empty login) is not recorded and counts 0. Logins
// longer than 128 bytes are keyed by a 97-byte prefix and their SHA-256, so
// an attacker cannot make the keys large. KeyString gives a key in text
// form, for logs.
//
// The package decides nothing: it does not know rules, thresholds or what
// to do when one is reached, and it keeps nothing across restarts.
package bruteforce
