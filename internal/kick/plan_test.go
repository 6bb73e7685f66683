package kick

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// s23 is a 2.3 record: one (ident, pid) with refcount conns.
func s23(pid int64, service, user, ip string, conns int) anvil.Session {
	s := anvil.Session{PID: pid, Service: service, User: user, Connections: conns}
	if ip != "" {
		s.IP = netip.MustParseAddr(ip)
	}
	return s
}

// guidN returns a distinct, valid connection GUID.
func guidN(n int) string { return fmt.Sprintf("%032x", n) }

// s24 is a 2.4 record; dest is the proxy destination ("" when not proxied).
func s24(pid int64, service, user, ip string, guid int, dest string) anvil.Session {
	s := anvil.Session{PID: pid, Service: service, User: user, ConnGUID: guidN(guid), Connections: 1}
	if ip != "" {
		s.IP = netip.MustParseAddr(ip)
	}
	if dest != "" {
		s.DestIP = netip.MustParseAddr(dest)
	}
	return s
}

func snap23(ss ...anvil.Session) *anvil.Snapshot {
	return &anvil.Snapshot{Protocol: anvil.Proto23, Sessions: ss}
}

func snap24(ss ...anvil.Session) *anvil.Snapshot {
	return &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: ss}
}

func byUser(users ...string) func(*anvil.Session) bool {
	return func(s *anvil.Session) bool { return slices.Contains(users, s.User) }
}

// desc renders sessions as "user@pid/ip" for comparisons.
func desc(ss []*anvil.Session) string {
	var parts []string
	for _, s := range ss {
		ip := "-"
		if s.IP.IsValid() {
			ip = s.IP.String()
		}
		parts = append(parts, fmt.Sprintf("%s@%d/%s/%s", s.User, s.PID, s.Service, ip))
	}
	return strings.Join(parts, " ")
}

// unitDesc renders a unit as "pid user: targets | collateral".
func unitDesc(u *Unit) string {
	return fmt.Sprintf("%d %s %s: %s | %s", u.PID, u.User, u.Service, desc(u.Targets), desc(u.Collateral))
}

func planDesc(p *Plan) []string {
	var out []string
	for _, u := range p.Units {
		out = append(out, unitDesc(u))
	}
	for _, sk := range p.Skipped {
		out = append(out, "skip "+desc([]*anvil.Session{sk.Session}))
	}
	return out
}

func TestPlan23GroupsByPID(t *testing.T) {
	snap := snap23(
		s23(300, "imap", "bob", "127.0.0.4", 1),   // shared imap process
		s23(100, "imap", "alice", "127.0.0.2", 1), // alice's own process
		s23(300, "imap", "alice", "127.0.0.3", 2), // refcount 2 in the shared process
		s23(200, "pop3", "alice", "::1", 1),
		s23(400, "lmtp", "alice", "", 1), // delivery: never signalled
		s23(500, "imap", "carol", "127.0.0.5", 1),
	)
	p := NewPlan(snap, byUser("alice"))
	want := []string{
		"100  imap: alice@100/imap/127.0.0.2 | ",
		"200  pop3: alice@200/pop3/::1 | ",
		"300  imap: alice@300/imap/127.0.0.3 | bob@300/imap/127.0.0.4",
		"skip alice@400/lmtp/-",
	}
	if got := planDesc(p); !slices.Equal(got, want) {
		t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if p.Protocol != anvil.Proto23 {
		t.Errorf("protocol %v", p.Protocol)
	}
	// 1 + 1 + refcount 2; the lmtp record is not selected for kicking.
	if n := p.Selected(); n != 4 {
		t.Errorf("Selected() = %d, want 4", n)
	}
	// Selecting both users of the shared process leaves no collateral.
	p = NewPlan(snap, byUser("alice", "bob"))
	for _, u := range p.Units {
		if len(u.Collateral) > 0 {
			t.Errorf("unit %s has collateral", unitDesc(u))
		}
	}
	if len(p.Units) != 3 {
		t.Errorf("%d units, want 3 (one per pid)", len(p.Units))
	}
	// Nothing selected: no units, nothing skipped.
	if p = NewPlan(snap, byUser("nobody")); len(p.Units)+len(p.Skipped) != 0 {
		t.Errorf("plan for nobody: %v", planDesc(p))
	}
}

// TestPlan23SameUserOtherIP: on 2.3 a process serving the same user from
// another, unselected IP is collateral too (the signal ends the whole
// process).
func TestPlan23SameUserOtherIP(t *testing.T) {
	snap := snap23(
		s23(300, "imap", "alice", "127.0.0.2", 1),
		s23(300, "imap", "alice", "127.0.0.3", 1),
	)
	p := NewPlan(snap, func(s *anvil.Session) bool { return s.IP == netip.MustParseAddr("127.0.0.2") })
	want := []string{"300  imap: alice@300/imap/127.0.0.2 | alice@300/imap/127.0.0.3"}
	if got := planDesc(p); !slices.Equal(got, want) {
		t.Errorf("plan %q, want %q", got, want)
	}
}

func TestPlan24PerPIDAndUser(t *testing.T) {
	snap := snap24(
		s24(10, "imap-login", "alice", "127.0.0.2", 1, "127.0.0.1"),
		s24(10, "imap-login", "bob", "127.0.0.4", 2, "127.0.0.1"),
		s24(10, "imap-login", "alice", "127.0.0.3", 3, "127.0.0.1"),
		s24(20, "imap", "alice", "127.0.0.2", 4, ""),
		s24(30, "lmtp", "alice", "", 5, ""),
		s24(40, "pop3", "carol", "::1", 6, ""),
	)
	tests := []struct {
		name string
		sel  func(*anvil.Session) bool
		want []string
	}{
		{"one user", byUser("alice"), []string{
			"10 alice imap-login: alice@10/imap-login/127.0.0.2 alice@10/imap-login/127.0.0.3 | ",
			"20 alice imap: alice@20/imap/127.0.0.2 | ",
			"skip alice@30/lmtp/-",
		}},
		// KICK-USER alice guid closes all of alice's connections in pid 10,
		// but never bob's: bob is no collateral of alice's unit.
		{"user and ip", func(s *anvil.Session) bool {
			return s.User == "alice" && s.IP == netip.MustParseAddr("127.0.0.2")
		}, []string{
			"10 alice imap-login: alice@10/imap-login/127.0.0.2 | alice@10/imap-login/127.0.0.3",
			"20 alice imap: alice@20/imap/127.0.0.2 | ",
		}},
		{"two users in one pid", byUser("alice", "bob"), []string{
			"10 alice imap-login: alice@10/imap-login/127.0.0.2 alice@10/imap-login/127.0.0.3 | ",
			"10 bob imap-login: bob@10/imap-login/127.0.0.4 | ",
			"20 alice imap: alice@20/imap/127.0.0.2 | ",
			"skip alice@30/lmtp/-",
		}},
		{"bob only", byUser("bob"), []string{"10 bob imap-login: bob@10/imap-login/127.0.0.4 | "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPlan(snap, tc.sel)
			if got := planDesc(p); !slices.Equal(got, tc.want) {
				t.Errorf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// BenchmarkNewPlan100k plans the kick of one session in nine of 100,000.
func BenchmarkNewPlan100k(b *testing.B) {
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: anviltest.Sessions24(100000)}
	sel := func(s *anvil.Session) bool { return s.PID%9 == 0 }
	b.ReportAllocs()
	for b.Loop() {
		if p := NewPlan(snap, sel); len(p.Units) == 0 {
			b.Fatal("no units")
		}
	}
}
