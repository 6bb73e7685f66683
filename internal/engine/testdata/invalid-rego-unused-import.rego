# Strict mode: an import that is never used.
package kickagent

import data.lists

kick contains {"session": s.id, "rule": "r", "reason": "y"} if {
	some s in input.sessions
}
