package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// bundleRig is a bundle server of the test's own (test/nginx/bundle-server.sh)
// and a signing key pair.
type bundleRig struct {
	dir, mkbundle string
	port          int
}

const bundlePort = 18483 // the rig's default is 18481, internal/bundle's tests use 18482

func startBundleRig(t *testing.T) *bundleRig {
	t.Helper()
	r := &bundleRig{dir: t.TempDir(), port: bundlePort}
	// nginx's workers run as nobody: they must reach the files.
	for _, d := range []string{r.dir, filepath.Dir(r.dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.mkbundle = filepath.Join(r.dir, "mkbundle")
	if out, err := exec.Command("go", "build", "-o", r.mkbundle, "../../test/cmd/mkbundle").CombinedOutput(); err != nil {
		t.Fatalf("build mkbundle: %v\n%s", err, out)
	}
	for _, k := range []string{"fleet", "evil"} {
		if out, err := exec.Command(r.mkbundle, "-genkey", filepath.Join(r.dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("mkbundle -genkey: %v\n%s", err, out)
		}
	}
	r.script(t, "start")
	t.Cleanup(func() { r.script(t, "stop") })
	return r
}

func (r *bundleRig) script(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("../../test/nginx/bundle-server.sh", args...)
	cmd.Env = append(os.Environ(), "BUNDLE_DIR="+r.dir, "BUNDLE_PORT="+strconv.Itoa(r.port))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bundle-server.sh %v: %v\n%s", args, err, out)
	}
}

func (r *bundleRig) url() string {
	return fmt.Sprintf("http://127.0.0.1:%d/bundles/kickagent.tar.gz", r.port)
}

// publish builds revision rev holding rules, signed with key, and publishes it.
func (r *bundleRig) publish(t *testing.T, rev, rules, key string) {
	t.Helper()
	src := filepath.Join(r.dir, "src-"+rev)
	if err := os.MkdirAll(filepath.Join(src, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileT(t, filepath.Join(src, "rules", "fleet.yaml"), rules)
	out := filepath.Join(r.dir, rev+".tar.gz")
	// Signed as key id "fleet" whatever the key: "evil" is a forged one.
	if o, e, code := kickagent(t, context.Background(), "bundle", "build", "--src", src, "--revision", rev,
		"--signing-key", filepath.Join(r.dir, key+".pem"), "--key-id", "fleet", "-o", out); code != 0 {
		t.Fatalf("kickagent bundle build %s: exit %d\n%s%s", rev, code, o, e)
	}
	r.script(t, "publish", out, "kickagent.tar.gz")
}

// TestBundleAgent: an agent takes its rules from a signed bundle on nginx:
// r1's block closes a real session; r2 replaces it; a wrongly signed r3 is
// refused and r2 stays; with the server stopped, a restarted agent still
// enforces r2 from its state directory.
func TestBundleAgent(t *testing.T) {
	inst := instance(t, testrig.V23)
	ctx := testCtx(t)
	waitQuiet(t, ctx, inst)
	r := startBundleRig(t)
	block := func(ip string) string {
		return fmt.Sprintf("rules:\n  - {name: fleet-block, networks: [%s/32], description: fleet}\n", ip)
	}
	r.publish(t, "r1", block("127.0.0.231"), "fleet")
	state := t.TempDir()
	cfg := fmt.Sprintf("bundle:\n  url: %s\n  verification_keys: [%s]\n  poll_min: 1s\n  poll_max: 1s\n", r.url(), filepath.Join(r.dir, "fleet.pub"))
	opts := agentOpts{rules: noRules, config: cfg, args: []string{"--state-dir", state}}
	a := startAgent(t, inst, opts)
	a.waitHealthy(t, 10*time.Second)

	hs := hold(t, ctx, inst, login{"alice", "127.0.0.231", "imap"}, login{"bob", "127.0.0.232", "imap"})
	closeTime(t, ctx, hs[0].conn, time.Now(), 3*agentInterval+time.Second)
	if v, _ := a.metric(t, "kickagent_bundle_info", "revision", "r1"); v != 1 {
		t.Errorf("%s: kickagent_bundle_info{revision=r1} = %v, want 1", inst.Name, v)
	}

	start := time.Now()
	r.publish(t, "r2", block("127.0.0.232"), "fleet")
	d := closeTime(t, ctx, hs[1].conn, start, 5*time.Second)
	t.Logf("%s: r2 published → bob closed in %v", inst.Name, d)
	again := hold(t, ctx, inst, login{"alice", "127.0.0.231", "imap"})
	stayOpen(t, ctx, 2, again[0].conn) // r1's block is gone with r1

	r.publish(t, "r3", block("127.0.0.231"), "evil")
	stayOpen(t, ctx, 3, again[0].conn)
	if v, _ := a.metric(t, "kickagent_bundle_info", "revision", "r2"); v != 1 {
		t.Errorf("%s: after the wrongly signed r3, kickagent_bundle_info{revision=r2} = %v, want 1", inst.Name, v)
	}
	if v, _ := a.metric(t, "kickagent_bundle_failures_total", "reason", "verify"); v < 1 {
		t.Errorf("%s: kickagent_bundle_failures_total{reason=verify} = %v, want at least 1", inst.Name, v)
	}

	a.stop(t)
	r.script(t, "stop")
	a = startAgent(t, inst, opts)
	a.waitHealthy(t, 10*time.Second)
	late := hold(t, ctx, inst, login{"bob", "127.0.0.232", "imap"})
	closeTime(t, ctx, late[0].conn, time.Now(), 3*agentInterval+time.Second)
	assertOpen(t, ctx, again[0].conn)
}
