package bruteforce

import (
	"crypto/sha256"
	"fmt"
	"net/netip"

	"github.com/kickagent/kickagent/internal/match"
)

// Scope says what a Counter counts failures per.
type Scope int

// The zero Scope is none of these, so a scope left unset is an error in New
// rather than silently counting per IP.
const (
	ScopeIP      Scope = iota + 1 // the client address
	ScopeNetwork                  // the client address masked to a prefix
	ScopeLogin                    // the login name, ASCII case-folded
)

func (s Scope) String() string {
	switch s {
	case ScopeIP:
		return "ip"
	case ScopeNetwork:
		return "network"
	case ScopeLogin:
		return "login"
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// maxLoginKey bounds a login key's size. Longer logins are keyed by
// longKeyPrefix bytes of the folded login and its SHA-256: 129 bytes, a
// length no short key has, so the two kinds never collide.
const (
	maxLoginKey   = 128
	longKeyPrefix = maxLoginKey + 1 - sha256.Size
)

// The prefix lengths of ScopeNetwork unless WithPrefixes says otherwise: a
// typical IPv4 customer or hosting block, and one IPv6 subnet.
const (
	defaultBits4 = 24
	defaultBits6 = 64
)

// keyAddr is the address a key is made of, for ScopeIP (bits4 < 0) or
// ScopeNetwork: IPv4-mapped IPv6 becomes IPv4, so one client is one key,
// the zone is dropped, and ScopeNetwork masks it to its prefix (bits is
// that prefix's length). ok is false for an invalid address.
func keyAddr(ip netip.Addr, bits4, bits6 int) (a netip.Addr, bits int, ok bool) {
	if !ip.IsValid() {
		return ip, 0, false
	}
	ip = ip.Unmap().WithZone("")
	if bits4 < 0 {
		return ip, ip.BitLen(), true
	}
	bits = bits6
	if ip.Is4() {
		bits = bits4
	}
	// Cannot fail: bits are checked against both families in New.
	p, _ := ip.Prefix(bits)
	return p.Addr(), bits, true
}

// addrKey is keyAddr as a map key. IPv4 keys are in their mapped 16-byte
// form, which no IPv6 key can have after the unmapping.
func addrKey(ip netip.Addr, bits4, bits6 int) (k [16]byte, ok bool) {
	a, _, ok := keyAddr(ip, bits4, bits6)
	if !ok {
		return k, false
	}
	return a.As16(), true
}

// appendLoginKey appends login's key to dst (with room for maxLoginKey+1
// bytes it does not allocate). ok is false for an empty login.
func appendLoginKey(dst []byte, login string) (k []byte, ok bool) {
	if login == "" {
		return dst, false
	}
	if len(login) <= maxLoginKey {
		return match.AppendFold(dst, login), true
	}
	folded := match.AppendFold(nil, login)
	sum := sha256.Sum256(folded)
	return append(append(dst, folded[:longKeyPrefix]...), sum[:]...), true
}
