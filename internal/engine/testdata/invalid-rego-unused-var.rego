# Strict mode: an assigned variable that is never used.
package kickagent

kick contains {"session": s.id, "rule": "r", "reason": "y"} if {
	some s in input.sessions
	name := s.user
}
