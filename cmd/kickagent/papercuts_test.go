package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// Issue 13 item 6: CLI papercuts, one test each.

// --help prints every command's reference (kick's -h is the proxy
// destination), and the help texts point at --help, not -h.
func TestHelpEveryCommand(t *testing.T) {
	for _, cmd := range []string{"who", "kick", "run", "block", "unblock", "blocks", "reset", "drain", "check", "plan", "snapshot", "test-policy"} {
		code, out, errs := runCmd(t, cmd, "--help")
		if code != exitOK || !strings.Contains(out+errs, "Usage") {
			t.Errorf("%s --help: exit %d\n%s%s", cmd, code, out, errs)
		}
		code, out, errs = runCmd(t, "help", cmd)
		if code != exitOK || !strings.Contains(out+errs, "Usage") || !strings.Contains(out+errs, "kickagent "+cmd) {
			t.Errorf("help %s: exit %d\n%s%s", cmd, code, out, errs)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"usage": usage, "README.md": string(readme)} {
		if strings.Contains(text, "COMMAND -h") || !strings.Contains(text, "COMMAND --help") {
			t.Errorf("%s says \"COMMAND -h\" (kick -h is the proxy destination) or not \"COMMAND --help\"", name)
		}
	}
}

// The test-policy usage and doc.go offer -v (opa test's habit); it is
// accepted, and with -q a usage error.
func TestTestPolicyV(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := runCmd(t, "test-policy", "-v", dir)
	if code == exitUsage || strings.Contains(errs, "not defined") {
		t.Errorf("test-policy -v: exit %d: %s", code, errs)
	}
	if code, _, errs := runCmd(t, "test-policy", "-v", "-q", dir); code != exitUsage {
		t.Errorf("test-policy -v -q: exit %d, want usage: %s", code, errs)
	}
}

// Without the default config the job commands say how to name the drop-in
// directory instead.
func TestJobsNoConfigHint(t *testing.T) {
	old := defaultConfig
	defaultConfig = filepath.Join(t.TempDir(), "kickagent.yaml")
	t.Cleanup(func() { defaultConfig = old })
	for _, args := range [][]string{{"blocks"}, {"block", "192.0.2.1"}, {"unblock", "bob"}, {"reset", "bob"}, {"drain", "--all"}} {
		code, _, errs := runCmd(t, args...)
		if code != exitConfig || !strings.Contains(errs, "no such file") || !strings.Contains(errs, "--rules-dir") {
			t.Errorf("%v: exit %d, want a config error with a --rules-dir hint: %s", args, code, errs)
		}
	}
}

// drain names its own flag, never kick's -h.
func TestDrainDestNamesItsFlag(t *testing.T) {
	_, rd := jobDir(t)
	code, _, errs := runCmd(t, append([]string{"drain", "--dest", "backend2"}, rd...)...)
	if code != exitUsage || !strings.Contains(errs, "--dest") || strings.Contains(errs, "-h") {
		t.Errorf("exit %d: %s", code, errs)
	}
}

// A block of everyone needs --force; '???' (names of one length) does not.
func TestBlockEveryoneNeedsForce(t *testing.T) {
	for _, target := range []string{"*", "**", "?*", "0.0.0.0/0", "::/0"} {
		dir, rd := jobDir(t)
		code, _, errs := runCmd(t, append([]string{"block", target}, rd...)...)
		if code != exitUsage || !strings.Contains(errs, "--force") || len(files(t, dir)) != 0 {
			t.Errorf("block %s: exit %d, files %v: %s", target, code, files(t, dir), errs)
		}
		if code, _, errs := runCmd(t, append([]string{"block", target, "--force", "--for", "1m"}, rd...)...); code != exitOK || len(files(t, dir)) != 1 {
			t.Errorf("block %s --force: exit %d: %s", target, code, errs)
		}
	}
	_, rd := jobDir(t)
	if code, _, errs := runCmd(t, append([]string{"block", "???"}, rd...)...); code != exitOK {
		t.Errorf("block ???: exit %d: %s", code, errs)
	}
}

// block says how it read its target; a host-like one gets a warning, and
// is still a user mask (never widened, never resolved).
func TestBlockSaysReadAs(t *testing.T) {
	dir, rd := jobDir(t)
	code, out, errs := runCmd(t, append([]string{"block", "example.com"}, rd...)...)
	if code != exitOK || !strings.Contains(out, "user mask example.com") || !strings.Contains(errs, "not a host") {
		t.Errorf("block example.com: exit %d\n%s%s", code, out, errs)
	}
	if e := only(t, dir); strings.Join(e.Rule.Users, ",") != "example.com" || len(e.Rule.Networks) != 0 {
		t.Errorf("rule %+v", e.Rule)
	}
	_, rd = jobDir(t)
	code, out, errs = runCmd(t, append([]string{"block", "192.0.2.7/24"}, rd...)...)
	if code != exitOK || !strings.Contains(out, "network 192.0.2.0/24") || errs != "" {
		t.Errorf("block 192.0.2.7/24: exit %d\n%s%s", code, out, errs)
	}
}

// unblock compares user masks as the engine matches them: ASCII case
// folded.
func TestUnblockMaskCase(t *testing.T) {
	dir, rd := jobDir(t)
	if code, _, errs := runCmd(t, append([]string{"block", "ALICE*"}, rd...)...); code != exitOK {
		t.Fatalf("block: %d %s", code, errs)
	}
	code, out, errs := runCmd(t, append([]string{"unblock", "alice*"}, rd...)...)
	if code != exitOK || !strings.Contains(out, "unblocked") || len(files(t, dir)) != 0 {
		t.Errorf("unblock alice*: exit %d, left %v\n%s%s", code, files(t, dir), out, errs)
	}
}

// A duration that is not positive is a usage error that says why.
func TestBlockForNotPositive(t *testing.T) {
	_, rd := jobDir(t)
	for _, d := range []string{"-1s", "0s"} {
		code, _, errs := runCmd(t, append([]string{"block", "bob", "--for", d}, rd...)...)
		if code != exitUsage || !strings.Contains(errs, "--for "+d) || !strings.Contains(errs, "positive") {
			t.Errorf("--for %s: exit %d: %s", d, code, errs)
		}
	}
}

// A drain that has nothing to kick now says so (the agent would end it at
// once); one with sessions left says nothing more.
func TestDrainNothingProxiedHint(t *testing.T) {
	s := anvil.Session{User: "u", Service: "imap-login", PID: 10, IP: netip.MustParseAddr("192.0.2.1"),
		DestIP: netip.MustParseAddr("10.0.0.2"), ConnGUID: strings.Repeat("a", 32), Connections: 1}
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump(anvil.FormatDump24(nil, []anvil.Session{s})))
	_, rd := jobDir(t)
	code, _, errs := runCmd(t, append([]string{"drain", "--dest", "10.0.0.9", "-a", srv.Path}, rd...)...)
	if code != exitOK || !strings.Contains(errs, "no session on this server is proxied to 10.0.0.9") {
		t.Errorf("drain of an unused backend: exit %d: %q", code, errs)
	}
	code, _, errs = runCmd(t, append([]string{"drain", "--dest", "10.0.0.2", "-a", srv.Path}, rd...)...)
	if code != exitOK || errs != "" {
		t.Errorf("drain of a used backend: exit %d: %q", code, errs)
	}
}
