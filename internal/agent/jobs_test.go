package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/jobs"
)

// jobRig is rig with a drop-in directory and a clock the test moves.
type jobRig struct {
	rig
	dir string
	now time.Time
}

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// newJobRig loads files (name → content) from a rules.d directory; it runs
// no cycle.
func newJobRig(t *testing.T, files map[string]string, set Settings, snap *anvil.Snapshot) *jobRig {
	t.Helper()
	return newJobRigMain(t, "", files, set, snap)
}

// newJobRigMain is newJobRig with a main rules file (--rules) holding
// main, loaded before rules.d, when main is not empty.
func newJobRigMain(t *testing.T, main string, files map[string]string, set Settings, snap *anvil.Snapshot) *jobRig {
	t.Helper()
	cfg := t.TempDir()
	dir := filepath.Join(cfg, "rules.d")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var rules []string
	if main != "" {
		rules = append(rules, filepath.Join(cfg, "rules.yaml"))
		if err := os.WriteFile(rules[0], []byte(main), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := &fakeSource{snap: snap}
	r := &jobRig{rig: rig{src: src, kicker: &fakeKicker{src: src}, audit: &bytes.Buffer{}, reg: prometheus.NewRegistry()},
		dir: dir, now: t0}
	set.Interval = time.Second
	r.a = New(set, Deps{Source: src, Kicker: r.kicker, Audit: audit.New(r.audit), Metrics: NewMetrics(r.reg),
		Now: func() time.Time { return r.now },
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			return engine.Load(ctx, engine.Sources{Rules: append(slices.Clip(rules), dir)})
		},
		Jobs: jobs.Dir{Path: dir, Sources: engine.Sources{Rules: rules}}})
	rs, err := r.a.load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.a.swap(rs)
	return r
}

// at runs one cycle at t0+d and returns how many sessions it kicked.
func (r *jobRig) at(t *testing.T, d time.Duration) int {
	t.Helper()
	r.now = t0.Add(d)
	before := len(r.kicker.kicked)
	r.cycle(t)
	return len(r.kicker.kicked) - before
}

func drainFile(rate string) map[string]string {
	return map[string]string{jobs.FileName(jobs.Drain, "all"): fmt.Sprintf(`rules:
  - {name: drain-all, users: ["*"], drain: true, rate: %q}
`, rate)}
}

// TestDrainPacing: the bucket starts with one kick and earns rate per
// second; the kicks never run ahead of 1 + rate × elapsed, whatever the
// spacing of the cycles.
func TestDrainPacing(t *testing.T) {
	for _, tc := range []struct {
		rate  string
		per   float64
		times []time.Duration
		want  []int
	}{
		{"10/s", 10, []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second}, []int{1, 10, 10, 10}},
		// A reload runs a cycle between ticks: it earns only its share.
		{"10/s", 10, []time.Duration{0, 300 * time.Millisecond, time.Second, 2 * time.Second}, []int{1, 3, 7, 10}},
		{"30/m", 0.5, []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second}, []int{1, 0, 1, 0, 1}},
		// A pause does not let a burst through: the bucket holds one
		// interval's worth plus one.
		{"5/s", 5, []time.Duration{0, 10 * time.Second, 11 * time.Second}, []int{1, 6, 5}},
	} {
		t.Run(tc.rate, func(t *testing.T) {
			r := newJobRig(t, drainFile(tc.rate), Settings{}, sessions(200, func(i int) string { return fmt.Sprintf("u%d", i) }))
			total := 0
			for i, d := range tc.times {
				n := r.at(t, d)
				total += n
				if n != tc.want[i] {
					t.Errorf("cycle at %v kicked %d, want %d", d, n, tc.want[i])
				}
				if lim := 1 + tc.per*d.Seconds() + 1e-9; float64(total) > lim {
					t.Errorf("by %v: %d kicks, more than 1 + rate × elapsed = %v", d, total, lim)
				}
			}
		})
	}
}

// TestDrainTakesKickUnitsWhole: on 2.4 a kick closes a user's sessions in
// one process together. A drain that selects all of them takes them at
// once when the bucket holds them (or is full), instead of being refused
// as collateral forever; sessions it does not all select are not grouped.
func TestDrainTakesKickUnitsWhole(t *testing.T) {
	snap := sessions(12, func(i int) string { return []string{"eve", "bob"}[i/6] })
	for i := range snap.Sessions {
		snap.Sessions[i].PID = 700 // one login process, like v24proxyhp
	}
	r := newJobRig(t, drainFile("2/s"), Settings{}, snap) // bucket of 3
	if n := r.at(t, 0); n != 0 {
		t.Fatalf("first cycle kicked %d: a unit of 6 went with 1 token", n)
	}
	if n := r.at(t, time.Second); n != 6 {
		t.Fatalf("full bucket kicked %d, want the unit of 6", n)
	}
	// Six taken from three: in debt until 3 more seconds are earned.
	if n := r.at(t, 2*time.Second); n != 0 {
		t.Fatalf("in debt, kicked %d", n)
	}
	if n := r.at(t, 3*time.Second); n != 0 {
		t.Fatalf("bucket not full again yet, kicked %d", n)
	}
	if n := r.at(t, 4*time.Second); n != 6 {
		t.Fatalf("kicked %d, want the second unit", n)
	}

	// Not a whole unit: only the selected session is chosen (and the real
	// kicker refuses it as collateral).
	snap = sessions(3, func(int) string { return "eve" })
	for i := range snap.Sessions {
		snap.Sessions[i].PID = 700
	}
	snap.Sessions[0].DestIP = netip.MustParseAddr("10.9.9.9")
	r = newJobRig(t, map[string]string{jobs.FileName(jobs.Drain, "10.9.9.9"): `rules:
  - {name: d, dest_hosts: [10.9.9.9], drain: true, rate: 10/s}
`}, Settings{}, snap)
	if n := r.at(t, 0); n != 1 {
		t.Fatalf("kicked %d, want only the selected session", n)
	}
}

// TestDrainBypassesBreakerAndGlobalCap: a drain is paced by its rate alone;
// the breaker still holds the other rules.
func TestDrainBypassesBreakerAndGlobalCap(t *testing.T) {
	snap := sessions(10, func(i int) string { return fmt.Sprintf("u%d", i) })
	for i := 6; i < 10; i++ {
		snap.Sessions[i].DestIP = netip.MustParseAddr("10.9.9.9")
	}
	r := newJobRig(t, map[string]string{
		"a.yaml":                              "rules:\n  - {name: wide, users: [u0, u1, u2, u3, u4, u5]}\n",
		jobs.FileName(jobs.Drain, "10.9.9.9"): "rules:\n  - {name: d, dest_hosts: [10.9.9.9], drain: true, rate: 100/s}\n",
	}, Settings{MaxKicksPerCycle: 2, BreakerFraction: 0.5, BreakerMinSessions: 1}, snap)
	r.at(t, 0)
	r.at(t, time.Second)
	if got := strings.Join(r.kicker.kicked, ","); got != "u6,u7,u8,u9" {
		t.Fatalf("kicked %s, want the drained u6-u9 only (3 in one cycle, over the cap of 2)", got)
	}
	if testutil.ToFloat64(r.a.m.breakerOpen) != 1 {
		t.Error("the breaker did not hold the wide rule")
	}
	breaker := 0
	for _, l := range r.results(t) {
		if strings.Contains(l, ":breaker:wide") {
			breaker++
		}
	}
	if breaker != 6 {
		t.Errorf("%d breaker records for the wide rule, want 6:\n%v", breaker, r.results(t))
	}
}

func resetFile(at time.Time) map[string]string {
	return map[string]string{jobs.FileName(jobs.Reset, ":alice"): fmt.Sprintf(`rules:
  - {name: reset-alice, users: [alice], logged_in_before: %q, expires: %q}
`, at.Format(time.RFC3339), at.Add(24*time.Hour).Format(time.RFC3339))}
}

func aliceSession(id int) anvil.Session {
	return anvil.Session{User: "alice", Service: "imap", PID: int64(100 + id), IP: netip.MustParseAddr("192.0.2.1"),
		ConnGUID: fmt.Sprintf("%032x", id), Connections: 1}
}

// TestLoggedInBefore: a session is old when first seen no later than the
// first snapshot at or after the reset time; later ones are left alone,
// also when the user had no session at that snapshot.
func TestLoggedInBefore(t *testing.T) {
	reset := t0.Add(10 * time.Second)
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: []anvil.Session{aliceSession(1)}}
	r := newJobRig(t, resetFile(reset), Settings{}, snap)
	if n := r.at(t, 0); n != 0 {
		t.Fatalf("the reset is 10s ahead, yet %d kicked", n)
	}
	// Logs in before the reset's first snapshot: old too.
	r.src.snap.Sessions = append(r.src.snap.Sessions, aliceSession(2))
	if n := r.at(t, 10500*time.Millisecond); n != 2 {
		t.Fatalf("first snapshot after the reset kicked %d, want both old sessions", n)
	}
	r.src.snap.Sessions = append(r.src.snap.Sessions, aliceSession(3))
	for _, d := range []time.Duration{11500 * time.Millisecond, 12500 * time.Millisecond, 13500 * time.Millisecond} {
		if n := r.at(t, d); n != 0 {
			t.Fatalf("a login after the reset was kicked at %v", d)
		}
	}

	// No session at the reset: the cutoff is still that first snapshot,
	// so a login after it is new.
	r = newJobRig(t, resetFile(reset), Settings{}, &anvil.Snapshot{Protocol: anvil.Proto24})
	r.at(t, 0)
	r.at(t, 10500*time.Millisecond)
	r.src.snap.Sessions = []anvil.Session{aliceSession(4)}
	if n := r.at(t, 11500*time.Millisecond); n != 0 {
		t.Fatal("alice had no session at her reset; her login after it was kicked")
	}

	// 2.3 has no GUID: identity is pid + ident.
	snap = &anvil.Snapshot{Protocol: anvil.Proto23, Sessions: []anvil.Session{{User: "alice", Service: "imap", PID: 9, IP: netip.MustParseAddr("192.0.2.1"), Connections: 1}}}
	r = newJobRig(t, resetFile(reset), Settings{}, snap)
	r.at(t, 5*time.Second)
	r.src.snap.Sessions = append(r.src.snap.Sessions, anvil.Session{User: "alice", Service: "imap", PID: 10, IP: netip.MustParseAddr("192.0.2.1"), Connections: 1})
	r.at(t, 10500*time.Millisecond) // both present at the cutoff
	r.src.snap.Sessions = append(r.src.snap.Sessions, anvil.Session{User: "alice", Service: "imap", PID: 11, IP: netip.MustParseAddr("192.0.2.1"), Connections: 1})
	r.at(t, 11500*time.Millisecond)
	if len(r.src.snap.Sessions) != 1 || r.src.snap.Sessions[0].PID != 11 {
		t.Fatalf("2.3: left %+v, want only pid 11", r.src.snap.Sessions)
	}
}

// jobFiles returns the files (name → content) the job commands write for
// js, written at t0.
func jobFiles(t *testing.T, js ...jobs.Job) map[string]string {
	t.Helper()
	d := jobs.Dir{Path: t.TempDir()}
	out := map[string]string{}
	for _, j := range js {
		path, err := d.Install(context.Background(), j, t0)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(path)] = string(data)
	}
	return out
}

// TestEndJobs: the agent deletes the files of expired blocks and resets
// and of drains with nothing left, as the job commands wrote them, and
// never a file they did not write, whatever its name or rules.
func TestEndJobs(t *testing.T) {
	mustJob := func(j jobs.Job, err error) jobs.Job {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	exp := t0.Add(5 * time.Second)
	later := t0.Add(time.Hour).Format(time.RFC3339)
	files := jobFiles(t,
		mustJob(jobs.NewBlock("10.0.0.1", exp, "")),
		mustJob(jobs.NewBlock("10.0.0.2", t0.Add(time.Hour), "")),
		jobs.NewReset("alice", "", t0, 5*time.Second),
		mustJob(jobs.NewDrain("10.9.9.9", "1/s")),
	)
	gone := map[string]bool{
		jobs.FileName(jobs.Block, "10.0.0.1/32"): true,
		jobs.FileName(jobs.Reset, ":alice"):      true,
		jobs.FileName(jobs.Drain, "10.9.9.9"):    true,
	}
	for name := range files {
		if _, ok := jobs.KindOf(name); !ok {
			t.Fatalf("job file %s not named as one", name)
		}
	}
	handWritten := map[string]string{
		"custom-expired.yaml": fmt.Sprintf("rules:\n  - {name: c1, users: [mallory], expires: %q}\n", exp.Format(time.RFC3339)),
		"custom-drain.yaml":   "rules:\n  - {name: c2, dest_hosts: [10.8.8.8], drain: true, rate: 1/s}\n",
		// Named as jobs, not written by one: no header, or two rules.
		jobs.FileName(jobs.Block, "10.0.0.3/32"): fmt.Sprintf("rules:\n  - {name: %s, networks: [10.0.0.3/32], expires: %q}\n",
			jobs.RuleName(jobs.Block, "10.0.0.3/32"), exp.Format(time.RFC3339)),
		jobs.FileName(jobs.Block, "10.0.0.4/32"): fmt.Sprintf("rules:\n  - {name: b4, networks: [10.0.0.4], expires: %q}\n  - {name: b5, networks: [10.0.0.5], expires: %q}\n",
			exp.Format(time.RFC3339), later),
		jobs.FileName(jobs.Drain, "10.6.6.6"): "rules:\n  - {name: d2, dest_hosts: [10.6.6.6], drain: true, rate: 1/s}\n",
		"kickagent-block-notes.txt":           "not a rules file\n",
	}
	for name, content := range handWritten {
		files[name] = content
	}
	// A job's file, hidden (the loader skips it).
	for name, content := range jobFiles(t, mustJob(jobs.NewDrain("10.7.7.7", "1/s"))) {
		files["."+name] = content
	}
	main := fmt.Sprintf("rules:\n  - {name: m1, users: [eve], expires: %q}\n  - {name: m2, users: [trudy]}\n", exp.Format(time.RFC3339))
	snap := sessions(2, func(i int) string { return "bob" })
	snap.Sessions[0].DestIP = netip.MustParseAddr("10.9.9.9")
	r := newJobRigMain(t, main, files, Settings{}, snap)
	exists := func(path string) bool {
		_, err := os.Stat(path)
		return !errors.Is(err, os.ErrNotExist)
	}
	mainPath := filepath.Join(filepath.Dir(r.dir), "rules.yaml")
	r.at(t, 0)
	// The drain has one session to go; nothing expired yet. The unmanaged
	// drains (nothing to drain) and the hidden one stay.
	for name := range files {
		if !exists(filepath.Join(r.dir, name)) {
			t.Errorf("%s removed at the first cycle", name)
		}
	}
	if v := testutil.ToFloat64(r.a.m.drainRemaining.WithLabelValues(jobs.RuleName(jobs.Drain, "10.9.9.9"))); v != 1 {
		t.Errorf("drain remaining %v, want 1", v)
	}
	r.at(t, 6*time.Second) // the drain's session is gone; the block, the reset and c1, m1 expired
	for name := range files {
		if got := exists(filepath.Join(r.dir, name)); got == gone[name] {
			t.Errorf("%s: exists %v, want %v", name, got, !gone[name])
		}
	}
	if !exists(mainPath) {
		t.Error("the main rules file was deleted")
	}
	// What the agent deleted never stops it from loading again (a restart
	// exits 78 when the rules do not load).
	if _, err := r.a.load(context.Background()); err != nil {
		t.Errorf("the rules do not load after the agent ended jobs: %v", err)
	}
}

// TestDryRunDrainDoesNotEnd: under --dry-run a drain kicks nothing, so it
// is not complete and its file stays.
func TestDryRunDrainDoesNotEnd(t *testing.T) {
	snap := sessions(3, func(i int) string { return "bob" })
	r := newJobRig(t, drainFile("10/s"), Settings{DryRun: true}, snap)
	r.at(t, 0)
	r.at(t, time.Second)
	if len(r.kicker.kicked) != 0 {
		t.Fatalf("dry run kicked %v", r.kicker.kicked)
	}
	if _, err := os.Stat(filepath.Join(r.dir, jobs.FileName(jobs.Drain, "all"))); err != nil {
		t.Fatalf("the dry-run drain was ended: %v", err)
	}
}

// TestResetFollowsMovedSession: an old session that could not be kicked
// (refused as collateral in a shared imap-hibernate process) and then
// moved to another process, with a new GUID, is still old: Dovecot moved
// the connection, nobody logged in.
func TestResetFollowsMovedSession(t *testing.T) {
	reset := t0.Add(10 * time.Second)
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: []anvil.Session{aliceSession(1)}}
	r := newJobRig(t, resetFile(reset), Settings{}, snap)
	r.kicker.refuse = func(*anvil.Session) bool { return true }
	r.at(t, 0)
	r.at(t, 10500*time.Millisecond)
	if len(r.kicker.refused) != 1 {
		t.Fatalf("refused %v, want the old session once", r.kicker.refused)
	}
	// It wakes into a process of its own: a new pid and GUID.
	moved := aliceSession(9)
	moved.Service = "imap-hibernate"
	r.src.snap.Sessions = []anvil.Session{moved}
	r.kicker.refuse = nil
	if n := r.at(t, 11500*time.Millisecond); n != 1 {
		t.Fatalf("the moved old session: %d kicked, want 1", n)
	}
	// Its client logs in again from the same address: a new session.
	r.src.snap.Sessions = []anvil.Session{aliceSession(10)}
	for _, d := range []time.Duration{12500 * time.Millisecond, 13500 * time.Millisecond} {
		if n := r.at(t, d); n != 0 {
			t.Fatalf("a login after the kick of the moved session was kicked at %v", d)
		}
	}
}
