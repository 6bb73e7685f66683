package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kickagent/kickagent/internal/agent"
	"github.com/kickagent/kickagent/internal/bundle"
	"github.com/kickagent/kickagent/internal/config"
	"github.com/kickagent/kickagent/internal/engine"
)

// bundleRules is the policy bundle in force, which every load of the
// agent's rules joins to the local files.
type bundleRules struct {
	cur atomic.Pointer[engine.Bundle]
	src *bundle.Source
}

// current returns the bundle in force (nil: none).
func (br *bundleRules) current() *engine.Bundle {
	if br == nil {
		return nil
	}
	return br.cur.Load()
}

// newBundleRules sets up the bundle source of c. A bundle is taken only
// when it loads with the local rules as they are (local returns them; a is
// the agent, nil before it exists); then the agent reloads.
func newBundleRules(c *config.Config, local func() engine.Sources, a **agent.Agent, reload chan<- struct{},
	reg prometheus.Registerer, log *slog.Logger) (*bundleRules, error) {
	b := &c.Bundle
	keys := make([]bundle.Key, 0, len(b.VerificationKeys))
	for _, f := range b.VerificationKeys {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("bundle.verification_keys: %w", err)
		}
		keys = append(keys, bundle.Key{ID: trimExt(filepath.Base(f)), PEM: pem})
	}
	br := &bundleRules{}
	minDelay, maxDelay := pollDelays(b.PollMin.Duration, b.PollMax.Duration)
	src, err := bundle.New(bundle.Config{
		URL: b.URL, MinDelay: minDelay, MaxDelay: maxDelay,
		Verification: bundle.Verification{Keys: keys, Scope: b.Scope},
		StateDir:     stateDir(c.StateDir),
		Logger:       log, Registry: reg,
		OnBundle: func(ctx context.Context, ob *opabundle.Bundle) error {
			eb, err := engineBundle(ob)
			if err != nil {
				return err
			}
			s := local()
			s.Bundle = eb
			var prev *engine.Ruleset
			if *a != nil {
				prev = (*a).Rules()
			}
			if _, err := engine.LoadKeeping(ctx, s, prev); err != nil {
				return fmt.Errorf("bundle %s does not load with the local rules: %w", eb.Revision, err)
			}
			br.cur.Store(eb)
			log.Info("bundle taken", "component", "bundle", "revision", eb.Revision, "rules_files", len(eb.Rules), "modules", len(eb.Modules))
			select {
			case reload <- struct{}{}:
			default:
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	br.src = src
	return br, nil
}

// start loads the persisted bundle, so that a restart while the bundle
// server is down still enforces it, then polls until ctx ends.
func (br *bundleRules) start(ctx context.Context, log *slog.Logger) {
	if _, err := br.src.LoadPersisted(ctx); err != nil && !errors.Is(err, bundle.ErrNoPersisted) {
		log.Error("the persisted bundle is not usable; waiting for the bundle server", "component", "bundle", "err", err)
	}
	go func() { _ = br.src.Run(ctx) }()
}

// engineBundle converts a verified bundle to the engine's input.
func engineBundle(ob *opabundle.Bundle) (*engine.Bundle, error) {
	c, err := bundle.Extract(ob)
	if err != nil {
		return nil, err
	}
	eb := &engine.Bundle{Revision: c.Revision}
	for _, f := range c.Rules {
		eb.Rules = append(eb.Rules, engine.SourceFile{Name: f.Name, Data: f.Data})
	}
	for name, data := range c.Modules {
		eb.Modules = append(eb.Modules, engine.SourceFile{Name: name, Data: data})
	}
	// Map order is random: sort, so that the ruleset's revision is stable.
	slices.SortFunc(eb.Modules, func(x, y engine.SourceFile) int { return strings.Compare(x.Name, y.Name) })
	return eb, nil
}

// pollDelays applies the defaults of bundle.poll_min (1s) and poll_max (5s,
// or poll_min when that is longer) to the configured values (zero: unset).
func pollDelays(minSet, maxSet time.Duration) (time.Duration, time.Duration) {
	lo := cmp.Or(minSet, time.Second)
	return lo, max(cmp.Or(maxSet, max(lo, 5*time.Second)), lo)
}
