package kickagent

kick[x] {
	x := {"session": "a", "rule": "r", "reason": "y"}
}
