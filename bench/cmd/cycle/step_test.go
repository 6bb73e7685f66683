package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/testrig"
)

// mixDump renders mix as the CONNECT-DUMP reply of a 2.4 anvil (v24) or a
// 2.3 one (StripFor23 first), for the fake anvil.
func mixDump(mix []testrig.SyntheticSession, v24 bool) string {
	if !v24 {
		mix = testrig.StripFor23(mix)
	}
	var names []string
	col := map[string]int{}
	for _, s := range mix {
		for _, a := range s.Alt {
			if _, ok := col[a.Key]; !ok {
				col[a.Key] = len(names)
				names = append(names, a.Key)
			}
		}
	}
	ss := make([]anvil.Session, len(mix))
	for i, m := range mix {
		s := &ss[i]
		s.User, s.Service, s.IP, s.PID, s.ConnGUID, s.DestIP, s.Connections = m.User, m.Service, m.IP, int64(m.PID), m.GUID, m.DestIP, 1
		if len(m.Alt) > 0 {
			n := 0
			for _, a := range m.Alt {
				n = max(n, col[a.Key]+1)
			}
			vals := make([]string, n)
			for _, a := range m.Alt {
				vals[col[a.Key]] = a.Value
			}
			s.SetAlt(names, vals)
		}
	}
	if v24 {
		return anvil.FormatDump24(names, ss)
	}
	return anvil.FormatDump23(ss)
}

// BenchmarkStep is the agent's steady cycle (agent.Step: dump, first-seen,
// evaluation, dry-run reports, metrics) at 100,000 SyntheticMix sessions
// and the 1,000 rules of mix1000.yaml, against the fake anvil serving the
// same dump every cycle. cpu-ms/op is the process's user+system CPU per
// cycle (the fake anvil's writes included, the same for every build).
func BenchmarkStep(b *testing.B) {
	mix := testrig.SyntheticMix(100_000, 1)
	var rules strings.Builder
	genMix(&rules, mix, 1000)
	path := filepath.Join(b.TempDir(), "mix1000.yaml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	// The dumps are made up front and mix dropped: the process should hold
	// little but the agent.
	dumps := map[anvil.Protocol]string{anvil.Proto24: mixDump(mix, true), anvil.Proto23: mixDump(mix, false)}
	mix = nil
	held := int64(len(dumps[anvil.Proto24]) + len(dumps[anvil.Proto23]))
	for _, v := range []struct {
		name  string
		proto anvil.Protocol
		unit  bool
	}{{"2.4", anvil.Proto24, false}, {"2.4/unit", anvil.Proto24, true}, {"2.3", anvil.Proto23, false}, {"2.3/unit", anvil.Proto23, true}} {
		b.Run(v.name, func(b *testing.B) {
			ctx := context.Background()
			srv := anviltest.New(b, v.proto, anviltest.WithDump(dumps[v.proto]))
			rs, err := engine.Load(ctx, engine.Sources{Rules: []string{path}})
			if err != nil {
				b.Fatal(err)
			}
			if v.unit {
				// The systemd unit's GOGC=400 and GOMEMLIMIT=75MiB, plus the
				// fake anvil's dumps, which this process holds and the agent
				// does not.
				defer debug.SetGCPercent(debug.SetGCPercent(400))
				defer debug.SetMemoryLimit(debug.SetMemoryLimit(75<<20 + held))
			}
			ba := newAgent(srv.Path, rs)
			defer ba.close()
			for range 3 { // the first cycles fill the caches
				if _, _, err := ba.step(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if _, _, err := ba.step(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
			b.StopTimer()
			// What stays between cycles: the agent's state and the fake
			// anvil's dumps (14.5 MB).
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "live-MB")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
