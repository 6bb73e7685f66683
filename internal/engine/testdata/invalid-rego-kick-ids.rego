package kickagent

# A set of ids, not of objects: the synthetic evaluation at load sees it.
kick contains s.id if {
	some s in input.sessions
}
