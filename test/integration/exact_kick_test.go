package integration

import (
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/testrig"
)

// TestShared23ExactKick: on v23shared up to ten IMAP sessions share one
// imap process. kick alice destroys alice's socket in it (socket-destroy)
// and leaves bob's; kick bob with his address does the same for bob. dave
// and eve from one address cannot be told apart by their sockets: kick
// dave is refused and nothing is closed.
func TestShared23ExactKick(t *testing.T) {
	inst := instance(t, testrig.V23Shared)
	ctx := testCtx(t)
	waitQuiet(t, ctx, inst)
	hs := hold(t, ctx, inst,
		login{"alice", "127.0.0.144", "imap"},
		login{"bob", "127.0.0.145", "imap"},
		login{"dave", "127.0.0.146", "imap"},
		login{"eve", "127.0.0.146", "imap"},
	)
	waitListed(t, ctx, inst, hs)
	pid := sharedPID(t, whoJSON(t, ctx, inst), inst, "imap", hs)
	t.Logf("%s: alice, bob, dave, eve in imap pid %d", inst.Name, pid)

	for _, args := range [][]string{{"dave"}, {"DAVE", "127.0.0.146"}} {
		recs, code := kickJSON(t, ctx, inst, args...)
		if code != 2 {
			t.Errorf("%s: kick %q: exit %d, want 2 (refused)", inst.Name, args, code)
		}
		checkOutcomes(t, inst, recs, "dave refused-collateral")
		checkClosed(t, ctx, inst, hs)
	}
	_, errOut, code := kickagent(t, ctx, "kick", "-a", inst.Anvil, "dave")
	if code != 2 || !strings.Contains(errOut, "eve") || !strings.Contains(errOut, "--force") {
		t.Errorf("%s: kick dave: exit %d, stderr %q; want 2 naming eve and --force", inst.Name, code, errOut)
	}
	checkClosed(t, ctx, inst, hs)

	recs, code := kickJSON(t, ctx, inst, "alice")
	if code != 0 {
		t.Errorf("%s: kick alice: exit %d, want 0", inst.Name, code)
	}
	checkKicks(t, inst, recs, "alice 127.0.0.144 kicked socket-destroy")
	checkClosed(t, ctx, inst, hs, 0)

	recs, code = kickJSON(t, ctx, inst, "bob", "127.0.0.145")
	if code != 0 {
		t.Errorf("%s: kick bob 127.0.0.145: exit %d, want 0", inst.Name, code)
	}
	checkKicks(t, inst, recs, "bob 127.0.0.145 kicked socket-destroy")
	checkClosed(t, ctx, inst, hs, 0, 1)
}

// TestProxy24ExactByIP: on v24proxyhp one imap-login process proxies
// alice's connections from two addresses (and bob's). KICK-USER alice would
// close both of alice's, so kick alice ADDRESS destroys only the named
// connection's client socket in the login process (before: refused).
func TestProxy24ExactByIP(t *testing.T) {
	proxy := instance(t, testrig.V24ProxyHP)
	backend := instance(t, proxy.Backend)
	ctx := testCtx(t)
	waitQuiet(t, ctx, proxy)
	waitQuiet(t, ctx, backend)
	hs := hold(t, ctx, proxy,
		login{"alice", "127.0.0.147", "imap"},
		login{"alice", "127.0.0.148", "imap"},
		login{"bob", "127.0.0.149", "imap"},
	)
	recs := waitListedAs(t, ctx, proxy, hs, "-login")
	pid := sharedPID(t, recs, proxy, "imap-login", hs)
	t.Logf("%s: alice (.147, .148) and bob proxied by imap-login pid %d", proxy.Name, pid)

	krecs, code := kickJSON(t, ctx, proxy, "alice", "127.0.0.147")
	if code != 0 {
		t.Errorf("%s: kick alice 127.0.0.147: exit %d, want 0", proxy.Name, code)
	}
	checkKicks(t, proxy, krecs, "alice 127.0.0.147 kicked socket-destroy")
	checkClosed(t, ctx, proxy, hs, 0)
}
