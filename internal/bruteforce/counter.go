package bruteforce

import (
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"
)

// Counter counts failures per key of one scope over one sliding window, for
// at most capacity keys. It is safe for concurrent use.
type Counter struct {
	scope        Scope
	window       time.Duration
	width        int64 // nanoseconds per bucket
	capacity     int
	bits4, bits6 int // prefix lengths for ScopeNetwork; -1 for ScopeIP

	mu    sync.Mutex
	addrs table[[16]byte] // ScopeIP, ScopeNetwork
	names table[string]   // ScopeLogin
}

// Option configures a Counter in New.
type Option func(*Counter)

// WithPrefixes sets the prefix lengths ScopeNetwork masks IPv4 and IPv6
// addresses to (default 24 and 64). Other scopes ignore it.
func WithPrefixes(bits4, bits6 int) Option {
	return func(c *Counter) { c.bits4, c.bits6 = bits4, bits6 }
}

// New returns a Counter of failures per scope key over window, holding at
// most capacity keys. Its arguments come from configuration the caller has
// already validated, so it panics on values it cannot honour: an unknown
// scope, a window shorter than Buckets nanoseconds, a capacity below 2 or
// of 2³² or more, or a prefix length outside 0–32 (IPv4) or 0–128 (IPv6).
func New(scope Scope, window time.Duration, capacity int, opts ...Option) *Counter {
	c := &Counter{
		scope:    scope,
		window:   window,
		width:    int64(window / Buckets),
		capacity: capacity,
		bits4:    defaultBits4,
		bits6:    defaultBits6,
	}
	for _, o := range opts {
		o(c)
	}
	switch {
	case scope != ScopeIP && scope != ScopeNetwork && scope != ScopeLogin:
		panic(fmt.Sprintf("bruteforce: unknown scope %v", scope))
	case c.width <= 0:
		panic(fmt.Sprintf("bruteforce: window %v is shorter than %d ns", window, Buckets))
	case capacity < 2 || capacity/2 > math.MaxInt32:
		panic(fmt.Sprintf("bruteforce: capacity %d is not in [2, 2^32)", capacity))
	case c.bits4 < 0 || c.bits4 > 32 || c.bits6 < 0 || c.bits6 > 128:
		panic(fmt.Sprintf("bruteforce: network prefixes /%d and /%d are not in /0–/32 and /0–/128", c.bits4, c.bits6))
	}
	if scope == ScopeIP {
		c.bits4, c.bits6 = -1, -1
	}
	if scope == ScopeLogin {
		c.names = newTable[string](capacity / 2)
	} else {
		c.addrs = newTable[[16]byte](capacity / 2)
	}
	return c
}

// Scope returns the counter's scope.
func (c *Counter) Scope() Scope { return c.scope }

// Window returns the counter's window.
func (c *Counter) Window() time.Duration { return c.window }

// Add records one failure of the key of ip or login (whichever the scope
// uses) at now and returns the key's count in the window ending at now,
// this failure included (see the package documentation for the bound). A
// failure without a usable key (an invalid address, an empty login) is not
// recorded and Add returns 0.
func (c *Counter) Add(ip netip.Addr, login string, now time.Time) (count int) {
	s := c.slot(now)
	if c.scope == ScopeLogin {
		var buf [maxLoginKey + 1]byte
		k, ok := appendLoginKey(buf[:0], login)
		if !ok {
			return 0
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		t := &c.names
		// m[string(b)] lookups do not allocate; only a key new to the
		// current generation is copied into a string.
		if i, ok := t.cur.idx[string(k)]; ok {
			return t.cur.hit(i, s)
		}
		return t.insert(string(k), s)
	}
	k, ok := addrKey(ip, c.bits4, c.bits6)
	if !ok {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs.add(k, s)
}

// Count returns the count of the key of ip or login in the window ending
// at now, without recording anything; 0 for a key it does not hold.
func (c *Counter) Count(ip netip.Addr, login string, now time.Time) int {
	s := c.slot(now)
	if c.scope == ScopeLogin {
		var buf [maxLoginKey + 1]byte
		k, ok := appendLoginKey(buf[:0], login)
		if !ok {
			return 0
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		t := &c.names
		if i, ok := t.cur.idx[string(k)]; ok {
			return t.cur.ents.at(i).count(s)
		}
		if i, ok := t.old.idx[string(k)]; ok {
			return t.old.ents.at(i).count(s)
		}
		return 0
	}
	k, ok := addrKey(ip, c.bits4, c.bits6)
	if !ok {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs.count(k, s)
}

// KeyString returns the key that Add and Count use for ip or login, for
// logs and audit lines: the address (unmapped, without zone), its network
// as a prefix, or the case-folded login (a long one shortened as its key
// is, with the hash in hex). It is "" when there is no usable key.
func (c *Counter) KeyString(ip netip.Addr, login string) string {
	if c.scope == ScopeLogin {
		k, ok := appendLoginKey(nil, login)
		if !ok {
			return ""
		}
		if len(k) > maxLoginKey {
			return fmt.Sprintf("%s…sha256:%x", k[:longKeyPrefix], k[longKeyPrefix:])
		}
		return string(k)
	}
	a, bits, ok := keyAddr(ip, c.bits4, c.bits6)
	switch {
	case !ok:
		return ""
	case c.scope == ScopeIP:
		return a.String()
	}
	return netip.PrefixFrom(a, bits).String()
}

// Len returns the number of keys held, at most the capacity.
func (c *Counter) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs.len() + c.names.len()
}

// Evictions returns how many keys were dropped for space while their
// window still held failures (each an undercount from then on). Keys
// dropped with nothing left in their window are not counted: they lost
// nothing. Meant for a counter metric; it only grows.
func (c *Counter) Evictions() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs.evicted + c.names.evicted
}

func (c *Counter) slot(now time.Time) int64 { return floorDiv(now.UnixNano(), c.width) }
