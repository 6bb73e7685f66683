package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
)

// guardRig is an agent on a main rules file holding the allow list and a
// drop-in directory holding a block of everyone, the shape of issue 12:
// only the allow list stands between alice and a kick.
type guardRig struct {
	*rig
	main, rulesD string
	log          *bytes.Buffer
}

const guardMain = `allow:
  users: [monitoring, alice]
rules:
  - name: watch
    users: [nobody]
`

func newGuardRig(t *testing.T) *guardRig {
	t.Helper()
	dir := t.TempDir()
	g := &guardRig{main: filepath.Join(dir, "rules.yaml"), rulesD: filepath.Join(dir, "rules.d"), log: &bytes.Buffer{}}
	if err := os.Mkdir(g.rulesD, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, g.main, guardMain)
	writeFile(t, filepath.Join(g.rulesD, "50-block.yaml"), "rules: [{name: block-all, users: [\"*\"]}]\n")
	src := &fakeSource{snap: sessions(3, func(i int) string { return []string{"alice", "monitoring", "mallory"}[i] })}
	g.rig = &rig{src: src, kicker: &fakeKicker{src: src}, audit: &bytes.Buffer{}, reg: prometheus.NewRegistry(), rules: g.main}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	g.a = New(Settings{}, Deps{Source: src, Kicker: g.kicker, Audit: audit.New(g.audit), Metrics: NewMetrics(g.reg),
		Logger: slog.New(slog.NewTextHandler(g.log, nil)),
		Now:    func() time.Time { return now },
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			return engine.Load(ctx, engine.Sources{Rules: []string{g.main, g.rulesD}})
		}})
	if err := g.a.Run(context.Background(), nil, true); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.kicker.kicked, ","); got != "mallory" {
		t.Fatalf("first cycle kicked %q, want mallory only", got)
	}
	return g
}

// TestReloadRefusesTruncatedMainFile: ": > rules.yaml" must not become the
// rule set; the allow list keeps protecting alice.
func TestReloadRefusesTruncatedMainFile(t *testing.T) {
	for name, text := range map[string]string{"truncated": "", "whitespace": " \n\n", "comments-only": "# rewriting\n"} {
		t.Run(name, func(t *testing.T) {
			g := newGuardRig(t)
			rev := g.a.Rules().Rev()
			writeFile(t, g.main, text)
			if g.a.Reload(context.Background()) || g.a.Rules().Rev() != rev {
				t.Fatal("an emptied main rules file replaced the rules")
			}
			if v := testutil.ToFloat64(g.a.m.reloadOK); v != 0 {
				t.Errorf("last_reload_successful = %v, want 0", v)
			}
			if !strings.Contains(g.log.String(), "level=ERROR") || !strings.Contains(g.log.String(), g.main) {
				t.Errorf("no error naming %s logged:\n%s", g.main, g.log)
			}
			g.src.snap = sessions(2, func(i int) string { return []string{"alice", "monitoring"}[i] })
			g.cycle(t)
			if got := strings.Join(g.kicker.kicked, ","); got != "mallory" {
				t.Fatalf("kicked %q after the truncation: the allow list must still protect alice and monitoring", got)
			}
		})
	}
}

// TestReloadRefusesDirectoryAtMainFile: rules.yaml replaced by an empty
// directory is an error, not an empty set.
func TestReloadRefusesDirectoryAtMainFile(t *testing.T) {
	g := newGuardRig(t)
	rev := g.a.Rules().Rev()
	if err := os.Remove(g.main); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(g.main, 0o755); err != nil {
		t.Fatal(err)
	}
	if g.a.Reload(context.Background()) || g.a.Rules().Rev() != rev {
		t.Fatal("a directory at the rules file path replaced the rules")
	}
	g.src.snap = sessions(1, func(int) string { return "alice" })
	g.cycle(t)
	if got := strings.Join(g.kicker.kicked, ","); got != "mallory" {
		t.Fatalf("kicked %q: alice must stay protected", got)
	}
}

// TestReloadAcceptsExplicitEmpty: "rules: []" empties the main file on
// purpose; the lifted protection is reported at warn level and counted.
func TestReloadAcceptsExplicitEmpty(t *testing.T) {
	g := newGuardRig(t)
	writeFile(t, g.main, "# protections lifted, ticket 42\nrules: []\n")
	if !g.a.Reload(context.Background()) {
		t.Fatalf("rules: [] refused:\n%s", g.log)
	}
	if v := testutil.ToFloat64(g.a.m.reloadOK); v != 1 {
		t.Errorf("last_reload_successful = %v, want 1", v)
	}
	if !strings.Contains(g.log.String(), "level=WARN") || !strings.Contains(g.log.String(), "removed_users=\"[monitoring alice]\"") {
		t.Errorf("no warning naming the removed allow entries:\n%s", g.log)
	}
	if v := testutil.ToFloat64(g.a.m.allowRemoved.WithLabelValues("users")); v != 2 {
		t.Errorf("kickagent_allow_entries_removed_total{list=users} = %v, want 2", v)
	}
	g.src.snap = sessions(1, func(int) string { return "alice" })
	g.cycle(t)
	if got := strings.Join(g.kicker.kicked, ","); got != "mallory,alice" {
		t.Fatalf("kicked %q: with the allow list lifted on purpose alice goes", got)
	}
}

// TestReloadWarnsShrinkingAllowList: a new allow list without alice (the
// prefix a line-by-line writer leaves) is logged at warn level by name.
func TestReloadWarnsShrinkingAllowList(t *testing.T) {
	g := newGuardRig(t)
	writeFile(t, g.main, "allow:\n  users: [monitoring]\nrules:\n  - {name: watch, users: [nobody]}\n")
	if !g.a.Reload(context.Background()) {
		t.Fatalf("reload failed:\n%s", g.log)
	}
	var warn string
	for l := range strings.Lines(g.log.String()) {
		if strings.Contains(l, "level=WARN") {
			warn = l
		}
	}
	if !strings.Contains(warn, "removed_users=[alice]") || strings.Contains(warn, "monitoring") {
		t.Errorf("warning %q; want one naming alice only", warn)
	}
	if v := testutil.ToFloat64(g.a.m.allowRemoved.WithLabelValues("users")); v != 1 {
		t.Errorf("kickagent_allow_entries_removed_total{list=users} = %v, want 1", v)
	}
	// Adding entries warns of nothing.
	g.log.Reset()
	writeFile(t, g.main, guardMain)
	if !g.a.Reload(context.Background()) || strings.Contains(g.log.String(), "level=WARN") {
		t.Errorf("growing the allow list: %s", g.log)
	}
}
