package crowdsec

import (
	"net/netip"
	"slices"
	"time"
)

// View is an immutable snapshot of the decisions in force, safe for any
// number of concurrent readers. A poll cycle should take one View and ask
// it everything, so that the whole cycle sees one revision.
type View struct {
	rev   uint64
	addrs map[netip.Addr]*Decision   // ip scope
	nets  map[netip.Prefix]*Decision // range scope
	bits4 []int                      // prefix lengths in nets, longest first
	bits6 []int
	users map[string]*Decision // username scope, ASCII-folded
	count [len(scopeNames)]int
}

// emptyView is what a Source answers before its first pull.
var emptyView = &View{}

// newView indexes the entries. Where several decisions name the same thing
// it keeps the one that ends last: if that one is over, all are.
// Entries are shared with the set, which replaces and never modifies them.
func newView(rev uint64, entries map[entryKey]*Decision) *View {
	var n [len(scopeNames)]int
	for _, d := range entries {
		n[d.Scope]++
	}
	// Sized up front, and pointers (a Decision is over the 128 bytes a map
	// stores inline): each halves the cost of rebuilding 100k entries.
	v := &View{rev: rev, addrs: make(map[netip.Addr]*Decision, n[ScopeIP]), nets: make(map[netip.Prefix]*Decision, n[ScopeRange]),
		users: make(map[string]*Decision, n[ScopeUsername])}
	lens := map[netip.Prefix]bool{} // (family, bits) seen, as a zero-address prefix
	for _, d := range entries {
		v.count[d.Scope]++
		switch d.Scope {
		case ScopeIP:
			keepLatest(v.addrs, d.prefix.Addr(), d)
		case ScopeRange:
			keepLatest(v.nets, d.prefix, d)
			if !lens[zeroPrefix(d.prefix)] {
				lens[zeroPrefix(d.prefix)] = true
				if d.prefix.Addr().Is4() {
					v.bits4 = append(v.bits4, d.prefix.Bits())
				} else {
					v.bits6 = append(v.bits6, d.prefix.Bits())
				}
			}
		case ScopeUsername:
			keepLatest(v.users, d.user, d)
		}
	}
	slices.SortFunc(v.bits4, func(a, b int) int { return b - a })
	slices.SortFunc(v.bits6, func(a, b int) int { return b - a })
	return v
}

func zeroPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4() {
		return netip.PrefixFrom(netip.IPv4Unspecified(), p.Bits())
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), p.Bits())
}

func keepLatest[K comparable](m map[K]*Decision, k K, d *Decision) {
	old, ok := m[k]
	if !ok || d.Until.After(old.Until) || (d.Until.Equal(old.Until) && d.ID < old.ID) {
		m[k] = d
	}
}

// Revision counts the changes the Source has applied; it grows by one for
// each pull or expiry that changed something.
func (v *View) Revision() uint64 { return v.rev }

// Len is the number of decisions held, of every scope (some may be over
// at a later now; several may name the same thing).
func (v *View) Len() int { return v.count[ScopeIP] + v.count[ScopeRange] + v.count[ScopeUsername] }

// Count is the number of decisions held of one scope.
func (v *View) Count(s Scope) int {
	if int(s) >= len(v.count) {
		return 0
	}
	return v.count[s]
}

// Blocked returns a decision in force at now that names ip, or a network
// holding it. IPv4-mapped IPv6 addresses are looked up as IPv4, and a zone
// is ignored.
func (v *View) Blocked(ip netip.Addr, now time.Time) (Decision, bool) {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return Decision{}, false
	}
	if d, ok := v.addrs[ip]; ok && d.Active(now) {
		return *d, true
	}
	bits := v.bits6
	if ip.Is4() {
		bits = v.bits4
	}
	for _, b := range bits {
		p, err := ip.Prefix(b)
		if err != nil {
			continue
		}
		if d, ok := v.nets[p]; ok && d.Active(now) {
			return *d, true
		}
	}
	return Decision{}, false
}

// UserBlocked returns a decision in force at now that names user
// (compared ASCII case-insensitively, as Dovecot's user masks are).
func (v *View) UserBlocked(user string, now time.Time) (Decision, bool) {
	if user == "" {
		return Decision{}, false
	}
	if d, ok := v.users[foldASCII(user)]; ok && d.Active(now) {
		return *d, true
	}
	return Decision{}, false
}
