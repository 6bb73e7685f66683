package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kickagent/kickagent/internal/config"
	"github.com/kickagent/kickagent/internal/crowdsec"
	"github.com/kickagent/kickagent/internal/engine"
)

// crowdsecRule is the rule name CrowdSec's blocks are audited and counted
// under; the block's file and reason name the decision.
const crowdsecRule = "crowdsec"

// crowdsecBlocks makes CrowdSec's ban decisions blocks: their sessions are
// kicked by the cycles and, with the auth policy listener, their logins
// refused. The allow list still wins.
type crowdsecBlocks struct {
	src *crowdsec.Source
}

// newCrowdSec sets up the decision source of c; wake is called when the
// decisions change.
func newCrowdSec(c *config.CrowdSec, wake func(), reg prometheus.Registerer, log *slog.Logger) (*crowdsecBlocks, error) {
	src, err := crowdsec.New(crowdsec.Config{URL: c.URL, KeyFile: c.APIKeyFile, CAPath: c.CAFile, Scopes: c.Scopes,
		UpdateFrequency: c.UpdateFrequency.Duration, UserAgent: "kickagent/" + currentBuild().Version, OnChange: wake},
		reg, log.With("component", "crowdsec"))
	if err != nil {
		return nil, fmt.Errorf("crowdsec: %w", err)
	}
	return &crowdsecBlocks{src: src}, nil
}

// run pulls decisions until ctx ends; a Local API that is down is retried.
func (cb *crowdsecBlocks) run(ctx context.Context) { go func() { _ = cb.src.Run(ctx) }() }

// Blocked is agent.Blocks' and authpolicy.External's IP lookup: nil when no
// address decision is held.
func (cb *crowdsecBlocks) Blocked() func(ip netip.Addr) (engine.Block, bool) {
	v := cb.src.View()
	if v.Count(crowdsec.ScopeIP)+v.Count(crowdsec.ScopeRange) == 0 {
		return nil
	}
	now := time.Now()
	return func(ip netip.Addr) (engine.Block, bool) {
		d, ok := v.Blocked(ip, now)
		return blockOf(d), ok
	}
}

// BlockedUser is the lookup of username decisions; nil when none is held.
func (cb *crowdsecBlocks) BlockedUser() func(user string) (engine.Block, bool) {
	v := cb.src.View()
	if v.Count(crowdsec.ScopeUsername) == 0 {
		return nil
	}
	now := time.Now()
	return func(user string) (engine.Block, bool) {
		d, ok := v.UserBlocked(user, now)
		return blockOf(d), ok
	}
}

// Expire drops the decisions that are over.
func (cb *crowdsecBlocks) Expire() { cb.src.Expire(time.Now()) }

// blockOf names a decision in the audit trail: rule crowdsec, file
// crowdsec:ORIGIN, and the decision itself as the reason.
func blockOf(d crowdsec.Decision) engine.Block {
	return engine.Block{Rule: crowdsecRule, File: "crowdsec:" + d.Origin,
		Reason: fmt.Sprintf("CrowdSec %s decision %d on %s %s (%s) until %s", d.Type, d.ID, d.Scope, d.Value, d.Scenario,
			d.Until.UTC().Format(time.RFC3339))}
}
