# A per-session policy whose five kick rules all begin with tests the
# guards read (rego_guard.go), with hits in testrig.SyntheticMix(100000, 1):
# TestRegoGuardSyntheticMix, and the b24 comparison of kickagent plan with
# and without guards in BENCHMARKS.md. The last rule ends in a call the
# guards do not know (startswith), after its tests.
package kickagent

blocked := ["198.51.100.0/28", "2001:db8:ab00::/40", "10.7.0.0/16"]

resets := {"ben1@example.net": "2030-01-01T00:00:00Z", "Chris2@Example.org": "2030-01-01T00:00:00Z", "anna12@example.com": "2020-01-01T00:00:00Z"}

reset_by_user := {lower(u): time.parse_rfc3339_ns(at) | some u, at in resets}

kick contains {"session": s.id, "rule": "blocked", "reason": s.ip} if {
	some s in input.sessions
	kickagent.in_networks(s.ip, blocked)
}

kick contains {"session": s.id, "rule": "drain", "reason": s.dest_ip, "dry_run": true} if {
	some s in input.sessions
	s.dest_ip != ""
	kickagent.in_networks(s.dest_ip, "10.1.0.2")
}

kick contains {"session": s.id, "rule": "reset", "reason": s.user} if {
	some s in input.sessions
	ns := reset_by_user[lower(s.user)]
	s.first_seen_ns <= ns
}

kick contains {"session": s.id, "rule": "alt", "reason": s.alt.user_alt} if {
	some s in input.sessions
	s.alt.user_alt == "alt-5"
	not kickagent.in_networks(s.ip, "198.51.100.0/24")
}

kick contains {"session": s.id, "rule": "pop3-userext", "reason": s.user} if {
	some s in input.sessions
	s.service == "pop3"
	s.alt.user_ext != ""
	startswith(s.alt.user_ext, "ext1")
}
