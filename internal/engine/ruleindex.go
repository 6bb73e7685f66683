package engine

import (
	"net/netip"
	"slices"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
)

// ruleIndex finds the rules that can match a session without trying every
// rule: each rule is filed under one selector it requires (its networks,
// proxy destinations, exact users or exact alt values), so the cost per
// session does not grow with the number of such rules. Rules with none of
// these (wildcard users only, services only) are scanned.
type ruleIndex struct {
	byNet        map[netip.Prefix][]int32
	v4lens       []int
	v6lens       []int
	byDest       map[netip.Addr][]int32
	byUser       map[string][]int32 // ASCII-folded user
	byAlt        map[string][]int32 // field + "\x00" + folded value
	scan         []int32
	nrules       int
	hasAltFields bool
}

// scratch is per-evaluation state, so that a Ruleset stays immutable and
// safe to share between goroutines.
type scratch struct {
	mark []uint32 // per rule: generation it was last collected in
	gen  uint32
	ids  []int32
}

func (ix *ruleIndex) newScratch() *scratch { return &scratch{mark: make([]uint32, ix.nrules)} }

func newRuleIndex(rules []*rule) *ruleIndex {
	ix := &ruleIndex{byNet: map[netip.Prefix][]int32{}, byDest: map[netip.Addr][]int32{},
		byUser: map[string][]int32{}, byAlt: map[string][]int32{}, nrules: len(rules)}
	for i, r := range rules {
		id := int32(i)
		switch {
		case len(r.netList) > 0:
			for _, n := range r.netList {
				n = n.Masked()
				ix.byNet[n] = append(ix.byNet[n], id)
				lens := &ix.v6lens
				if n.Addr().Is4() {
					lens = &ix.v4lens
				}
				if !slices.Contains(*lens, n.Bits()) {
					*lens = append(*lens, n.Bits())
				}
			}
		case len(r.dests) > 0:
			for d := range r.dests {
				ix.byDest[d] = append(ix.byDest[d], id)
			}
		case len(r.userMasks) > 0 && !slices.ContainsFunc(r.userMasks, match.HasWildcards):
			for _, u := range r.userMasks {
				k := foldASCII(u)
				ix.byUser[k] = append(ix.byUser[k], id)
			}
		case r.altField != "" && !slices.ContainsFunc(r.altMasks, match.HasWildcards):
			ix.hasAltFields = true
			for _, v := range r.altMasks {
				k := r.altField + "\x00" + foldASCII(v)
				ix.byAlt[k] = append(ix.byAlt[k], id)
			}
		default:
			ix.scan = append(ix.scan, id)
		}
	}
	return ix
}

// candidates returns the rules that may match s, each once. The result is
// valid until the next call with the same scratch.
func (ix *ruleIndex) candidates(sc *scratch, s *anvil.Session) []int32 {
	sc.gen++
	if sc.gen == 0 { // wrapped: reset marks
		clear(sc.mark)
		sc.gen = 1
	}
	dst := sc.ids[:0]
	add := func(ids []int32) {
		for _, id := range ids {
			if sc.mark[id] != sc.gen {
				sc.mark[id] = sc.gen
				dst = append(dst, id)
			}
		}
	}
	if s.IP.IsValid() && len(ix.byNet) > 0 {
		ip := s.IP.Unmap().WithZone("")
		lens := ix.v6lens
		if ip.Is4() {
			lens = ix.v4lens
		}
		for _, l := range lens {
			n, _ := ip.Prefix(l)
			add(ix.byNet[n])
		}
	}
	if s.DestIP.IsValid() && len(ix.byDest) > 0 {
		add(ix.byDest[s.DestIP.Unmap()])
	}
	if len(ix.byUser) > 0 {
		add(ix.byUser[foldASCII(s.User)])
	}
	if ix.hasAltFields {
		s.AltFields(func(field, value string) {
			add(ix.byAlt[field+"\x00"+foldASCII(value)])
		})
	}
	add(ix.scan)
	sc.ids = dst
	return dst
}
