package kickagent_test

proxied(id, dest) := object.union(session(id, "carol@example.com", "203.0.113.5"), {"service": "imap-login", "dest_ip": dest})

test_proxied_to_drained_backend_kicked if {
	kicked_by("drain") == {"a", "c"} with input as input_of([
		proxied("a", "198.51.100.10"),
		proxied("b", "198.51.100.12"),
		proxied("c", "198.51.100.11"),
	])
}

test_direct_sessions_not_kicked if {
	kicked_by("drain") == set() with input as input_of([session("a", "carol@example.com", "198.51.100.10")])
}

test_drain_reason if {
	d := data.kickagent.kick with input as input_of([proxied("a", "198.51.100.10")])
	d == {{
		"session": "a",
		"rule": "drain",
		"reason": "proxied to 198.51.100.10, which is being drained",
		"dry_run": false,
	}}
}

test_drain_dry_run if {
	d := data.kickagent.kick with input as input_of([proxied("a", "198.51.100.10")])
		with data.kickagent.drain_dry_run as true
	every k in d {
		k.dry_run == true
	}
	count(d) == 1
}
