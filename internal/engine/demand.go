package engine

import "time"

// Demand is what a rule set needs from the caller's snapshots at a moment:
// whether anything can be selected at all, and when a rule's judgement
// changes by itself, without a session or a file changing.
type Demand struct {
	// Selects: an active YAML rule or a Rego policy can select sessions.
	// False for a set of only allow entries, brute-force rules (they act
	// at the door) and expired rules: a snapshot could not change what
	// is enforced.
	Selects bool
	// Due: a rule's time came in (since, now]: a reset's
	// logged_in_before (a reset judges by the first snapshot taken at or
	// after it, so one must be taken at once: a later one would count the
	// logins made meanwhile, with the new password, as old), or a rule's
	// expires (the cycle after it ends the job and deletes its file).
	Due bool
}

// Demand reports what rs needs at now, when the caller's last snapshot
// was taken at since (see Demand).
func (rs *Ruleset) Demand(since, now time.Time) Demand {
	var d Demand
	if rs == nil {
		return d
	}
	d.Selects = rs.policy != nil
	in := func(t time.Time) bool { return t.After(since) && !t.After(now) }
	for _, r := range rs.rules {
		if in(r.expires) {
			d.Due = true
		}
		if !r.active(now) {
			continue
		}
		d.Selects = true
		if in(r.loggedInBefore) {
			d.Due = true
		}
	}
	return d
}
