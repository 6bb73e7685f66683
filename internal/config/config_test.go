package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/engine"
)

func write(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kickagent.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	path := write(t, `anvil_socket: run/anvil
rules: [rules.yaml, /etc/r.d]
rules_dir: rules.d
policy: policy
interval: 2s
audit_log: "-"
metrics_listen: ":9868"
dry_run: true
state_dir: state
limits:
  max_kicks_per_cycle: 1000000
  breaker_fraction: 1
  breaker_min_sessions: 1
  repeat_threshold: 2
  dump_max_line_bytes: 4096
  dump_max_bytes: 1048576
  dump_max_sessions: 1
auth_policy:
  listen: "[::1]:9870"
  api_header: "X-API-Key: k"
  refuse_message: no
  failure_window: 5m
  table_size: 1000
`)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	want := Config{AnvilSocket: filepath.Join(dir, "run/anvil"), Rules: []string{filepath.Join(dir, "rules.yaml"), "/etc/r.d"},
		RulesDir: filepath.Join(dir, "rules.d"), Policies: []string{filepath.Join(dir, "policy")},
		Interval: Duration{2 * time.Second}, AuditLog: "-", Metrics: ":9868", DryRun: true,
		StateDir: filepath.Join(dir, "state"),
		Limits: Limits{MaxKicksPerCycle: 1000000, BreakerFraction: 1, BreakerMinSessions: 1, RepeatThreshold: 2,
			DumpMaxLineBytes: 4096, DumpMaxBytes: 1 << 20, DumpMaxSessions: 1},
		AuthPolicy: AuthPolicy{Listen: "[::1]:9870", APIHeader: "X-API-Key: k", RefuseMessage: "no",
			FailureWindow: Duration{5 * time.Minute}, TableSize: 1000}}
	if got := *c; !equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	for _, empty := range []string{"", "# nothing\n", "---\n"} {
		if c, err := Load(write(t, empty)); err != nil || !equal(*c, Config{}) {
			t.Errorf("%q: got %+v, %v; want the zero Config", empty, c, err)
		}
	}
}

func equal(a, b Config) bool {
	return a.AnvilSocket == b.AnvilSocket && strings.Join(a.Rules, ",") == strings.Join(b.Rules, ",") &&
		a.RulesDir == b.RulesDir && strings.Join(a.Policies, ",") == strings.Join(b.Policies, ",") &&
		a.Interval == b.Interval && a.AuditLog == b.AuditLog && a.Metrics == b.Metrics && a.DryRun == b.DryRun && a.Limits == b.Limits &&
		a.StateDir == b.StateDir && a.AuthPolicy == b.AuthPolicy
}

// Every bad setting is refused at load with file:line, as a rules file's
// problems are; all of them at once.
func TestLoadInvalid(t *testing.T) {
	tests := []struct{ text, want string }{
		{"interval: 1ns\n", ":1: interval: 1ns is too short: at least 1s"},
		{"interval: 0s\n", ":1: interval: 0s is too short: at least 1s"},
		{"interval: -5s\n", ":1: interval: -5s is too short: at least 1s"},
		{"interval: 1ms\n", ":1: interval: 1ms is too short"},
		{"interval: 2h\n", ":1: interval: 2h0m0s is too long: at most 1h0m0s"},
		{"interval: 5\n", `:1: interval: "5" is not a duration (e.g. 5s, 1m30s)`},
		{"interval:\n", ":1: interval: empty value: leave the key out for the default"},
		{"limits:\n  max_kicks_per_cycle: -1\n", ":2: limits.max_kicks_per_cycle: -1: want at least 1"},
		{"limits:\n  max_kicks_per_cycle: 0\n", ":2: limits.max_kicks_per_cycle: 0: want at least 1 (to kick nothing, use dry_run"},
		{"limits:\n  max_kicks_per_cycle: 1.5\n", `:2: limits.max_kicks_per_cycle: "1.5" is not a whole number`},
		{"limits:\n  breaker_fraction: 1.5\n", ":2: limits.breaker_fraction: 1.5: want a fraction of the sessions, more than 0 and at most 1"},
		{"limits:\n  breaker_fraction: 0\n", ":2: limits.breaker_fraction: 0: want a fraction"},
		{"limits:\n  breaker_fraction: .nan\n", ":2: limits.breaker_fraction: NaN: want a fraction"},
		{"limits:\n  breaker_fraction: half\n", `:2: limits.breaker_fraction: "half" is not a number`},
		{"limits:\n  breaker_min_sessions: -3\n", ":2: limits.breaker_min_sessions: -3: want at least 1"},
		{"limits:\n  repeat_threshold: 1\n", ":2: limits.repeat_threshold: 1: want at least 2"},
		{"limits:\n  dump_max_line_bytes: 4095\n", ":2: limits.dump_max_line_bytes: 4095: want 4096 to 16777216 bytes (anvil's own lines are about 1 KiB; leave it out for the default 65536)"},
		{"limits:\n  dump_max_line_bytes: 16777217\n", ":2: limits.dump_max_line_bytes: 16777217: want 4096 to 16777216 bytes"},
		{"limits:\n  dump_max_line_bytes: 64KiB\n", `:2: limits.dump_max_line_bytes: "64KiB" is not a whole number`},
		{"limits:\n  dump_max_bytes: 1048575\n", ":2: limits.dump_max_bytes: 1048575: want at least 1048576 bytes (a dump is about 50 bytes per session; leave it out for the default 134217728)"},
		{"limits:\n  dump_max_sessions: 0\n", ":2: limits.dump_max_sessions: 0: want at least 1 (leave it out for the default 1000000)"},
		{"limits: 5\n", ":1: limits: want a mapping with the keys max_kicks_per_cycle, breaker_fraction, breaker_min_sessions, repeat_threshold, dump_max_line_bytes, dump_max_bytes, dump_max_sessions"},
		{"limits:\n  max_kick_per_cycle: 5\n", `:2: limits: unknown key "max_kick_per_cycle" (known: max_kicks_per_cycle, breaker_fraction, breaker_min_sessions, repeat_threshold, dump_max_line_bytes, dump_max_bytes, dump_max_sessions)`},
		{"anvil_socket: /a\nintervall: 5s\n", `:2: unknown key "intervall" (known: anvil_socket, rules, rules_dir, policy, interval, idle_interval, audit_log, metrics_listen, dry_run, state_dir, limits, auth_policy, bundle, crowdsec)`},
		{"interval: 5s\ninterval: 6s\n", `:2: key "interval" given twice`},
		{"auth_policy:\n  listen: 0.0.0.0:9870\n", `:2: auth_policy.listen: "0.0.0.0:9870": not a loopback address`},
		{"auth_policy:\n  listen: :9870\n", `:2: auth_policy.listen: ":9870": want a loopback address and port`},
		{"auth_policy:\n  listen: unix:x.sock\n", `:2: auth_policy.listen: "unix:x.sock": a UNIX socket path must be absolute`},
		{"auth_policy:\n  table_size: 10\n", `:2: auth_policy.table_size: 10: want 1000 to 10000000`},
		{"auth_policy:\n  failure_window: 2d\n", `:2: auth_policy.failure_window:`},
		{"auth_policy:\n  listn: 127.0.0.1:1\n", `:2: auth_policy: unknown key "listn" (known: listen, socket_group, api_header, refuse_message, failure_window, table_size)`},
		{"auth_policy: on\n", `:1: auth_policy: want a mapping with the keys listen, socket_group, api_header, refuse_message, failure_window, table_size`},
		{"metrics_listen: 9868\n", `:1: metrics_listen: "9868": want HOST:PORT or off (missing port in address)`},
		{"metrics_listen: \"\"\n", ":1: metrics_listen: empty value"},
		{"state_dir: \"\"\n", ":1: state_dir: empty value"},
		{"state_dir: [a, b]\n", ":1: state_dir: want a single value"},
		{"anvil_socket: [a, b]\n", ":1: anvil_socket: want a single value"},
		{"rules: []\n", ":1: rules: empty list: leave the key out instead"},
		{"dry_run: maybe\n", `:1: dry_run: "maybe" is not true or false`},
		{"- a\n", ":1: a config file is a mapping with the keys anvil_socket, rules"},
		{"interval: [5s\n", ":2: did not find expected ',' or ']'"},
		{"interval: 5s\n---\ndry_run: true\n", ":2: more than one YAML document in a config file"},
	}
	for _, tc := range tests {
		path := write(t, tc.text)
		_, err := Load(path)
		var errs engine.Errors
		if !errors.As(err, &errs) {
			t.Errorf("%q: got %v, want engine.Errors", tc.text, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), path+tc.want) {
			t.Errorf("%q:\n got %v\nwant %s%s", tc.text, err, path, tc.want)
		}
	}
}

// All problems are reported, each on its own line.
func TestLoadReportsAll(t *testing.T) {
	path := write(t, "interval: 1ns\nlimits:\n  max_kicks_per_cycle: -1\n  breaker_fraction: 1.5\nbogus: 1\n")
	_, err := Load(path)
	want := []string{
		path + ":1: interval: 1ns is too short",
		path + ":3: limits.max_kicks_per_cycle: -1",
		path + ":4: limits.breaker_fraction: 1.5",
		path + `:5: unknown key "bogus"`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: got %q, want %q…", i, lines[i], w)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want os.ErrNotExist", err)
	}
}

func TestChecks(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 5 * time.Second, time.Hour} {
		if err := CheckInterval(d); err != nil {
			t.Errorf("CheckInterval(%v): %v", d, err)
		}
	}
	for _, s := range []string{"off", "127.0.0.1:9868", ":0", "[::1]:9868", "localhost:http"} {
		if err := CheckMetricsListen(s); err != nil {
			t.Errorf("CheckMetricsListen(%q): %v", s, err)
		}
	}
	l := Limits{DumpMaxLineBytes: 4096, DumpMaxBytes: 1 << 20, DumpMaxSessions: 7}
	if got := l.Anvil(); got != (anvil.Limits{MaxLineBytes: 4096, MaxDumpBytes: 1 << 20, MaxSessions: 7}) {
		t.Errorf("Limits.Anvil() = %+v", got)
	}
	for s, ok := range map[string]bool{"off": true, "/var/lib/kickagent": true, "state": false, "./state": false} {
		if err := CheckStateDir(s); (err == nil) != ok {
			t.Errorf("CheckStateDir(%q): %v", s, err)
		}
	}
	if c, err := Load(write(t, "state_dir: off\n")); err != nil || c.StateDir != "off" {
		t.Errorf("state_dir: off: got %+v, %v", c, err)
	}
	if CheckTimeout(0) == nil || CheckTimeout(-time.Second) == nil || CheckTimeout(time.Millisecond) != nil {
		t.Error("CheckTimeout: want > 0")
	}
}

// The shipped example stays within the bounds.
func TestShippedConfigLoads(t *testing.T) {
	if _, err := Load("../../systemd/kickagent.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestLoadBundle(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kickagent.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("bundle:\n  url: http://127.0.0.1:18481/bundles/kickagent.tar.gz\n  verification_keys: [keys/fleet.pem]\n  poll_min: 1s\n  poll_max: 2s\n")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bundle.URL == "" || c.Bundle.VerificationKeys[0] != filepath.Join(dir, "keys/fleet.pem") || c.Bundle.PollMax.Duration != 2*time.Second {
		t.Errorf("bundle %+v", c.Bundle)
	}
	for _, tc := range []struct{ conf, want string }{
		{"bundle:\n  url: http://127.0.0.1:1/b.tar.gz\n", ":2: bundle: verification_keys missing"},
		{"bundle:\n  url: ftp://x/b\n  verification_keys: [k.pem]\n", ":2: bundle.url: \"ftp://x/b\": want an http:// or https:// URL"},
		{"bundle:\n  url: http://h/b\n  verification_keys: [k.pem]\n  poll_min: 5s\n  poll_max: 2s\n", "poll_max is shorter than poll_min"},
		{"bundle:\n  urll: http://h/b\n", "bundle: unknown key \"urll\""},
	} {
		write(tc.conf)
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.conf, err, tc.want)
		}
	}
}
