package kickagent

kick contains {"session": s.id, "rule": "night", "reason": "x"} if {
	some s in input.sessions
	time.clock(time.now_ns())[0] < 6
}
