# Drain: kick the proxied sessions (Dovecot 2.4 login proxies, which have
# a dest_ip) whose backend is being drained, so that the clients reconnect
# and the proxy sends them elsewhere. Set drain_dry_run to see what a
# drain would kick before doing it.
package kickagent

# Backend addresses (or networks) being drained.
# Example values (documentation range): replace with your own.
drain_destinations := [
	"198.51.100.10",
	"198.51.100.11",
]

drain_dry_run := false

kick contains {
	"session": s.id,
	"rule": "drain",
	"reason": sprintf("proxied to %s, which is being drained", [s.dest_ip]),
	"dry_run": drain_dry_run,
} if {
	some s in input.sessions
	s.dest_ip != ""
	kickagent.in_networks(s.dest_ip, drain_destinations)
}
