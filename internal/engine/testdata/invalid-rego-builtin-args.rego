# in_networks takes the address string first.
package kickagent

kick contains {"session": s.id, "rule": "r", "reason": "y"} if {
	some s in input.sessions
	kickagent.in_networks(["192.0.2.0/24"], s.ip)
}
