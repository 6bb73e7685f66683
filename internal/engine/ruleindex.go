package engine

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
)

// ruleIndex finds the rules that can match a session without trying every
// rule: each rule is filed under one selector it requires (its networks,
// proxy destinations, users or alt values; a wildcard mask under its
// literal prefix or suffix), so the cost per session does not grow with
// the number of such rules. Rules with none of these but services are
// filed under those; the rest (masks such as "*" or "*x*" alone) are
// scanned.
type ruleIndex struct {
	byNet        map[netip.Prefix][]int32
	v4lens       []int
	v6lens       []int
	byDest       map[netip.Addr][]int32
	byUser       map[string][]int32 // ASCII-folded user
	userGlobs    affixIndex         // wildcard user masks
	byAlt        map[string][]int32 // field + "\x00" + folded value
	altGlobs     affixIndex         // wildcard alt masks, keyed field + "\x00" + affix
	byService    map[string][]int32 // lower-case service, for rules with nothing better
	scan         []int32
	nrules       int
	hasAltFields bool
}

// affixIndex files wildcard masks under the longer of their literal ends:
// the part before the first wildcard or after the last one. A name can
// match a mask only if it starts (ends) with the mask's literal prefix
// (suffix), ASCII case-insensitively, so looking up each filed length of
// the name's own prefix and suffix finds every mask that may match.
type affixIndex struct {
	pre, suf         map[string][]int32 // [field + "\x00" +] folded affix
	preLens, sufLens []int
}

// literalAffix returns the literal prefix or suffix a wildcard mask (one
// with '*' or '?') is filed under, or ok false when it has neither ("*",
// "?x*").
func literalAffix(mask string) (affix string, suffix, ok bool) {
	pre := mask[:strings.IndexAny(mask, "*?")]
	suf := mask[strings.LastIndexAny(mask, "*?")+1:]
	switch {
	case pre == "" && suf == "":
		return "", false, false
	case len(suf) > len(pre):
		return suf, true, true
	}
	return pre, false, true
}

func (a *affixIndex) add(field, mask string, id int32) {
	affix, suffix, _ := literalAffix(mask)
	m, lens := &a.pre, &a.preLens
	if suffix {
		m, lens = &a.suf, &a.sufLens
	}
	if *m == nil {
		*m = map[string][]int32{}
	}
	k := match.FoldASCII(affix)
	if field != "" {
		k = field + "\x00" + k
	}
	(*m)[k] = append((*m)[k], id)
	if !slices.Contains(*lens, len(affix)) {
		*lens = append(*lens, len(affix))
	}
}

func (a *affixIndex) empty() bool { return len(a.pre) == 0 && len(a.suf) == 0 }

// lookup adds the rules filed under a prefix or suffix of name (of the
// alt field, if not ""); key is scratch space, returned for reuse.
func (a *affixIndex) lookup(key []byte, field, name string, add func([]int32)) []byte {
	ns := 0
	if field != "" {
		key = append(append(key[:0], field...), 0)
		ns = len(key)
	}
	for _, l := range a.preLens {
		if l <= len(name) {
			key = match.AppendFold(key[:ns], name[:l])
			add(a.pre[string(key)])
		}
	}
	for _, l := range a.sufLens {
		if l <= len(name) {
			key = match.AppendFold(key[:ns], name[len(name)-l:])
			add(a.suf[string(key)])
		}
	}
	return key
}

// indexable: every mask is exact or has a literal prefix or suffix.
func indexable(masks []string) bool {
	for _, m := range masks {
		if !match.HasWildcards(m) {
			continue
		}
		if _, _, ok := literalAffix(m); !ok {
			return false
		}
	}
	return len(masks) > 0
}

// scratch is per-evaluation state, so that a Ruleset stays immutable and
// safe to share between goroutines.
type scratch struct {
	mark []uint32 // per rule: generation it was last collected in
	gen  uint32
	ids  []int32
	key  []byte // folded lookup key, reused so that lookups do not allocate
}

func (ix *ruleIndex) newScratch() *scratch { return &scratch{mark: make([]uint32, ix.nrules)} }

func newRuleIndex(rules []*rule) *ruleIndex {
	ix := &ruleIndex{byNet: map[netip.Prefix][]int32{}, byDest: map[netip.Addr][]int32{},
		byUser: map[string][]int32{}, byAlt: map[string][]int32{}, nrules: len(rules)}
	for i, r := range rules {
		id := int32(i)
		switch {
		case len(r.netList) > 0:
			for _, nw := range r.netList {
				// Zoned networks are filed without the zone; matches()
				// checks it.
				n := nw.Prefix.Masked()
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
		case indexable(r.userMasks):
			for _, u := range r.userMasks {
				if match.HasWildcards(u) {
					ix.userGlobs.add("", u, id)
					continue
				}
				k := match.FoldASCII(u)
				ix.byUser[k] = append(ix.byUser[k], id)
			}
		case r.altField != "" && indexable(r.altMasks):
			ix.hasAltFields = true
			for _, v := range r.altMasks {
				if match.HasWildcards(v) {
					ix.altGlobs.add(r.altField, v, id)
					continue
				}
				k := r.altField + "\x00" + match.FoldASCII(v)
				ix.byAlt[k] = append(ix.byAlt[k], id)
			}
		case r.services != nil:
			if ix.byService == nil {
				ix.byService = map[string][]int32{}
			}
			for svc := range r.services {
				ix.byService[svc] = append(ix.byService[svc], id)
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
		add(ix.byDest[match.DestKey(s.DestIP)])
	}
	if len(ix.byUser) > 0 {
		sc.key = match.AppendFold(sc.key[:0], s.User)
		add(ix.byUser[string(sc.key)])
	}
	if !ix.userGlobs.empty() {
		sc.key = ix.userGlobs.lookup(sc.key, "", s.User, add)
	}
	if ix.hasAltFields {
		s.AltFields(func(field, value string) {
			sc.key = append(append(sc.key[:0], field...), 0)
			sc.key = match.AppendFold(sc.key, value)
			add(ix.byAlt[string(sc.key)])
			if !ix.altGlobs.empty() {
				sc.key = ix.altGlobs.lookup(sc.key, field, value, add)
			}
		})
	}
	if len(ix.byService) > 0 {
		add(ix.byService[strings.ToLower(s.Service)])
	}
	add(ix.scan)
	sc.ids = dst
	return dst
}
