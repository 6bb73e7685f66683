package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// Issue 13 item 6: "drain --dest IP on a server that proxies nothing
// completes at once without a hint". Client addresses 127.0.0.130-131.

// TestCLIPapercutsDrainHint: on the 2.4 backend (which proxies nothing) a
// drain of 127.0.0.1 says it has nothing to kick; the agent then ends it
// at its next cycle and the backend's own session stays. On the 2.4 proxy
// the same drain, with a session proxied to 127.0.0.1, says nothing more,
// and a drain of 127.0.0.2 (a backend nobody is proxied to) gets the note.
func TestCLIPapercutsDrainHint(t *testing.T) {
	ctx := testCtx(t)
	const note = "no session on this server is proxied to"

	backend := instance(t, testrig.V24)
	a := startAgent(t, backend, agentOpts{rules: noRules})
	a.waitHealthy(t, 5*time.Second)
	direct := holdAll(t, ctx, backend, login{"eve", "127.0.0.130", "imap"})
	out, errOut, code := a.job(t, ctx, "drain", "--dest", "127.0.0.1", "-a", backend.Anvil)
	if code != 0 || !strings.Contains(errOut, note+" 127.0.0.1") {
		t.Fatalf("%s: drain --dest 127.0.0.1 on a server that proxies nothing: exit %d\nstdout: %s\nstderr: %s", backend.Name, code, out, errOut)
	}
	t.Logf("%s: %s", backend.Name, strings.TrimSpace(errOut))
	a.waitRemoved(t, a.jobFile(t, out), 3*agentInterval)
	stayOpen(t, ctx, 2, direct[0].conn)

	proxy := instance(t, testrig.V24Proxy)
	holdAll(t, ctx, proxy, login{"eve", "127.0.0.131", "imap"})
	waitProxied(t, ctx, proxy, "127.0.0.1", 1)
	// No agent runs on the proxy: the drain files are only written, in a
	// directory of this test, and nothing is kicked.
	dir := t.TempDir()
	out, errOut, code = kickagent(t, ctx, "drain", "--dest", "127.0.0.1", "--rules-dir", dir, "-a", proxy.Anvil)
	if code != 0 || strings.Contains(errOut, "note") {
		t.Errorf("%s: drain --dest 127.0.0.1 with a proxied session: exit %d\nstdout: %s\nstderr: %s", proxy.Name, code, out, errOut)
	}
	out, errOut, code = kickagent(t, ctx, "drain", "--dest", "127.0.0.2", "--rules-dir", dir, "-a", proxy.Anvil)
	if code != 0 || !strings.Contains(errOut, note+" 127.0.0.2") {
		t.Errorf("%s: drain --dest 127.0.0.2, proxied to nobody: exit %d\nstdout: %s\nstderr: %s", proxy.Name, code, out, errOut)
	}
}
