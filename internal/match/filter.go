package match

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/kickagent/kickagent/internal/anvil"
)

// ErrUsage marks filter arguments doveadm would reject with EX_USAGE.
var ErrUsage = errors.New("usage")

// Filter selects sessions as doveadm who/kick do. The zero Filter matches
// every session.
type Filter struct {
	// Masks are user masks, OR-ed (as doveadm 2.4.2+). Empty: any user.
	Masks []string
	// Network is the ip[/bits] argument, if any (see HasNetwork).
	Network Network
	// AltField, when set, makes Masks match that alt-username (passdb
	// user_*) field instead of the login name.
	AltField string
	// DestIP, when valid, selects only proxied sessions to that backend.
	DestIP netip.Addr
}

// HasNetwork reports whether the filter restricts client IPs. As in doveadm,
// a /0 network restricts nothing: it matches sessions without an IP too.
func (f *Filter) HasNetwork() bool { return f.Network.IsValid() && f.Network.Bits() > 0 }

// Parse splits positional arguments as doveadm does: an argument that is
// not all digits and parses as ip or ip/bits is the network (at most one,
// a later one replacing a /0 as in doveadm); every other argument, the
// empty one included, is a user mask. Network-like text doveadm would read
// in a surprising way is refused (ErrNotCanonical), never taken for a
// mask, which would widen the selection. altField is the -f field, which
// needs at least one mask.
func Parse(args []string, altField string) (Filter, error) {
	f := Filter{AltField: altField}
	for _, a := range args {
		n, isNet, err := ClassifyArg(a)
		if err != nil {
			return Filter{}, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		if !isNet {
			f.Masks = append(f.Masks, a)
			continue
		}
		if f.HasNetwork() {
			return Filter{}, fmt.Errorf("%w: multiple network masks not supported (%s, %s)", ErrUsage, f.Network, a)
		}
		f.Network = n
	}
	if altField != "" && len(f.Masks) == 0 {
		return Filter{}, fmt.Errorf("%w: a user mask must be given with the passdb field (-f %s)", ErrUsage, altField)
	}
	return f, nil
}

// ClassifyArg tells a network argument from a user mask, as doveadm does
// (all digits: a mask; parses as ip[/bits]: a network), and refuses text
// ParseNetwork refuses. It is the one classification used by who, kick and
// the job commands.
func ClassifyArg(a string) (Network, bool, error) {
	if a == "" || isDigits(a) {
		return Network{}, false, nil
	}
	n, err := ParseNetwork(a)
	switch {
	case err == nil:
		return n, true, nil
	case errors.Is(err, ErrNotCanonical):
		return Network{}, false, err
	}
	return Network{}, false, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// MatchName reports whether name matches any of the masks (true for none).
func (f *Filter) MatchName(name string) bool {
	if len(f.Masks) == 0 {
		return true
	}
	for _, m := range f.Masks {
		if Wildcard(name, m) {
			return true
		}
	}
	return false
}

// MatchUser applies the user masks to s: to its login name, or with
// AltField to that alt field (a session lacking the field never matches).
func (f *Filter) MatchUser(s *anvil.Session) bool {
	if len(f.Masks) == 0 {
		return true
	}
	if f.AltField == "" {
		return f.MatchName(s.User)
	}
	v, ok := s.Alt(f.AltField)
	return ok && f.MatchName(v)
}

// MatchIP applies the network to one client IP.
func (f *Filter) MatchIP(ip netip.Addr) bool {
	return !f.HasNetwork() || f.Network.Contains(ip)
}

// Match reports whether the session is selected by every part of f.
func (f *Filter) Match(s *anvil.Session) bool {
	if f.DestIP.IsValid() && !SameDest(s.DestIP, f.DestIP) {
		return false
	}
	return f.MatchIP(s.IP) && f.MatchUser(s)
}

// IsZero reports whether f selects every session.
func (f *Filter) IsZero() bool {
	return len(f.Masks) == 0 && !f.HasNetwork() && !f.DestIP.IsValid()
}
