package kickagent_test

test_blocked_ipv4_kicked if {
	kicked_by("blocked-networks") == {"a"} with input as input_of([
		session("a", "carol@example.com", "192.0.2.7"),
		session("b", "carol@example.com", "198.51.100.7"),
	])
}

test_blocked_ipv6_kicked if {
	kicked_by("blocked-networks") == {"a"} with input as input_of([
		session("a", "carol@example.com", "2001:db8:bad::1"),
		session("b", "carol@example.com", "2001:db8:900d::1"),
	])
}

test_ipv4_mapped_counts_as_ipv4 if {
	kicked_by("blocked-networks") == {"a"} with input as input_of([session("a", "carol@example.com", "::ffff:192.0.2.7")])
}

test_session_without_ip_not_kicked if {
	kicked_by("blocked-networks") == set() with input as input_of([object.union(
		session("a", "carol@example.com", ""),
		{"service": "lmtp"},
	)])
}

test_blocked_reason if {
	d := data.kickagent.kick with input as input_of([session("a", "carol@example.com", "192.0.2.7")])
	d == {{"session": "a", "rule": "blocked-networks", "reason": "client 192.0.2.7 is in a blocked network"}}
}

test_blocked_networks_valid if {
	every n in data.kickagent.blocked_networks {
		net.cidr_is_valid(n)
	}
}
