package kick

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/ipc"
)

// ProxyLister is what RunProxies23 needs of Dovecot 2.3's ipc socket.
type ProxyLister interface {
	List(ctx context.Context) ([]ipc.Proxy, error)
	Kick(ctx context.Context, user string) error
}

// proxyKey identifies indistinguishable proxied connections: 2.3 lists no
// connection id, so equal keys are counted, not told apart.
type proxyKey struct {
	user, service string
	src, dest     netip.Addr
	port          int
}

func keyOf(p *ipc.Proxy) proxyKey {
	return proxyKey{p.User, p.Service, p.SrcIP, p.DestIP, p.DestPort}
}

// RunProxies23 kicks the Dovecot 2.3 proxied connections that selected
// names. ipc's KICK closes every proxied connection of a user, so a user
// with unselected proxied connections is collateral: refused unless forced.
func RunProxies23(ctx context.Context, pl ProxyLister, selected func(*anvil.Session) bool, opt Options) ([]Result, error) {
	opt.defaults()
	before, err := listRetry(ctx, pl, opt)
	if err != nil {
		return nil, err
	}
	units, keys := planProxies(before, selected)
	var results []Result
	for _, u := range units {
		outcome := Outcome("")
		var err error
		switch {
		case len(u.Collateral) > 0 && !opt.Force:
			outcome = RefusedCollateral
		case opt.DryRun:
			outcome = DryRun
		default:
			kctx, cancel := context.WithTimeout(ctx, opt.KickTimeout)
			err = pl.Kick(kctx, u.User)
			cancel()
			if err != nil {
				outcome = Failed
			}
		}
		results = append(results, unitResults(u, outcome, "ipc-kick", err, opt.Force && outcome == "")...)
	}
	var pending []*Result
	for i := range results {
		if results[i].Outcome == "" {
			pending = append(pending, &results[i])
		}
	}
	if len(pending) == 0 {
		return results, nil
	}
	after, err := settleProxies(ctx, pl, pending, opt)
	left := make(map[proxyKey]int)
	for i := range after {
		left[keyOf(&after[i])]++
	}
	for _, r := range pending {
		k := keys[r.Session]
		switch {
		case err != nil:
			r.Outcome, r.Err = Failed, fmt.Errorf("%w: %w", ErrUnconfirmed, err)
		case left[k] > 0:
			left[k]--
			r.Outcome = StillConnected
		default:
			r.Outcome = Kicked
		}
	}
	return results, err
}

// planProxies groups selected proxied connections by user, and returns
// the key of each planned session.
func planProxies(list []ipc.Proxy, selected func(*anvil.Session) bool) ([]*Unit, map[*anvil.Session]proxyKey) {
	byUser := make(map[string]*Unit)
	keys := make(map[*anvil.Session]proxyKey, len(list))
	var users []string
	sessions := make([]anvil.Session, len(list))
	chosen := make([]bool, len(list))
	for i := range list {
		sessions[i] = list[i].Session()
		keys[&sessions[i]] = keyOf(&list[i])
		if chosen[i] = selected(&sessions[i]); chosen[i] && byUser[list[i].User] == nil {
			byUser[list[i].User] = &Unit{User: list[i].User, Service: sessions[i].Service}
			users = append(users, list[i].User)
		}
	}
	slices.Sort(users)
	var units []*Unit
	for _, user := range users {
		u := byUser[user]
		for i := range sessions {
			if list[i].User != user {
				continue
			}
			if chosen[i] {
				u.Targets = append(u.Targets, &sessions[i])
			} else {
				u.Collateral = append(u.Collateral, &sessions[i])
			}
		}
		units = append(units, u)
	}
	return units, keys
}

func settleProxies(ctx context.Context, pl ProxyLister, pending []*Result, opt Options) ([]ipc.Proxy, error) {
	deadline := time.Now().Add(opt.Settle)
	for {
		list, err := pl.List(ctx)
		if err != nil {
			// A login process whose last proxy was just kicked exits
			// while ipc gathers LIST-FULL, and ipc reports that as an
			// error: list again until the settle time is up.
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, err
			}
			time.Sleep(opt.Poll)
			continue
		}
		users := make(map[string]bool)
		for i := range list {
			users[list[i].User] = true
		}
		still := slices.ContainsFunc(pending, func(r *Result) bool { return users[r.Session.User] })
		if !still || time.Now().After(deadline) {
			return list, nil
		}
		select {
		case <-ctx.Done():
			return list, nil
		case <-time.After(opt.Poll):
		}
	}
}

// listRetry lists proxies, trying again a few times when ipc reports a
// login process that went away mid-listing.
func listRetry(ctx context.Context, pl ProxyLister, opt Options) ([]ipc.Proxy, error) {
	var err error
	for try := 0; try < 3; try++ {
		var list []ipc.Proxy
		if list, err = pl.List(ctx); err == nil || ctx.Err() != nil {
			return list, err
		}
		time.Sleep(opt.Poll)
	}
	return nil, err
}
