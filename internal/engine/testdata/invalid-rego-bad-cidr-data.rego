package kickagent

blocked := ["198.51.100.0/24", "203.0.113.0/33"]

kick contains {"session": s.id, "rule": "blocked", "reason": "x"} if {
	some s in input.sessions
	kickagent.in_networks(s.ip, blocked)
}
