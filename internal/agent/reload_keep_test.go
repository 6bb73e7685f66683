package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
)

// TestReloadBrokenDropInAppliesTheRest: with the agent's keeping loader a
// broken drop-in does not hold back a new job: the job applies, the broken
// file stays at its last good version, and the failure is loud (an error
// naming file:line, last_reload_successful 0, the rejected-files gauge).
func TestReloadBrokenDropInAppliesTheRest(t *testing.T) {
	dir := t.TempDir()
	main, rulesD := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "rules.d")
	if err := os.Mkdir(rulesD, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, main, "allow: {users: [monitoring]}\nrules: []\n")
	old := filepath.Join(rulesD, "50-old.yaml")
	writeFile(t, old, "rules: [{name: old, users: [mallory]}]\n")
	src := &fakeSource{snap: sessions(3, func(i int) string { return []string{"mallory", "eve", "monitoring"}[i] })}
	log := &bytes.Buffer{}
	reg := prometheus.NewRegistry()
	k := &fakeKicker{src: src}
	a := New(Settings{}, Deps{Source: src, Kicker: k, Audit: audit.New(&bytes.Buffer{}), Metrics: NewMetrics(reg),
		Logger: slog.New(slog.NewTextHandler(log, nil)),
		LoadKeeping: func(ctx context.Context, prev *engine.Ruleset) (*engine.Ruleset, error) {
			return engine.LoadKeeping(ctx, engine.Sources{Rules: []string{main, rulesD}}, prev)
		}})
	if err := a.Run(context.Background(), nil, true); err != nil {
		t.Fatal(err)
	}
	// The old drop-in gets a typo; a new job blocks eve.
	writeFile(t, old, "rules: [{name: old, userz: [mallory]}]\n")
	writeFile(t, filepath.Join(rulesD, "70-job.yaml"), "rules: [{name: job, users: [eve]}]\n")
	if !a.Reload(context.Background()) {
		t.Fatalf("the reload did not apply the new job:\n%s", log)
	}
	src.snap = sessions(3, func(i int) string { return []string{"mallory", "eve", "monitoring"}[i] })
	k.kicked = nil
	if err := a.cycle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(k.kicked, ","); got != "mallory,eve" {
		t.Errorf("kicked %q, want mallory (the old drop-in's last good version) and eve (the new job)", got)
	}
	if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), old+":1") {
		t.Errorf("no error naming %s:1:\n%s", old, log)
	}
	if v := testutil.ToFloat64(a.m.reloadOK); v != 0 {
		t.Errorf("last_reload_successful = %v, want 0 while a drop-in is rejected", v)
	}
	if v := testutil.ToFloat64(a.m.rejectedFiles); v != 1 {
		t.Errorf("kickagent_rules_files_rejected = %v, want 1", v)
	}
	// Fixed: all clear again.
	writeFile(t, old, "rules: [{name: old, users: [mallory]}]\n")
	a.Reload(context.Background())
	if v := testutil.ToFloat64(a.m.reloadOK); v != 1 || testutil.ToFloat64(a.m.rejectedFiles) != 0 {
		t.Errorf("after the fix: last_reload_successful = %v, rejected = %v", v, testutil.ToFloat64(a.m.rejectedFiles))
	}
}
