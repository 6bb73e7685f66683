package main

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
)

// whoGroup is one row of the aggregated listing: a user on a service. It
// fills one 64-byte cache line: a lookup of a group with one pid and one
// IP (most of them) reads nothing else but the username.
type whoGroup struct {
	user       string
	conns      int32
	svc        uint16 // index in aggregator.svc
	altMatched bool   // with -f: a session's alt value matched the masks
	pid0       int64
	ip0        netip.Addr // first valid IP (the key of a group keyed by IP)
	more       *groupMore
}

// groupMore holds a group's pids and IPs after its first ones.
type groupMore struct {
	pids distinct[int64]
	ips  distinct[netip.Addr]
}

// distinct is a list of distinct values in the order first seen. A long
// one is indexed by a set: a user with thousands of sessions would
// otherwise cost a scan of all of them per session.
type distinct[T comparable] struct {
	list []T
	set  map[T]struct{}
}

const distinctScan = 64

// add appends v unless the list has it.
func (d *distinct[T]) add(v T) {
	if d.set != nil {
		if _, ok := d.set[v]; ok {
			return
		}
		d.set[v] = struct{}{}
	} else if slices.Contains(d.list, v) {
		return
	} else if len(d.list) >= distinctScan {
		d.set = make(map[T]struct{}, 2*len(d.list))
		for _, x := range d.list {
			d.set[x] = struct{}{}
		}
		d.set[v] = struct{}{}
	}
	d.list = append(d.list, v)
}

// size is how many pids and IPs the group has.
func (g *whoGroup) size() (pids, ips int) {
	if g.ip0.IsValid() {
		ips = 1
	}
	if g.more == nil {
		return 1, ips
	}
	return 1 + len(g.more.pids.list), ips + len(g.more.ips.list)
}

// ips calls fn for each of the group's IPs, in the order first seen.
func (g *whoGroup) ips(fn func(netip.Addr) bool) bool {
	if g.ip0.IsValid() && fn(g.ip0) {
		return true
	}
	if g.more != nil {
		return slices.ContainsFunc(g.more.ips.list, fn)
	}
	return false
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
	svc    []string // services seen, kept once each
	svcIdx map[string]uint16
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

// service returns the index of a service name, adding it if new. A dump
// names a handful: they are scanned, and indexed by a map past 16.
func (a *aggregator) service(s string) (uint16, bool) {
	if a.svcIdx != nil {
		i, ok := a.svcIdx[s]
		if !ok && len(a.svc) <= 1<<16-1 {
			i, ok = uint16(len(a.svc)), true
			a.svc = append(a.svc, strings.Clone(s))
			a.svcIdx[a.svc[i]] = i
		}
		return i, ok
	}
	for i, v := range a.svc {
		if v == s {
			return uint16(i), true
		}
	}
	a.svc = append(a.svc, strings.Clone(s))
	if len(a.svc) > 16 {
		a.svcIdx = make(map[string]uint16, 64)
		for i, v := range a.svc {
			a.svcIdx[v] = uint16(i)
		}
	}
	return uint16(len(a.svc) - 1), true
}

func (a *aggregator) add(s *anvil.Session) {
	svc, ok := a.service(s.Service)
	if !ok {
		return // unreachable: more than 65,536 service names
	}
	byIP := a.byIP(s.User)
	var ip netip.Addr
	if byIP {
		ip = s.IP
	}
	h := a.hash(s.User, s.Service, ip)
	tag := h &^ (1<<32 - 1)
	mask := uint64(len(a.slots) - 1)
	i := h & mask
	var g *whoGroup
	for ; a.slots[i] != 0; i = (i + 1) & mask {
		if a.slots[i]&^(1<<32-1) != tag {
			continue
		}
		// A group keyed by IP holds it as its first (or no valid one).
		c := a.group(int(a.slots[i]&(1<<32-1)) - 1)
		if c.svc == svc && c.user == s.User && (!byIP || c.ip0 == s.IP) {
			g = c
			break
		}
	}
	if g == nil {
		if a.n>>chunkBits == len(a.chunks) {
			a.chunks = append(a.chunks, make([]whoGroup, 1<<chunkBits))
		}
		g = a.group(a.n)
		a.n++
		*g = whoGroup{user: strings.Clone(s.User), svc: svc, pid0: s.PID, ip0: s.IP}
		a.slots[i] = tag | uint64(a.n)
		if 4*a.n > 3*len(a.slots) {
			a.grow()
		}
	} else {
		if s.PID != g.pid0 {
			g.spill().pids.add(s.PID)
		}
		if s.IP.IsValid() && s.IP != g.ip0 {
			if !g.ip0.IsValid() {
				g.ip0 = s.IP
			} else {
				g.spill().ips.add(s.IP)
			}
		}
	}
	g.conns += int32(max(s.Connections, 1))
	if a.f.AltField != "" && !g.altMatched && a.f.MatchUser(s) {
		g.altMatched = true
	}
}

func (g *whoGroup) spill() *groupMore {
	if g.more == nil {
		g.more = new(groupMore)
	}
	return g.more
}

// grow doubles the table; slots are rehashed from the groups' keys.
func (a *aggregator) grow() {
	slots := make([]uint64, 2*len(a.slots))
	mask := uint64(len(slots) - 1)
	for n := range a.n {
		g := a.group(n)
		h := a.hash(g.user, a.svc[g.svc], g.ip0)
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
	n      int // group number: groups that sort equal keep the order first seen
}

func prefixKey(s string) (uint64, uint64) {
	var b [16]byte
	copy(b[:], s) // zero-padded: a shorter name sorts first, as it should
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// sorted returns the numbers of the groups f selects by user and service.
// It reads the groups in memory order, once: visit sees each selected
// group there (to measure the columns) before the sort scatters them.
func (a *aggregator) sorted(f *match.Filter, visit func(*whoGroup)) []sortKey {
	keys := make([]sortKey, 0, a.n)
	for n := range a.n {
		if g := a.group(n); groupMatches(g, f) {
			visit(g)
			p0, p1 := prefixKey(g.user)
			keys = append(keys, sortKey{p0, p1, n})
		}
	}
	order := func(x, y sortKey) int {
		if c := cmp.Compare(x.p0, y.p0); c != 0 {
			return c
		}
		if c := cmp.Compare(x.p1, y.p1); c != 0 {
			return c
		}
		gx, gy := a.group(x.n), a.group(y.n)
		if c := strings.Compare(gx.user, gy.user); c != 0 {
			return c
		}
		if c := strings.Compare(a.svc[gx.svc], a.svc[gy.svc]); c != 0 {
			return c
		}
		return cmp.Compare(x.n, y.n)
	}
	if len(keys) < parallelGroups {
		slices.SortFunc(keys, order)
		return keys
	}
	// The dump is over and anvil idle: the halves sort on both cores,
	// then merge. order is total (the group number breaks ties), so the
	// result is the one sort's.
	mid := len(keys) / 2
	done := make(chan struct{})
	go func() {
		defer close(done)
		slices.SortFunc(keys[mid:], order)
	}()
	slices.SortFunc(keys[:mid], order)
	<-done
	out := make([]sortKey, 0, len(keys))
	i, j := 0, mid
	for i < mid && j < len(keys) {
		if order(keys[j], keys[i]) < 0 {
			out = append(out, keys[j])
			j++
		} else {
			out = append(out, keys[i])
			i++
		}
	}
	out = append(append(out, keys[i:mid]...), keys[j:]...)
	return out
}

// parallelGroups is the number of groups from which the listing is
// sorted and formatted on two goroutines (a variable for tests): at
// 40,000 groups they are 30 ms of one core after the dump.
var parallelGroups = 8192

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
	return g.ips(f.MatchIP)
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
	svcSeen := make([]bool, len(a.svc))
	keys := a.sorted(f, func(g *whoGroup) {
		fit(0, textWidth(g.user))
		fit(1, decLen(int64(g.conns)))
		svcSeen[g.svc] = true
		n := 2 + decLen(g.pid0) // parentheses
		if g.more != nil {
			for _, pid := range g.more.pids.list {
				n += 1 + decLen(pid)
			}
		}
		fit(3, n)
	})
	for i, s := range a.svc {
		if svcSeen[i] {
			fit(2, textWidth(s))
		}
	}
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
	// With many groups, a goroutine formats the second half into a
	// buffer of its own while this one writes the first.
	first, second := keys, keys[len(keys):]
	var tail []byte
	done := make(chan struct{})
	if len(keys) >= parallelGroups {
		first, second = keys[:len(keys)/2], keys[len(keys)/2:]
		go func() {
			defer close(done)
			// Room for lines of the padded widths and an IPv6 address:
			// growing the buffer copied it ~5 ms a listing.
			tail = make([]byte, 0, len(second)*(width[0]+width[1]+width[2]+width[3]+48))
			for _, k := range second {
				tail = a.formatGroup(tail, a.group(k.n), &width)
			}
		}()
	} else {
		close(done)
	}
	for _, k := range first {
		g := a.group(k.n)
		pids, ips := g.size()
		b, isAside := line(len(g.user) + len(a.svc[g.svc]) + 2*maxPadWidth + 21*pids + 48*ips)
		b = a.formatGroup(b, g, &width)
		if _, err := bw.Write(b); err != nil {
			<-done
			return err
		}
		if isAside {
			aside = b
		}
	}
	<-done
	if _, err := bw.Write(tail); err != nil {
		return err
	}
	if !ok {
		return bw.Flush()
	}
	return nil
}

// formatGroup appends g's line, its columns padded to width.
func (a *aggregator) formatGroup(b []byte, g *whoGroup, width *[4]int) []byte {
	svc := a.svc[g.svc]
	b = pad(append(b, g.user...), textWidth(g.user), width[0])
	n := len(b)
	b = strconv.AppendInt(b, int64(g.conns), 10)
	b = pad(b, len(b)-n, width[1])
	b = pad(append(b, svc...), textWidth(svc), width[2])
	n = len(b)
	b = strconv.AppendInt(append(b, '('), g.pid0, 10)
	if g.more != nil {
		for _, pid := range g.more.pids.list {
			b = strconv.AppendInt(append(b, ' '), pid, 10)
		}
	}
	b = append(b, ')')
	b = pad(b, len(b)-n, width[3])
	b = append(b, '(')
	sep := false
	g.ips(func(ip netip.Addr) bool {
		if sep {
			b = append(b, ' ')
		}
		b, sep = ip.AppendTo(b), true
		return false
	})
	return append(b, ")\n"...)
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
