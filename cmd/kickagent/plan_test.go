package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
	"github.com/kickagent/kickagent/internal/snapshot"
)

var update = flag.Bool("update", false, "rewrite testdata/plan/*.golden")

// planNow is before every expiry in rules.example.yaml and after the
// scenario's old-incident rule.
const planNow = "2026-06-01T00:00:00Z"

// TestPlanGolden runs plan on snapshots recorded from the test rig's real
// Dovecot 2.3 and 2.4 instances (recorded*.snap.json: plain, shared
// process, login proxy) and on hand-made snapshots that exercise
// rules.example.yaml (example*.snap.json), and compares the decisions
// with testdata/plan/*.golden. go test ./cmd/kickagent -update rewrites
// them; review the diff like code.
func TestPlanGolden(t *testing.T) {
	const dir = "testdata/plan"
	example := "../../rules.example.yaml"
	scenario := filepath.Join(dir, "scenario.yaml")
	expiredScenario := "testdata/plan/scenario.yaml:25: rule \"old-incident\" expired at 2026-01-01T00:00:00Z: inactive\n"
	tests := []struct {
		golden   string
		snap     string
		rules    []string
		extra    []string // more flags
		stderr   string
		wantKick int // kick decisions, as a sanity check on the golden file
	}{
		{"example23.json", "example23.snap.json", []string{example}, nil, "", 5},
		{"example24.json", "example24.snap.json", []string{example}, nil, "", 5},
		{"example24.txt", "example24.snap.json", []string{example}, []string{"--json=false"}, "", 5},
		// In 2030 the abusive network's rule has expired.
		{"example24-2030.json", "example24.snap.json", []string{example}, []string{"--now", "2030-06-01T00:00:00Z"},
			"../../rules.example.yaml:17: rule \"block-abusive-net\" expired at 2030-01-01T00:00:00Z: inactive\n", 5},
		{"recorded23-example.json", "recorded23.snap.json", []string{example}, nil, "", 0},
		{"recorded24-example.json", "recorded24.snap.json", []string{example}, nil, "", 0},
		{"recorded23.json", "recorded23.snap.json", []string{scenario}, nil, expiredScenario, 2},
		{"recorded23-shared.json", "recorded23-shared.snap.json", []string{scenario}, nil, expiredScenario, 1},
		{"recorded24.json", "recorded24.snap.json", []string{scenario}, nil, expiredScenario, 5},
		{"recorded24-proxy.json", "recorded24-proxy.snap.json", []string{scenario}, nil, expiredScenario, 4},
		{"recorded24-proxy.txt", "recorded24-proxy.snap.json", []string{scenario}, []string{"--json=false"}, expiredScenario, 4},
		// Both rule files at once: the example's rules come first.
		{"recorded24-both.json", "recorded24.snap.json", []string{example, scenario}, nil, expiredScenario, 5},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			args := []string{"plan", "--snapshot", filepath.Join(dir, tt.snap), "--now", planNow, "--json"}
			for _, r := range tt.rules {
				args = append(args, "--rules", r)
			}
			args = append(args, tt.extra...)
			code, out, errs := runCmd(t, args...)
			if code != exitOK || errs != tt.stderr {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 0, stderr:\n%s", code, errs, tt.stderr)
			}
			golden := filepath.Join(dir, tt.golden+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("plan output differs from %s:\n%s\nwant:\n%s", golden, out, want)
			}
			if n := strings.Count(out, `"action":"kick"`) + strings.Count(out, "\nkick "); n != tt.wantKick {
				t.Errorf("%d kicks; want %d", n, tt.wantKick)
			}
		})
	}
}

// TestPlanJSONRecords: every line is one decision with the keys of who
// --json plus rule, engine, reason and action.
func TestPlanJSONRecords(t *testing.T) {
	code, out, _ := runCmd(t, "plan", "--snapshot", "testdata/plan/example24.snap.json", "--now", planNow,
		"--json", "--rules", "../../rules.example.yaml")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	want := []string{"action", "alt", "conn_guid", "connections", "dest_ip", "engine", "ip", "pid", "reason", "rule", "service", "user"}
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		if strings.Join(sorted(keys), " ") != strings.Join(want, " ") {
			t.Errorf("line %d keys %q; want %q", i+1, sorted(keys), want)
		}
		if m["engine"] != "yaml" {
			t.Errorf("line %d: engine %v", i+1, m["engine"])
		}
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestSnapshotThenPlan records a snapshot from a fake anvil serving the
// sessions of a recorded file, and checks that plan gives the same answer
// on the live socket and on the new recording.
func TestSnapshotThenPlan(t *testing.T) {
	for _, name := range []string{"example23", "example24"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open("testdata/plan/" + name + ".snap.json")
			if err != nil {
				t.Fatal(err)
			}
			snap, err := snapshot.Read(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			var srv *anviltest.Server
			if snap.Protocol == anvil.Proto23 {
				srv = anviltest.New(t, anvil.Proto23, anviltest.WithDump(anvil.FormatDump23(snap.Sessions)))
			} else {
				srv = anviltest.New(t, anvil.Proto24, anviltest.WithDump(anvil.FormatDump24(snap.AltNames, snap.Sessions)))
			}
			code, rec, errs := runCmd(t, "snapshot", "-a", srv.Path)
			if code != exitOK {
				t.Fatalf("snapshot: exit %d: %s", code, errs)
			}
			recorded := filepath.Join(t.TempDir(), "snap.json")
			if err := os.WriteFile(recorded, []byte(rec), 0o644); err != nil {
				t.Fatal(err)
			}
			plan := func(src ...string) string {
				args := append([]string{"plan", "--now", planNow, "--json", "--rules", "../../rules.example.yaml"}, src...)
				code, out, errs := runCmd(t, args...)
				if code != exitOK {
					t.Fatalf("%q: exit %d: %s", args, code, errs)
				}
				return out
			}
			orig := plan("--snapshot", "testdata/plan/"+name+".snap.json")
			if got := plan("--snapshot", recorded); got != orig {
				t.Errorf("plan on the new recording:\n%s\nwant:\n%s", got, orig)
			}
			if got := plan("-a", srv.Path); got != orig {
				t.Errorf("plan on the live socket:\n%s\nwant:\n%s", got, orig)
			}
		})
	}
}

// TestCheckAndPlanExitCodes: check says ok (0) or lists every error as
// file:line and exits 78 (EX_CONFIG); plan exits 78 on bad rules too.
func TestCheckAndPlanExitCodes(t *testing.T) {
	bad := "../../internal/engine/testdata/invalid-set"
	badErrs := []string{
		bad + `/rules.d/20-bad.yaml:8: rule "typo": unknown key "user"`,
		bad + `/rules.d/20-bad.yaml:3: rule "bad-net": networks: bad network: "198.51.100.0/33"`,
		bad + `/rules.d/20-bad.yaml:6: rule "bad-time": expires: "tomorrow" is not an RFC 3339 time`,
		bad + `/rules.d/30-bad.yaml:2: allow.networks: bad network: "not-a-net"`,
		bad + `/rules.d/30-bad.yaml:4: rule "good-rule": duplicate rule name (first defined at ` + bad + `/rules.yaml:4)`,
	}
	missing := filepath.Join(t.TempDir(), "anvil")
	snap := "testdata/plan/example24.snap.json"
	brokenSnap := filepath.Join(t.TempDir(), "broken.json")
	if err := os.WriteFile(brokenSnap, []byte(`{"dovecot":"2.4","sessions":[{"service":"imap","pid":1,"ip":"not-an-ip"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr []string // each must appear, on a line of its own
	}{
		{[]string{"check", "--rules", "../../rules.example.yaml"}, exitOK,
			"ok: 5 YAML rules in 1 files, Rego policy: no, allow list: 2 users 1 networks, rev ", nil},
		{[]string{"check", "--rules", "testdata/plan/scenario.yaml", "--rules", "../../rules.example.yaml"}, exitOK,
			"ok: 12 YAML rules in 2 files", nil},
		{[]string{"check", "--rules", bad + "/rules.yaml", "--rules", bad + "/rules.d"}, exitConfig, "", badErrs},
		{[]string{"check", "--rules", "../../internal/engine/testdata/invalid-syntax.yaml"}, exitConfig, "",
			[]string{"../../internal/engine/testdata/invalid-syntax.yaml:3: did not find expected ',' or ']'"}},
		{[]string{"check", "--rules", "no-such-file.yaml"}, exitConfig, "",
			[]string{"no-such-file.yaml: cannot read rules: stat no-such-file.yaml: no such file or directory"}},
		{[]string{"check"}, exitUsage, "", []string{"kickagent check: no rules: give -c CONFIG, --rules PATH or --policy DIR"}},
		{[]string{"check", "--rules", "../../rules.example.yaml", "extra"}, exitUsage, "", []string{`kickagent check: unexpected argument "extra"`}},
		{[]string{"check", "--bogus"}, exitUsage, "", nil},

		{[]string{"plan", "--snapshot", snap, "--rules", bad + "/rules.d"}, exitConfig, "", badErrs[:4]},
		{[]string{"plan", "--snapshot", snap}, exitUsage, "", []string{"kickagent plan: no rules"}},
		{[]string{"plan", "--snapshot", snap, "--rules", "../../rules.example.yaml", "--now", "tomorrow"}, exitUsage, "", nil},
		{[]string{"plan", "--snapshot", "no-such.json", "--rules", "../../rules.example.yaml"}, exitTempFail, "", nil},
		{[]string{"plan", "--snapshot", brokenSnap, "--rules", "../../rules.example.yaml"}, exitTempFail, "",
			[]string{`kickagent plan: snapshot: session 1: ip: ParseAddr("not-an-ip"): unable to parse IP`}},
		{[]string{"plan", "-a", missing, "--rules", "../../rules.example.yaml"}, exitTempFail, "", nil},
		{[]string{"plan", "--snapshot", snap, "--rules", "../../rules.example.yaml", "--now", planNow}, exitOK,
			"5 of 12 sessions would be kicked, 8 decisions (Dovecot 2.4)\n", nil},
	} {
		code, out, errs := runCmd(t, tc.args...)
		if code != tc.code {
			t.Errorf("%q: exit %d; want %d (stderr %q)", tc.args, code, tc.code, errs)
			continue
		}
		if !strings.Contains(out, tc.stdout) {
			t.Errorf("%q: stdout %q; want %q in it", tc.args, out, tc.stdout)
		}
		lines := strings.Split(errs, "\n")
		for _, w := range tc.stderr {
			found := false
			for _, l := range lines {
				found = found || strings.HasPrefix(l, w)
			}
			if !found {
				t.Errorf("%q: stderr %q; want a line starting %q", tc.args, errs, w)
			}
		}
		if tc.code == exitConfig && strings.Count(strings.TrimSuffix(errs, "\n"), "\n")+1 != len(tc.stderr) {
			t.Errorf("%q: stderr %q; want exactly %d lines", tc.args, errs, len(tc.stderr))
		}
	}
}
