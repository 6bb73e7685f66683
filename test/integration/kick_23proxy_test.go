package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/ipc"
)

// TestKick23Proxy kicks Dovecot 2.3 proxied sessions, which only the ipc
// socket knows, and checks which client connections the proxy closes.
func TestKick23Proxy(t *testing.T) {
	ctx := testCtx(t)
	inst := instance(t, "v23proxy")
	hs := hold(t, ctx, inst,
		login{"alice", "127.0.0.2", "imap"},
		login{"alice", "127.0.0.3", "imap"},
		login{"bob", "::1", "imap"},
		login{"jane", "127.0.0.4", "pop3"},
	)
	alice2, alice3, bob, jane := hs[0].conn, hs[1].conn, hs[2].conn, hs[3].conn
	waitProxies(t, ctx, inst.IPC, 4)

	// alice's two proxies share ipc's per-user KICK: naming one is refused.
	_, errOut, code := kickagent(t, ctx, "kick", "-a", inst.Anvil, "alice", "127.0.0.2")
	if code != 2 || !strings.Contains(errOut, "127.0.0.3") {
		t.Fatalf("kick alice 127.0.0.2: exit %d, stderr %q; want 2 naming the other connection", code, errOut)
	}
	assertOpen(t, ctx, alice2, alice3, bob, jane)

	// -h with a mask, on a POP3 proxy.
	out, errOut, code := kickagent(t, ctx, "kick", "-a", inst.Anvil, "-h", "127.0.0.1", "JA*")
	if code != 0 || !strings.Contains(out, "jane") {
		t.Fatalf("kick -h 127.0.0.1 JA*: exit %d\n%s%s", code, out, errOut)
	}
	assertClosed(t, ctx, jane)
	assertOpen(t, ctx, alice2, alice3, bob)

	// alt field with a wildcard.
	if out, errOut, code := kickagent(t, ctx, "kick", "-a", inst.Anvil, "-f", "user_alt", "BOB-*"); code != 0 {
		t.Fatalf("kick -f user_alt BOB-*: exit %d\n%s%s", code, out, errOut)
	}
	assertClosed(t, ctx, bob)
	assertOpen(t, ctx, alice2, alice3)

	// --force accepts the collateral.
	if out, errOut, code := kickagent(t, ctx, "kick", "--force", "-a", inst.Anvil, "alice", "127.0.0.2"); code != 0 {
		t.Fatalf("kick --force alice 127.0.0.2: exit %d\n%s%s", code, out, errOut)
	}
	assertClosed(t, ctx, alice2, alice3)

	if _, _, code := kickagent(t, ctx, "kick", "-a", inst.Anvil, "nobody*"); code != 68 {
		t.Fatalf("kick nobody*: exit %d, want 68", code)
	}
}

func waitProxies(t *testing.T, ctx context.Context, path string, n int) {
	t.Helper()
	cl := &ipc.Client{Path: path}
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := cl.List(ctx)
		if err == nil && len(list) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ipc lists %d proxies (err %v), want %d", len(list), err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
