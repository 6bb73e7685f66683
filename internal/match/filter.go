package match

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

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
	Network netip.Prefix
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
// not all digits and parses as ip or ip/bits is the network (at most one);
// every other argument is a user mask. altField is the -f field, which
// needs at least one mask.
func Parse(args []string, altField string) (Filter, error) {
	f := Filter{AltField: altField}
	netGiven := false
	for _, a := range args {
		if p, ok := parseNetwork(a); ok {
			if netGiven {
				return Filter{}, fmt.Errorf("%w: multiple network masks not supported (%s, %s)", ErrUsage, f.Network, a)
			}
			f.Network, netGiven = p, true
			continue
		}
		if a == "" {
			return Filter{}, fmt.Errorf("%w: empty user mask", ErrUsage)
		}
		f.Masks = append(f.Masks, a)
	}
	if altField != "" && len(f.Masks) == 0 {
		return Filter{}, fmt.Errorf("%w: a user mask must be given with the passdb field (-f %s)", ErrUsage, altField)
	}
	return f, nil
}

// parseNetwork parses "ip" (full length) or "ip/bits"; "[v6]" brackets are
// accepted as Dovecot's net_addr2ip does. An all-digits argument is a user
// mask, never an address.
func parseNetwork(a string) (netip.Prefix, bool) {
	if a == "" || isDigits(a) {
		return netip.Prefix{}, false
	}
	addr, bits, hasBits := strings.Cut(a, "/")
	if strings.HasPrefix(addr, "[") && strings.HasSuffix(addr, "]") && strings.Contains(addr, ":") {
		addr = addr[1 : len(addr)-1]
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, false
	}
	n := ip.BitLen()
	if hasBits {
		// str_to_uint: digits only.
		if !isDigits(bits) {
			return netip.Prefix{}, false
		}
		v, err := strconv.Atoi(bits)
		if err != nil || v > ip.BitLen() {
			return netip.Prefix{}, false
		}
		n = v
	}
	return netip.PrefixFrom(ip, n), true
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

// InNetwork reports whether ip is in the network the way Dovecot's
// net_is_in_network is: an IPv4-mapped IPv6 session address is compared as
// IPv4, IPv4 never matches an IPv6 network (nor the reverse), and a missing
// address matches nothing.
func InNetwork(ip netip.Addr, network netip.Prefix) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	if ip.Is4() != network.Addr().Is4() {
		return false
	}
	return network.Masked().Contains(ip.WithZone(""))
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
	return !f.HasNetwork() || InNetwork(ip, f.Network)
}

// Match reports whether the session is selected by every part of f.
func (f *Filter) Match(s *anvil.Session) bool {
	// doveadm compares dest_ip with net_ip_compare, which ignores an IPv6
	// scope id: so does this (anvil 2.4.1 prints zones, "fe80::1%lo").
	if f.DestIP.IsValid() && s.DestIP.Unmap().WithZone("") != f.DestIP.Unmap().WithZone("") {
		return false
	}
	return f.MatchIP(s.IP) && f.MatchUser(s)
}

// IsZero reports whether f selects every session.
func (f *Filter) IsZero() bool {
	return len(f.Masks) == 0 && !f.HasNetwork() && !f.DestIP.IsValid()
}
