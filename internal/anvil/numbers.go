package anvil

import "net/netip"

// Fast paths for the numbers and IPs of a dump line. Each accepts only the
// plain form anvil prints and then gives exactly what the general parser
// (strconv, netip.ParseAddr) gives; anything else is left to that parser,
// so what is accepted or rejected, and why, does not change.

// smallUint parses 1 to 18 ASCII digits (no sign, leading zeros allowed,
// as strconv accepts them); false for anything else.
func smallUint(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 {
			return 0, false
		}
		v = v*10 + uint64(d)
	}
	return v, true
}

// parseIPv4 parses a dotted quad as netip.ParseAddr does (four fields of
// one to three digits, no leading zero, each ≤ 255); false for anything
// else, which netip.ParseAddr then decides.
func parseIPv4(s string) (netip.Addr, bool) {
	var ip [4]byte
	dots, val, digits := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			if digits == 1 && val == 0 {
				return netip.Addr{}, false // leading zero
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return netip.Addr{}, false
			}
		case c == '.' && digits > 0 && dots < 3:
			ip[dots] = byte(val)
			dots++
			val, digits = 0, 0
		default:
			return netip.Addr{}, false
		}
	}
	if dots != 3 || digits == 0 {
		return netip.Addr{}, false
	}
	ip[3] = byte(val)
	return netip.AddrFrom4(ip), true
}
