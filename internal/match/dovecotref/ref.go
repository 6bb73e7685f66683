// Package dovecotref is a test oracle: Dovecot's net_parse_range as
// doveadm 2.3.19.1 and 2.4.1 run it, on the C library Dovecot itself uses
// (inet_aton, inet_pton, getaddrinfo with AI_NUMERICHOST). Tests compare
// internal/match's literal parser with it; nothing else imports it.
package dovecotref

/*
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>

// family: 4 or 6 (0: not an address); out: 16 bytes; scope: IPv6 scope id.
static int ref_getaddrinfo(const char *addr, unsigned char *out, unsigned int *scope) {
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	int family = 0;
	if (getaddrinfo(addr, NULL, &hints, &res) == 0 && res != NULL) {
		if (res->ai_family == AF_INET) {
			memcpy(out, &((struct sockaddr_in *)res->ai_addr)->sin_addr, 4);
			family = 4;
		} else if (res->ai_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)res->ai_addr;
			memcpy(out, &s6->sin6_addr, 16);
			*scope = s6->sin6_scope_id;
			family = 6;
		}
	}
	if (res != NULL)
		freeaddrinfo(res);
	return family;
}

static int ref_inet_aton(const char *addr, unsigned char *out) {
	struct in_addr a;
	if (inet_aton(addr, &a) == 0)
		return 0;
	memcpy(out, &a, 4);
	return 4;
}

static int ref_inet_pton6(const char *addr, unsigned char *out) {
	return inet_pton(AF_INET6, addr, out) == 1 ? 6 : 0;
}
*/
import "C"

import (
	"net/netip"
	"strings"
	"unsafe"
)

// Range is a parsed network: the address, its scope id and the bits.
type Range struct {
	Addr  netip.Addr // no zone
	Scope uint32
	Bits  int
}

// ParseRange24 is net_parse_range of Dovecot 2.4.1; ok is false where it
// returns -1.
func ParseRange24(s string) (Range, bool) { return parseRange(s, addr2ip24) }

// ParseRange23 is net_parse_range of Dovecot 2.3.19.1.
func ParseRange23(s string) (Range, bool) { return parseRange(s, addr2ip23) }

// InetAton is the C library's inet_aton.
func InetAton(s string) (netip.Addr, bool) {
	if strings.IndexByte(s, 0) >= 0 {
		return netip.Addr{}, false
	}
	var out [16]byte
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	if C.ref_inet_aton(cs, (*C.uchar)(unsafe.Pointer(&out[0]))) == 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(out[:4])), true
}

func parseRange(s string, addr2ip func(string) (netip.Addr, uint32, bool)) (Range, bool) {
	if strings.IndexByte(s, 0) >= 0 {
		return Range{}, false
	}
	network, bitsText, hasBits := strings.Cut(s, "/")
	ip, scope, ok := addr2ip(network)
	if !ok {
		return Range{}, false
	}
	bits := ip.BitLen()
	if hasBits {
		v, ok := strToUint(bitsText)
		if !ok || v > uint64(bits) {
			return Range{}, false
		}
		bits = int(v)
	}
	return Range{Addr: ip, Scope: scope, Bits: bits}, true
}

// strToUint is Dovecot's str_to_uint: digits only, no overflow.
func strToUint(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + uint64(s[i]-'0')
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}

// inet4Fast is net_addr2ip_inet4_fast (2.4.1): "a.b.c.d", decimal parts
// below 256. single is 2.3's extra case of one number.
func inet4Fast(s string, single bool) (netip.Addr, bool) {
	var b [4]byte
	parts := strings.Split(s, ".")
	if single && len(parts) == 1 {
		v, ok := strToUint(s)
		if !ok {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
	}
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	for i, p := range parts {
		v, ok := strToUint(p)
		if !ok || v >= 256 {
			return netip.Addr{}, false
		}
		b[i] = byte(v)
	}
	return netip.AddrFrom4(b), true
}

func addr2ip24(s string) (netip.Addr, uint32, bool) {
	if ip, ok := inet4Fast(s, false); ok {
		return ip, 0, true
	}
	if strings.Contains(s, ":") && strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	var out [16]byte
	var scope C.uint
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	switch C.ref_getaddrinfo(cs, (*C.uchar)(unsafe.Pointer(&out[0])), &scope) {
	case 4:
		return netip.AddrFrom4([4]byte(out[:4])), 0, true
	case 6:
		return netip.AddrFrom16(out), uint32(scope), true
	}
	return netip.Addr{}, 0, false
}

func addr2ip23(s string) (netip.Addr, uint32, bool) {
	if ip, ok := inet4Fast(s, true); ok {
		return ip, 0, true
	}
	var out [16]byte
	if strings.Contains(s, ":") {
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			s = s[1 : len(s)-1]
		}
		cs := C.CString(s)
		defer C.free(unsafe.Pointer(cs))
		if C.ref_inet_pton6(cs, (*C.uchar)(unsafe.Pointer(&out[0]))) == 0 {
			return netip.Addr{}, 0, false
		}
		return netip.AddrFrom16(out), 0, true
	}
	ip, ok := InetAton(s)
	return ip, 0, ok
}
