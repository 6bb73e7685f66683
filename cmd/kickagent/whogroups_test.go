package main

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
)

// refGroups is the aggregated listing computed naively: grouped in a map,
// sorted stably, printed by the generic table.
func refGroups(snap *anvil.Snapshot, f *match.Filter) string {
	type key struct {
		user, service string
		ip            netip.Addr
	}
	type group struct {
		user, service string
		conns         int
		pids          []int64
		ips           []netip.Addr
		altMatched    bool
	}
	idx := map[key]*group{}
	var order []*group
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		k := key{user: s.User, service: s.Service}
		if s.User == "" && snap.Protocol == anvil.Proto24 {
			k.ip = s.IP
		}
		g := idx[k]
		if g == nil {
			g = &group{user: s.User, service: s.Service}
			idx[k] = g
			order = append(order, g)
		}
		g.conns += max(s.Connections, 1)
		g.altMatched = g.altMatched || (f.AltField != "" && f.MatchUser(s))
		if s.IP.IsValid() && !slices.Contains(g.ips, s.IP) {
			g.ips = append(g.ips, s.IP)
		}
		if !slices.Contains(g.pids, s.PID) {
			g.pids = append(g.pids, s.PID)
		}
	}
	slices.SortStableFunc(order, func(x, y *group) int {
		return cmp.Or(strings.Compare(x.user, y.user), strings.Compare(x.service, y.service))
	})
	title := "service"
	if snap.Protocol == anvil.Proto23 {
		title = "proto"
	}
	t := newTable("username", "#", title, "(pids)", "(ips)")
	for _, g := range order {
		if (f.AltField != "" && !g.altMatched) || (f.AltField == "" && !f.MatchName(g.user)) ||
			(f.HasNetwork() && !slices.ContainsFunc(g.ips, f.MatchIP)) {
			continue
		}
		var pids, ips []string
		for _, p := range g.pids {
			pids = append(pids, strconv.FormatInt(p, 10))
		}
		for _, ip := range g.ips {
			ips = append(ips, ip.String())
		}
		t.add(g.user, strconv.Itoa(g.conns), g.service, "("+strings.Join(pids, " ")+")", "("+strings.Join(ips, " ")+")")
	}
	var b bytes.Buffer
	if err := t.write(&b); err != nil {
		panic(err)
	}
	return b.String()
}

func TestWhoAggregatedLikeNaive(t *testing.T) {
	filters := [][]string{nil, {"anna*"}, {"198.0.0.0/8"}, {"*", "2001:db8::/32"}}
	for _, p := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		for seed := range uint64(3) {
			snap := randomSnap(p, 30000, seed)
			// Fewer users than sessions: groups with many pids and IPs,
			// whose cells are wider than maxPadWidth.
			for i := range snap.Sessions {
				if s := &snap.Sessions[i]; i%3 == 0 && s.User != "" {
					s.User = s.User[:min(len(s.User), 6)]
					s.PID %= 5000
				}
			}
			for _, args := range filters {
				alt := ""
				if p == anvil.Proto24 && seed == 2 {
					alt = "user_ext"
					args = []string{"ext1*"}
				}
				f, err := match.Parse(args, alt)
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				if err := writeWhoAggregated(&out, snap, &f); err != nil {
					t.Fatal(err)
				}
				if want := refGroups(snap, &f); out.String() != want {
					g, w := strings.Split(out.String(), "\n"), strings.Split(want, "\n")
					for i := range min(len(g), len(w)) {
						if g[i] != w[i] {
							t.Fatalf("%v seed %d %q line %d:\n got %q\nwant %q", p, seed, args, i, g[i], w[i])
						}
					}
					t.Fatalf("%v seed %d %q: %d lines, want %d", p, seed, args, len(g), len(w))
				}
			}
		}
	}
}

// A table that starts small grows many times, keeping every group.
func TestWhoAggregatorGrows(t *testing.T) {
	for _, p := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		snap := randomSnap(p, 5000, 7)
		f := &match.Filter{}
		a := newAggregator(p, f)
		a.slots = make([]uint64, 2)
		for i := range snap.Sessions {
			a.add(&snap.Sessions[i])
		}
		var out bytes.Buffer
		if err := writeGroups(&out, p, a, f); err != nil {
			t.Fatal(err)
		}
		if len(a.slots) < 4096 {
			t.Errorf("%v: %d slots for %d groups", p, len(a.slots), a.n)
		}
		if want := refGroups(snap, f); out.String() != want {
			t.Errorf("%v: output differs from the naive one", p)
		}
	}
}

// Past 16 service names, they are indexed by a map.
func TestWhoAggregatedManyServices(t *testing.T) {
	snap := randomSnap(anvil.Proto24, 3000, 3)
	for i := range snap.Sessions {
		snap.Sessions[i].Service = "svc" + strconv.Itoa(i%40)
	}
	f := &match.Filter{}
	var out bytes.Buffer
	if err := writeWhoAggregated(&out, snap, f); err != nil {
		t.Fatal(err)
	}
	if want := refGroups(snap, f); out.String() != want {
		t.Error("output differs from the naive one")
	}
}

// Names that tie on a sort prefix: NULs, lengths around it, long names
// sharing it, one character spelt two ways.
func TestWhoAggregatedSortTies(t *testing.T) {
	long := strings.Repeat("p", 24)
	names := []string{"", "a", "a\x00", "a\x00b", "a\x00\x00", long, long + "b", long + "a", long + "\x00", long[:23], long[:23] + "\x00", "é", "e\xcc\x81"}
	snap := &anvil.Snapshot{Protocol: anvil.Proto24}
	for i := range 3 * len(names) {
		svc := []string{"pop3", "imap", "imap-login"}[i%3]
		snap.Sessions = append(snap.Sessions, anvil.Session{User: names[(i*7)%len(names)], Service: svc, PID: int64(i), Connections: 1})
	}
	f := &match.Filter{}
	var out bytes.Buffer
	if err := writeWhoAggregated(&out, snap, f); err != nil {
		t.Fatal(err)
	}
	if want := refGroups(snap, f); out.String() != want {
		t.Errorf("got\n%q\nwant\n%q", out.String(), want)
	}
}

// A user with many sessions: pids and IPs past distinctScan, repeated.
func TestWhoAggregatedBigGroup(t *testing.T) {
	snap := &anvil.Snapshot{Protocol: anvil.Proto23}
	for i := range 3000 {
		snap.Sessions = append(snap.Sessions, anvil.Session{
			User: "big", Service: "imap", PID: int64(i*7919) % 701, Connections: 1 + i%2,
			IP: netip.AddrFrom4([4]byte{192, 0, byte(i % 3), byte((i * 31) % 97)}),
		})
	}
	f := &match.Filter{}
	var out bytes.Buffer
	if err := writeWhoAggregated(&out, snap, f); err != nil {
		t.Fatal(err)
	}
	if want := refGroups(snap, f); out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// The listing sorted and formatted on two goroutines (from
// parallelGroups groups on) is the one of a single goroutine, at every
// split: groups that sort equal but for their number, halves of odd size.
func TestWhoAggregatedParallelSame(t *testing.T) {
	for _, p := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		snap := randomSnap(p, 5000, 7)
		for i := range snap.Sessions {
			if s := &snap.Sessions[i]; i%4 == 0 && s.User != "" {
				s.User = s.User[:min(len(s.User), 3)] // ties on the prefix key
			}
		}
		var f match.Filter
		list := func(from int) string {
			defer func(v int) { parallelGroups = v }(parallelGroups)
			parallelGroups = from
			var out bytes.Buffer
			if err := writeWhoAggregated(&out, snap, &f); err != nil {
				t.Fatal(err)
			}
			return out.String()
		}
		want := list(1 << 30)
		for _, from := range []int{1, 2, 3, 1000} {
			if got := list(from); got != want {
				t.Fatalf("%v, parallel from %d groups: the listing differs", p, from)
			}
		}
	}
}
