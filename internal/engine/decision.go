package engine

import (
	"github.com/kickagent/kickagent/internal/anvil"
)

// Engine names which rule language produced a decision.
type Engine string

// Rule engines.
const (
	EngineYAML Engine = "yaml"
	EngineRego Engine = "rego"
)

// Action is what a decision asks for.
type Action string

// Actions.
const (
	// ActionKick: disconnect the session.
	ActionKick Action = "kick"
	// ActionDryRun: a dry-run rule matched; report, never kick.
	ActionDryRun Action = "dry-run"
	// ActionAllowed: a rule matched but the allow list protects the session.
	ActionAllowed Action = "allowed"
)

// Decision is one rule's verdict on one session.
type Decision struct {
	Session *anvil.Session
	// Index is Session's position in the snapshot evaluated.
	Index int
	// ID is the session's stable id (anvil.Session.ID).
	ID     string
	Rule   string
	Engine Engine
	Reason string
	Action Action
	// MaxKicksPerCycle paces the rule (0: no per-rule limit).
	MaxKicksPerCycle int
	// Rate paces the rule in kicks per second (0: not paced).
	Rate float64
	// Drain marks a drain rule: paced by Rate, exempt from the circuit
	// breaker and the global per-cycle cap, and ended by the agent once
	// nothing matches it.
	Drain bool
	// File is where the deciding YAML rule is defined ("" for Rego).
	File string
}
