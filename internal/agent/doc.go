// Package agent is kickagent's long-running loop: every interval it takes
// one anvil snapshot, evaluates the active ruleset once, and kicks what the
// decisions name, within the safety valves (allow list, per-rule and
// per-cycle caps, circuit breaker). Reloads build a new ruleset off to the
// side and swap it in only when it is entirely valid, then run a cycle at
// once. Every decision acted on goes to the audit log. The cutoffs of
// active resets, and the sessions judged old against them, are kept in a
// state directory across restarts (persist.go, resets.go).
package agent
