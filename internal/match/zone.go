package match

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// Dovecot keeps an IPv6 scope as the interface index (sin6_scope_id) and
// compares indexes; text names an interface ("lo") or is the index ("1").
// kickagent runs beside Dovecot, so it resolves names on the same host.

// checkZone accepts a zone as glibc's getaddrinfo does (Dovecot 2.4's
// net_addr2ip): an interface name for link-local and multicast link- or
// node-local addresses, otherwise a decimal index only.
func checkZone(ip netip.Addr, zone string) error {
	if zone == "" {
		return fmt.Errorf("empty IPv6 zone")
	}
	if _, ok := parseUint(zone, 0xffffffff); ok {
		return nil
	}
	if !ip.IsLinkLocalUnicast() && !ip.IsLinkLocalMulticast() && !ip.IsInterfaceLocalMulticast() {
		return fmt.Errorf("zone %q: only a link-local address takes an interface name (or give the interface index)", zone)
	}
	if _, ok := zoneIndex(zone); !ok {
		return fmt.Errorf("zone %q: no such network interface on this host", zone)
	}
	return nil
}

// inZone reports whether a session's zone is the network's interface; a
// network zone of index 0 restricts nothing, as in net_is_in_network.
func inZone(session, network string) bool {
	if session == network {
		return true
	}
	b, ok := zoneIndex(network)
	if !ok {
		// The interface is gone: match nothing rather than every interface.
		return false
	}
	if b == 0 {
		return true
	}
	a, ok := zoneIndex(session)
	return ok && a == b
}

var zoneCache sync.Map // name → uint32 index (0: unknown)

// zoneIndex resolves a zone to an interface index: a number is the index,
// a name is looked up once and remembered.
func zoneIndex(zone string) (uint32, bool) {
	if zone == "" {
		return 0, true
	}
	if v, ok := parseUint(zone, 0xffffffff); ok {
		return uint32(v), true
	}
	if v, ok := zoneCache.Load(zone); ok {
		idx := v.(uint32)
		return idx, idx != 0
	}
	var idx uint32
	if ifi, err := net.InterfaceByName(zone); err == nil && ifi.Index > 0 {
		idx = uint32(ifi.Index)
	}
	zoneCache.Store(zone, idx)
	return idx, idx != 0
}
