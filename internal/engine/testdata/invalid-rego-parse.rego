# A parse error: unbalanced brace.
package kickagent

kick contains {"session": s.id if {
	some s in input.sessions
}
