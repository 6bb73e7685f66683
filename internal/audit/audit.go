// Package audit writes the agent's audit trail: one JSON line per decision
// acted on (kick intent, kicked, dry-run, held back, blocked by the circuit
// breaker, allowed), so that "why was this user disconnected?" has an answer.
package audit

import (
	"time"

	"github.com/kickagent/kickagent/internal/snapshot"
)

// Result values of a Record.
const (
	// Intent is written, and synced, before a kick goes out; the
	// outcome (kicked, still-connected, failed) follows in its own
	// record. An intent with no outcome after it is a kick the agent
	// sent and did not live to confirm (a crash).
	Intent            = "kick-intent"
	Kicked            = "kicked"
	StillConnected    = "still-connected"
	RefusedCollateral = "refused-collateral"
	Failed            = "failed"
	DryRun            = "dry-run"
	HeldBack          = "held-back"
	Breaker           = "breaker"
	Allowed           = "allowed"
	// Skipped: a rule selected a session that is never kicked (an lmtp
	// delivery in progress).
	Skipped = "skipped"

	// At the door (the auth policy listener, internal/authpolicy): a
	// login refused, one a dry-run rule would refuse, one a rule selects
	// but the allow list protects; a brute-force block started (or one a
	// dry-run rule would start).
	LoginRefused = "login-refused"
	LoginDryRun  = "login-dry-run"
	LoginAllowed = "login-allowed"
	LoginBreaker = "login-breaker" // a kick rule selects it; the circuit breaker is open
	Blocked      = "blocked"
	BlockDryRun  = "block-dry-run"
)

// Record is one audit line.
type Record struct {
	Time    time.Time `json:"time"`
	Result  string    `json:"result"`
	Rule    string    `json:"rule"`
	Engine  string    `json:"engine"`
	Reason  string    `json:"reason"`
	Rev     string    `json:"rules_rev"`
	Dovecot string    `json:"dovecot"`
	snapshot.Record
	Method string `json:"method,omitempty"`
	Error  string `json:"error,omitempty"`
	// Note qualifies a result: "left after the kick" on a kicked record
	// written when a later snapshot no longer listed a session whose
	// kick was sent but not seen to work in its own cycle.
	Note string `json:"note,omitempty"`
	// Repeat counts the kicks of this user in the last hour, this one
	// included (kicked records only).
	Repeat int `json:"repeat,omitempty"`
	// Login and SessionID identify a login judged at the door: the name
	// the client sent and Dovecot's session id (also in its log).
	Login     string `json:"login,omitempty"`
	SessionID string `json:"session_id,omitempty"`
}
