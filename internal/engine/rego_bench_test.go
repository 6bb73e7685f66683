package engine

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// The benchmarks run the shipped example policies (policy/) over sessions
// from anviltest.Sessions24: 100,000 sessions, 80% mail sessions, 20% login
// proxies, 10% lmtp; 2 sessions per user, unique client IPs. Figures are
// in BENCHMARKS.md.

const benchSessions = 100_000

// cpuTime is the process's user+system CPU time: with Eval split over
// goroutines, and on a shared machine, wall time alone misleads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports CPU ms per op, counting only timed regions.
type cpuMeter struct {
	total time.Duration
	start time.Duration
}

func (m *cpuMeter) begin() { m.start = cpuTime() }
func (m *cpuMeter) end()   { m.total += cpuTime() - m.start }
func (m *cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(m.total.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkRegoCold100k is the first evaluation after a (re)load: every
// session is decided, by the guards (rego_guard.go) or converted to AST
// and evaluated.
func BenchmarkRegoCold100k(b *testing.B) {
	benchCold(b, policyOptions{}, nil)
}

// BenchmarkRegoCold100kBeforeResets is a cold evaluation with every
// session first seen before the example policy's password resets (as
// after an operator added a reset): the reset rule's first test passes
// every session, its user lookup rejects them.
func BenchmarkRegoCold100kBeforeResets(b *testing.B) {
	early := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	benchCold(b, policyOptions{}, func(int, string) time.Time { return early })
}

// BenchmarkRegoCold100kNoGuard is BenchmarkRegoCold100k with every
// session evaluated in OPA, as before the guards.
func BenchmarkRegoCold100kNoGuard(b *testing.B) {
	benchCold(b, policyOptions{noGuard: true}, nil)
}

func benchCold(b *testing.B, opt policyOptions, firstSeen func(int, string) time.Time) {
	ctx := context.Background()
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, AltNames: anviltest.AltNames24, Sessions: anviltest.Sessions24(benchSessions)}
	now := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	var cpu cpuMeter
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		p, err := loadPolicy(ctx, []string{"../../policy"}, opt)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu.begin()
		ds, err := p.Evaluate(ctx, PolicyInput{Snapshot: snap, Now: now, FirstSeen: firstSeen})
		cpu.end()
		if err != nil {
			b.Fatal(err)
		}
		if st := p.Stats(); st.Evaluated != benchSessions {
			b.Fatalf("evaluated %d", st.Evaluated)
		}
		b.ReportMetric(float64(len(ds)), "decisions")
	}
	cpu.report(b)
}

// BenchmarkRegoSteady100k is a poll cycle in steady state: 1% of the
// 100,000 sessions are new (and 1% gone) since the last cycle.
func BenchmarkRegoSteady100k(b *testing.B) {
	p, err := LoadPolicy(context.Background(), []string{"../../policy"})
	if err != nil {
		b.Fatal(err)
	}
	benchPollCycles(b, p, func(st PolicyStats) bool { return st.Evaluated == benchSessions/100 })
}

// BenchmarkRegoCross100k is a poll cycle of a cross-session policy (a
// count per user in Rego) with 1% churn: every cycle evaluates all
// 100,000 sessions in one Eval, on one core.
func BenchmarkRegoCross100k(b *testing.B) {
	p := mustLoadPolicy(b, perUserPolicy)
	benchPollCycles(b, p, func(st PolicyStats) bool { return st.Evaluated == benchSessions && st.Evals == 1 })
}

// benchPollCycles times p's evaluation of successive 100,000-session
// snapshots with 1% churn each, checking every cycle's stats with ok.
func benchPollCycles(b *testing.B, p *Policy, ok func(PolicyStats) bool) {
	ctx := context.Background()
	const churn = benchSessions / 100
	pool := anviltest.Sessions24(4 * benchSessions)
	window := func(k int) *anvil.Snapshot {
		ss := make([]anvil.Session, benchSessions)
		for i := range ss {
			ss[i] = pool[(k*churn+i)%len(pool)]
		}
		return &anvil.Snapshot{Protocol: anvil.Proto24, AltNames: anviltest.AltNames24, Sessions: ss}
	}
	now := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	if _, err := p.Evaluate(ctx, PolicyInput{Snapshot: window(0), Now: now}); err != nil {
		b.Fatal(err)
	}
	var cpu cpuMeter
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		b.StopTimer()
		k++
		snap := window(k)
		now = now.Add(5 * time.Second)
		b.StartTimer()
		cpu.begin()
		_, err := p.Evaluate(ctx, PolicyInput{Snapshot: snap, Now: now})
		cpu.end()
		if err != nil {
			b.Fatal(err)
		}
		if st := p.Stats(); !ok(st) {
			b.Fatalf("stats %+v", st)
		}
	}
	cpu.report(b)
}
