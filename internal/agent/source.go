package agent

import (
	"context"

	"github.com/kickagent/kickagent/internal/anvil"
)

// AnvilSource keeps one anvil connection across cycles and reconnects
// after a failure (a Dovecot restart), so the agent never stops because
// Dovecot is away. It serves dumps and kicks; it is used by one goroutine.
type AnvilSource struct {
	Client *anvil.Client
	conn   *anvil.Conn
}

func (a *AnvilSource) get(ctx context.Context) (*anvil.Conn, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	c, err := a.Client.Open(ctx)
	if err != nil {
		return nil, err
	}
	a.conn = c
	return c, nil
}

func (a *AnvilSource) drop() {
	if a.conn != nil {
		a.conn.Close()
		a.conn = nil
	}
}

// Dump takes a snapshot. A broken kept connection is replaced once.
func (a *AnvilSource) Dump(ctx context.Context) (*anvil.Snapshot, error) {
	for try := 0; ; try++ {
		c, err := a.get(ctx)
		if err != nil {
			return nil, err
		}
		snap, err := c.Dump(ctx)
		if err == nil {
			return snap, nil
		}
		a.drop()
		if try > 0 || ctx.Err() != nil {
			return nil, err
		}
	}
}

// KickUser runs KICK-USER on the kept connection.
func (a *AnvilSource) KickUser(ctx context.Context, user, guid string) (int, error) {
	c, err := a.get(ctx)
	if err != nil {
		return 0, err
	}
	n, err := c.KickUser(ctx, user, guid)
	if err != nil {
		a.drop()
	}
	return n, err
}

// Close closes the kept connection.
func (a *AnvilSource) Close() { a.drop() }
