package integration

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/testrig"
)

// TestExactKickNeedsNetAdmin: on v23shared alice (over IPv6) and bob share
// one imap process. Without CAP_NET_ADMIN (dropped from the bounding set,
// as a unit without it would run) kick alice falls back to today's refusal,
// naming the cause, and closes nothing; with it, exactly alice's socket is
// destroyed and bob stays.
func TestExactKickNeedsNetAdmin(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed to drop CAP_NET_ADMIN: %v", err)
	}
	inst := instance(t, testrig.V23Shared)
	ctx := testCtx(t)
	waitQuiet(t, ctx, inst)
	hs := hold(t, ctx, inst, login{"alice", "::1", "imap"}, login{"bob", "127.0.0.222", "imap"})
	waitListed(t, ctx, inst, hs)
	recs := whoJSON(t, ctx, inst)
	alice, bob := pidsOf(recs, "alice", "::1"), pidsOf(recs, "bob", "127.0.0.222")
	if len(alice) != 1 || !slices.Equal(alice, bob) {
		t.Fatalf("%s: alice (pids %v) and bob (pids %v) do not share one imap process: %+v", inst.Name, alice, bob, recs)
	}

	cmd := exec.CommandContext(ctx, setpriv, "--bounding-set=-net_admin", bin, "kick", "--json", "-a", inst.Anvil, "alice")
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("%s: kick alice without CAP_NET_ADMIN: %v, want exit 2\n%s", inst.Name, err, out)
	}
	if !strings.Contains(string(out), `"outcome":"refused-collateral"`) || !strings.Contains(string(out), "lacks CAP_NET_ADMIN") {
		t.Errorf("%s: kick alice without CAP_NET_ADMIN: want refused-collateral naming the capability, got %s", inst.Name, out)
	}
	checkClosed(t, ctx, inst, hs)

	krecs, code := kickJSON(t, ctx, inst, "alice")
	if code != 0 {
		t.Errorf("%s: kick alice: exit %d", inst.Name, code)
	}
	checkOutcomes(t, inst, krecs, "alice kicked")
	for _, r := range krecs {
		if r.Method != "socket-destroy" {
			t.Errorf("%s: record %+v: want method socket-destroy", inst.Name, r)
		}
	}
	checkClosed(t, ctx, inst, hs, 0)
}
