package integration

import (
	"slices"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/testrig"
)

// TestKick23SharedProcessCollateral: on v23shared alice and bob share one
// imap process, and Dovecot 2.3 can only kick a whole process (SIGTERM).
// They connect from one address, so alice's socket in that process cannot
// be told from bob's (socket-destroy needs a client address no unselected
// session of the process has; TestShared23ExactKick covers two addresses):
// kick alice must refuse and name bob; --force closes both.
func TestKick23SharedProcessCollateral(t *testing.T) {
	inst := instance(t, testrig.V23Shared)
	ctx := testCtx(t)
	logins := []login{
		0: {"alice", "127.0.0.2", "imap"},
		1: {"bob", "127.0.0.2", "imap"},
		2: {"carol", "127.0.0.4", "pop3"}, // pop3 keeps one process per session
	}
	waitQuiet(t, ctx, inst)
	hs := hold(t, ctx, inst, logins...)
	waitListed(t, ctx, inst, hs)
	recs := whoJSON(t, ctx, inst)
	alice, bob := pidsOf(recs, "alice", "127.0.0.2"), pidsOf(recs, "bob", "127.0.0.2")
	if len(alice) != 1 || !slices.Equal(alice, bob) {
		t.Fatalf("%s: alice (pids %v) and bob (pids %v) do not share one imap process: %+v", inst.Name, alice, bob, recs)
	}

	for _, args := range [][]string{{"alice"}, {"ALICE", "127.0.0.2"}, {"--dry-run", "alice"}} {
		out, errOut, code := kickagent(t, ctx, append([]string{"kick", "-a", inst.Anvil}, args...)...)
		if code != 2 {
			t.Errorf("%s: kick %q: exit %d, want 2\nstdout: %s\nstderr: %s", inst.Name, args, code, out, errOut)
		}
		if !strings.Contains(errOut, "bob") || !strings.Contains(errOut, "--force") {
			t.Errorf("%s: kick %q: stderr does not name bob and --force: %s", inst.Name, args, errOut)
		}
		checkClosed(t, ctx, inst, hs)
	}

	// A dry run with --force shows the collateral it would close.
	drecs, code := kickJSON(t, ctx, inst, "--dry-run", "--force", "alice")
	if code != 0 {
		t.Errorf("%s: kick --dry-run --force alice: exit %d", inst.Name, code)
	}
	checkOutcomes(t, inst, drecs, "alice dry-run", "bob dry-run collateral")
	checkClosed(t, ctx, inst, hs)

	krecs, code := kickJSON(t, ctx, inst, "--force", "alice")
	if code != 0 {
		t.Errorf("%s: kick --force alice: exit %d", inst.Name, code)
	}
	checkOutcomes(t, inst, krecs, "alice kicked", "bob kicked collateral")
	for _, r := range krecs {
		if r.Method != "sigterm" || r.PID != alice[0] {
			t.Errorf("%s: record %+v: want method sigterm on pid %d", inst.Name, r, alice[0])
		}
	}
	checkClosed(t, ctx, inst, hs, 0, 1)
}
