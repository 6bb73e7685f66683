package kick

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/kickagent/kickagent/internal/anvil"
)

// DefaultParallel is how many admin connections carry KICK-USERs at once.
// Anvil may answer KICK-* out of order on one connection, so each carries
// one kick at a time; with several, anvil answers a batch per wakeup
// instead of one (8 connections: about 3 × the kicks per second of one,
// measured on a 2-core host against a 100,000-session 2.4 anvil; 4 gave
// 2.5 ×). Anvil itself runs at most 100 admin kicks at once.
const DefaultParallel = 8

// KickOpener is implemented by a Conn that can open more admin connections
// to the same anvil (anvil.Conn does). Without it Run kicks one unit at a
// time on the Conn itself.
type KickOpener interface {
	OpenKicker(ctx context.Context) (anvil.Kicker, error)
}

// kickRound is what sending the kicks of a plan did, per unit index.
type kickRound struct {
	sent  []bool  // the unit's KICK-USER went out (or was attempted)
	errs  []error // its error, nil when anvil answered
	fatal error   // anvil failed: no more kicks were sent
}

// kickUnits sends KICK-USER for the units whose indexes are in todo, on up
// to opt.Parallel extra connections when conn can open them, else one at a
// time on conn. Each kick has its own opt.KickTimeout. After anvil closed a
// connection or ctx ended, no further kick is sent.
func kickUnits(ctx context.Context, conn Conn, units []*Unit, todo []int, opt Options) kickRound {
	kr := kickRound{sent: make([]bool, len(units)), errs: make([]error, len(units))}
	var mu sync.Mutex
	next := 0
	// take hands out the next unit, or -1 when done or after a fatal error.
	take := func() int {
		mu.Lock()
		defer mu.Unlock()
		if kr.fatal != nil || next == len(todo) {
			return -1
		}
		i := todo[next]
		next++
		kr.sent[i] = true
		return i
	}
	// kickOne sends one unit's kick and reports whether the connection is
	// still usable: after a failed exchange a late reply could be read as
	// the answer to the next kick.
	kickOne := func(k interface {
		KickUser(ctx context.Context, user, guid string) (int, error)
	}, i int) bool {
		u := units[i]
		kctx, cancel := context.WithTimeout(ctx, opt.KickTimeout)
		_, err := k.KickUser(kctx, u.User, u.Targets[0].ConnGUID)
		cancel()
		kr.errs[i] = err // each index is written by one worker only
		if err != nil && (errors.Is(err, anvil.ErrClosed) || ctx.Err() != nil) {
			mu.Lock()
			if kr.fatal == nil {
				kr.fatal = fmt.Errorf("kick %s (pid %d): %w", u.User, u.PID, err)
			}
			mu.Unlock()
		}
		return err == nil
	}

	op, ok := conn.(KickOpener)
	if !ok || opt.Parallel <= 1 || len(todo) < 2 {
		// One at a time on conn, as before: an error there is kept per
		// unit, and conn stays the caller's.
		for i := take(); i >= 0; i = take() {
			kickOne(conn, i)
		}
		return kr
	}
	var wg sync.WaitGroup
	for range min(opt.Parallel, len(todo)) {
		k, err := op.OpenKicker(ctx)
		if err != nil {
			break // fewer connections; conn below if none opened
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := take(); i >= 0; i = take() {
				if kickOne(k, i) {
					continue
				}
				// Replace a connection that may be out of step.
				k.Close()
				if k, err = op.OpenKicker(ctx); err != nil {
					return
				}
			}
			k.Close()
		}()
	}
	wg.Wait()
	// No extra connection could be opened, or all were lost: the rest go
	// one at a time on conn.
	for i := take(); i >= 0; i = take() {
		kickOne(conn, i)
	}
	return kr
}
