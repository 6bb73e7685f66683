package kickagent

kick contains {"session": s.id, "rule": "dns", "reason": "x"} if {
	some s in input.sessions
	some a in net.lookup_ip_addr("mx.example.com")
	a == s.ip
}
