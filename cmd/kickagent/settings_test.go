package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bad flag value is a usage error naming the flag; nothing runs.
func TestRunFlagBounds(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("rules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--interval", "1ns"}, `invalid value "1ns" for flag -interval: 1ns is too short: at least 1s`},
		{[]string{"--interval", "0s"}, `invalid value "0s" for flag -interval: 0s is too short`},
		{[]string{"--interval=-5s"}, `invalid value "-5s" for flag -interval: -5s is too short`},
		{[]string{"--interval", "1ms"}, `for flag -interval: 1ms is too short`},
		{[]string{"--interval", "3h"}, `for flag -interval: 3h0m0s is too long: at most 1h0m0s`},
		{[]string{"--max-kicks-per-cycle", "-1"}, `for flag -max-kicks-per-cycle: -1: want at least 1`},
		{[]string{"--max-kicks-per-cycle", "0"}, `for flag -max-kicks-per-cycle: 0: want at least 1`},
		{[]string{"--breaker-fraction", "1.5"}, `for flag -breaker-fraction: 1.5: want a fraction`},
		{[]string{"--breaker-fraction", "0"}, `for flag -breaker-fraction: 0: want a fraction`},
		{[]string{"--breaker-fraction", "NaN"}, `for flag -breaker-fraction: NaN: want a fraction`},
		{[]string{"--metrics", "9868"}, `for flag -metrics: "9868": want HOST:PORT or off`},
		{[]string{"-a", ""}, `for flag -a: empty value`},
		{[]string{"--state-dir", "state"}, `for flag -state-dir: "state": want an absolute directory or off`},
	} {
		args := append([]string{"run", "--once", "--metrics", "off", "--rules", rules}, tc.args...)
		code, _, errs := runCmd(t, args...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, firstLine(errs), exitUsage, tc.want)
		}
	}
}

// --timeout of the commands that talk to anvil must be positive.
func TestTimeoutFlag(t *testing.T) {
	for _, v := range []string{"0s", "-1s"} {
		code, _, errs := runCmd(t, "who", "--timeout", v, "-a", filepath.Join(t.TempDir(), "anvil"))
		if code != exitUsage || !strings.Contains(errs, "for flag -timeout: "+v+": want a positive duration") {
			t.Errorf("who --timeout %s: exit %d, stderr %q", v, code, firstLine(errs))
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// A bad config file is the configuration status with file:line for every
// command that reads it, run and check alike; an unknown key lists the
// known ones, as in a rules file.
func TestConfigFileBounds(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte("rules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ text, want string }{
		{"interval: 1ns\n", ":2: interval: 1ns is too short: at least 1s"},
		{"interval: 0s\n", ":2: interval: 0s is too short"},
		{"interval: -5s\n", ":2: interval: -5s is too short"},
		{"limits:\n  max_kicks_per_cycle: -1\n", ":3: limits.max_kicks_per_cycle: -1: want at least 1"},
		{"limits:\n  breaker_fraction: 1.5\n", ":3: limits.breaker_fraction: 1.5: want a fraction of the sessions, more than 0 and at most 1"},
		{"intervall: 5s\n", `:2: unknown key "intervall" (known: anvil_socket, rules, rules_dir, policy, interval, idle_interval, audit_log, metrics_listen, dry_run, state_dir, limits, auth_policy, bundle, crowdsec)`},
	} {
		cfg := filepath.Join(dir, "kickagent.yaml")
		if err := os.WriteFile(cfg, []byte("rules: [rules.yaml]\n"+tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range [][]string{{"check", "-c", cfg}, {"run", "--once", "--metrics", "off", "-c", cfg}} {
			code, out, errs := runCmd(t, cmd...)
			if code != exitConfig || !strings.HasPrefix(errs, cfg+tc.want) || strings.Count(errs, "\n") != 1 || out != "" {
				t.Errorf("%s with %q: exit %d, stdout %q, stderr %q; want %d and %q", cmd[0], tc.text, code, out, errs, exitConfig, cfg+tc.want)
			}
		}
	}
	// A valid file still loads.
	cfg := filepath.Join(dir, "kickagent.yaml")
	if err := os.WriteFile(cfg, []byte("rules: [rules.yaml]\ninterval: 1s\nlimits:\n  breaker_fraction: 1\n  max_kicks_per_cycle: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd(t, "check", "-c", cfg); code != exitOK || !strings.HasPrefix(out, "ok:") {
		t.Errorf("check: exit %d, %q %q", code, out, errs)
	}
}
