package engine

import (
	"fmt"
	"maps"
	"slices"
)

// mainFile is what one main rules file (a path of Sources.Rules that is a
// file, not a drop-in) defined.
type mainFile struct {
	entries   int  // rules plus allow list entries
	rulesList bool // a rules key with a list, possibly empty: "rules: []"
}

// Replaces reports why next must not replace the running prev: a main
// rules file that defined rules or allow entries in prev and defines
// nothing in next, unless next says so on purpose with an explicit empty
// list (rules: [] and no allow list). Truncation (": > rules.yaml"), a
// half-written file cut before its first entry ("rules:") and a file
// replaced by a directory look like that; the running rules, and above all
// their allow list, are worth more than a file caught mid-write. Drop-ins
// are not checked: removing the last rule of a drop-in is ordinary. A nil
// prev (the first load) accepts anything that loaded.
func Replaces(prev, next *Ruleset) error {
	if prev == nil || next == nil {
		return nil
	}
	var errs Errors
	for _, path := range slices.Sorted(maps.Keys(prev.mains)) {
		was := prev.mains[path]
		if was.entries == 0 {
			continue
		}
		now, ok := next.mains[path]
		switch {
		case !ok:
			errs = append(errs, &Error{File: path, Msg: fmt.Sprintf("was a rules file with %d entries and is no longer loaded as one (a directory now?); refused", was.entries)})
		case now.entries == 0 && !now.rulesList:
			errs = append(errs, &Error{File: path, Msg: fmt.Sprintf("is empty (truncated or half-written?) but had %d rules and allow entries; refused, the running rules stay. To remove every rule on purpose write \"rules: []\"", was.entries)})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// AllowRemoved lists the allow list entries of prev that next lacks: user
// masks and networks (canonical form), in prev's order.
func AllowRemoved(prev, next *Ruleset) (users, networks []string) {
	if prev == nil || prev.Allow == nil {
		return nil, nil
	}
	var nextUsers, nextNets []string
	if next != nil && next.Allow != nil {
		nextUsers = next.Allow.Users
		for _, n := range next.Allow.Networks {
			nextNets = append(nextNets, n.String())
		}
	}
	for _, u := range prev.Allow.Users {
		if !slices.Contains(nextUsers, u) && !slices.Contains(users, u) {
			users = append(users, u)
		}
	}
	for _, n := range prev.Allow.Networks {
		s := n.String()
		if !slices.Contains(nextNets, s) && !slices.Contains(networks, s) {
			networks = append(networks, s)
		}
	}
	return users, networks
}
