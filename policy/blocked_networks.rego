# Blocked networks: kick every session whose client address is in one of
# blocked_networks (IPv4 or IPv6 CIDRs, or bare addresses).
#
# kickagent.in_networks is a Go builtin of kickagent: one map lookup per
# prefix length however long the list, where a Rego loop of
# net.cidr_contains costs about 1 µs per session and CIDR. It also fails
# loudly on an invalid CIDR, where net.cidr_contains is silently undefined.
package kickagent

# Example values (documentation ranges): replace with your own.
blocked_networks := [
	"192.0.2.0/24",
	"2001:db8:bad::/48",
]

kick contains {
	"session": s.id,
	"rule": "blocked-networks",
	"reason": sprintf("client %s is in a blocked network", [s.ip]),
} if {
	some s in input.sessions
	kickagent.in_networks(s.ip, blocked_networks)
}
