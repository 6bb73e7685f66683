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
	// Sockets closes single connections where the protocol's kick would
	// hit unselected sessions (nil: such sessions are refused).
	Sockets kick.SocketCloser
	// Settle bounds the wait for kicked sessions to leave anvil.
	Settle time.Duration
}

// intentKicker is a Kicker that calls before with the sessions it is about
// to kick, before any signal or KICK-USER goes out, so that the agent
// audits its intent first. A Kicker without it gets every selected session
// announced before Kick is called.
type intentKicker interface {
	KickIntent(ctx context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool, before func([]*anvil.Session)) ([]kick.Result, error)
}

var _ intentKicker = (*AnvilKicker)(nil)

// Kick plans and runs the kick of the selected sessions.
func (k *AnvilKicker) Kick(ctx context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool) ([]kick.Result, error) {
	return k.KickIntent(ctx, snap, selected, nil)
}

// KickIntent is Kick, calling before (if not nil) with the sessions of the
// units that go out (not those refused as collateral) before they do.
func (k *AnvilKicker) KickIntent(ctx context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool, before func([]*anvil.Session)) ([]kick.Result, error) {
	plan := kick.NewPlan(snap, selected)
	opt := kick.Options{Settle: k.Settle, Sockets: k.Sockets}
	if before != nil {
		opt.BeforeSend = func(units []*kick.Unit) {
			var ss []*anvil.Session
			for _, u := range units {
				ss = append(ss, u.Targets...)
			}
			before(ss)
		}
	}
	return kick.Run(ctx, k.Conn, k.Signal, plan, opt)
}
