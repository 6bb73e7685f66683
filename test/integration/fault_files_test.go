package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// The rule-file fault tests (issue 12 items 7, 8, 14, 17) use client
// addresses 127.0.0.110-127.0.0.129 and the users dave and eve.

// jobLoadBound is how long a job may take to close a session: well below
// the 30 s fallback poll the lost watch used to fall back to, with margin
// for a loaded machine (the agent's interval is 1 s).
const jobLoadBound = 5 * time.Second

// TestFaultFiles: on real 2.3 and 2.4, a job still takes effect within
// seconds after the drop-in directory was deleted and made again or
// swapped through a symlink, and with an unrelated broken drop-in; blocks
// stay while the directory is missing; a rules file over the size limit is
// refused by name while cycles go on; the agent's debug log in a watched
// directory does not make it reload in a loop.
func TestFaultFiles(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			t.Run("drop-in dir deleted and made again", func(t *testing.T) { faultDirRecreated(t, inst) })
			t.Run("drop-in dir swapped through a symlink", func(t *testing.T) { faultDirSymlink(t, inst) })
			t.Run("broken unrelated drop-in", func(t *testing.T) { faultBrokenDropIn(t, inst) })
			t.Run("rules file over the limit", func(t *testing.T) { faultBigFile(t, inst) })
			t.Run("debug log in a watched dir", func(t *testing.T) { faultLogInWatchedDir(t, inst) })
		})
	}
}

// blockCloses runs kickagent block NETWORK and returns how long the held
// session c took to close, from before the command ran.
func blockCloses(t *testing.T, ctx context.Context, a *agentProc, c *testrig.Conn, network string) time.Duration {
	t.Helper()
	start := time.Now()
	out, errOut, code := kickagent(t, ctx, "block", network, "--for", "10m", "--rules-dir", a.rulesD)
	if code != 0 {
		t.Fatalf("%s: kickagent block %s: exit %d\n%s%s", a.inst.Name, network, code, out, errOut)
	}
	d := closeTime(t, ctx, c, start, 3*jobLoadBound)
	if d > jobLoadBound {
		t.Errorf("%s: block %s → session closed took %v, want < %v (the 30 s poll, not the watch?)", a.inst.Name, network, d, jobLoadBound)
	}
	return d
}

func faultDirRecreated(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	a := startAgent(t, inst, agentOpts{rules: noRules})
	a.waitHealthy(t, 5*time.Second)
	c := holdListed(t, ctx, inst, login{"dave", "127.0.0.110", "imap"})[0]
	blockCloses(t, ctx, a, c, "127.0.0.110/32")

	// Deleted: a warning, and the block it held stays in force.
	warned := a.count("rules directory disappeared")
	if err := os.RemoveAll(a.rulesD); err != nil {
		t.Fatal(err)
	}
	a.waitLog(t, "rules directory disappeared", warned+1, 5*time.Second)
	a.waitMetric(t, 0, 5*time.Second, "kickagent_config_last_reload_successful")
	again := hold(t, ctx, inst, login{"dave", "127.0.0.110", "pop3"})[0].conn
	d := closeTime(t, ctx, again, time.Now(), 3*agentInterval+2*time.Second)
	t.Logf("%s: with rules.d deleted, a new session from the blocked network closed after %v", inst.Name, d)

	// Made again (empty: its blocks were deleted with it), then a block.
	if err := os.Mkdir(a.rulesD, 0o755); err != nil {
		t.Fatal(err)
	}
	a.waitMetric(t, 1, 5*time.Second, "kickagent_config_last_reload_successful")
	c2 := holdListed(t, ctx, inst, login{"eve", "127.0.0.111", "imap"})[0]
	d = blockCloses(t, ctx, a, c2, "127.0.0.111/32")
	t.Logf("%s: rules.d made again → block → session closed in %v", inst.Name, d)
}

func faultDirSymlink(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	base := t.TempDir()
	v1, v2, link := filepath.Join(base, "v1"), filepath.Join(base, "v2"), filepath.Join(base, "rules.d")
	for _, d := range []string{v1, v2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("v1", link); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, inst, agentOpts{rules: noRules, args: []string{"--rules-dir", link}})
	a.rulesD = link
	a.waitHealthy(t, 5*time.Second)
	c := holdListed(t, ctx, inst, login{"dave", "127.0.0.112", "imap"})[0]
	blockCloses(t, ctx, a, c, "127.0.0.112/32")

	// ln -sfn v2 rules.d: the new target (empty) is the rule set now.
	n := a.count("rules reloaded")
	if err := os.Symlink("v2", link+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(link+".new", link); err != nil {
		t.Fatal(err)
	}
	a.waitLog(t, "rules reloaded", n+1, jobLoadBound)
	c2 := holdListed(t, ctx, inst, login{"eve", "127.0.0.113", "imap"})[0]
	d := blockCloses(t, ctx, a, c2, "127.0.0.113/32")
	t.Logf("%s: rules.d swapped to v2 → block → session closed in %v", inst.Name, d)
}

func faultBrokenDropIn(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	a := startAgent(t, inst, agentOpts{rules: noRules})
	a.waitHealthy(t, 5*time.Second)
	broken := filepath.Join(a.rulesD, "60-typo.yaml")
	n := a.count("reload failed")
	a.dropIn(t, "60-typo.yaml", "rules:\n  - name: typo\n    networks: [127.0.0.115/32]\n    userz: [eve]\n")
	a.waitLog(t, "reload failed", n+1, jobLoadBound)

	c := holdListed(t, ctx, inst, login{"dave", "127.0.0.114", "imap"})[0]
	bystander := holdListed(t, ctx, inst, login{"eve", "127.0.0.115", "imap"})[0]
	start := time.Now()
	out, errOut, code := kickagent(t, ctx, "block", "127.0.0.114/32", "--for", "10m", "--rules-dir", a.rulesD)
	if code != 0 {
		t.Fatalf("%s: block with a broken unrelated drop-in: exit %d\n%s%s", inst.Name, code, out, errOut)
	}
	if !strings.Contains(errOut, "warning: "+broken+":4") {
		t.Errorf("%s: block did not warn about %s:4:\n%s", inst.Name, broken, errOut)
	}
	d := closeTime(t, ctx, c, start, 3*jobLoadBound)
	if d > jobLoadBound {
		t.Errorf("%s: block → session closed took %v, want < %v", inst.Name, d, jobLoadBound)
	}
	t.Logf("%s: block with a broken drop-in → session closed in %v", inst.Name, d)
	// The broken file kicks nothing; the failure stays visible.
	stayOpen(t, ctx, 2, bystander)
	a.waitMetric(t, 1, time.Second, "kickagent_rules_files_rejected")
	if v, _ := a.metric(t, "kickagent_config_last_reload_successful"); v != 0 {
		t.Errorf("%s: kickagent_config_last_reload_successful = %v with a broken drop-in, want 0", inst.Name, v)
	}
}

func faultBigFile(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	a := startAgent(t, inst, agentOpts{rules: "rules:\n  - name: blocked-116\n    networks: [127.0.0.116/32]\n"})
	a.waitHealthy(t, 5*time.Second)
	// 64 MiB of comments: valid YAML, far over the 4 MiB limit.
	big := filepath.Join(a.rulesD, "50-big.yaml")
	tmp := filepath.Join(a.rulesD, ".50-big.yaml.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	line := "# " + strings.Repeat("x", 1021) + "\n"
	for range 64 << 10 {
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintln(f, "rules: []")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cycles, _ := a.metric(t, "kickagent_cycles_total", "result", "ok")
	n := a.count("reload failed")
	if err := os.Rename(tmp, big); err != nil {
		t.Fatal(err)
	}
	a.waitLog(t, "reload failed", n+1, jobLoadBound)
	if !strings.Contains(a.stderr.String(), big+": rules file of 67108874 bytes is over the limit of 4194304 bytes") {
		t.Errorf("%s: no error naming %s and the limit:\n%s", inst.Name, big, a.stderr.String())
	}
	// Cycles go on, with the rules in force.
	a.waitMetricMin(t, cycles+3, 5*time.Second, "kickagent_cycles_total", "result", "ok")
	c := hold(t, ctx, inst, login{"dave", "127.0.0.116", "imap"})[0].conn
	closeTime(t, ctx, c, time.Now(), 3*agentInterval+2*time.Second)
}

func faultLogInWatchedDir(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	a := startAgent(t, inst, agentOpts{rules: noRules, args: []string{"--log-level", "debug"}})
	// A log shipper that appends each new piece of the agent's log to a
	// file beside rules.yaml and closes it (as `>>` in a loop, or a
	// logger reopening its file per line, does): every close is an
	// IN_CLOSE_WRITE in a watched directory.
	logFile := filepath.Join(a.dir, "kickagent.log")
	stop := make(chan struct{})
	shipped := make(chan struct{})
	go func() {
		defer close(shipped)
		sent := 0
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			s := a.stderr.String()
			if len(s) == sent {
				continue
			}
			f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				continue
			}
			f.WriteString(s[sent:])
			f.Close()
			sent = len(s)
		}
	}()
	defer func() { close(stop); <-shipped }()
	a.waitHealthy(t, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	before := a.count("reload: rules unchanged") + a.count("rules reloaded")
	time.Sleep(5 * time.Second)
	reloads := a.count("reload: rules unchanged") + a.count("rules reloaded") - before
	t.Logf("%s: %d reloads in 5 s with the debug log shipped into the watched directory", inst.Name, reloads)
	if reloads > 1 {
		t.Errorf("%s: %d reloads in 5 s with nothing changed but the log: a reload loop", inst.Name, reloads)
	}
	// Still watching: a block loads.
	c := holdListed(t, ctx, inst, login{"dave", "127.0.0.117", "imap"})[0]
	blockCloses(t, ctx, a, c, "127.0.0.117/32")
}
