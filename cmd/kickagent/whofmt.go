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
	sessions      []*anvil.Session
}

// aggregate groups sessions by (user, service) as doveadm who does. On 2.4
// sessions without a username are grouped by their first IP as well.
func aggregate(snap *anvil.Snapshot) []*whoGroup {
	type key struct {
		user, service string
		ip            netip.Addr
	}
	idx := make(map[key]*whoGroup)
	var groups []*whoGroup
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		k := key{user: s.User, service: s.Service}
		if s.User == "" && snap.Protocol == anvil.Proto24 {
			k.ip = s.IP
		}
		g := idx[k]
		if g == nil {
			g = &whoGroup{user: s.User, service: s.Service}
			idx[k] = g
			groups = append(groups, g)
		}
		g.conns += s.Connections
		g.sessions = append(g.sessions, s)
		if s.IP.IsValid() && !slices.Contains(g.ips, s.IP) {
			g.ips = append(g.ips, s.IP)
		}
		if !slices.Contains(g.pids, s.PID) {
			g.pids = append(g.pids, s.PID)
		}
	}
	slices.SortFunc(groups, func(a, b *whoGroup) int {
		if c := strings.Compare(a.user, b.user); c != 0 {
			return c
		}
		return strings.Compare(a.service, b.service)
	})
	return groups
}

// groupMatches applies the filter to a whole group as doveadm does: the
// masks to the username, the network to any of the group's IPs. With an alt
// field (which doveadm ignores here), any session's alt value may match.
func groupMatches(g *whoGroup, f *match.Filter) bool {
	if f.AltField != "" {
		if !slices.ContainsFunc(g.sessions, f.MatchUser) {
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
	t := newTable("username", "#", serviceTitle(snap), "(pids)", "(ips)")
	for _, g := range aggregate(snap) {
		if !groupMatches(g, f) {
			continue
		}
		pids := make([]string, len(g.pids))
		for i, p := range g.pids {
			pids[i] = strconv.FormatInt(p, 10)
		}
		ips := make([]string, len(g.ips))
		for i, ip := range g.ips {
			ips[i] = ip.String()
		}
		t.add(g.user, strconv.Itoa(g.conns), g.service,
			"("+strings.Join(pids, " ")+")", "("+strings.Join(ips, " ")+")")
	}
	return t.write(w)
}

// serviceTitle is doveadm's column title: "proto" in 2.3, "service" in 2.4.
func serviceTitle(snap *anvil.Snapshot) string {
	if snap.Protocol == anvil.Proto23 {
		return "proto"
	}
	return "service"
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
