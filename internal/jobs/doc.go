// Package jobs owns kickagent's three jobs (block, reset, drain): the rule
// each one writes, the managed drop-in files that hold them, installing a
// file only once the agent's whole rule set loads with it, listing and
// removing them, what a drain has left to kick, and ending jobs whose work
// is over.
//
// A job is an ordinary YAML rule (engine.RuleSpec) in a file named
// kickagent-<kind>-<target>-<hash>.yaml in the agent's drop-in directory,
// under a "# Managed by kickagent <kind> (<target>)" header line; the
// running agent picks it up by hot reload. The agent deletes a file only
// when name, header and its one rule all say a job command wrote it, and
// that rule has ended (Dir.End); every other file is the operator's. Nothing here talks to the
// agent, matches sessions or kicks: what a job selects is always decided by
// the engine.
package jobs
