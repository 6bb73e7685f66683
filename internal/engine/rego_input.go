package engine

import (
	"net/netip"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/kickagent/kickagent/internal/anvil"
)

// The input document is built directly as OPA AST values: no JSON round
// trip, no ast.InterfaceToValue (opa-performance.md §1b: 170 ms for 100k
// sessions built directly, 236-664 ms through conversion; reusing the
// cached per-session terms costs 3.8 ms).

// Keys, shared by every object built (terms are never mutated).
var (
	regoKeySessions     = ast.StringTerm("sessions")
	regoKeyNow          = ast.StringTerm("now")
	regoKeyNowNs        = ast.StringTerm("now_ns")
	regoKeyDovecot      = ast.StringTerm("dovecot")
	regoKeyAllow        = ast.StringTerm("allow")
	regoKeyUsers        = ast.StringTerm("users")
	regoKeyNetworks     = ast.StringTerm("networks")
	regoKeyID           = ast.StringTerm("id")
	regoKeyUser         = ast.StringTerm("user")
	regoKeyService      = ast.StringTerm("service")
	regoKeyPID          = ast.StringTerm("pid")
	regoKeyIP           = ast.StringTerm("ip")
	regoKeyConnGUID     = ast.StringTerm("conn_guid")
	regoKeyDestIP       = ast.StringTerm("dest_ip")
	regoKeyAlt          = ast.StringTerm("alt")
	regoKeyConnections  = ast.StringTerm("connections")
	regoKeyFirstSeen    = ast.StringTerm("first_seen")
	regoKeyFirstSeenNs  = ast.StringTerm("first_seen_ns")
	regoKeyUserSessions = ast.StringTerm("user_sessions")
	regoKeyIPSessions   = ast.StringTerm("ip_sessions")
)

// regoAggregates are the per-user and per-client-IP session counts of one
// snapshot, computed in Go: a Rego policy would need a quadratic scan.
type regoAggregates struct {
	users map[string]int
	ips   map[netip.Addr]int
}

func countAggregates(snap *anvil.Snapshot) regoAggregates {
	a := regoAggregates{
		users: make(map[string]int, len(snap.Sessions)/2),
		ips:   make(map[netip.Addr]int, len(snap.Sessions)/2),
	}
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		a.users[s.User]++
		if s.IP.IsValid() {
			a.ips[s.IP]++
		}
	}
	return a
}

// of returns s's user_sessions and ip_sessions.
func (a *regoAggregates) of(s *anvil.Session) (users, ips int) {
	users = a.users[s.User]
	if s.IP.IsValid() {
		ips = a.ips[s.IP]
	}
	return users, ips
}

func addrString(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.String()
}

func timeString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// sessionTerm builds one element of input.sessions.
func sessionTerm(id string, s *anvil.Session, firstSeen time.Time, userSessions, ipSessions int) *ast.Term {
	alt := ast.NewObject()
	s.AltFields(func(field, value string) {
		alt.Insert(ast.StringTerm(field), ast.StringTerm(value))
	})
	guid := regoEmpty
	if s.ConnGUID != "" {
		guid = ast.StringTerm(s.ConnGUID)
	}
	return ast.ObjectTerm(
		ast.Item(regoKeyID, ast.StringTerm(id)),
		ast.Item(regoKeyUser, ast.StringTerm(s.User)),
		ast.Item(regoKeyService, ast.InternedTerm(s.Service)),
		ast.Item(regoKeyPID, ast.InternedTerm(s.PID)),
		ast.Item(regoKeyIP, addrTerm(s.IP)),
		ast.Item(regoKeyConnGUID, guid),
		ast.Item(regoKeyDestIP, addrTerm(s.DestIP)),
		ast.Item(regoKeyAlt, ast.NewTerm(alt)),
		ast.Item(regoKeyConnections, ast.InternedTerm(s.Connections)),
		ast.Item(regoKeyFirstSeen, ast.StringTerm(timeString(firstSeen))),
		ast.Item(regoKeyFirstSeenNs, ast.InternedTerm(firstSeen.UnixNano())),
		ast.Item(regoKeyUserSessions, ast.InternedTerm(userSessions)),
		ast.Item(regoKeyIPSessions, ast.InternedTerm(ipSessions)),
	)
}

var regoEmpty = ast.StringTerm("")

func addrTerm(ip netip.Addr) *ast.Term {
	if !ip.IsValid() {
		return regoEmpty
	}
	return ast.StringTerm(ip.String())
}

// allowTerm builds input.allow.
func allowTerm(a *Allow) *ast.Term {
	users := ast.NewArray()
	nets := ast.NewArray()
	if a != nil {
		for _, u := range a.Users {
			users = users.Append(ast.StringTerm(u))
		}
		for _, n := range a.Networks {
			nets = nets.Append(ast.StringTerm(n.String()))
		}
	}
	return ast.ObjectTerm(
		ast.Item(regoKeyUsers, ast.NewTerm(users)),
		ast.Item(regoKeyNetworks, ast.NewTerm(nets)),
	)
}

// inputValue builds the input document around the given session terms.
func inputValue(sessions []*ast.Term, now time.Time, proto anvil.Protocol, allow *ast.Term) ast.Value {
	return ast.NewObject(
		ast.Item(regoKeySessions, ast.NewTerm(ast.NewArray(sessions...))),
		ast.Item(regoKeyNow, ast.StringTerm(timeString(now))),
		ast.Item(regoKeyNowNs, ast.InternedTerm(now.UnixNano())),
		ast.Item(regoKeyDovecot, ast.StringTerm(proto.Dovecot())),
		ast.Item(regoKeyAllow, allow),
	)
}

// sameSession reports whether a and b carry the same input fields (the
// id is equal already; Connections and alt values may change).
func sameSession(a, b *anvil.Session) bool {
	if a.Service != b.Service || a.User != b.User || a.IP != b.IP || a.PID != b.PID ||
		a.ConnGUID != b.ConnGUID || a.DestIP != b.DestIP || a.Connections != b.Connections {
		return false
	}
	return sameAlt(a, b)
}

// sameAlt compares the alt fields as sets of pairs: the header order is
// not stable between dumps.
func sameAlt(a, b *anvil.Session) bool {
	if len(a.AltValues()) == 0 && len(b.AltValues()) == 0 {
		return true
	}
	na, nb, eq := 0, 0, true
	a.AltFields(func(field, value string) {
		na++
		if v, ok := b.Alt(field); !ok || v != value {
			eq = false
		}
	})
	if !eq {
		return false
	}
	b.AltFields(func(string, string) { nb++ })
	return na == nb
}
