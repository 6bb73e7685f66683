package crowdsec

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/crowdsecurity/crowdsec/pkg/models"
)

// Scope is what a decision names: one client address, a network, or a login.
type Scope uint8

const (
	ScopeIP Scope = iota + 1
	ScopeRange
	ScopeUsername
)

var scopeNames = [...]string{ScopeIP: "ip", ScopeRange: "range", ScopeUsername: "username"}

func (s Scope) String() string {
	if int(s) < len(scopeNames) && scopeNames[s] != "" {
		return scopeNames[s]
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// parseScope maps the LAPI's scope strings (it answers "Ip", "Range" and
// "username", as typed by whoever made the decision) to a Scope.
func parseScope(s string) (Scope, bool) {
	for sc, name := range scopeNames {
		if name != "" && strings.EqualFold(s, name) {
			return Scope(sc), true
		}
	}
	return 0, false
}

// Decision is one LAPI decision in force: the thing it names, where it came
// from and until when (by the local clock: the LAPI sends what remains).
type Decision struct {
	ID       int64  // the LAPI's id; 0 if it sent none
	Type     string // "ban" unless Config.Types says otherwise
	Scope    Scope
	Value    string // canonical: an address, a masked prefix, or the login as sent
	Origin   string // cscli, crowdsec, lists, CAPI...
	Scenario string // the reason
	Until    time.Time

	prefix netip.Prefix // ip (as /32 or /128) and range
	user   string       // username, ASCII-folded
}

// Active reports whether d is still in force at now.
func (d Decision) Active(now time.Time) bool { return now.Before(d.Until) }

// errInvalid marks a decision that names something kickagent cannot parse.
var errInvalid = errors.New("invalid decision")

// skip says why a well-formed decision is not applied.
type skip string

const (
	skipNone      skip = ""
	skipType      skip = "type"      // not one of Config.Types
	skipScope     skip = "scope"     // a scope kickagent cannot enforce (Country, AS...)
	skipSimulated skip = "simulated" // the LAPI runs its scenario in simulation mode
	skipExpired   skip = "expired"   // no time left
)

// filter decides what new decisions are taken: their types, compared
// case-insensitively.
type filter struct{ types []string }

func (f filter) wants(typ string) bool {
	for _, t := range f.types {
		if strings.EqualFold(t, typ) {
			return true
		}
	}
	return false
}

// parseNew turns a decision from the stream's "new" list into a Decision
// valid until now plus its remaining duration. A decision kickagent does not
// enforce yields a skip reason; one it cannot read yields errInvalid.
func (f filter) parseNew(m *models.Decision, now time.Time) (Decision, skip, error) {
	if m == nil {
		return Decision{}, skipNone, fmt.Errorf("%w: null", errInvalid)
	}
	if m.Simulated != nil && *m.Simulated {
		return Decision{}, skipSimulated, nil
	}
	if !f.wants(str(m.Type)) {
		return Decision{}, skipType, nil
	}
	d, sk, err := parseTarget(m)
	if err != nil || sk != skipNone {
		return d, sk, err
	}
	left, err := remaining(m, now)
	if err != nil {
		return Decision{}, skipNone, err
	}
	if left <= 0 {
		return Decision{}, skipExpired, nil
	}
	d.Until = now.Add(left)
	return d, skipNone, nil
}

// parseTarget reads id, type, scope and value, canonicalising the value.
func parseTarget(m *models.Decision) (Decision, skip, error) {
	d := Decision{ID: m.ID, Type: str(m.Type), Origin: str(m.Origin), Scenario: str(m.Scenario)}
	sc, ok := parseScope(str(m.Scope))
	if !ok {
		return Decision{}, skipScope, nil
	}
	d.Scope = sc
	v := str(m.Value)
	switch sc {
	case ScopeIP:
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return Decision{}, skipNone, fmt.Errorf("%w: ip %q", errInvalid, v)
		}
		a = a.Unmap()
		d.prefix = netip.PrefixFrom(a, a.BitLen())
		d.Value = a.String()
	case ScopeRange:
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return Decision{}, skipNone, fmt.Errorf("%w: range %q", errInvalid, v)
		}
		// cscli stores "203.0.113.5/24" as typed; match on the network.
		p = unmapPrefix(p.Masked())
		d.prefix = p
		d.Value = p.String()
	case ScopeUsername:
		if v == "" {
			return Decision{}, skipNone, fmt.Errorf("%w: empty username", errInvalid)
		}
		d.user = foldASCII(v)
		d.Value = v
	}
	return d, skipNone, nil
}

// remaining is the decision's time left: its duration (a Go duration, as
// the LAPI writes it, negative once over), else its until timestamp.
func remaining(m *models.Decision, now time.Time) (time.Duration, error) {
	if m.Duration != nil {
		left, err := time.ParseDuration(*m.Duration)
		if err != nil {
			return 0, fmt.Errorf("%w: duration %q", errInvalid, *m.Duration)
		}
		return left, nil
	}
	if m.Until != "" {
		until, err := time.Parse(time.RFC3339, m.Until)
		if err != nil {
			return 0, fmt.Errorf("%w: until %q", errInvalid, m.Until)
		}
		return until.Sub(now), nil
	}
	return 0, fmt.Errorf("%w: no duration", errInvalid)
}

// unmapPrefix turns an IPv4-mapped IPv6 network (::ffff:a.b.c.d/96+n) into
// the IPv4 one, since client addresses are looked up unmapped.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// foldASCII lower-cases ASCII letters only: Dovecot's user masks compare
// ASCII case-insensitively (internal/match), and so do these logins.
func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
