package agent

import (
	"context"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/kick"
)

// AnvilKicker kicks through internal/kick, the same code as kickagent kick,
// never forcing collateral: the agent kicks only what rules name.
type AnvilKicker struct {
	// Conn is the agent's AnvilSource.KickConn(), or another kick.Conn.
	Conn   kick.Conn
	Signal kick.Signaler
	// Settle bounds the wait for kicked sessions to leave anvil.
	Settle time.Duration
}

// Kick plans and runs the kick of the selected sessions.
func (k *AnvilKicker) Kick(ctx context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool) ([]kick.Result, error) {
	plan := kick.NewPlan(snap, selected)
	return kick.Run(ctx, k.Conn, k.Signal, plan, kick.Options{Settle: k.Settle})
}
