package integration

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// How doveadm who/kick read a positional argument (doveadm-who.c
// who_parse_masks): not all digits and net_parse_range() accepts it → the
// network; anything else → a user mask. The test needs this to sort
// queries into the documented-difference classes, not to compute results.

// dvArg is one argument as doveadm reads it.
type dvArg struct {
	text    string
	network bool
	addr    netip.Addr // network only
	bits    int        // network only
	oldIPv4 bool       // network only: an inet_aton form other than four decimal parts
	zone    string     // network only: IPv6 scope as written
}

func parseDvArg(a string, v24 bool) dvArg {
	d := dvArg{text: a}
	if a == "" || isAllDigits(a) {
		return d
	}
	host, bitsText, hasBits := strings.Cut(a, "/")
	ip, old, zone, ok := dvAddr(host, v24)
	if !ok {
		return d
	}
	bits := ip.BitLen()
	if hasBits {
		n, err := strconv.ParseUint(bitsText, 10, 32)
		if !isAllDigits(bitsText) || err != nil || int(n) > ip.BitLen() {
			return d
		}
		bits = int(n)
	}
	d.network, d.addr, d.bits, d.oldIPv4, d.zone = true, ip, bits, old, zone
	return d
}

// dvAddr is net_addr2ip: four decimal parts first (net_addr2ip_inet4_fast),
// then IPv6 when there is a ':' (2.3 inet_pton: no scope; 2.4 getaddrinfo
// AI_NUMERICHOST: a numeric scope or an existing interface), else IPv4 by
// inet_aton rules.
func dvAddr(s string, v24 bool) (ip netip.Addr, old bool, zone string, ok bool) {
	if ip, ok := inet4Fast(s); ok {
		return ip, false, "", true
	}
	if strings.Contains(s, ":") {
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			s = s[1 : len(s)-1]
		}
		host, zone, hasZone := strings.Cut(s, "%")
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return netip.Addr{}, false, "", false
		}
		if hasZone {
			if !v24 || zone == "" {
				return netip.Addr{}, false, "", false
			}
			if !isAllDigits(zone) {
				if _, err := net.InterfaceByName(zone); err != nil {
					return netip.Addr{}, false, "", false
				}
			}
		}
		return a, false, zone, true
	}
	a, ok := inetAton(s)
	return a, ok, "", ok
}

func inet4Fast(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if !isAllDigits(p) || err != nil || n > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

// inetAton is glibc's inet_aton: 1 to 4 parts, each decimal, 0x hex or
// 0 octal; the last part fills the remaining bytes.
func inetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, p = 16, p[2:]
			if p == "" { // "0x" alone is 0 in strtoul
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		n, err := strconv.ParseUint(p, base, 32)
		if err != nil || p == "" || strings.ContainsAny(p, "+-_") {
			return netip.Addr{}, false
		}
		vals[i] = n
	}
	var v uint64
	for i, n := range vals[:len(vals)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (8 * (3 - i))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func isAllDigits(s string) bool {
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

// dvArgs splits a query's positional arguments as doveadm does.
func dvArgs(args []string, v24 bool) (masks []string, nets []dvArg) {
	for _, a := range args {
		if d := parseDvArg(a, v24); d.network {
			nets = append(nets, d)
		} else {
			masks = append(masks, a)
		}
	}
	return masks, nets
}
