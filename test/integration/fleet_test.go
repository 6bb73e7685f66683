package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// fleet is three agents, on Dovecot 2.3, 2.4 and the 2.4 proxy, each with
// its own CrowdSec bouncer key, all polling one bundle server.
type fleet struct {
	insts  []*testrig.Instance
	agents []*agentProc
	bundle *bundleRig
}

func startFleet(t *testing.T, ctx context.Context) *fleet {
	t.Helper()
	f := &fleet{bundle: startBundleRig(t)}
	for _, name := range []string{testrig.V23, testrig.V24, testrig.V24Proxy} {
		inst := instance(t, name)
		waitQuiet(t, ctx, inst)
		f.insts = append(f.insts, inst)
	}
	f.bundle.publish(t, "r1", "rules: []\n", "fleet")
	lapi(t, "decisions-delete", "--all")
	t.Cleanup(func() { lapi(t, "decisions-delete", "--all") })
	csURL := lapiEnv(t)["CROWDSEC_URL"]
	for i, inst := range f.insts {
		// One bouncer key per agent: the LAPI streams each key the
		// changes since that key's last pull.
		name := fmt.Sprintf("kickagent-fleet-%d", i)
		key := fmt.Sprintf("%032x", 0xf1ee7000+i)
		_, _ = lapiTry(t, "cscli", "bouncers", "delete", name) // from an earlier run, if any
		lapi(t, "cscli", "bouncers", "add", name, "-k", key)
		keyFile := filepath.Join(t.TempDir(), "bouncer.key")
		writeFileT(t, keyFile, key+"\n")
		cfg := fmt.Sprintf("bundle:\n  url: %s\n  verification_keys: [%s]\n  poll_min: 1s\n  poll_max: 1s\n"+
			"crowdsec:\n  url: %s\n  api_key_file: %s\n  update_frequency: 1s\n",
			f.bundle.url(), filepath.Join(f.bundle.dir, "fleet.pub"), csURL, keyFile)
		a := startAgent(t, inst, agentOpts{rules: noRules, config: cfg})
		a.waitHealthy(t, 10*time.Second)
		f.agents = append(f.agents, a)
	}
	f.waitRevision(t, "r1")
	return f
}

// waitRevision waits until every agent runs bundle revision rev.
func (f *fleet) waitRevision(t *testing.T, rev string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i, a := range f.agents {
		for {
			if v, _ := a.metric(t, "kickagent_bundle_info", "revision", rev); v == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the agent does not run bundle %s", f.insts[i].Name, rev)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// holdEach logs user in from src on every host.
func (f *fleet) holdEach(t *testing.T, ctx context.Context, user, src string) []*held {
	t.Helper()
	var hs []*held
	for _, inst := range f.insts {
		hs = append(hs, hold(t, ctx, inst, login{user, src, "imap"})...)
	}
	return hs
}

// lastClose waits until every one of hs is closed and returns the time from
// since to the last close.
func lastClose(t *testing.T, ctx context.Context, hs []*held, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	var last time.Duration
	for _, h := range hs {
		last = max(last, closeTime(t, ctx, h.conn, since, within))
	}
	return last
}

// TestFleet: three agents on three real Dovecot instances, one nginx
// bundle server, one CrowdSec LAPI. A bundle reaches every agent and its
// rule closes sessions on every host; a wrongly signed bundle is refused
// everywhere; one CrowdSec decision closes an address's sessions on every
// host, and its deletion lets the address back in.
func TestFleet(t *testing.T) {
	ctx := testCtx(t)
	f := startFleet(t, ctx)
	within := 5 * time.Second

	victims := f.holdEach(t, ctx, "alice", "127.0.0.251")
	others := f.holdEach(t, ctx, "bob", "127.0.0.253")
	start := time.Now()
	f.bundle.publish(t, "r2", "rules:\n  - {name: fleet-block, networks: [127.0.0.251/32], description: OPS-17}\n", "fleet")
	d := lastClose(t, ctx, victims, start, within)
	f.waitRevision(t, "r2")
	t.Logf("bundle r2 published → last of %d sessions closed in %v", len(victims), d)

	f.bundle.publish(t, "r3", "rules:\n  - {name: fleet-block, networks: [127.0.0.253/32]}\n", "evil")
	time.Sleep(3 * time.Second) // three polls
	f.waitRevision(t, "r2")
	for i, a := range f.agents {
		if v, _ := a.metric(t, "kickagent_bundle_failures_total", "reason", "verify"); v < 1 {
			t.Errorf("%s: the wrongly signed r3 was not counted as refused", f.insts[i].Name)
		}
	}

	banned := f.holdEach(t, ctx, "carol", "127.0.0.252")
	start = time.Now()
	lapi(t, "decisions-add", "--ip", "127.0.0.252", "--duration", "10m", "--reason", "fleet-it")
	d = lastClose(t, ctx, banned, start, within)
	t.Logf("cscli decisions add --ip → last of %d sessions closed in %v", len(banned), d)
	assertOpen(t, ctx, connsOf(others)...)

	lapi(t, "decisions-delete", "--ip", "127.0.0.252")
	time.Sleep(2*time.Second + agentInterval)
	back := f.holdEach(t, ctx, "carol", "127.0.0.252")
	stayOpen(t, ctx, 2, connsOf(back)...)
	stayOpen(t, ctx, 0, connsOf(others)...)
	for i, a := range f.agents {
		for _, k := range auditKicks(a.auditLog(t)) {
			if !strings.HasPrefix(k, "alice 127.0.0.251 ") && !strings.HasPrefix(k, "carol 127.0.0.252 ") {
				t.Errorf("%s: an unexpected kick: %s", f.insts[i].Name, k)
			}
		}
	}
}
