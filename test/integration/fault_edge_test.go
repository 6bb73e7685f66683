package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// The edge fault tests (issue 12 items 1, 2, 3, 15, 16) use client
// addresses 127.0.5.1-127.0.5.40 only, and every rule or policy that kicks
// names those addresses.

// noOfficeRego kicks the sessions from 127.0.5.6 of users with no session
// from the "office" 127.0.5.5: a policy that relates sessions.
const noOfficeRego = `package kickagent

office_users := {t.user | some t in input.sessions; kickagent.in_networks(t.ip, ["127.0.5.5/32"])}

kick contains {"session": s.id, "rule": "no-office", "reason": "no office session"} if {
	some s in input.sessions
	kickagent.in_networks(s.ip, ["127.0.5.6/32"])
	not s.user in office_users
}
`

// TestFaultEdgeCrossSession (item 1): with about 3,000 sessions in anvil a
// cross-session policy sees the whole snapshot. Before, the policy was
// evaluated in chunks from 2,048 sessions on (with 2 CPUs), each chunk
// seeing only itself, and alice's session from 127.0.5.6 was kicked
// although her office session existed in another chunk.
func TestFaultEdgeCrossSession(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			ctx := testCtx(t)
			// alice from elsewhere first and from the office last, with the
			// synthetic sessions in between, so that whatever anvil's order
			// her two sessions are far apart in the dump.
			away := holdListed(t, ctx, inst, login{"alice", "127.0.5.6", "imap"})[0]
			bob := holdListed(t, ctx, inst, login{"bob", "127.0.5.6", "imap"})[0]
			ss := holdSynthetic(t, inst, testrig.SyntheticMix(3000, 12),
				netip.MustParsePrefix("127.0.5.5/32"), netip.MustParsePrefix("127.0.5.6/32"))
			office := holdListed(t, ctx, inst, login{"alice", "127.0.5.5", "pop3"})[0]

			policy := filepath.Join(t.TempDir(), "policy")
			if err := os.Mkdir(policy, 0o755); err != nil {
				t.Fatal(err)
			}
			writeFileT(t, filepath.Join(policy, "office.rego"), noOfficeRego)
			a := startAgent(t, inst, agentOpts{rules: noRules, args: []string{"--policy", policy}})
			d := closeTime(t, ctx, bob, a.started, 20*time.Second)
			t.Logf("%s: bob (no office session) closed %v after the agent started, %d synthetic sessions", inst.Name, d, len(ss))
			stayOpen(t, ctx, 3, away, office)
			a.waitMetricMin(t, 4, 10*time.Second, "kickagent_cycles_total", "result", "ok")
			assertOpen(t, ctx, away, office)
			for _, r := range results(a.auditLog(t), "kicked", "dry-run", "failed") {
				if r != "no-office bob 127.0.5.6 kicked" {
					t.Errorf("%s: unexpected audit record %q", inst.Name, r)
				}
			}
		})
	}
}

// allowRules names alice and bob from 127.0.5.10-11 in a rule and allows
// alice: losing the allow list would kick alice.
const allowRules = `allow:
  users: [alice]
rules:
  - name: edge-allow
    users: [alice, bob]
    networks: [127.0.5.10/32]
`

// TestFaultEdgeMainRulesFile (item 2): a truncated, half-written or
// replaced-by-a-directory main rules file does not drop the allow list.
// Before, the empty file loaded as no rules and no allow list, and a file
// written in steps was loaded in the middle, with the rule but without the
// allow list, and alice was kicked.
func TestFaultEdgeMainRulesFile(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			t.Run("truncated", func(t *testing.T) { edgeTruncated(t, inst) })
			t.Run("written line by line", func(t *testing.T) { edgeSlowWriter(t, inst) })
			t.Run("directory in its place", func(t *testing.T) { edgeRulesDir(t, inst) })
		})
	}
}

// edgeAllowAgent starts an agent on allowRules with alice held from the
// ruled network, and waits until a cycle has left her alone.
func edgeAllowAgent(t *testing.T, ctx context.Context, inst *testrig.Instance) (*agentProc, *testrig.Conn) {
	t.Helper()
	alice := holdListed(t, ctx, inst, login{"alice", "127.0.5.10", "imap"})[0]
	a := startAgent(t, inst, agentOpts{rules: allowRules})
	a.waitHealthy(t, 10*time.Second)
	a.waitMetric(t, 1, 5*time.Second, "kickagent_config_last_reload_successful")
	stayOpen(t, ctx, 1, alice)
	return a, alice
}

// noAliceKick fails when the audit log holds a record for alice other
// than the allow list sparing her.
func noAliceKick(t *testing.T, a *agentProc) {
	t.Helper()
	for _, r := range a.auditLog(t) {
		if r.User == "alice" && r.Result != "allowed" {
			t.Errorf("%s: the agent acted on alice: %+v", a.inst.Name, r)
		}
	}
}

func edgeTruncated(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	a, alice := edgeAllowAgent(t, ctx, inst)
	n := a.count("reload failed") + a.count("reload refused")
	// : > rules.yaml
	f, err := os.OpenFile(a.rules, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	a.waitMetric(t, 0, 10*time.Second, "kickagent_config_last_reload_successful")
	if a.count("reload failed")+a.count("reload refused") <= n {
		t.Errorf("%s: no \"reload failed\" or \"reload refused\" in the log after the truncation", inst.Name)
	}
	stayOpen(t, ctx, 3, alice)
	noAliceKick(t, a)
	a.alive(t)
}

func edgeSlowWriter(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	a, alice := edgeAllowAgent(t, ctx, inst)
	bob := holdListed(t, ctx, inst, login{"bob", "127.0.5.11", "imap"})[0]
	// The new version adds bob's address; the rule comes first, the allow
	// list seconds later, as a slow writer (or a full disk, or a crash)
	// leaves it.
	lines := []string{
		"rules:\n",
		"  - name: edge-allow\n",
		"    users: [alice, bob]\n",
		"    networks: [127.0.5.10/32, 127.0.5.11/32]\n",
	}
	for i := range 8 {
		lines = append(lines, fmt.Sprintf("# pause %d\n", i))
	}
	lines = append(lines, "allow:\n", "  users: [alice]\n")
	n := a.count("rules reloaded")
	f, err := os.OpenFile(a.rules, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := f.WriteString(l); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := alice.StillOpen(ctx); err != nil {
			t.Fatalf("%s: alice kicked while the rules file was being written (after %q): %v", inst.Name, l, err)
		}
	}
	start := time.Now()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	a.waitLog(t, "rules reloaded", n+1, 10*time.Second)
	a.waitMetric(t, 1, 5*time.Second, "kickagent_config_last_reload_successful")
	d := closeTime(t, ctx, bob, start, 10*time.Second)
	t.Logf("%s: written file closed → bob closed in %v", inst.Name, d)
	stayOpen(t, ctx, 2, alice)
	noAliceKick(t, a)
}

func edgeRulesDir(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	a, alice := edgeAllowAgent(t, ctx, inst)
	n := a.count("reload failed")
	if err := os.Remove(a.rules); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(a.rules, 0o755); err != nil {
		t.Fatal(err)
	}
	a.waitMetric(t, 0, 10*time.Second, "kickagent_config_last_reload_successful")
	if a.count("reload failed") <= n {
		t.Errorf("%s: no \"reload failed\" in the log with a directory at %s", inst.Name, a.rules)
	}
	stayOpen(t, ctx, 3, alice)
	noAliceKick(t, a)
	// check refuses it too.
	out, errOut, code := kickagent(t, ctx, "check", "--rules", a.rules)
	if code != 78 || !strings.Contains(errOut, a.rules) {
		t.Errorf("%s: check --rules <a directory named rules.yaml>: exit %d, want 78 naming it\n%s%s", inst.Name, code, out, errOut)
	}
}

// TestFaultEdgeExpiredRule (item 3): a hand-written drop-in and a main
// rules file that each hold an expired and an active rule stay on disk,
// their active rules kick, and an agent restarted on them starts. Before,
// the agent deleted any file named like a job's (kickagent-block-*.yaml)
// once a rule in it had expired, whole, wherever it was, and a restart
// exited 78 on the missing main rules file. Both files here carry such
// names: only a file a job command wrote, holding its one rule, is the
// agent's to delete.
func TestFaultEdgeExpiredRule(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			ctx := testCtx(t)
			main := "rules:\n" +
				"  - name: main-expired\n    networks: [127.0.5.21/32]\n    expires: 2020-01-01T00:00:00Z\n" +
				"  - name: main-active\n    users: [dave]\n    networks: [127.0.5.22/32]\n"
			hand := "rules:\n" +
				"  - name: hand-expired\n    networks: [127.0.5.23/32]\n    expires: 2020-01-01T00:00:00Z\n" +
				"  - name: hand-active\n    users: [carol]\n    networks: [127.0.5.20/32]\n"
			cs := holdListed(t, ctx, inst,
				login{"carol", "127.0.5.20", "imap"},
				login{"dave", "127.0.5.22", "pop3"},
				login{"eve", "127.0.5.21", "imap"}, // only expired rules name these
				login{"eve", "127.0.5.23", "imap"},
			)
			mainFile := filepath.Join(t.TempDir(), "kickagent-block-main.yaml")
			writeFileT(t, mainFile, main)
			a := startAgent(t, inst, agentOpts{rules: noRules, args: []string{"--rules", mainFile}})
			handFile := filepath.Join(a.rulesD, "kickagent-block-hand.yaml")
			writeFileT(t, handFile, hand)
			closeTime(t, ctx, cs[1], a.started, 10*time.Second)
			closeTime(t, ctx, cs[0], a.started, 10*time.Second)
			stayOpen(t, ctx, 3, cs[2:]...)
			for _, f := range []string{mainFile, handFile} {
				if _, err := os.Stat(f); err != nil {
					t.Errorf("%s: after several cycles: %v", inst.Name, err)
				}
			}

			a.stop(t)
			b := startAgent(t, inst, agentOpts{rules: noRules, args: []string{"--rules", mainFile, "--rules-dir", a.rulesD}})
			b.rules, b.rulesD = mainFile, a.rulesD
			b.waitHealthy(t, 10*time.Second)
			again := hold(t, ctx, inst, login{"carol", "127.0.5.20", "pop3"})[0].conn
			closeTime(t, ctx, again, time.Now(), 10*time.Second)
			assertOpen(t, ctx, cs[2:]...)
			for _, f := range []string{mainFile, handFile} {
				if _, err := os.Stat(f); err != nil {
					t.Errorf("%s: after the restart: %v", inst.Name, err)
				}
			}
		})
	}
}

// TestFaultEdgeSettings (item 15): out-of-bounds settings are refused, as
// flags with exit 64 and in the config file with exit 78 and file:line, by
// run against a real anvil and by check; the agent never cycles with them.
// Before, they loaded (1ms cycled a thousand times a second, -5s made
// the ticker panic, max_kicks_per_cycle -1 and breaker_fraction 1.5 ran).
func TestFaultEdgeSettings(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			ctx := testCtx(t)
			c := holdListed(t, ctx, inst, login{"jano", "127.0.5.30", "imap"})[0]
			dir := t.TempDir()
			rules := filepath.Join(dir, "rules.yaml")
			writeFileT(t, rules, "rules:\n  - name: edge-settings\n    users: [jano]\n    networks: [127.0.5.30/32]\n")
			base := []string{"run", "-a", inst.Anvil, "--rules", rules, "--rules-dir", filepath.Join(dir, "rules.d"),
				"--audit-log", filepath.Join(dir, "audit.log"), "--metrics", "off", "--state-dir", "off"}
			for _, v := range []string{"1ns", "-5s", "0s", "1ms"} {
				out, errOut, code := runBounded(t, ctx, append(base, "--interval", v)...)
				if code != 64 || !strings.Contains(errOut, "interval") {
					t.Errorf("%s: run --interval %s: exit %d, want 64 naming the flag\n%s%s", inst.Name, v, code, out, errOut)
				}
			}
			for _, f := range [][]string{{"--max-kicks-per-cycle", "-1"}, {"--breaker-fraction", "1.5"}} {
				out, errOut, code := runBounded(t, ctx, append(base, f...)...)
				if code != 64 || !strings.Contains(errOut, strings.TrimPrefix(f[0], "--")) {
					t.Errorf("%s: run %s: exit %d, want 64 naming the flag\n%s%s", inst.Name, strings.Join(f, " "), code, out, errOut)
				}
			}
			for _, cfg := range []struct{ text, where string }{
				{"interval: 1ns\n", ":1"},
				{"interval: -5s\n", ":1"},
				{"interval: 0s\n", ":1"},
				{"interval: 1ms\n", ":1"},
				{"limits:\n  max_kicks_per_cycle: -1\n", ":2"},
				{"limits:\n  breaker_fraction: 1.5\n", ":2"},
			} {
				path := filepath.Join(dir, "kickagent.yaml")
				writeFileT(t, path, cfg.text)
				out, errOut, code := runBounded(t, ctx, append(base, "-c", path)...)
				if code != 78 || !strings.Contains(errOut, path+cfg.where) {
					t.Errorf("%s: run -c with %q: exit %d, want 78 naming %s%s\n%s%s", inst.Name, cfg.text, code, path, cfg.where, out, errOut)
				}
				out, errOut, code = kickagent(t, ctx, "check", "-c", path, "--rules", rules)
				if code != 78 || !strings.Contains(out+errOut, path+cfg.where) {
					t.Errorf("%s: check -c with %q: exit %d, want 78 naming %s%s\n%s%s", inst.Name, cfg.text, code, path, cfg.where, out, errOut)
				}
			}
			assertOpen(t, ctx, c)
			if b, err := os.ReadFile(filepath.Join(dir, "audit.log")); err == nil && len(b) > 0 {
				t.Errorf("%s: an agent with a refused setting wrote audit records:\n%s", inst.Name, b)
			}
		})
	}
}

// runBounded runs the agent for at most 5 s: one refusing its settings
// exits at once; one that started cycling is stopped (SIGKILL by the
// context, exit -1).
func runBounded(t *testing.T, ctx context.Context, args ...string) (string, string, int) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return kickagent(t, rctx, args...)
}

// TestFaultEdgeAnvilSilent (item 16): an anvil that accepts connections
// but does not answer (SIGSTOP) is reported as such by who and by the
// agent, /healthz turns unhealthy, and the agent kicks again once anvil
// runs. A directory or a regular file at the socket path is named as what
// it is. Before, the first read "connect … context deadline exceeded" or
// "CONNECT-DUMP: context deadline exceeded", the second "stale socket".
func TestFaultEdgeAnvilSilent(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			edgeAnvilStopped(t, instance(t, name))
		})
	}
	t.Run("not a socket", func(t *testing.T) {
		ctx := testCtx(t)
		dir := t.TempDir()
		file := filepath.Join(dir, "anvil-file")
		writeFileT(t, file, "")
		for _, c := range []struct{ path, want string }{
			{dir, "is a directory, not a socket"},
			{file, "is not a socket but a regular file"},
		} {
			out, errOut, code := kickagent(t, ctx, "who", "-a", c.path, "--timeout", "2s")
			if code == 0 || !strings.Contains(errOut, c.want) || strings.Contains(errOut, "stale") {
				t.Errorf("who -a %s: exit %d, want a failure saying %q (not stale)\n%s%s", c.path, code, c.want, out, errOut)
			}
		}
	})
}

// silentMsg is the part of anvil's error that says it accepted but did
// not answer (internal/anvil timeoutError).
const silentMsg = "connected, but anvil sent no"

func edgeAnvilStopped(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	c := holdListed(t, ctx, inst, login{"james", "127.0.5.35", "imap"})[0]
	a := startAgent(t, inst, agentOpts{rules: noRules})
	a.waitHealthy(t, 10*time.Second)

	pid := anvilPID(t, inst)
	// Never leave the shared instance's anvil stopped, whatever happens.
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("%s: SIGSTOP anvil (pid %d): %v", inst.Name, pid, err)
	}
	stopped := time.Now()
	out, errOut, code := kickagent(t, ctx, "who", "-a", inst.Anvil, "--timeout", "2s")
	if code == 0 || !strings.Contains(errOut, silentMsg) {
		t.Errorf("%s: who with anvil stopped: exit %d, want a failure saying %q\n%s%s", inst.Name, code, silentMsg, out, errOut)
	}
	// A rule for james while anvil is stopped: it loads, it cannot kick.
	a.dropIn(t, "50-james.yaml", "rules:\n  - name: edge-james\n    users: [james]\n    networks: [127.0.5.35/32]\n")
	a.waitLog(t, silentMsg, 1, 10*time.Second)
	deadline := time.Now().Add(3*agentInterval + 10*time.Second)
	for {
		code, body, err := a.get("/healthz")
		if err == nil && code != http.StatusOK {
			t.Logf("%s: /healthz %d %q %v after anvil stopped", inst.Name, code, strings.TrimSpace(body), time.Since(stopped).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /healthz still %d %q %v with anvil stopped for %v", inst.Name, code, body, err, time.Since(stopped))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatalf("%s: SIGCONT anvil: %v", inst.Name, err)
	}
	resumed := time.Now()
	d := closeTime(t, ctx, c, resumed, 15*time.Second)
	t.Logf("%s: anvil resumed → james closed in %v", inst.Name, d)
	a.waitHealthy(t, 10*time.Second)
}

// anvilPID finds the instance's anvil: the process named anvil whose
// parent is the master in <base_dir>/master.pid.
func anvilPID(t *testing.T, inst *testrig.Instance) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(inst.BaseDir, "master.pid"))
	if err != nil {
		t.Fatal(err)
	}
	master := strings.TrimSpace(string(b))
	out, err := exec.Command("ps", "-o", "pid=,comm=", "--ppid", master).Output()
	if err != nil {
		t.Fatalf("%s: ps --ppid %s: %v", inst.Name, master, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[1] == "anvil" {
			pid, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	t.Fatalf("%s: no anvil child of master %s:\n%s", inst.Name, master, out)
	return 0
}
