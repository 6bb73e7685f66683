package engine

import (
	"context"
	"strings"
	"testing"
)

func TestRunPolicyTestsExamples(t *testing.T) {
	ch, err := RunPolicyTests(context.Background(), []string{"../../policy"}, "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r := range ch {
		n++
		if !r.Pass() {
			t.Errorf("%s: %v %v", r.Name, r.Fail, r.Error)
		}
	}
	if n < 15 {
		t.Errorf("%d tests ran", n)
	}
}

func TestRunPolicyTests(t *testing.T) {
	policy := "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"r\", \"reason\": \"x\"} if {\n\tsome s in input.sessions\n\tkickagent.user_match(\"eve*\", s.user)\n}\n"
	tests := []struct {
		name, test string
		run        string
		pass, fail int
		err        string
	}{
		{name: "pass and fail", test: "package kickagent_test\n\ntest_eve if {\n\tcount(data.kickagent.kick) == 1 with input as {\"sessions\": [{\"id\": \"a\", \"user\": \"EVE@example.com\"}]}\n}\n\ntest_wrong if {\n\tcount(data.kickagent.kick) == 2 with input as {\"sessions\": [{\"id\": \"a\", \"user\": \"eve\"}]}\n}\n", pass: 1, fail: 1},
		{name: "filter", test: "package kickagent_test\n\ntest_one if true\n\ntest_two if false\n", run: "one", pass: 1},
		// Builtin errors fail the test (opa test would call it undefined).
		{name: "builtin error", test: "package kickagent_test\n\ntest_bad_cidr if {\n\tnot net.cidr_contains(\"10.0.0.0/33\", \"10.0.0.1\")\n}\n", fail: 1},
		{name: "strict", test: "package kickagent_test\n\ntest_x if {\n\tx := 1\n}\n", err: "p_test.rego:4: rego_compile_error: assigned var x unused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := mustWritePolicy(t, map[string]string{"p.rego": policy, "p_test.rego": tc.test})
			ch, err := RunPolicyTests(context.Background(), []string{dir}, tc.run)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pass, fail := 0, 0
			for r := range ch {
				if r.Pass() {
					pass++
				} else {
					fail++
				}
			}
			if pass != tc.pass || fail != tc.fail {
				t.Errorf("%d passed, %d failed; want %d, %d", pass, fail, tc.pass, tc.fail)
			}
		})
	}
}

// The policy itself must load as the agent loads it.
func TestRunPolicyTestsBadPolicy(t *testing.T) {
	dir := mustWritePolicy(t, map[string]string{"p.rego": "package other\n\nkick contains 1\n", "p_test.rego": "package other_test\n\ntest_x if true\n"})
	_, err := RunPolicyTests(context.Background(), []string{dir}, "")
	if err == nil || !strings.Contains(err.Error(), "p.rego:1: package kickagent expected, got other") {
		t.Errorf("err = %v", err)
	}
}
