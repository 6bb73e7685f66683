package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
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
	// refuse: selected sessions refused as collateral (they stay).
	refuse  func(*anvil.Session) bool
	refused []string
}

var _ Kicker = (*fakeKicker)(nil)

func (k *fakeKicker) Kick(_ context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool) ([]kick.Result, error) {
	var res []kick.Result
	var left []anvil.Session
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		if selected(s) && k.refuse != nil && k.refuse(s) {
			k.refused = append(k.refused, s.ID())
			res = append(res, kick.Result{Session: s, Outcome: kick.RefusedCollateral, Method: "fake"})
			left = append(left, *s)
		} else if selected(s) {
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
	want := []string{"bob:dry-run:watch", "monitor:allowed:bad", "mallory:kick-intent:bad", "mallory:kicked:bad"}
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
	want := []string{"mallory:skipped:bad", "mallory:kick-intent:bad", "mallory:kicked:bad"}
	if got := r.results(t); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit %v, want %v", got, want)
	}
}

// recKicker records the sessions it is asked to kick.
type recKicker struct{ kicked []string }

var _ Kicker = (*recKicker)(nil)

func (k *recKicker) Kick(_ context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool) ([]kick.Result, error) {
	var res []kick.Result
	for i := range snap.Sessions {
		if s := &snap.Sessions[i]; selected(s) {
			k.kicked = append(k.kicked, s.User+"@"+s.IP.String())
			res = append(res, kick.Result{Session: s, Outcome: kick.Kicked, Method: "fake"})
		}
	}
	return res, nil
}

// TestCycleSkipsBadAnvilLines: a dump from a (fake) anvil socket with
// malformed lines, and a client with an IPv6 zone as Dovecot 2.4.1 prints
// it, still drives a cycle: the matching good sessions are kicked, the bad
// lines are counted by reason, and each reason is logged once, not every
// cycle.
func TestCycleSkipsBadAnvilLines(t *testing.T) {
	guid := func(i int) string { return fmt.Sprintf("%032x", i) }
	dump := "\n" +
		"5000001\tmallory\timap\tfe80::1%lo\t" + guid(1) + "\t\n" +
		"5000002\tmallory\timap\tnot-an-ip\t" + guid(2) + "\t\n" + // bad client ip
		"nope\tmallory\timap\t192.0.2.3\t" + guid(3) + "\t\n" + // bad pid
		"5000004\tmallory\timap\t192.0.2.4\t" + guid(4) + "\tfe80::2%lo%x\n" + // bad dest ip
		"5000005\tmallory\timap\t192.0.2.5\t" + guid(5) + "\t\n" +
		"5000006\talice\timap\t192.0.2.6\t" + guid(6) + "\t\n\n"
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump(dump))
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte("rules:\n  - {name: bad, users: [mallory]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := &AnvilSource{Client: &anvil.Client{Path: srv.Path, Protocol: anvil.Proto24}}
	defer src.Close()
	kicker := &recKicker{}
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	a := New(Settings{}, Deps{Source: src, Kicker: kicker, Metrics: NewMetrics(reg),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			return engine.Load(ctx, engine.Sources{Rules: []string{path}})
		}})
	if err := a.Run(context.Background(), nil, true); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(kicker.kicked, ","); got != "mallory@fe80::1%lo,mallory@192.0.2.5" {
		t.Errorf("kicked %q, want the two good mallory sessions", got)
	}
	if err := a.cycle(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP kickagent_anvil_bad_lines_total Malformed anvil dump lines skipped (the rest of the dump is used), by reason; a line is counted in every cycle's dump that carries it.
# TYPE kickagent_anvil_bad_lines_total counter
kickagent_anvil_bad_lines_total{reason="alt_columns"} 0
kickagent_anvil_bad_lines_total{reason="client_ip"} 2
kickagent_anvil_bad_lines_total{reason="dest_ip"} 2
kickagent_anvil_bad_lines_total{reason="fields"} 0
kickagent_anvil_bad_lines_total{reason="guid"} 0
kickagent_anvil_bad_lines_total{reason="ident"} 0
kickagent_anvil_bad_lines_total{reason="line_too_long"} 0
kickagent_anvil_bad_lines_total{reason="pid"} 2
kickagent_anvil_bad_lines_total{reason="refcount"} 0
kickagent_anvil_bad_lines_total{reason="service"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kickagent_anvil_bad_lines_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.ToFloat64(a.m.cycles.WithLabelValues("ok")); n != 2 {
		t.Errorf("cycles_total{ok} = %v, want 2", n)
	}
	if n := strings.Count(logs.String(), "skipped malformed anvil dump lines"); n != 3 {
		t.Errorf("%d bad-line log lines over two cycles, want 3 (one per reason):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `reason="bad client ip"`) || !strings.Contains(logs.String(), `line=3`) {
		t.Errorf("log lacks the reason or line:\n%s", logs.String())
	}
}
