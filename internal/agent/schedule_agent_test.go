package agent

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
)

// dumpCounter is a fakeSource whose dumps are counted.
type dumpCounter struct {
	fakeSource
	dumps int
}

func (s *dumpCounter) Dump(ctx context.Context, each func(int, *anvil.Session)) (*anvil.Snapshot, error) {
	s.dumps++
	return s.fakeSource.Dump(ctx, each)
}

// TestTicksDumpOnlyWhenNeeded runs the loop's tick decisions on a fake
// clock: no snapshot while nothing can be selected; spaced-out snapshots
// while the rules select nothing; every tick again once one selects a
// session, which is then kicked.
func TestTicksDumpOnlyWhenNeeded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("allow: {users: [monitor]}\nrules: []\n")
	snap := sessions(3, func(i int) string { return []string{"alice", "bob", "monitor"}[i] })
	src := &dumpCounter{fakeSource: fakeSource{snap: snap}}
	kicker := &fakeKicker{src: &src.fakeSource}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	a := New(Settings{Interval: time.Second, IdleInterval: time.Minute}, Deps{Source: src, Kicker: kicker,
		Audit: audit.New(&discard{}), Metrics: NewMetrics(reg), Now: func() time.Time { return now },
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			return engine.Load(ctx, engine.Sources{Rules: []string{path}})
		}})
	a.sched.perGap = 1 // 3 sessions weigh as 30,000 do
	ctx := context.Background()
	if err := a.Run(ctx, nil, true); err != nil { // the first cycle always dumps
		t.Fatal(err)
	}
	run := func() {
		if err := a.cycle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ticks := func(n int) int {
		before := src.dumps
		for i := 0; i < n; i++ {
			now = now.Add(time.Second)
			a.tick(run)
		}
		return src.dumps - before
	}
	if n := ticks(10); n != 0 {
		t.Fatalf("allow list only: %d dumps in 10 ticks, want 0", n)
	}
	if v := testutil.ToFloat64(a.m.pace.skipped.WithLabelValues(skipNothing)); v != 10 {
		t.Errorf("skipped{nothing_selectable} = %v, want 10", v)
	}
	if !a.Healthy() {
		t.Error("skipped ticks must keep the agent healthy")
	}

	// A rule that selects nothing here: three dumps a tick apart, then
	// 3 s apart (one interval per "10,000" sessions).
	write("allow: {users: [monitor]}\nrules:\n  - {name: net, networks: [192.0.2.0/24]}\n")
	if !a.Reload(ctx) {
		t.Fatal("reload")
	}
	a.sched.wake()
	run()
	if n := ticks(30); n != 11 { // at 1, 2 (3 with the one above), 5, 8, ..., 29
		t.Fatalf("idle rule: %d dumps in 30 ticks, want 11 (2 a tick apart, then 3 s apart)", n)
	}
	if g := a.sched.gap; g != 3*time.Second {
		t.Errorf("idle gap %v, want 3 s", g)
	}
	if v := testutil.ToFloat64(a.m.pace.skipped.WithLabelValues(skipIdle)); v != 19 {
		t.Errorf("skipped{idle} = %v, want 19", v)
	}

	// A session the rule selects appears: kicked at the next snapshot,
	// within one idle gap, and then every tick dumps again.
	src.snap.Sessions[1].IP = netip.MustParseAddr("192.0.2.7")
	gap := int(a.sched.gap/time.Second) + 1
	for i := 0; i < gap && len(kicker.kicked) == 0; i++ {
		ticks(1)
	}
	if len(kicker.kicked) != 1 || kicker.kicked[0] != "bob" {
		t.Fatalf("kicked %v within one idle gap (%d ticks), want [bob]", kicker.kicked, gap)
	}
	if n := ticks(2); n != 2 {
		t.Errorf("after a kick: %d dumps in 2 ticks, want 2", n)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
