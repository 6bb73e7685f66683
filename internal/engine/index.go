package engine

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/kickagent/kickagent/internal/match"
)

// userSet matches a name against masks: masks without wildcards are one
// map lookup (ASCII case-folded, as doveadm compares), the rest are tried
// in turn.
type userSet struct {
	exact map[string]struct{}
	globs []string
}

func newUserSet(masks []string) userSet {
	var u userSet
	for _, m := range masks {
		if match.HasWildcards(m) {
			u.globs = append(u.globs, m)
			continue
		}
		if u.exact == nil {
			u.exact = make(map[string]struct{})
		}
		u.exact[foldASCII(m)] = struct{}{}
	}
	return u
}

func (u *userSet) empty() bool { return len(u.exact) == 0 && len(u.globs) == 0 }

func (u *userSet) match(name string) bool {
	if len(u.exact) > 0 {
		// Folding into a stack buffer and indexing with string(b)
		// does not allocate, unlike foldASCII on a lower-case name.
		var buf [64]byte
		if _, ok := u.exact[string(appendFold(buf[:0], name))]; ok {
			return true
		}
	}
	for _, g := range u.globs {
		if match.Wildcard(name, g) {
			return true
		}
	}
	return false
}

// appendFold appends s to dst with ASCII letters upper-cased, as foldASCII.
func appendFold(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// foldASCII upper-cases ASCII letters only, like Dovecot's i_toupper, and
// does not allocate when there is nothing to fold.
func foldASCII(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return 'a' <= r && r <= 'z' })
	if i < 0 {
		return s
	}
	b := []byte(s)
	for j := i; j < len(b); j++ {
		if 'a' <= b[j] && b[j] <= 'z' {
			b[j] -= 'a' - 'A'
		}
	}
	return string(b)
}

// prefixSet answers "is this address in any of the networks" with one map
// lookup per distinct prefix length, however many networks there are.
type prefixSet struct {
	v4, v6 lenIndex
}

type lenIndex struct {
	lens []int // distinct prefix lengths, longest first
	nets map[netip.Prefix]struct{}
}

func newPrefixSet(nets []netip.Prefix) prefixSet {
	var p prefixSet
	for _, n := range nets {
		n = n.Masked()
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

func (p *prefixSet) empty() bool { return len(p.v4.nets) == 0 && len(p.v6.nets) == 0 }

// contains reports whether ip is in a network of the set. IPv4-mapped IPv6
// addresses are looked up as IPv4, as Dovecot compares them.
func (p *prefixSet) contains(ip netip.Addr) bool {
	_, ok := p.lookup(ip)
	return ok
}

// lookup returns the longest network containing ip.
func (p *prefixSet) lookup(ip netip.Addr) (netip.Prefix, bool) {
	ip = ip.Unmap().WithZone("")
	idx := &p.v6
	if ip.Is4() {
		idx = &p.v4
	}
	for _, l := range idx.lens {
		n, _ := ip.Prefix(l)
		if _, ok := idx.nets[n]; ok {
			return n, true
		}
	}
	return netip.Prefix{}, false
}
