package engine

import (
	"context"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"10/s": 10, "10": 10, "0.5/s": 0.5, "30/m": 0.5, "1e2/s": 100} {
		if got, err := ParseRate(in); err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	// NaN compares false with everything: a NaN bucket would never run dry.
	for _, in := range []string{"", "0", "0/s", "-1/s", "NaN", "nan/s", "Inf/s", "+Inf", "5/h", "5/", "x/s", "10/s/s"} {
		if v, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %v, want an error", in, v)
		}
	}
}

// TestLoggedInBeforeCutoff: Evaluate fixes every active reset's cutoff,
// whether or not a session matches it now.
func TestLoggedInBeforeCutoff(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.yaml")
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	if err := os.WriteFile(path, []byte(`rules:
  - {name: reset, users: [alice], logged_in_before: "2026-11-24T10:00:00Z"}
  - {name: future, users: [bob], logged_in_before: "2026-11-24T11:00:00Z"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := Load(context.Background(), Sources{Rules: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	asked := map[time.Time]int{}
	first := map[time.Time]time.Time{}
	in := func(now time.Time, snap *anvil.Snapshot, seen time.Time) Input {
		return Input{Snapshot: snap, Now: now,
			FirstSeen: func(int, string) time.Time { return seen },
			SnapshotAfter: func(t time.Time) (time.Time, bool) {
				asked[t]++
				if now.Before(t) {
					return time.Time{}, false
				}
				if _, ok := first[t]; !ok {
					first[t] = now
				}
				return first[t], true
			}}
	}
	empty := &anvil.Snapshot{Protocol: anvil.Proto24}
	if _, err := rs.Evaluate(context.Background(), in(at.Add(time.Second), empty, time.Time{})); err != nil {
		t.Fatal(err)
	}
	if asked[at] == 0 || first[at] != at.Add(time.Second) {
		t.Fatalf("no session: the cutoff was not fixed (%v, %v)", asked, first)
	}
	alice := &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: []anvil.Session{{User: "alice", Service: "imap", PID: 1,
		IP: netip.MustParseAddr("192.0.2.1"), ConnGUID: "0123456789abcdef0123456789abcdef", Connections: 1}}}
	now := at.Add(2 * time.Second)
	ds, _ := rs.Evaluate(context.Background(), in(now, alice, now))
	if len(ds) != 0 {
		t.Errorf("a login after the cutoff was selected: %+v", ds)
	}
	ds, _ = rs.Evaluate(context.Background(), in(now, alice, at))
	if len(ds) != 1 || ds[0].Rule != "reset" {
		t.Errorf("a session seen at the cutoff was not selected: %+v", ds)
	}
	// Without SnapshotAfter (plan): every session is old once the time passed.
	ds, _ = rs.Evaluate(context.Background(), Input{Snapshot: alice, Now: now})
	if len(ds) != 1 {
		t.Errorf("plan semantics: %+v", ds)
	}
	ds, _ = rs.Evaluate(context.Background(), Input{Snapshot: alice, Now: at.Add(-time.Second)})
	if len(ds) != 0 {
		t.Errorf("a reset in the future selected %+v", ds)
	}
}
