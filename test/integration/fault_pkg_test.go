package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// TestFaultPkgInstalledDefaults: issue 13 item 4. The agent on the config
// and rules the package and make install put in /etc/kickagent kicks nothing
// on real Dovecot, even with a rule in rules.d selecting a session: it
// decides, audits dry-run, and the session stays open. After the README's
// "Going live" edit (dry_run: false) the same rule closes the session and
// only it.
func TestFaultPkgInstalledDefaults(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			ctx := testCtx(t)
			installed := installedConfig(t)
			cs := holdListed(t, ctx, inst,
				login{"alice", "127.0.0.201", "imap"}, // the rule's
				login{"bob", "127.0.0.202", "pop3"},
			)
			target, bystander := cs[0], cs[1]
			rule := "rules:\n  - name: pkg-net\n    networks: [127.0.0.201/32]\n"

			a := startAgent(t, inst, agentOpts{rules: "rules: []\n", config: installed})
			a.dropIn(t, "pkg-net.yaml", rule)
			pkgWaitAudit(t, a, "dry-run", "127.0.0.201", 10*time.Second)
			stayOpen(t, ctx, 2, target, bystander)
			if got := results(a.auditLog(t), "kicked", "failed"); len(got) > 0 {
				t.Errorf("%s: the installed defaults kicked: %v", name, got)
			}
			a.stop(t)

			live := strings.Replace(installed, "\ndry_run: true\n", "\ndry_run: false\n", 1)
			if live == installed {
				t.Fatal("the installed config has no dry_run: true line to edit")
			}
			b := startAgent(t, inst, agentOpts{rules: "rules: []\n", config: live})
			b.dropIn(t, "pkg-net.yaml", rule)
			closeTime(t, ctx, target, time.Now(), 10*time.Second)
			pkgWaitAudit(t, b, "kicked", "127.0.0.201", 5*time.Second)
			assertOpen(t, ctx, bystander)
		})
	}
}

// installedConfig is systemd/kickagent.yaml (what the package installs as
// /etc/kickagent/kickagent.yaml) reading the installed rules.yaml from the
// tree; the agent's flags (startAgent) point everything else at the test's
// own directories and the instance's anvil.
func installedConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../systemd/kickagent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs("../../systemd/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rules); err != nil {
		t.Fatalf("the installed rules file: %v", err)
	}
	cfg := strings.Replace(string(b), "rules: [/etc/kickagent/rules.yaml]", "rules: ["+rules+"]", 1)
	if cfg == string(b) {
		t.Fatal("systemd/kickagent.yaml does not name /etc/kickagent/rules.yaml")
	}
	return cfg
}

// pkgWaitAudit waits for an audit record with result for ip.
func pkgWaitAudit(t *testing.T, a *agentProc, result, ip string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Stat(a.audit); err == nil {
			for _, r := range a.auditLog(t) {
				if r.Result == result && unmapIP(r.IP) == ip {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q audit record for %s within %v", a.inst.Name, result, ip, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
