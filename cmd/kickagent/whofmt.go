package main

import (
	"encoding/json"
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
type whoGroup struct {
	user, service string
	conns         int
	pids          []int64
	ips           []netip.Addr
	altMatched    bool // with -f: a session's alt value matched the masks
}

// aggregator groups sessions by (user, service) as doveadm who does. It
// takes sessions one by one (from a stream, whose strings are transient)
// and keeps one copy of each group's strings.
type aggregator struct {
	proto anvil.Protocol
	f     *match.Filter
	// idx finds a group by its key: user NUL service, and on 2.4 for
	// sessions without a username NUL IP too, as doveadm groups those by
	// IP. A string key hashes several times faster than a struct of
	// strings; key is the buffer it is built in.
	idx    map[string]*whoGroup
	key    []byte
	groups []*whoGroup
	slab   []whoGroup // groups are allocated in blocks
}

func newAggregator(p anvil.Protocol, f *match.Filter) *aggregator {
	// Sized for a large server up front: growing the map rehashes it.
	return &aggregator{proto: p, f: f, idx: make(map[string]*whoGroup, 1<<15)}
}

func (a *aggregator) add(s *anvil.Session) {
	k := append(append(append(a.key[:0], s.User...), 0), s.Service...)
	if s.User == "" && a.proto == anvil.Proto24 {
		k = s.IP.AppendTo(append(k, 0))
	}
	a.key = k
	g := a.idx[string(k)] // a lookup keeps no reference to the transient strings
	if g == nil {
		if len(a.slab) == cap(a.slab) {
			a.slab = make([]whoGroup, 0, 1024)
		}
		a.slab = append(a.slab, whoGroup{user: strings.Clone(s.User), service: strings.Clone(s.Service)})
		g = &a.slab[len(a.slab)-1]
		a.idx[string(k)] = g
		a.groups = append(a.groups, g)
	}
	g.conns += max(s.Connections, 1)
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

// sorted returns the groups by user and service.
func (a *aggregator) sorted() []*whoGroup {
	slices.SortFunc(a.groups, func(x, y *whoGroup) int {
		if c := strings.Compare(x.user, y.user); c != 0 {
			return c
		}
		return strings.Compare(x.service, y.service)
	})
	return a.groups
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

func writeGroups(w io.Writer, p anvil.Protocol, a *aggregator, f *match.Filter) error {
	title := "service"
	if p == anvil.Proto23 {
		title = "proto"
	}
	t := newTable("username", "#", title, "(pids)", "(ips)")
	var b []byte
	for _, g := range a.sorted() {
		if !groupMatches(g, f) {
			continue
		}
		b = append(b[:0], '(')
		for i, p := range g.pids {
			if i > 0 {
				b = append(b, ' ')
			}
			b = strconv.AppendInt(b, p, 10)
		}
		pids := string(append(b, ')'))
		b = append(b[:0], '(')
		for i, ip := range g.ips {
			if i > 0 {
				b = append(b, ' ')
			}
			b = ip.AppendTo(b)
		}
		ips := string(append(b, ')'))
		t.add(g.user, strconv.Itoa(g.conns), g.service, pids, ips)
	}
	return t.write(w)
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
