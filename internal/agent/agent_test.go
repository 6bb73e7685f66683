package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/kick"
)

// fakeSource serves a scripted snapshot (or error).
type fakeSource struct {
	snap *anvil.Snapshot
	err  error
}

// Dump passes the sessions to each as a real dump does, in order.
func (f *fakeSource) Dump(_ context.Context, each func(int, *anvil.Session)) (*anvil.Snapshot, error) {
	if f.err == nil && f.snap != nil && each != nil {
		for i := range f.snap.Sessions {
			each(i, &f.snap.Sessions[i])
		}
	}
	return f.snap, f.err
}

// fakeKicker "kicks" by removing the selected sessions from the source.
type fakeKicker struct {
	src    *fakeSource
	kicked []string
}

var _ Kicker = (*fakeKicker)(nil)

func (k *fakeKicker) Kick(_ context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool) ([]kick.Result, error) {
	var res []kick.Result
	var left []anvil.Session
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		if selected(s) {
			k.kicked = append(k.kicked, s.User)
			res = append(res, kick.Result{Session: s, Outcome: kick.Kicked, Method: "fake"})
		} else {
			left = append(left, *s)
		}
	}
	k.src.snap = &anvil.Snapshot{Protocol: snap.Protocol, Sessions: left}
	return res, nil
}

func sessions(n int, user func(i int) string) *anvil.Snapshot {
	snap := &anvil.Snapshot{Protocol: anvil.Proto24}
	for i := 0; i < n; i++ {
		snap.Sessions = append(snap.Sessions, anvil.Session{User: user(i), Service: "imap", PID: int64(5000000 + i),
			IP: netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(i % 250)}), ConnGUID: fmt.Sprintf("%032x", i+1), Connections: 1})
	}
	return snap
}

type rig struct {
	a      *Agent
	src    *fakeSource
	kicker *fakeKicker
	audit  *bytes.Buffer
	reg    *prometheus.Registry
	rules  string
}

func newRig(t *testing.T, rules string, set Settings, snap *anvil.Snapshot) *rig {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{snap: snap}
	r := &rig{src: src, kicker: &fakeKicker{src: src}, audit: &bytes.Buffer{}, reg: prometheus.NewRegistry(), rules: path}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	r.a = New(set, Deps{Source: src, Kicker: r.kicker, Audit: audit.New(r.audit), Metrics: NewMetrics(r.reg),
		Now: func() time.Time { return now },
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			return engine.Load(ctx, engine.Sources{Rules: []string{path}})
		}})
	if err := r.a.Run(context.Background(), nil, true); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) cycle(t *testing.T) {
	t.Helper()
	if err := r.a.cycle(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// results returns the audit results per user, in order.
func (r *rig) results(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(r.audit.String()), "\n") {
		if l == "" {
			continue
		}
		var rec audit.Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		out = append(out, rec.User+":"+rec.Result+":"+rec.Rule)
	}
	return out
}

func TestCycleKicksWhatRulesName(t *testing.T) {
	snap := sessions(4, func(i int) string { return []string{"alice", "bob", "mallory", "monitor"}[i] })
	r := newRig(t, `
allow: {users: [monitor]}
rules:
  - {name: bad, users: [mallory, monitor]}
  - {name: watch, users: [bob], dry_run: true}
`, Settings{}, snap)
	if got := strings.Join(r.kicker.kicked, ","); got != "mallory" {
		t.Fatalf("kicked %q, want mallory", got)
	}
	r.cycle(t) // again: dry-run and allowed are audited once, not every cycle
	want := []string{"bob:dry-run:watch", "monitor:allowed:bad", "mallory:kicked:bad"}
	if got := r.results(t); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit %v, want %v", got, want)
	}
	if n := testutil.ToFloat64(r.a.m.kicks.WithLabelValues("bad", "kicked")); n != 1 {
		t.Errorf("kicks_total{bad,kicked} = %v", n)
	}
}

func TestCycleCapsHoldBackOldestFirst(t *testing.T) {
	snap := sessions(30, func(i int) string { return fmt.Sprintf("u%02d", i) })
	r := newRig(t, `
rules:
  - {name: some, users: ["u0?"], max_kicks_per_cycle: 3}
`, Settings{MaxKicksPerCycle: 100, BreakerFraction: 0.9}, snap)
	if len(r.kicker.kicked) != 3 {
		t.Fatalf("first cycle kicked %v, want 3 (per-rule cap)", r.kicker.kicked)
	}
	r.cycle(t)
	r.cycle(t)
	r.cycle(t)
	if len(r.kicker.kicked) != 10 {
		t.Fatalf("after 4 cycles kicked %d, want all 10", len(r.kicker.kicked))
	}
	held := 0
	for _, l := range r.results(t) {
		if strings.Contains(l, ":held-back:") {
			held++
		}
	}
	if held != 7 {
		t.Errorf("held-back audited %d times, want 7 (once per held session)", held)
	}
}

func TestBreakerHoldsUntilRulesChange(t *testing.T) {
	snap := sessions(40, func(i int) string { return fmt.Sprintf("user%d", i) })
	r := newRig(t, `rules: [{name: everyone, users: ["*"]}]`, Settings{}, snap)
	if len(r.kicker.kicked) != 0 {
		t.Fatalf("breaker let %d kicks through", len(r.kicker.kicked))
	}
	if v := testutil.ToFloat64(r.a.m.breakerOpen); v != 1 {
		t.Fatalf("breaker gauge %v, want 1", v)
	}
	r.cycle(t)
	if len(r.kicker.kicked) != 0 {
		t.Fatal("breaker reopened by itself")
	}
	if err := os.WriteFile(r.rules, []byte(`rules: [{name: one, users: [user7]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if !r.a.Reload(context.Background()) {
		t.Fatal("reload did not change the rules")
	}
	r.cycle(t)
	if strings.Join(r.kicker.kicked, ",") != "user7" || testutil.ToFloat64(r.a.m.breakerOpen) != 0 {
		t.Fatalf("after the rules changed: kicked %v, breaker %v", r.kicker.kicked, testutil.ToFloat64(r.a.m.breakerOpen))
	}
}

func TestGlobalDryRunKicksNothing(t *testing.T) {
	snap := sessions(3, func(i int) string { return "mallory" })
	r := newRig(t, `rules: [{name: bad, users: [mallory]}]`, Settings{DryRun: true}, snap)
	r.cycle(t)
	if len(r.kicker.kicked) != 0 {
		t.Fatalf("dry run kicked %v", r.kicker.kicked)
	}
	if got := r.results(t); len(got) != 3 || got[0] != "mallory:dry-run:bad" {
		t.Fatalf("audit %v", got)
	}
}

func TestReloadKeepsGoodRules(t *testing.T) {
	snap := sessions(2, func(i int) string { return []string{"alice", "mallory"}[i] })
	r := newRig(t, `rules: [{name: bad, users: [alice]}]`, Settings{}, snap)
	rev := r.a.Rules().Rev()
	if err := os.WriteFile(r.rules, []byte("rules:\n  - {name: bad, users: [mallory], netwroks: [1.2.3.0/24]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r.a.Reload(context.Background()) || r.a.Rules().Rev() != rev {
		t.Fatal("a broken reload replaced the rules")
	}
	if v := testutil.ToFloat64(r.a.m.reloadOK); v != 0 {
		t.Errorf("last_reload_successful = %v, want 0", v)
	}
	r.src.snap = sessions(2, func(i int) string { return []string{"alice", "mallory"}[i] })
	r.cycle(t)
	if got := strings.Join(r.kicker.kicked, ","); got != "alice,alice" {
		t.Fatalf("kicked %q: the old rule must keep working and the broken one do nothing", got)
	}
	if r.a.Reload(context.Background()) {
		t.Fatal("an unchanged (still broken) file counted as a change")
	}
}

func TestAnvilFailureIsRetried(t *testing.T) {
	snap := sessions(1, func(int) string { return "mallory" })
	r := newRig(t, `rules: [{name: bad, users: [nobody]}]`, Settings{}, snap)
	r.src.err = errors.New("anvil down")
	if err := r.a.cycle(context.Background()); err == nil {
		t.Fatal("want an error")
	}
	r.src.err = nil
	r.cycle(t)
	if v := testutil.ToFloat64(r.a.m.anvilErrors); v != 1 {
		t.Errorf("anvil_errors_total = %v", v)
	}
}

func TestRepeatedKicksAreReported(t *testing.T) {
	snap := sessions(1, func(int) string { return "looper" })
	r := newRig(t, `rules: [{name: bad, users: [looper]}]`, Settings{RepeatThreshold: 3}, snap)
	for i := 0; i < 3; i++ {
		r.src.snap = sessions(1, func(int) string { return "looper" })
		r.src.snap.Sessions[0].ConnGUID = fmt.Sprintf("%032x", 100+i) // a new connection each time
		r.cycle(t)
	}
	if v := testutil.ToFloat64(r.a.m.repeatKicks.WithLabelValues("bad")); v != 2 {
		t.Fatalf("repeat_kicks_total = %v, want 2 (the 3rd and 4th kick)", v)
	}
	if !strings.Contains(r.audit.String(), `"repeat":4`) {
		t.Errorf("audit lacks repeat count: %s", r.audit.String())
	}
}

// An lmtp delivery a rule selects is never kicked and is audited once as
// skipped, not retried as a failure every cycle.
func TestLMTPSkipped(t *testing.T) {
	snap := sessions(2, func(i int) string { return "mallory" })
	snap.Sessions[1].Service = "lmtp"
	r := newRig(t, `rules: [{name: bad, users: [mallory]}]`, Settings{}, snap)
	r.cycle(t)
	if got := strings.Join(r.kicker.kicked, ","); got != "mallory" {
		t.Fatalf("kicked %q, want only the imap session", got)
	}
	want := []string{"mallory:skipped:bad", "mallory:kicked:bad"}
	if got := r.results(t); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit %v, want %v", got, want)
	}
}
