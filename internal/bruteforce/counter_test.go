package bruteforce

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// t0 is slot-aligned for an 80 s window (10 s buckets).
var t0 = time.Unix(1_700_000_000, 0)

const window80 = 80 * time.Second

var (
	ipA = netip.MustParseAddr("192.0.2.1")
	ipB = netip.MustParseAddr("192.0.2.2")
)

func at(d time.Duration) time.Time { return t0.Add(d) }

func wantCount(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%s: count %d, want %d", what, got, want)
	}
}

func TestAddReturnsExactCountInWindow(t *testing.T) {
	c := New(ScopeIP, window80, 100)
	wantCount(t, "first", c.Add(ipA, "", at(0)), 1)
	wantCount(t, "same bucket", c.Add(ipA, "", at(time.Second)), 2)
	wantCount(t, "next bucket", c.Add(ipA, "", at(15*time.Second)), 3)
	wantCount(t, "other key", c.Add(ipB, "", at(15*time.Second)), 1)
	wantCount(t, "Count", c.Count(ipA, "", at(15*time.Second)), 3)
	wantCount(t, "Count later", c.Count(ipA, "", at(79*time.Second)), 3)
	wantCount(t, "unknown key", c.Count(netip.MustParseAddr("198.51.100.1"), "", at(15*time.Second)), 0)
	if got := c.Len(); got != 2 {
		t.Errorf("Len %d, want 2", got)
	}
}

// The window slides one bucket (10 s) at a time, and the oldest bucket is
// dropped as soon as now enters a new slot: an undercount of up to one
// bucket, never an overcount.
func TestWindowSlides(t *testing.T) {
	c := New(ScopeIP, window80, 100)
	c.Add(ipA, "", at(0))
	c.Add(ipA, "", at(10*time.Second))
	c.Add(ipA, "", at(25*time.Second))
	for _, tc := range []struct {
		now  time.Duration
		want int
	}{
		{25 * time.Second, 3},
		{79*time.Second + 999*time.Millisecond, 3},
		{80 * time.Second, 2}, // exact count in (0 s, 80 s] is 2 too
		{89 * time.Second, 2},
		{90 * time.Second, 1},
		{99 * time.Second, 1},
		{100 * time.Second, 0}, // exact count in (20 s, 100 s] is 1 (25 s): its bucket is dropped
		{time.Hour, 0},
	} {
		wantCount(t, "at "+tc.now.String(), c.Count(ipA, "", at(tc.now)), tc.want)
	}
	// A key whose window emptied starts again from one.
	wantCount(t, "after a gap", c.Add(ipA, "", at(time.Hour)), 1)
}

// A failure 5 s into the oldest bucket is dropped with it, though it is
// still inside (now-window, now]: the documented undercount.
func TestOldestBucketUndercounts(t *testing.T) {
	c := New(ScopeIP, window80, 100)
	c.Add(ipA, "", at(5*time.Second))
	wantCount(t, "inside the last bucket", c.Count(ipA, "", at(79*time.Second)), 1)
	wantCount(t, "oldest bucket dropped", c.Count(ipA, "", at(80*time.Second)), 0)
}

// Concurrent requests may reach Add with times slightly out of order.
func TestOutOfOrderTimes(t *testing.T) {
	c := New(ScopeIP, window80, 100)
	wantCount(t, "newest first", c.Add(ipA, "", at(30*time.Second)), 1)
	// Earlier slot: counted, and its own count leaves out the later slot.
	wantCount(t, "earlier slot", c.Add(ipA, "", at(25*time.Second)), 1)
	wantCount(t, "both", c.Count(ipA, "", at(30*time.Second)), 2)
	// A query before a failure does not count it.
	wantCount(t, "query before", c.Count(ipA, "", at(15*time.Second)), 0)
}

// When the wall clock steps back by more than a window, a key that keeps
// failing restarts its count from the new time instead of being ignored
// until the clock catches up.
func TestClockStepsBack(t *testing.T) {
	c := New(ScopeIP, window80, 100)
	c.Add(ipA, "", at(time.Hour))
	c.Add(ipA, "", at(time.Hour))
	wantCount(t, "after the step", c.Add(ipA, "", at(0)), 1)
	wantCount(t, "counting again", c.Add(ipA, "", at(time.Second)), 2)
	// The old timeline is gone: counting it again would be an overcount.
	wantCount(t, "back at the old time", c.Count(ipA, "", at(time.Hour)), 0)
}

func TestTimesBefore1970(t *testing.T) {
	c := New(ScopeIP, window80, 100)
	base := time.Unix(-1_000_000, 0) // slot-aligned
	c.Add(ipA, "", base.Add(-time.Second))
	c.Add(ipA, "", base)
	wantCount(t, "two slots", c.Count(ipA, "", base.Add(69*time.Second)), 2)
	wantCount(t, "first slot dropped", c.Count(ipA, "", base.Add(70*time.Second)), 1)
}

func TestIPScopeKeys(t *testing.T) {
	c := New(ScopeIP, window80, 100)
	c.Add(ipA, "alice", at(0))
	wantCount(t, "IPv4-mapped is the IPv4 client", c.Add(netip.MustParseAddr("::ffff:192.0.2.1"), "bob", at(0)), 2)
	wantCount(t, "neighbour", c.Add(ipB, "", at(0)), 1)
	c.Add(netip.MustParseAddr("fe80::1%eth0"), "", at(0))
	wantCount(t, "zone dropped", c.Add(netip.MustParseAddr("fe80::1%eth1"), "", at(0)), 2)
	wantCount(t, "no zone", c.Count(netip.MustParseAddr("fe80::1"), "", at(0)), 2)
	wantCount(t, "v6 neighbour", c.Add(netip.MustParseAddr("fe80::2"), "", at(0)), 1)
	// ::ffff:0:0/96 unmapped cannot meet the IPv4 key of 0.0.0.0 by accident.
	wantCount(t, "IPv4 0.0.0.0", c.Add(netip.MustParseAddr("0.0.0.0"), "", at(0)), 1)
	wantCount(t, "IPv6 ::", c.Add(netip.IPv6Unspecified(), "", at(0)), 1)

	before := c.Len()
	wantCount(t, "invalid address", c.Add(netip.Addr{}, "alice", at(0)), 0)
	wantCount(t, "invalid address Count", c.Count(netip.Addr{}, "alice", at(0)), 0)
	if c.Len() != before {
		t.Errorf("an invalid address was recorded: Len %d, was %d", c.Len(), before)
	}
}

func TestNetworkScopeKeys(t *testing.T) {
	c := New(ScopeNetwork, window80, 100)
	c.Add(netip.MustParseAddr("192.0.2.1"), "", at(0))
	wantCount(t, "same /24", c.Add(netip.MustParseAddr("192.0.2.254"), "", at(0)), 2)
	wantCount(t, "mapped, same /24", c.Add(netip.MustParseAddr("::ffff:192.0.2.9"), "", at(0)), 3)
	wantCount(t, "next /24", c.Add(netip.MustParseAddr("192.0.3.1"), "", at(0)), 1)
	c.Add(netip.MustParseAddr("2001:db8:0:1::1"), "", at(0))
	wantCount(t, "same /64", c.Add(netip.MustParseAddr("2001:db8:0:1:ffff:ffff:ffff:ffff%eth0"), "", at(0)), 2)
	wantCount(t, "next /64", c.Add(netip.MustParseAddr("2001:db8:0:2::1"), "", at(0)), 1)

	c = New(ScopeNetwork, window80, 100, WithPrefixes(16, 48))
	c.Add(netip.MustParseAddr("192.0.2.1"), "", at(0))
	wantCount(t, "same /16", c.Add(netip.MustParseAddr("192.0.200.1"), "", at(0)), 2)
	wantCount(t, "next /16", c.Add(netip.MustParseAddr("192.1.2.1"), "", at(0)), 1)
	c.Add(netip.MustParseAddr("2001:db8:0:1::1"), "", at(0))
	wantCount(t, "same /48", c.Add(netip.MustParseAddr("2001:db8:0:ffff::1"), "", at(0)), 2)
	wantCount(t, "next /48", c.Add(netip.MustParseAddr("2001:db8:1::1"), "", at(0)), 1)

	c = New(ScopeNetwork, window80, 100, WithPrefixes(0, 0))
	c.Add(netip.MustParseAddr("192.0.2.1"), "", at(0))
	wantCount(t, "all IPv4", c.Add(netip.MustParseAddr("203.0.113.7"), "", at(0)), 2)
	wantCount(t, "all IPv6, apart from IPv4", c.Add(netip.MustParseAddr("2001:db8::1"), "", at(0)), 1)
	wantCount(t, "invalid address", c.Add(netip.Addr{}, "", at(0)), 0)
}

func TestLoginScopeKeys(t *testing.T) {
	c := New(ScopeLogin, window80, 100)
	c.Add(ipA, "alice@example.com", at(0))
	wantCount(t, "case folded, IP ignored", c.Add(ipB, "Alice@Example.COM", at(0)), 2)
	wantCount(t, "Count folds too", c.Count(netip.Addr{}, "ALICE@EXAMPLE.COM", at(0)), 2)
	wantCount(t, "other login", c.Add(ipA, "bob@example.com", at(0)), 1)
	// Only ASCII letters fold, as in doveadm's user masks.
	c.Add(ipA, "josé", at(0))
	wantCount(t, "non-ASCII not folded", c.Add(ipA, "JOSÉ", at(0)), 1)
	wantCount(t, "ASCII part folded", c.Add(ipA, "JOSé", at(0)), 2)
	wantCount(t, "spaces kept", c.Add(ipA, " alice@example.com", at(0)), 1)

	before := c.Len()
	wantCount(t, "empty login", c.Add(ipA, "", at(0)), 0)
	wantCount(t, "empty login Count", c.Count(ipA, "", at(0)), 0)
	if c.Len() != before {
		t.Errorf("an empty login was recorded: Len %d, was %d", c.Len(), before)
	}
}

func TestLongLogins(t *testing.T) {
	c := New(ScopeLogin, window80, 100)
	long := strings.Repeat("a", 300)
	c.Add(ipA, long+"x", at(0))
	wantCount(t, "same long login, folded", c.Add(ipA, strings.ToUpper(long)+"X", at(0)), 2)
	wantCount(t, "differs after the prefix", c.Add(ipA, long+"y", at(0)), 1)
	wantCount(t, "differs in length", c.Add(ipA, long, at(0)), 1)
	c.Add(ipA, strings.Repeat("b", maxLoginKey), at(0))
	wantCount(t, "longest short login", c.Count(ipA, strings.Repeat("B", maxLoginKey), at(0)), 1)
	wantCount(t, "one byte longer", c.Count(ipA, strings.Repeat("b", maxLoginKey+1), at(0)), 0)

	for _, n := range []int{1, maxLoginKey, maxLoginKey + 1, 10_000} {
		k, ok := appendLoginKey(nil, strings.Repeat("z", n))
		if !ok || len(k) != min(n, maxLoginKey+1) {
			t.Errorf("login of %d bytes: key of %d bytes (ok %v), want %d", n, len(k), ok, min(n, maxLoginKey+1))
		}
	}
}

func TestNewRejectsBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func()
		want string
	}{
		{"zero scope", func() { New(0, time.Minute, 10) }, "unknown scope Scope(0)"},
		{"zero window", func() { New(ScopeIP, 0, 10) }, "window 0s is shorter than 8 ns"},
		{"tiny window", func() { New(ScopeIP, 7, 10) }, "window 7ns is shorter than 8 ns"},
		{"capacity 1", func() { New(ScopeIP, time.Minute, 1) }, "capacity 1 is not in"},
		{"capacity 2^32", func() { New(ScopeIP, time.Minute, 1<<32) }, "capacity 4294967296 is not in"},
		{"IPv4 prefix", func() { New(ScopeNetwork, time.Minute, 10, WithPrefixes(33, 64)) }, "/33 and /64"},
		{"IPv6 prefix", func() { New(ScopeNetwork, time.Minute, 10, WithPrefixes(24, -1)) }, "/24 and /-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, tc.want) {
					t.Errorf("panic %q, want it to contain %q", msg, tc.want)
				}
			}()
			tc.new()
		})
	}
	// The largest capacity is accepted (nothing is allocated up front).
	New(ScopeIP, 8, 1<<32-1)
}

func TestScopeString(t *testing.T) {
	for s, want := range map[Scope]string{ScopeIP: "ip", ScopeNetwork: "network", ScopeLogin: "login", 9: "Scope(9)"} {
		if got := s.String(); got != want {
			t.Errorf("Scope(%d).String() = %q, want %q", int(s), got, want)
		}
	}
	c := New(ScopeLogin, time.Minute, 10)
	if c.Scope() != ScopeLogin || c.Window() != time.Minute {
		t.Errorf("Scope, Window = %v, %v", c.Scope(), c.Window())
	}
}

// A failure for a key already held allocates nothing in any scope; only a
// login new to the current generation is copied into a string.
func TestAddAllocatesNothingForKnownKeys(t *testing.T) {
	for _, scope := range []Scope{ScopeIP, ScopeNetwork, ScopeLogin} {
		c := New(scope, window80, 100)
		ip := netip.MustParseAddr("2001:db8::1%eth0")
		c.Add(ip, "Alice@Example.com", t0)
		allocs := testing.AllocsPerRun(100, func() {
			c.Add(ip, "Alice@Example.com", t0)
			c.Count(ip, "alice@example.COM", t0)
		})
		if allocs != 0 {
			t.Errorf("%v: %v allocations per Add and Count, want 0", scope, allocs)
		}
	}
}

func TestKeyString(t *testing.T) {
	ipc := New(ScopeIP, window80, 10)
	netc := New(ScopeNetwork, window80, 10)
	net16 := New(ScopeNetwork, window80, 10, WithPrefixes(16, 32))
	loginc := New(ScopeLogin, window80, 10)
	long := strings.Repeat("a", 200)
	for _, tc := range []struct {
		c     *Counter
		ip    string
		login string
		want  string
	}{
		{ipc, "::ffff:192.0.2.1", "", "192.0.2.1"},
		{ipc, "fe80::1%eth0", "", "fe80::1"},
		{ipc, "", "alice", ""},
		{netc, "::ffff:192.0.2.77", "", "192.0.2.0/24"},
		{netc, "2001:db8:1:2:3:4:5:6%eth0", "", "2001:db8:1:2::/64"},
		{net16, "192.0.2.77", "", "192.0.0.0/16"},
		{net16, "2001:db8:1:2::1", "", "2001:db8::/32"},
		{loginc, "192.0.2.1", "Alice@Example.com", "ALICE@EXAMPLE.COM"},
		{loginc, "192.0.2.1", "", ""},
		{loginc, "", long, strings.Repeat("A", longKeyPrefix) + "…sha256:"},
	} {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		got := tc.c.KeyString(ip, tc.login)
		if got != tc.want && !(strings.HasSuffix(tc.want, ":") && strings.HasPrefix(got, tc.want) && len(got) == len(tc.want)+64) {
			t.Errorf("%v KeyString(%q, %q) = %q, want %q", tc.c.Scope(), tc.ip, tc.login, got, tc.want)
		}
	}
}
