package match

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Network is a client network as doveadm's net_parse_range reads it: an
// address with a prefix length and, for IPv6, an optional scope (zone).
// It is the one parsed form of every network literal kickagent accepts:
// who/kick arguments, job targets, YAML rules and the Rego builtins.
type Network struct {
	// Prefix holds the address as written (host bits kept, no zone).
	Prefix netip.Prefix
	// Zone is the IPv6 scope as written ("lo", "2"); empty means any
	// interface, as in Dovecot ("allow missing interface on the net_ip").
	Zone string
}

// ErrNotCanonical marks literals doveadm reads as an address but kickagent
// refuses, because their reading is surprising or they can never match:
// old-style IPv4 text (inet_aton forms), IPv4-mapped IPv6 networks, a zone
// naming no interface, and text that looks like an address but is none.
// A refusal never widens a selection; a misread network could.
var ErrNotCanonical = errors.New("not a canonical network")

// refusal is an ErrNotCanonical whose text is only its reason.
type refusal struct{ msg string }

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == ErrNotCanonical }

func refuse(format string, a ...any) error { return &refusal{fmt.Sprintf(format, a...)} }

// Bits is the prefix length.
func (n Network) Bits() int { return n.Prefix.Bits() }

// IsValid reports whether n holds a parsed network.
func (n Network) IsValid() bool { return n.Prefix.IsValid() }

// String is the canonical form: host bits cleared, the zone kept
// ("192.0.2.0/24", "fe80::1%lo/128").
func (n Network) String() string {
	if !n.IsValid() {
		return ""
	}
	p := n.Prefix.Masked()
	if n.Zone == "" {
		return p.String()
	}
	return p.Addr().WithZone(n.Zone).String() + "/" + strconv.Itoa(p.Bits())
}

// Contains reports whether ip is in n the way Dovecot's net_is_in_network
// decides: an IPv4-mapped IPv6 client address is compared as IPv4, IPv4
// never matches an IPv6 network nor the reverse, a missing address matches
// nothing, and an IPv6 network with a zone matches only addresses of the
// same interface (a network without a zone matches every interface).
func (n Network) Contains(ip netip.Addr) bool {
	if !ip.IsValid() || !n.IsValid() {
		return false
	}
	ip = ip.Unmap()
	if ip.Is4() != n.Prefix.Addr().Is4() {
		return false
	}
	if n.Zone != "" && !inZone(ip.Zone(), n.Zone) {
		return false
	}
	return n.Prefix.Masked().Contains(ip.WithZone(""))
}

// ParseNetwork parses a network literal: "ip" (full length) or "ip/bits",
// IPv6 optionally in brackets and with a zone ("fe80::1%eth0",
// "[2001:db8::]/32"). It accepts what doveadm's net_parse_range accepts,
// except what ErrNotCanonical describes, which is refused with a message
// saying how doveadm would read it and what to write instead. An error not
// wrapping ErrNotCanonical means the text is no address at all.
func ParseNetwork(s string) (Network, error) {
	addrText, bitsText, hasBits := strings.Cut(s, "/")
	ip, zone, err := parseAddrText(s, addrText)
	if err != nil {
		return Network{}, err
	}
	bits := ip.BitLen()
	if hasBits {
		// str_to_uint: decimal digits only, leading zeros allowed.
		v, ok := parseUint(bitsText, uint64(ip.BitLen()))
		if !ok {
			return Network{}, refuse("%q: the prefix length must be 0 to %d", s, ip.BitLen())
		}
		bits = int(v)
	}
	if ip.Is4In6() {
		return Network{}, refuse("%q is an IPv4-mapped IPv6 network, which matches no session (Dovecot compares mapped client addresses as IPv4); write %s", s, unmappedHint(ip, bits, hasBits))
	}
	return Network{Prefix: netip.PrefixFrom(ip, bits), Zone: zone}, nil
}

// ParseAddr parses an address literal with the rules of ParseNetwork and
// no prefix length, for a proxy destination (-h, dest_hosts). The zone is
// kept; destinations are compared without it (SameDest). IPv4-mapped
// addresses are accepted: doveadm compares destinations exactly.
func ParseAddr(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		return netip.Addr{}, fmt.Errorf("%q: want an IP address, not a network", s)
	}
	ip, zone, err := parseAddrText(s, s)
	if err != nil {
		return netip.Addr{}, err
	}
	return ip.WithZone(zone), nil
}

// SameDest compares a session's proxy destination with a wanted one as
// doveadm kick -h does (net_ip_compare): same family and bytes, the zone
// ignored, an IPv4-mapped address not equal to its IPv4 form.
func SameDest(dest, want netip.Addr) bool {
	return dest.IsValid() && DestKey(dest) == DestKey(want)
}

// DestKey is the form of a destination SameDest compares, for map keys.
func DestKey(a netip.Addr) netip.Addr { return a.WithZone("") }

// parseAddrText parses the address part of literal s.
func parseAddrText(s, a string) (netip.Addr, string, error) {
	if a == "" {
		return netip.Addr{}, "", fmt.Errorf("%q: not an IP address", s)
	}
	// net_addr2ip: a dotted quad of decimal numbers, leading zeros allowed.
	if ip, ok := parseDecimalQuad(a); ok {
		return ip, "", nil
	}
	if !strings.Contains(a, ":") {
		if v, ok := inetAton(a); ok {
			ip := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
			return netip.Addr{}, "", refuse("%q is old-style IPv4 text (doveadm reads it as %s); write the address as four decimal numbers",
				s, ip.String()+s[len(a):])
		}
		if isDigits(a) {
			// Dovecot 2.3 reads one decimal number as a 32-bit address
			// (net_addr2ip_inet4_fast), 2.4 only where inet_aton does.
			return netip.Addr{}, "", refuse("%q: a single number is not an IPv4 address (doveadm 2.3 reads it as one); write four decimal numbers", s)
		}
		if looksLikeIPv4(a) {
			return netip.Addr{}, "", refuse("%q is not an IPv4 address", s)
		}
		return netip.Addr{}, "", fmt.Errorf("%q: not an IP address", s)
	}
	// IPv6, "[...]" allowed as net_addr2ip allows it.
	if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") {
		a = a[1 : len(a)-1]
	}
	text, zone, hasZone := strings.Cut(a, "%")
	ip, err := netip.ParseAddr(text)
	if err != nil || !ip.Is6() {
		if looksLikeIPv6(a) {
			return netip.Addr{}, "", refuse("%q is not an IPv6 address", s)
		}
		return netip.Addr{}, "", fmt.Errorf("%q: not an IP address", s)
	}
	if hasZone {
		if err := checkZone(ip, zone); err != nil {
			return netip.Addr{}, "", refuse("%q: %v", s, err)
		}
	}
	return ip, zone, nil
}

func unmappedHint(ip netip.Addr, bits int, hasBits bool) string {
	v4 := ip.Unmap()
	if !hasBits {
		return v4.String()
	}
	if bits < 96 {
		return "an IPv4 network"
	}
	return netip.PrefixFrom(v4, bits-96).Masked().String()
}

// parseDecimalQuad is Dovecot's net_addr2ip_inet4_fast: four decimal
// numbers below 256, leading zeros allowed ("127.000.000.001").
func parseDecimalQuad(s string) (netip.Addr, bool) {
	var b [4]byte
	for i := 0; i < 4; i++ {
		part := s
		if i < 3 {
			var ok bool
			part, s, ok = strings.Cut(s, ".")
			if !ok {
				return netip.Addr{}, false
			}
		}
		v, ok := parseUint(part, 255)
		if !ok {
			return netip.Addr{}, false
		}
		b[i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

// parseUint parses decimal digits (at least one, leading zeros allowed) up
// to max, as Dovecot's str_to_uint.
func parseUint(s string, max uint64) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
		if v > max {
			return 0, false
		}
	}
	return v, true
}

// inetAton is glibc's inet_aton: one to four parts, each decimal, octal
// (leading 0) or hex (0x); the last part fills the remaining bytes. It is
// only used to say how doveadm would read text kickagent refuses. glibc's
// inet_aton (Dovecot 2.3) also stops at whitespace; getaddrinfo (2.4)
// does not; both are refused alike.
func inetAton(s string) (uint32, bool) {
	if i := strings.IndexAny(s, " \t\n\v\f\r"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return 0, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := atonPart(p)
		if !ok {
			return 0, false
		}
		vals[i] = v
	}
	n := len(vals)
	for i := 0; i < n-1; i++ {
		if vals[i] > 255 {
			return 0, false
		}
	}
	if vals[n-1] > uint64(1)<<(8*(5-n))-1 {
		return 0, false
	}
	var v uint64
	for i := 0; i < n-1; i++ {
		v |= vals[i] << (24 - 8*i)
	}
	return uint32(v | vals[n-1]), true
}

func atonPart(p string) (uint64, bool) {
	base := uint64(10)
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:]
	case len(p) >= 1 && p[0] == '0':
		base = 8
	}
	if p == "" {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(p); i++ {
		d, ok := digitVal(p[i])
		if !ok || d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}

func digitVal(c byte) (uint64, bool) {
	switch {
	case '0' <= c && c <= '9':
		return uint64(c - '0'), true
	case 'a' <= c && c <= 'f':
		return uint64(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return uint64(c-'A') + 10, true
	}
	return 0, false
}

// looksLikeIPv4 reports text made only of digits and dots with at least
// one dot ("1.2.3.4.5", "1.2.3.999"): a mistyped address, refused rather
// than taken for a user mask that would widen a selection.
func looksLikeIPv4(s string) bool {
	if !strings.Contains(s, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// looksLikeIPv6 reports text made only of hex digits, ':', '.', brackets
// and a zone, with two colons or more: a mistyped IPv6 address.
func looksLikeIPv6(s string) bool {
	s, _, _ = strings.Cut(s, "%")
	if strings.Count(s, ":") < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if _, hex := digitVal(c); !hex && c != ':' && c != '.' && c != '[' && c != ']' {
			return false
		}
	}
	return true
}
