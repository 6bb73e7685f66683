package engine

// RuleNames returns the names of the YAML rules, in load order. Rego rule
// names come from the policy's output and cannot be listed.
func (rs *Ruleset) RuleNames() []string {
	out := make([]string, len(rs.rules))
	for i, r := range rs.rules {
		out[i] = r.name
	}
	return out
}
