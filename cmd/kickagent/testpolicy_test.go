package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTestPolicyExamples(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"test-policy", "../../policy"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{
		"../../policy/blocked_networks_test.rego:3:\ndata.kickagent_test.test_blocked_ipv4_kicked: PASS (",
		"data.kickagent_test.test_drain_dry_run: PASS (",
		"data.kickagent_test.test_reset_times_valid: PASS (",
		"\nPASS: ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestTestPolicyFailures(t *testing.T) {
	policy := "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"r\", \"reason\": \"x\"} if {\n\tsome s in input.sessions\n}\n"
	tests := []struct {
		name, test string
		args       []string
		code       int
		stdout     string
		stderr     string
	}{
		{name: "failing test", test: "package kickagent_test\n\ntest_ok if true\n\ntest_no if {\n\tcount(data.kickagent.kick) == 1 with input as {\"sessions\": []}\n}\n",
			code: exitFailure, stdout: "data.kickagent_test.test_no: FAIL ("},
		{name: "quiet", test: "package kickagent_test\n\ntest_ok if true\n\ntest_no if false\n", args: []string{"-q"},
			code: exitFailure, stdout: "FAIL: 1/2"},
		{name: "compile error", test: "package kickagent_test\n\ntest_x if {\n\tx := 1\n}\n",
			code: exitFailure, stderr: "p_test.rego:4: rego_compile_error: assigned var x unused\n"},
		{name: "no tests", test: "package kickagent_test\n\nhelper := 1\n",
			code: exitFailure, stderr: "no tests found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "p.rego"), []byte(policy), 0o644)
			os.WriteFile(filepath.Join(dir, "p_test.rego"), []byte(tc.test), 0o644)
			var out, errb bytes.Buffer
			args := append(append([]string{"test-policy"}, tc.args...), dir)
			code := run(context.Background(), args, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out.String(), errb.String())
			}
			if tc.name == "quiet" && strings.Contains(out.String(), "test_ok") {
				t.Errorf("-q printed a passing test:\n%s", out.String())
			}
		})
	}
}

func TestTestPolicyUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"test-policy"}, &out, &errb); code != exitUsage {
		t.Errorf("no dir: exit %d", code)
	}
	errb.Reset()
	if code := run(context.Background(), []string{"test-policy", "-h"}, &out, &errb); code != exitOK || !strings.Contains(errb.String(), "Usage: kickagent test-policy") {
		t.Errorf("-h: exit %d, %s", code, errb.String())
	}
}
