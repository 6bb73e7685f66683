package agent

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/engine"
)

// countingSource counts dumps, safely read by the test while Run runs.
type countingSource struct {
	n    atomic.Int64
	snap *anvil.Snapshot
}

func (c *countingSource) Dump(context.Context, func(int, *anvil.Session)) (*anvil.Snapshot, error) {
	c.n.Add(1)
	return c.snap, nil
}

// TestReloadKeepsCyclesRunning: a slow reload (a big rules file, a big
// policy: seconds) happens off the loop; cycles go on with the active
// rules meanwhile, and the new rules are swapped in when the load is done.
func TestReloadKeepsCyclesRunning(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	writeFile(t, rules, "rules: [{name: a, users: [nobody]}]\n")
	src := &countingSource{snap: &anvil.Snapshot{Protocol: anvil.Proto24}}
	release := make(chan struct{})
	var calls atomic.Int64
	a := New(Settings{Interval: 20 * time.Millisecond}, Deps{Source: src, Kicker: &fakeKicker{src: &fakeSource{}},
		Metrics: NewMetrics(prometheus.NewRegistry()),
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			if calls.Add(1) > 1 {
				<-release // the reload: as slow as the test wants
			}
			return engine.Load(ctx, engine.Sources{Rules: []string{rules}})
		}})
	ctx, cancel := context.WithCancel(context.Background())
	reload := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, reload, false) }()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer func() {
		unblock() // a loop stuck in the load (the defect) ends too
		cancel()
		<-done
	}()
	waitFor(t, "the first cycle", func() bool { return src.n.Load() > 0 })
	rev := a.Rules().Rev()
	writeFile(t, rules, "rules: [{name: b, users: [nobody]}]\n")
	reload <- struct{}{}
	waitFor(t, "the reload to start", func() bool { return calls.Load() == 2 })
	before := src.n.Load()
	waitFor(t, "cycles during the reload", func() bool { return src.n.Load() >= before+3 })
	if a.Rules().Rev() != rev {
		t.Fatal("the rules changed before the load was done")
	}
	unblock()
	waitFor(t, "the new rules", func() bool { return a.Rules().Rev() != rev })
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
