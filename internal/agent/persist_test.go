package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
)

// restart replaces r's agent by a new one on the same sources, rules and
// clock with the state directory dir, as a restarted process would be;
// the old agent's state directory is released first (as process exit
// does). It returns the new agent's log.
func (r *jobRig) restart(t *testing.T, dir string) *bytes.Buffer {
	t.Helper()
	old := r.a
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	log := &bytes.Buffer{}
	r.a = New(old.set, Deps{Source: old.src, Kicker: old.kicker, Audit: old.audit, Metrics: NewMetrics(prometheus.NewRegistry()),
		Now: old.now, Load: old.load, Jobs: old.jobs, Logger: slog.New(slog.NewTextHandler(log, nil)),
		StateDir: dir, StateAnvil: "/run/dovecot/anvil"})
	t.Cleanup(func() { r.a.Close() })
	rs, err := r.a.load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.a.swap(rs)
	return log
}

func alice23(pid int64) anvil.Session {
	return anvil.Session{User: "alice", Service: "imap", PID: pid, IP: netip.MustParseAddr("192.0.2.1"), Connections: 1}
}

// TestResetSurvivesRestart: after a restart, a session that logged in
// after the reset's cutoff is still new (it was kicked again before: the
// restarted agent took a new cutoff), and an old session the previous run
// had not kicked yet is still old.
func TestResetSurvivesRestart(t *testing.T) {
	reset := t0.Add(10 * time.Second)
	for _, tc := range []struct {
		name           string
		proto          anvil.Protocol
		old1, old2, nw anvil.Session
	}{
		{"2.4", anvil.Proto24, aliceSession(1), aliceSession(2), aliceSession(3)},
		{"2.3", anvil.Proto23, alice23(11), alice23(12), alice23(13)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := t.TempDir()
			snap := &anvil.Snapshot{Protocol: tc.proto, Sessions: []anvil.Session{tc.old1, tc.old2}}
			// One kick a cycle: old2 waits, still old, across the restart.
			r := newJobRig(t, resetFile(reset), Settings{MaxKicksPerCycle: 1}, snap)
			r.restart(t, state)
			r.at(t, 0)
			if n := r.at(t, 10500*time.Millisecond); n != 1 {
				t.Fatalf("cutoff cycle kicked %d, want 1 (the cap)", n)
			}
			r.src.snap.Sessions = append(r.src.snap.Sessions, tc.nw)
			log := r.restart(t, state)
			if !strings.Contains(log.String(), "reset state restored") || !strings.Contains(log.String(), "reset cutoff restored") {
				t.Errorf("no restore logged:\n%s", log)
			}
			if n := r.at(t, 11500*time.Millisecond); n != 1 {
				t.Fatalf("after the restart %d kicked, want 1 (the old session left)", n)
			}
			for _, d := range []time.Duration{12500 * time.Millisecond, 13500 * time.Millisecond} {
				if n := r.at(t, d); n != 0 {
					t.Fatalf("at %v: the login after the reset was kicked after a restart", d)
				}
				r.restart(t, state)
			}
			if got := r.src.snap.Sessions; len(got) != 1 || got[0].ID() != tc.nw.ID() {
				t.Fatalf("left %+v, want only the new session", got)
			}
		})
	}
}

// TestResetStateNoUserSession: a reset with no session of its user at the
// cutoff: after a restart, her later login is still new.
func TestResetStateNoUserSession(t *testing.T) {
	reset := t0.Add(10 * time.Second)
	state := t.TempDir()
	r := newJobRig(t, resetFile(reset), Settings{}, &anvil.Snapshot{Protocol: anvil.Proto24})
	r.restart(t, state)
	r.at(t, 10500*time.Millisecond)
	r.src.snap.Sessions = []anvil.Session{aliceSession(4)}
	r.at(t, 11500*time.Millisecond)
	r.restart(t, state)
	if n := r.at(t, 12500*time.Millisecond); n != 0 {
		t.Fatal("alice had no session at her reset; after a restart her later login was kicked")
	}
}

// TestResetStateCorrupt: an unreadable state file is reported loudly and
// the reset is judged afresh (sessions present at the restart count as
// old: re-kicked rather than spared), and the agent goes on and rewrites
// the file.
func TestResetStateCorrupt(t *testing.T) {
	reset := t0.Add(10 * time.Second)
	state := t.TempDir()
	r := newJobRig(t, resetFile(reset), Settings{}, &anvil.Snapshot{Protocol: anvil.Proto24})
	r.restart(t, state)
	r.at(t, 10500*time.Millisecond)
	path := filepath.Join(state, stateFileName)
	if err := os.WriteFile(path, []byte(`{"version":1,"resets":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	r.src.snap.Sessions = []anvil.Session{aliceSession(5)}
	log := r.restart(t, state)
	if !strings.Contains(log.String(), "STATE FILE UNREADABLE") || !strings.Contains(log.String(), path) {
		t.Fatalf("corrupt state not reported with its file:\n%s", log)
	}
	if n := r.at(t, 11500*time.Millisecond); n != 1 {
		t.Fatalf("%d kicked, want 1: without state the reset is judged as at a fresh start", n)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseState(data); err != nil {
		t.Fatalf("state not rewritten: %v", err)
	}
}

// TestResetStateWrites: the file is written when the state changes, not
// every cycle; it drops sessions gone (a 2.3 id may come back with a
// reused pid) and is removed when no reset is left.
func TestResetStateWrites(t *testing.T) {
	reset := t0.Add(10 * time.Second)
	state := t.TempDir()
	path := filepath.Join(state, stateFileName)
	snap := &anvil.Snapshot{Protocol: anvil.Proto23, Sessions: []anvil.Session{alice23(21)}}
	r := newJobRig(t, resetFile(reset), Settings{DryRun: true}, snap)
	r.restart(t, state)
	r.at(t, 0)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("state file before any reset: %v", err)
	}
	r.at(t, 10500*time.Millisecond)
	read := func() (*persisted, os.FileInfo) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		p, err := parseState(data)
		if err != nil {
			t.Fatal(err)
		}
		return p, fi
	}
	p, fi := read()
	s21 := alice23(21)
	id21 := s21.ID()
	if len(p.Resets) != 1 || !p.Resets[0].LoggedInBefore.Equal(reset) || !p.Resets[0].Cutoff.Equal(t0.Add(10500*time.Millisecond)) ||
		len(p.Sessions) != 1 || p.Sessions[0].ID != id21 {
		t.Fatalf("state %+v", p)
	}
	r.at(t, 11500*time.Millisecond)
	if _, fi2 := read(); !os.SameFile(fi, fi2) {
		t.Error("state rewritten though nothing changed")
	}
	r.src.snap.Sessions = nil // the dry-run session leaves
	r.at(t, 12500*time.Millisecond)
	if p, _ := read(); len(p.Sessions) != 0 || len(p.Resets) != 1 {
		t.Fatalf("after the session left: %+v", p)
	}
	// The reset's rule is gone (expired) for longer than the grace.
	r.at(t, 25*time.Hour)
	r.at(t, 25*time.Hour+cutoffGrace+time.Second)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("state file kept with no reset left: %v", err)
	}
}

// TestResetStateUnwritable: a state directory that cannot be used is a
// warning; the agent runs with its state in memory.
func TestResetStateUnwritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newJobRig(t, resetFile(t0.Add(10*time.Second)), Settings{}, &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: []anvil.Session{aliceSession(1)}})
	log := r.restart(t, filepath.Join(file, "state"))
	if !strings.Contains(log.String(), "kept in memory only") {
		t.Fatalf("no warning:\n%s", log)
	}
	if n := r.at(t, 10500*time.Millisecond); n != 1 {
		t.Fatalf("%d kicked, want 1", n)
	}
}

// TestResetStateLocked: a second agent on the same state directory keeps
// its state in memory rather than overwrite the first's.
func TestResetStateLocked(t *testing.T) {
	state := t.TempDir()
	st, _ := openStateStore(state, "a", slog.New(slog.DiscardHandler))
	if st == nil {
		t.Fatal("first store not opened")
	}
	defer st.Close()
	log := &bytes.Buffer{}
	if st2, _ := openStateStore(state, "a", slog.New(slog.NewTextHandler(log, nil))); st2 != nil {
		st2.Close()
		t.Fatal("second store on a locked directory")
	}
	if !strings.Contains(log.String(), "another kickagent") {
		t.Fatalf("no reason logged:\n%s", log)
	}
}

func TestParseState(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{`{"version":1,"anvil":"x","resets":[],"sessions":[]}`, ""},
		{`{"version":2}`, "version 2"},
		{`{"version":1,"extra":1}`, "unknown field"},
		{`{"version":1}{}`, "data after"},
		{`{"version":1,"resets":[{"logged_in_before":"2026-01-01T00:00:10Z","cutoff":"2026-01-01T00:00:09Z"}]}`, "bad cutoff"},
		{`{"version":1,"sessions":[{"id":"","first_seen":"2026-01-01T00:00:09Z"}]}`, "without id"},
		{`{"version":1,"sessions":[`, "unexpected EOF"},
	} {
		_, err := parseState([]byte(tc.in))
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseState(%s) = %v, want %q", tc.in, err, tc.err)
		}
	}
}

// With a Rego policy loaded, the reset state keeps only the sessions the
// reset judged old. It kept every session whose first_seen the policy
// read (at 100,000 sessions, a state file of them all, rewritten each
// time one left).
func TestResetStateOnlyResetSessions(t *testing.T) {
	dir := t.TempDir()
	rules, pol := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "policy")
	writeT(t, rules, "rules:\n  - name: reset-alice\n    users: [alice]\n    logged_in_before: \"2026-11-24T11:00:00Z\"\n")
	if err := os.Mkdir(pol, 0o700); err != nil {
		t.Fatal(err)
	}
	writeT(t, filepath.Join(pol, "p.rego"), "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"never\", \"reason\": \"x\"} if {\n\tsome s in input.sessions\n\ts.first_seen_ns < 0\n}\n")
	users := []string{"alice", "bob", "carol", "alice"}
	src := &fakeSource{snap: sessions(len(users), func(i int) string { return users[i] })}
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	a := New(Settings{DryRun: true}, Deps{Source: src, Kicker: &fakeKicker{src: src}, Audit: audit.New(io.Discard),
		Metrics: NewMetrics(prometheus.NewRegistry()), Now: func() time.Time { return now },
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			return engine.Load(ctx, engine.Sources{Rules: []string{rules}, Policies: []string{pol}})
		}})
	if err := a.Run(context.Background(), nil, true); err != nil {
		t.Fatal(err)
	}
	if got := len(a.st.resets.kept); got != 2 {
		t.Errorf("reset state keeps %d sessions, want alice's 2: %v", got, a.st.resets.kept)
	}
}

func writeT(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
