# kickagent.net_in does not exist (kickagent.in_networks does).
package kickagent

kick contains {"session": s.id, "rule": "r", "reason": "y"} if {
	some s in input.sessions
	kickagent.net_in(s.ip, ["192.0.2.0/24"])
}
