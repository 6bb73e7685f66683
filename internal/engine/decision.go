package engine

import (
	"strconv"

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
	// ID is the session's stable id (SessionID).
	ID     string
	Rule   string
	Engine Engine
	Reason string
	Action Action
	// MaxKicksPerCycle paces the rule (0: no per-rule limit).
	MaxKicksPerCycle int
}

// SessionID is a session's identity across snapshots: the connection GUID
// on 2.4; on 2.3, which has none, the pid and ident (service, IP, user).
func SessionID(s *anvil.Session) string {
	if s.ConnGUID != "" {
		return s.ConnGUID
	}
	ip := ""
	if s.IP.IsValid() {
		ip = s.IP.String()
	}
	return strconv.FormatInt(s.PID, 10) + "/" + s.Service + "/" + ip + "/" + s.User
}
