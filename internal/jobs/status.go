package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/engine"
)

// DrainStatus is one managed drain and what it has left to kick.
type DrainStatus struct {
	Entry
	Left int
	// ETA is the time to kick Left at the drain's rate (rounded up to the
	// second); zero when the rate does not parse.
	ETA time.Duration
}

// Drains reports each managed drain's progress on snap as the agent would
// decide it now: the rule set loaded as the agent loads it, evaluated by
// the engine, counted by DrainsLeft, so the allow list, the other rules
// and each drain's own selectors count exactly as in the agent.
func (d Dir) Drains(ctx context.Context, snap *anvil.Snapshot, now time.Time) ([]DrainStatus, error) {
	entries, err := d.List(Drain)
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	rs, err := d.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w:\n%w", ErrInvalid, err)
	}
	decisions, err := rs.Evaluate(ctx, engine.Input{Snapshot: snap, Now: now})
	if err != nil {
		return nil, fmt.Errorf("jobs: evaluate: %w", err)
	}
	left := map[string]int{}
	for _, l := range DrainsLeft(rs, decisions) {
		left[l.File+"\x00"+l.Name] = l.Left
	}
	out := make([]DrainStatus, 0, len(entries))
	for _, e := range entries {
		s := DrainStatus{Entry: e, Left: left[e.Path+"\x00"+e.Rule.Name]}
		if v, err := engine.ParseRate(e.Rule.Rate); err == nil {
			s.ETA = (time.Duration(float64(s.Left)/v*float64(time.Second)) + time.Second - 1).Truncate(time.Second)
		}
		out = append(out, s)
	}
	return out, nil
}
