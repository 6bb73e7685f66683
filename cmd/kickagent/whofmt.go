package main

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"hash/maphash"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
	"github.com/kickagent/kickagent/internal/snapshot"
)

// whoGroup is one row of the aggregated listing: a user on a service.
// The fields add touches come first; the first pid and IP are stored
// inline (most groups have one), so a lookup reads little beyond the
// group's own cache lines.
type whoGroup struct {
	user, service string
	conns         int32
	seq           int32 // first seen: orders groups that sort equal
	pids          []int64
	ips           []netip.Addr
	altMatched    bool // with -f: a session's alt value matched the masks
	pid0          [1]int64
	ip0           [1]netip.Addr
}

// aggregator groups sessions by (user, service) as doveadm who does. It
// takes sessions one by one (from a stream, whose strings are transient)
// and keeps one copy of each group's strings. At 100,000 sessions its
// cost is cache misses, so its index is an open-addressed table of
// 8-byte slots (hash tag and group number, 512 KiB for 40,000 groups)
// whose probes read no group but the one that matches, where a map keyed
// by strings reads several scattered lines per lookup.
type aggregator struct {
	proto  anvil.Protocol
	f      *match.Filter
	seed   maphash.Seed
	slots  []uint64 // tag<<32 | group number+1; a power of two, ≤ 3/4 full
	key    []byte
	chunks [][]whoGroup // groups by number, in blocks that never move
	n      int
	svc    []string // services seen: a handful, kept once each
}

const chunkBits = 10

func newAggregator(p anvil.Protocol, f *match.Filter) *aggregator {
	// Sized for a large server up front: growing rehashes.
	return &aggregator{proto: p, f: f, seed: maphash.MakeSeed(), slots: make([]uint64, 1<<16)}
}

func (a *aggregator) group(i int) *whoGroup {
	return &a.chunks[i>>chunkBits][i&(1<<chunkBits-1)]
}

// byIP tells whether a group is keyed by IP too: doveadm groups 2.4
// sessions without a username by IP.
func (a *aggregator) byIP(user string) bool {
	return user == "" && a.proto == anvil.Proto24
}

// hash hashes a group's key: user NUL service, and NUL IP when byIP.
func (a *aggregator) hash(user, service string, ip netip.Addr) uint64 {
	k := append(append(append(a.key[:0], user...), 0), service...)
	if a.byIP(user) {
		k = ip.AppendTo(append(k, 0))
	}
	a.key = k
	return maphash.Bytes(a.seed, k)
}

func (a *aggregator) add(s *anvil.Session) {
	byIP := a.byIP(s.User)
	h := a.hash(s.User, s.Service, s.IP)
	tag := h &^ (1<<32 - 1)
	mask := uint64(len(a.slots) - 1)
	i := h & mask
	var g *whoGroup
	for ; a.slots[i] != 0; i = (i + 1) & mask {
		if a.slots[i]&^(1<<32-1) != tag {
			continue
		}
		c := a.group(int(a.slots[i]&(1<<32-1)) - 1)
		// A group keyed by IP holds that IP first, or none if invalid.
		if c.user == s.User && c.service == s.Service &&
			(!byIP || (len(c.ips) == 0 && !s.IP.IsValid()) || (len(c.ips) > 0 && c.ips[0] == s.IP)) {
			g = c
			break
		}
	}
	if g == nil {
		g = a.newGroup(s)
		a.slots[i] = tag | uint64(a.n)
		if 4*a.n > 3*len(a.slots) {
			a.grow()
		}
	}
	g.conns += int32(max(s.Connections, 1))
	if a.f.AltField != "" && !g.altMatched && a.f.MatchUser(s) {
		g.altMatched = true
	}
	if s.IP.IsValid() && !slices.Contains(g.ips, s.IP) {
		g.ips = append(g.ips, s.IP)
	}
	if !slices.Contains(g.pids, s.PID) {
		g.pids = append(g.pids, s.PID)
	}
}

func (a *aggregator) newGroup(s *anvil.Session) *whoGroup {
	if a.n>>chunkBits == len(a.chunks) {
		a.chunks = append(a.chunks, make([]whoGroup, 1<<chunkBits))
	}
	g := a.group(a.n)
	a.n++
	g.user, g.service, g.seq = strings.Clone(s.User), a.service(s.Service), int32(a.n)
	g.pids, g.ips = g.pid0[:0], g.ip0[:0] // a second element moves out
	return g
}

// service returns a kept copy of a service name, shared by its groups.
func (a *aggregator) service(s string) string {
	for _, v := range a.svc {
		if v == s {
			return v
		}
	}
	v := strings.Clone(s)
	if len(a.svc) < 32 { // bounds the scan if a dump had many
		a.svc = append(a.svc, v)
	}
	return v
}

// grow doubles the table; slots are rehashed from the groups' keys.
func (a *aggregator) grow() {
	slots := make([]uint64, 2*len(a.slots))
	mask := uint64(len(slots) - 1)
	for n := range a.n {
		g := a.group(n)
		var ip netip.Addr
		if len(g.ips) > 0 {
			ip = g.ips[0]
		}
		h := a.hash(g.user, g.service, ip)
		i := h & mask
		for slots[i] != 0 {
			i = (i + 1) & mask
		}
		slots[i] = h&^(1<<32-1) | uint64(n+1)
	}
	a.slots = slots
}

// sortKey orders groups by a big-endian prefix of the username first:
// comparing it needs no pointer chase, and most names differ in it.
type sortKey struct {
	p0, p1 uint64
	g      *whoGroup
}

func prefixKey(s string) (uint64, uint64) {
	var b [16]byte
	copy(b[:], s) // zero-padded: a shorter name sorts first, as it should
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// sorted returns the groups f selects by user and service (then in the
// order first seen). It reads the groups in memory order, once: visit
// sees each selected group there (to measure the columns) before the sort
// scatters them.
func (a *aggregator) sorted(f *match.Filter, visit func(*whoGroup)) []*whoGroup {
	keys := make([]sortKey, 0, a.n)
	for n := range a.n {
		if g := a.group(n); groupMatches(g, f) {
			visit(g)
			p0, p1 := prefixKey(g.user)
			keys = append(keys, sortKey{p0, p1, g})
		}
	}
	slices.SortFunc(keys, func(x, y sortKey) int {
		if c := cmp.Compare(x.p0, y.p0); c != 0 {
			return c
		}
		if c := cmp.Compare(x.p1, y.p1); c != 0 {
			return c
		}
		if c := strings.Compare(x.g.user, y.g.user); c != 0 {
			return c
		}
		if c := strings.Compare(x.g.service, y.g.service); c != 0 {
			return c
		}
		return cmp.Compare(x.g.seq, y.g.seq)
	})
	out := make([]*whoGroup, len(keys))
	for i, k := range keys {
		out[i] = k.g
	}
	return out
}

// groupMatches applies the filter to a whole group as doveadm does: the
// masks to the username, the network to any of the group's IPs. With an alt
// field (which doveadm ignores here), any session's alt value may match.
func groupMatches(g *whoGroup, f *match.Filter) bool {
	if f.AltField != "" {
		if !g.altMatched {
			return false
		}
	} else if !f.MatchName(g.user) {
		return false
	}
	if !f.HasNetwork() {
		return true
	}
	return slices.ContainsFunc(g.ips, f.MatchIP)
}

func writeWhoAggregated(w io.Writer, snap *anvil.Snapshot, f *match.Filter) error {
	a := newAggregator(snap.Protocol, f)
	for i := range snap.Sessions {
		a.add(&snap.Sessions[i])
	}
	return writeGroups(w, snap.Protocol, a, f)
}

// writeGroups prints the aggregated listing: columns as newTable pads
// them (a cell wider than maxPadWidth only extends its line), formatted
// straight into the writer's free space.
func writeGroups(w io.Writer, p anvil.Protocol, a *aggregator, f *match.Filter) error {
	title := "service"
	if p == anvil.Proto23 {
		title = "proto"
	}
	width := [4]int{len("username"), len("#"), len(title), len("(pids)")}
	fit := func(i, n int) {
		if n <= maxPadWidth {
			width[i] = max(width[i], n)
		}
	}
	groups := a.sorted(f, func(g *whoGroup) {
		fit(0, textWidth(g.user))
		fit(1, decLen(int64(g.conns)))
		fit(2, textWidth(g.service))
		n := 1 + len(g.pids) // parentheses and blanks
		for _, pid := range g.pids {
			n += decLen(pid)
		}
		fit(3, n)
	})
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 256<<10)
	}
	var aside []byte // a line that does not fit the writer's free space
	line := func(est int) ([]byte, bool) {
		if b := bw.AvailableBuffer(); cap(b) >= est {
			return b, false
		}
		return aside[:0], true
	}
	b, _ := line(0)
	b = pad(append(b, "username"...), len("username"), width[0])
	b = pad(append(b, '#'), 1, width[1])
	b = pad(append(b, title...), len(title), width[2])
	b = pad(append(b, "(pids)"...), len("(pids)"), width[3])
	b = append(b, "(ips)\n"...)
	if _, err := bw.Write(b); err != nil {
		return err
	}
	for _, g := range groups {
		b, isAside := line(len(g.user) + len(g.service) + 2*maxPadWidth + 21*len(g.pids) + 48*len(g.ips))
		b = pad(append(b, g.user...), textWidth(g.user), width[0])
		n := len(b)
		b = strconv.AppendInt(b, int64(g.conns), 10)
		b = pad(b, len(b)-n, width[1])
		b = pad(append(b, g.service...), textWidth(g.service), width[2])
		n = len(b)
		b = append(b, '(')
		for i, pid := range g.pids {
			if i > 0 {
				b = append(b, ' ')
			}
			b = strconv.AppendInt(b, pid, 10)
		}
		b = append(b, ')')
		b = pad(b, len(b)-n, width[3])
		b = append(b, '(')
		for i, ip := range g.ips {
			if i > 0 {
				b = append(b, ' ')
			}
			b = ip.AppendTo(b)
		}
		b = append(b, ")\n"...)
		if _, err := bw.Write(b); err != nil {
			return err
		}
		if isAside {
			aside = b
		}
	}
	if !ok {
		return bw.Flush()
	}
	return nil
}

// decLen is the length of n in decimal.
func decLen(n int64) int {
	l := 1
	if n < 0 {
		l, n = 2, -n // MinInt64's digits are those of MaxInt64
		if n < 0 {
			return 20
		}
	}
	for ; n >= 10; n /= 10 {
		l++
	}
	return l
}

// matching returns the sessions the filter selects, in anvil's order (as
// doveadm prints them): sorting 100,000 rows would cost more than reading
// them.
func matching(snap *anvil.Snapshot, f *match.Filter) []*anvil.Session {
	out := make([]*anvil.Session, 0, len(snap.Sessions))
	for i := range snap.Sessions {
		if s := &snap.Sessions[i]; f.Match(s) {
			out = append(out, s)
		}
	}
	return out
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func writeWhoJSON(w io.Writer, snap *anvil.Snapshot, f *match.Filter) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, s := range matching(snap, f) {
		if err := enc.Encode(snapshot.RecordOf(s)); err != nil {
			return err
		}
	}
	return nil
}
