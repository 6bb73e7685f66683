package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
	"github.com/kickagent/kickagent/internal/engine"
)

// TestCycleDumpTooLarge: a dump over the anvil bounds (a runaway anvil
// sending sessions without end) fails the cycle loudly, kicks nothing from
// the part read, and is not retried within the cycle.
func TestCycleDumpTooLarge(t *testing.T) {
	line := fmt.Sprintf("5000001\tmallory\timap\t192.0.2.1\t%032x\t\n", 1)
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithEndlessDump("\n", line))
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte("rules:\n  - {name: bad, users: [mallory]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := &AnvilSource{Client: &anvil.Client{Path: srv.Path, Protocol: anvil.Proto24, Limits: anvil.Limits{MaxSessions: 100}}}
	defer src.Close()
	kicker := &recKicker{}
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	a := New(Settings{}, Deps{Source: src, Kicker: kicker, Metrics: NewMetrics(reg),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			return engine.Load(ctx, engine.Sources{Rules: []string{path}})
		}})
	err := a.Run(context.Background(), nil, true)
	if !errors.Is(err, anvil.ErrTooLarge) {
		t.Fatalf("Run: %v, want ErrTooLarge", err)
	}
	if len(kicker.kicked) != 0 {
		t.Errorf("kicked %q from a partial dump", kicker.kicked)
	}
	if n := srv.Conns(); n != 1 {
		t.Errorf("%d dumps of the runaway anvil in one cycle, want 1", n)
	}
	if n := testutil.ToFloat64(a.m.anvilErrors); n != 1 {
		t.Errorf("anvil_errors_total = %v, want 1", n)
	}
	if n := testutil.ToFloat64(a.m.cycles.WithLabelValues("error")); n != 1 {
		t.Errorf("cycles_total{error} = %v, want 1", n)
	}
	if !strings.Contains(logs.String(), "dump exceeds 100 sessions (limits.dump_max_sessions)") {
		t.Errorf("the log does not name the bound:\n%s", logs.String())
	}
}
