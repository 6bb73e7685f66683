package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runawayPolicy runs away (in time, and in memory with pairs) only while
// mallory is logged in, as a policy once ran past 60 s and 16.8 GB in plan.
func runawayPolicy(tb testing.TB, body string) string {
	tb.Helper()
	dir := tb.TempDir()
	src := "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"runaway\", \"reason\": \"x\"} if {\n\tsome s in input.sessions\n\ts.user == \"mallory@example.com\"\n\t" + body + "\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(src), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

const (
	slowBody = "some i in numbers.range(1, 100000)\n\tsome j in numbers.range(1, 100000)\n\ti * j == -1"
	hogBody  = "pairs := [[i, j] | some i in numbers.range(1, 30000); some j in numbers.range(1, 30000)]\n\tcount(pairs) == 1"
)

// plan stops a runaway policy at --policy-timeout / --policy-memory-mib,
// prints the YAML rules' decisions and fails.
func TestPlanPolicyBudget(t *testing.T) {
	tests := []struct {
		name, body string
		flags      []string
		want       string
	}{
		{"time", slowBody, []string{"--policy-timeout", "300ms"}, "policy evaluation exceeded its time budget (300ms)"},
		{"memory", hogBody, []string{"--policy-memory-mib", "64"}, "policy evaluation exceeded its memory budget"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"plan", "--snapshot", "testdata/plan/example24.snap.json", "--now", planNow, "--json",
				"--rules", "../../rules.example.yaml", "--policy", runawayPolicy(t, tc.body)}, tc.flags...)
			start := time.Now()
			code, out, errs := runCmd(t, args...)
			if code != exitFailure || !strings.Contains(errs, tc.want) || !strings.Contains(errs, "only the YAML rules' decisions are shown") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, errs, exitFailure, tc.want)
			}
			if strings.Count(out, `"action":"kick"`) != 5 || strings.Contains(out, `"engine":"rego"`) {
				t.Errorf("stdout lacks the YAML decisions:\n%s", out)
			}
			if d := time.Since(start); d > time.Minute {
				t.Errorf("plan took %s", d)
			}
		})
	}
}

func TestPlanPolicyBudgetFlags(t *testing.T) {
	for _, bad := range [][]string{{"--policy-timeout", "0s"}, {"--policy-timeout", "x"}, {"--policy-memory-mib", "0"}, {"--policy-memory-mib", "-5"}} {
		code, _, errs := runCmd(t, append([]string{"plan", "--snapshot", "testdata/plan/example24.snap.json", "--rules", "../../rules.example.yaml"}, bad...)...)
		if code != exitUsage || !strings.Contains(errs, strings.TrimLeft(bad[0], "-")) {
			t.Errorf("%q: exit %d, stderr %q; want usage", bad, code, errs)
		}
	}
}

// test-policy stops a runaway test at its budget.
func TestTestPolicyBudget(t *testing.T) {
	dir := runawayPolicy(t, slowBody)
	test := "package kickagent_test\n\ntest_runaway if {\n\tcount(data.kickagent.kick) == 0 with input as {\"sessions\": [{\"id\": \"m\", \"user\": \"mallory@example.com\"}]}\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "p_test.rego"), []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"test-policy", "--policy-timeout", "300ms", dir}, &out, &errb)
	if code != exitFailure || !strings.Contains(errb.String(), "policy evaluation exceeded its time budget (300ms)") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("test-policy took %s", d)
	}
}
