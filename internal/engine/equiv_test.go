package engine

import (
	"context"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/snapshot"
)

// TestYAMLAndRegoAgree runs one scenario written as YAML rules and as a
// Rego policy over the same snapshots (recorded from real Dovecot 2.3 and
// 2.4, hand-made, and random) and requires identical decisions: session,
// rule and action, the allow list included.
func TestYAMLAndRegoAgree(t *testing.T) {
	ctx := context.Background()
	yrs, rrs := loadEquiv(t)
	snaps := map[string]*anvil.Snapshot{}
	files, _ := filepath.Glob("../../cmd/kickagent/testdata/plan/*.snap.json")
	if len(files) < 4 {
		t.Fatalf("recorded snapshots missing: %v", files)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := snapshot.Read(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		snaps[filepath.Base(f)] = s
	}
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 20; i++ {
		snaps[fmt.Sprintf("random-%d", i)] = randomEquivSnapshot(rng, 300)
	}
	total := 0
	for name, snap := range snaps {
		in := Input{Snapshot: snap, Now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
		yd, err := yrs.Evaluate(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := rrs.Evaluate(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		y, r := decisionKeys(yd), decisionKeys(rd)
		total += len(y)
		if !slices.Equal(y, r) {
			t.Errorf("%s: YAML and Rego disagree\nyaml: %v\nrego: %v", name, y, r)
		}
	}
	if total < 100 {
		t.Fatalf("only %d decisions over all snapshots: the scenario does not exercise the rules", total)
	}
	t.Logf("%d snapshots, %d identical decisions", len(snaps), total)
}

// loadEquiv loads the equivalence scenario as YAML rules and as a Rego
// policy (with the same allow list).
func loadEquiv(t *testing.T) (yaml, rego *Ruleset) {
	t.Helper()
	ctx := context.Background()
	dir := "testdata/equiv"
	yrs, err := Load(ctx, Sources{Rules: []string{filepath.Join(dir, "rules.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	rrs, err := Load(ctx, Sources{Rules: []string{filepath.Join(dir, "allow.yaml")}, Policies: []string{filepath.Join(dir, "policy")}})
	if err != nil {
		t.Fatal(err)
	}
	return yrs, rrs
}

func decisionKeys(ds []Decision) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID + " " + d.Rule + " " + string(d.Action)
	}
	slices.Sort(out)
	return out
}

// randomEquivSnapshot mixes the users, networks, services, destinations
// and alt fields the scenario's rules look at.
func randomEquivSnapshot(rng *rand.Rand, n int) *anvil.Snapshot {
	users := []string{"alice", "bob", "BoB", "carol", "dave", "jane", "jano", "james", "john doe", "JOHN DOE", "eve"}
	ips := []string{"127.0.0.2", "127.0.0.6", "::1", "192.0.2.9", "198.51.100.200", "2001:db8:bad::5", "::ffff:192.0.2.7", "203.0.113.1", ""}
	services := []string{"imap", "pop3", "IMAP", "pop3-login", "imap-login", "submission", "lmtp"}
	dests := []string{"", "", "127.0.0.1", "10.0.0.2"}
	alts := []string{"", "x@ext.example", "y@EXT.EXAMPLE", "z@other.example"}
	names := []string{"user_alt", "user_ext"}
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, AltNames: names}
	for i := 0; i < n; i++ {
		s := anvil.Session{User: users[rng.Intn(len(users))], Service: services[rng.Intn(len(services))],
			PID: int64(4200000 + i), ConnGUID: fmt.Sprintf("%032x", rng.Uint64()), Connections: 1}
		if ip := ips[rng.Intn(len(ips))]; ip != "" {
			s.IP = netip.MustParseAddr(ip)
		}
		if d := dests[rng.Intn(len(dests))]; d != "" {
			s.DestIP = netip.MustParseAddr(d)
		}
		if a := alts[rng.Intn(len(alts))]; a != "" {
			s.SetAlt(names, []string{"alt", a})
		}
		snap.Sessions = append(snap.Sessions, s)
	}
	return snap
}
