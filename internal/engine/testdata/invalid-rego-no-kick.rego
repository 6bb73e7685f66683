# No data.kickagent.kick: the agent would query nothing.
package kickagent

deny contains s.id if {
	some s in input.sessions
}
