package match

import (
	"net/netip"
	"slices"
	"strings"
)

// MaskSet matches a name against user masks with doveadm's semantics:
// masks without wildcards are one map lookup (ASCII case-folded), the rest
// are tried in turn. The zero MaskSet matches nothing.
type MaskSet struct {
	exact map[string]struct{}
	globs []string
}

// NewMaskSet builds a set from masks.
func NewMaskSet(masks []string) MaskSet {
	var u MaskSet
	for _, m := range masks {
		if HasWildcards(m) {
			u.globs = append(u.globs, m)
			continue
		}
		if u.exact == nil {
			u.exact = make(map[string]struct{})
		}
		u.exact[FoldASCII(m)] = struct{}{}
	}
	return u
}

// Empty reports whether the set has no masks.
func (u *MaskSet) Empty() bool { return len(u.exact) == 0 && len(u.globs) == 0 }

// Match reports whether name matches a mask of the set.
func (u *MaskSet) Match(name string) bool {
	if len(u.exact) > 0 {
		// Folding into a stack buffer and indexing with string(b)
		// does not allocate, unlike FoldASCII on a lower-case name.
		var buf [64]byte
		if _, ok := u.exact[string(AppendFold(buf[:0], name))]; ok {
			return true
		}
	}
	for _, g := range u.globs {
		if Wildcard(name, g) {
			return true
		}
	}
	return false
}

// AppendFold appends s to dst with ASCII letters upper-cased, as FoldASCII.
func AppendFold(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, foldASCII(s[i]))
	}
	return dst
}

// FoldASCII upper-cases ASCII letters only, as Dovecot's i_toupper in
// wildcard_match_icase, and does not allocate when there is nothing to
// fold. It is the one case-folding of user names and masks.
func FoldASCII(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return 'a' <= r && r <= 'z' })
	if i < 0 {
		return s
	}
	b := []byte(s)
	for j := i; j < len(b); j++ {
		b[j] = foldASCII(b[j])
	}
	return string(b)
}

// NetworkSet answers "is this address in any of the networks" with one map
// lookup per distinct prefix length, however many networks there are.
// Networks with an IPv6 zone (rare) are tried in turn. Unlike a doveadm
// argument, a /0 network in a set selects its whole address family.
type NetworkSet struct {
	v4, v6 lenIndex
	zoned  []Network
}

type lenIndex struct {
	lens []int // distinct prefix lengths, longest first
	nets map[netip.Prefix]struct{}
}

// NewNetworkSet builds a set from networks.
func NewNetworkSet(nets []Network) NetworkSet {
	var p NetworkSet
	for _, nw := range nets {
		if nw.Zone != "" {
			p.zoned = append(p.zoned, nw)
			continue
		}
		n := nw.Prefix.Masked()
		idx := &p.v6
		if n.Addr().Is4() {
			idx = &p.v4
		}
		if idx.nets == nil {
			idx.nets = make(map[netip.Prefix]struct{})
		}
		idx.nets[n] = struct{}{}
		if !slices.Contains(idx.lens, n.Bits()) {
			idx.lens = append(idx.lens, n.Bits())
		}
	}
	slices.SortFunc(p.v4.lens, func(a, b int) int { return b - a })
	slices.SortFunc(p.v6.lens, func(a, b int) int { return b - a })
	return p
}

// Empty reports whether the set has no networks.
func (p *NetworkSet) Empty() bool {
	return len(p.v4.nets) == 0 && len(p.v6.nets) == 0 && len(p.zoned) == 0
}

// Contains reports whether ip is in a network of the set, as
// Network.Contains decides for each.
func (p *NetworkSet) Contains(ip netip.Addr) bool {
	_, ok := p.Lookup(ip)
	return ok
}

// Lookup returns the longest network containing ip.
func (p *NetworkSet) Lookup(ip netip.Addr) (Network, bool) {
	if !ip.IsValid() {
		return Network{}, false
	}
	bare := ip.Unmap().WithZone("")
	idx := &p.v6
	if bare.Is4() {
		idx = &p.v4
	}
	for _, l := range idx.lens {
		n, _ := bare.Prefix(l)
		if _, ok := idx.nets[n]; ok {
			return Network{Prefix: n}, true
		}
	}
	for _, n := range p.zoned {
		if n.Contains(ip) {
			return n, true
		}
	}
	return Network{}, false
}
