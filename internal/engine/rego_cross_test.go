package engine

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Cross-session policies (issue 12): a policy that relates sessions must
// see the whole snapshot in input.sessions, however many sessions there
// are, however many CPUs, and whatever the decision cache holds.

// crossSessions makes n sessions (2.4, unique GUIDs) of about n/3 users,
// services imap/pop3/submission, a fifth from the office network
// 10.1.0.0/16. Ids start at base, so that fresh sessions can be added.
func crossSessions(rng *rand.Rand, n, base int) []anvil.Session {
	users := max(1, n/3)
	ss := make([]anvil.Session, n)
	for i := range ss {
		k := base + i
		ip := netip.AddrFrom4([4]byte{192, 0, byte(k >> 8), byte(k)})
		if rng.IntN(5) == 0 {
			ip = netip.AddrFrom4([4]byte{10, 1, byte(k >> 8), byte(k)})
		}
		ss[i] = anvil.Session{
			Service:     []string{"imap", "imap", "pop3", "submission"}[rng.IntN(4)],
			User:        fmt.Sprintf("u%d@example.com", rng.IntN(users)),
			IP:          ip,
			PID:         int64(1000 + rng.IntN(50_000)),
			ConnGUID:    fmt.Sprintf("%032x", k),
			Connections: 1,
		}
	}
	return ss
}

// noOfficePolicy kicks the sessions of users with no session from the
// office network.
const noOfficePolicy = `package kickagent

office_users := {t.user | some t in input.sessions; net.cidr_contains("10.1.0.0/16", t.ip)}

kick contains {"session": s.id, "rule": "no-office", "reason": s.user} if {
	some s in input.sessions
	not s.user in office_users
}
`

// perUserPolicy kicks the sessions of users with more than 4 sessions,
// counted in Rego (not with user_sessions).
const perUserPolicy = `package kickagent

kick contains {"session": s.id, "rule": "per-user", "reason": sprintf("%d", [n])} if {
	some s in input.sessions
	u := s.user
	n := count([1 | some t in input.sessions; t.user == u])
	n > 4
}
`

func evalIDs(t *testing.T, p *Policy, snap *anvil.Snapshot) []string {
	t.Helper()
	var ids []string
	for _, d := range mustEvaluate(t, p, PolicyInput{Snapshot: snap}) {
		ids = append(ids, d.ID)
	}
	return ids
}

// TestPolicyCrossSessionWhole: two cross-session policies against a
// brute-force Go reference, at sizes that were split into chunks (3,000
// sessions with 2 CPUs or more; 20,000 with any).
func TestPolicyCrossSessionWhole(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 1))
	t.Run("no office session", func(t *testing.T) {
		snap := &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: crossSessions(rng, 3000, 0)}
		office := netip.MustParsePrefix("10.1.0.0/16")
		inOffice := map[string]bool{}
		for _, s := range snap.Sessions {
			inOffice[s.User] = inOffice[s.User] || office.Contains(s.IP)
		}
		var want []string
		for _, s := range snap.Sessions {
			if !inOffice[s.User] {
				want = append(want, s.ID())
			}
		}
		p := mustLoadPolicy(t, noOfficePolicy)
		if p.CrossSession() == "" {
			t.Error("not detected as cross-session")
		}
		if got := evalIDs(t, p, snap); !slices.Equal(got, want) {
			t.Errorf("%d kicked, want %d", len(got), len(want))
		}
	})
	t.Run("sessions per user", func(t *testing.T) {
		snap := &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: crossSessions(rng, 20_000, 0)}
		perUser := map[string]int{}
		for _, s := range snap.Sessions {
			perUser[s.User]++
		}
		var want []string
		for _, s := range snap.Sessions {
			if perUser[s.User] > 4 {
				want = append(want, s.ID())
			}
		}
		p := mustLoadPolicy(t, perUserPolicy)
		if got := evalIDs(t, p, snap); !slices.Equal(got, want) {
			t.Errorf("%d kicked, want %d", len(got), len(want))
		}
		if st := p.Stats(); st.Evals != 1 {
			t.Errorf("%d Evals, want 1", st.Evals)
		}
	})
}

// A cross-session policy's decisions are reused only while the snapshot
// is unchanged; a new session, a gone one or a new order re-evaluates all.
func TestPolicyCrossSessionCache(t *testing.T) {
	p := mustLoadPolicy(t, noOfficePolicy)
	a := sess24("a", "alice@example.com", "10.1.0.1")
	b := sess24("b", "alice@example.com", "192.0.2.1")
	c := sess24("c", "bob@example.com", "192.0.2.2")
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, b, c)})
	wantStats(t, p, 3, 0, 1, true)
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, b, c)})
	wantStats(t, p, 0, 3, 1, false)
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, b, c)}) // alice left the office
	wantStats(t, p, 2, 0, 2, true)
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, c, b)})
	wantStats(t, p, 2, 0, 2, true)
	ds := mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, c, b, a)})
	wantStats(t, p, 3, 0, 1, true)
	if got := brief(ds); !slices.Equal(got, []string{"c no-office kick"}) {
		t.Errorf("got %q", got)
	}
}
