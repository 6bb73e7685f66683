package agent

import (
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/engine"
)

func TestPacer(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	base := 5 * time.Second
	sel := engine.Demand{Selects: true}
	p := newPacer(base, time.Minute)
	if ok, _ := p.due(t0, engine.Demand{}, false); !ok {
		t.Fatal("the first tick dumps")
	}
	p.dumped(t0.Add(-base), 10, false)
	if ok, why := p.due(t0, engine.Demand{}, false); ok || why != skipNothing {
		t.Fatalf("nothing selectable: due %v %q", ok, why)
	}
	if ok, _ := p.due(t0, engine.Demand{Due: true}, false); !ok {
		t.Fatal("a rule expired since the last dump: dump (its job ends)")
	}
	if ok, _ := p.due(t0, engine.Demand{}, true); !ok {
		t.Fatal("a held block can select")
	}
	p = newPacer(base, time.Minute)
	// 100k sessions: every tick while dumps select sessions or have not
	// been quiet idleAfter times, then one interval per 10,000: 50 s.
	took := 100000
	now := t0
	var dumps []time.Duration
	for i := 0; i < 40; i++ { // 200 s of ticks
		if ok, why := p.due(now, sel, false); ok {
			dumps = append(dumps, now.Sub(t0))
			p.dumped(now, took, false)
		} else if why != skipIdle {
			t.Fatalf("tick %d: reason %q", i, why)
		}
		now = now.Add(base)
	}
	want := []time.Duration{0, 5 * time.Second, 10 * time.Second, 60 * time.Second, 110 * time.Second, 160 * time.Second}
	if len(dumps) != len(want) {
		t.Fatalf("dumps at %v, want %v", dumps, want)
	}
	for i := range want {
		if dumps[i] != want[i] {
			t.Fatalf("dumps at %v, want %v", dumps, want)
		}
	}
	// A dump that selects sessions to kick: back to every tick.
	p.dumped(now, took, true)
	if ok, _ := p.due(now.Add(base), sel, false); !ok {
		t.Fatal("after a kick the next tick dumps")
	}
	// Idle again; a reset time passing since the last dump takes one at once.
	for i := 0; i < idleAfter; i++ {
		p.dumped(now, took, false)
	}
	if ok, _ := p.due(now.Add(base), sel, false); ok {
		t.Fatal("idle: the next tick waits")
	}
	if ok, _ := p.due(now.Add(base), engine.Demand{Selects: true, Due: true}, false); !ok {
		t.Fatal("a reset time passed: dump now")
	}
	// wake (new rules, a block) ends the idle spell.
	p.wake()
	if ok, _ := p.due(now.Add(base), sel, false); !ok {
		t.Fatal("after wake the next tick dumps")
	}
	// The gap never exceeds idle, and a slow dump never shortens it below base.
	for i := 0; i < idleAfter; i++ {
		p.dumped(now, 10_000_000, false)
	}
	if p.gap != time.Minute {
		t.Errorf("gap %v, want the idle interval", p.gap)
	}
	p = newPacer(base, time.Minute)
	for i := 0; i < idleAfter; i++ {
		p.dumped(now, 9999, false) // a small server
	}
	if p.gap != base {
		t.Errorf("small server: gap %v, want the interval", p.gap)
	}
	// idle_interval at or below the interval: a dump every tick.
	p = newPacer(base, time.Second)
	for i := 0; i < 5; i++ {
		p.dumped(now, 10_000_000, false)
	}
	if p.gap != base {
		t.Errorf("idle below the interval: gap %v, want %v", p.gap, base)
	}
}
