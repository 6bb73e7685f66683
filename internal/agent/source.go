package agent

import (
	"context"
	"errors"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/kick"
)

// AnvilSource serves the agent's dumps and kicks over one anvil connection
// per cycle, so the agent never stops because Dovecot is away. It is used
// by one goroutine.
//
// Every cycle's snapshot (Dump) is taken on a new connection: a kept one
// would not notice a Dovecot stop or restart, because the old anvil process
// outlives its master while a client is connected and keeps answering with
// its frozen session table. A new connection fails while Dovecot is down
// (the cycle is logged and counted) and reaches the new anvil after a
// restart. The kicks of the cycle and their confirming dumps reuse that
// connection (see AnvilKicker).
type AnvilSource struct {
	Client *anvil.Client
	conn   *anvil.Conn
	bytes  int // size of the last dump: the next connection's buffer hint
}

func (a *AnvilSource) get(ctx context.Context) (*anvil.Conn, error) {
	if a.conn != nil {
		return a.conn, nil
	}
	c, err := a.Client.Open(ctx)
	if err != nil {
		return nil, err
	}
	c.SetDumpSizeHint(a.bytes)
	a.conn = c
	return c, nil
}

func (a *AnvilSource) drop() {
	if a.conn != nil {
		a.conn.Close()
		a.conn = nil
	}
}

// Dump takes a snapshot on a new connection, which the cycle's kicks then
// reuse; each sees the sessions as they arrive (anvil.Conn.DumpEach).
func (a *AnvilSource) Dump(ctx context.Context, each func(int, *anvil.Session)) (*anvil.Snapshot, error) {
	a.drop()
	return a.dump(ctx, each)
}

// dump takes a snapshot on the kept connection. A broken one is replaced
// once (each then starts again at session 0).
func (a *AnvilSource) dump(ctx context.Context, each func(int, *anvil.Session)) (*anvil.Snapshot, error) {
	for try := 0; ; try++ {
		c, err := a.get(ctx)
		if err != nil {
			return nil, err
		}
		snap, err := c.DumpEach(ctx, each)
		if err == nil {
			a.bytes = snap.Bytes
			return snap, nil
		}
		a.drop()
		// A dump over the bounds would only be over them again.
		if try > 0 || ctx.Err() != nil || errors.Is(err, anvil.ErrTooLarge) {
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

// KickConn is the kicker's view of a: the confirming dumps of a kick reuse
// the cycle's connection instead of opening one each.
func (a *AnvilSource) KickConn() kick.Conn { return keptConn{a} }

type keptConn struct{ *AnvilSource }

func (k keptConn) Dump(ctx context.Context) (*anvil.Snapshot, error) { return k.dump(ctx, nil) }

// OpenKicker opens another admin connection to the same anvil, so that
// kick.Run can send KICK-USERs on several at once (kick.KickOpener).
func (k keptConn) OpenKicker(ctx context.Context) (anvil.Kicker, error) {
	c, err := k.get(ctx)
	if err != nil {
		return nil, err
	}
	return c.OpenKicker(ctx)
}
