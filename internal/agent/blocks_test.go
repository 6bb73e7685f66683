package agent

import (
	"bytes"
	"context"
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

// fakeBlocks blocks one IP.
type fakeBlocks struct {
	ip      netip.Addr
	expired int
}

func (f *fakeBlocks) Blocked() func(netip.Addr) (engine.Block, bool) {
	if !f.ip.IsValid() {
		return nil
	}
	return func(ip netip.Addr) (engine.Block, bool) {
		return engine.Block{Rule: "brute", Reason: "test block"}, ip == f.ip
	}
}

func (f *fakeBlocks) Expire() { f.expired++ }

// TestCycleKicksBlockedClients: a brute-force block kicks the blocked
// client's sessions in the next cycle (the allow list still wins), and
// nothing else; Expire runs every cycle.
func TestCycleKicksBlockedClients(t *testing.T) {
	snap := sessions(4, func(i int) string { return []string{"alice", "bob", "monitor", "carol"}[i] })
	blocked := snap.Sessions[0].IP
	snap.Sessions[2].IP = blocked // monitor, allow-listed, from the blocked IP
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte("allow: {users: [monitor]}\nrules:\n  - {name: brute, failed_logins: 5}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{snap: snap}
	k := &fakeKicker{src: src}
	fb := &fakeBlocks{}
	var buf bytes.Buffer
	a := New(Settings{}, Deps{Source: src, Kicker: k, Audit: audit.New(&buf), Metrics: NewMetrics(prometheus.NewRegistry()),
		Now:    func() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) },
		Blocks: fb,
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			return engine.Load(ctx, engine.Sources{Rules: []string{path}})
		}})
	if err := a.Run(context.Background(), nil, true); err != nil {
		t.Fatal(err)
	}
	if len(k.kicked) != 0 {
		t.Fatalf("kicked %v with no block", k.kicked)
	}
	fb.ip = blocked
	if err := a.cycle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(k.kicked, ","); got != "alice" {
		t.Fatalf("kicked %q, want alice (monitor is allow-listed)", got)
	}
	if fb.expired != 2 {
		t.Errorf("Expire ran %d times in 2 cycles", fb.expired)
	}
	if !strings.Contains(buf.String(), `"rule":"brute"`) || !strings.Contains(buf.String(), `"result":"allowed"`) {
		t.Errorf("audit lacks the block's kick or the allowed record:\n%s", buf.String())
	}
	if a.Protocol() != anvil.Proto24 {
		t.Errorf("Protocol() = %v", a.Protocol())
	}
}
