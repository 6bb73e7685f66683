package testrig

import (
	"slices"
	"testing"
	"time"
)

func TestParseFlushed(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want int
		ok   bool
	}{
		{"2 cache entries flushed\n", 2, true},
		{"0 cache entries flushed\n", 0, true},
		{"", 0, false},
		{"x cache entries flushed\n", 0, false},
		{"1 entries flushed\n", 0, false},
	} {
		got, err := parseFlushed(tc.out)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseFlushed(%q) = %d, %v; want %d, ok=%v", tc.out, got, err, tc.want, tc.ok)
		}
	}
}

// The zero Policy must still set every variable, so that a KA_POLICY_URL in the test
// process's environment cannot turn a policy on.
func TestPolicyEnviron(t *testing.T) {
	want := []string{"KA_POLICY_URL=", "KA_POLICY_HEADER=", "KA_POLICY_TIMEOUT_MS=",
		"KA_POLICY_REJECT_ON_FAIL=no", "KA_POLICY_SOCKET="}
	if got := (Policy{}).environ(); !slices.Equal(got, want) {
		t.Errorf("zero Policy: %q, want %q", got, want)
	}
	p := Policy{URL: "http://127.0.0.1:1/", Header: "X-A:b", Timeout: 1500 * time.Millisecond, RejectOnFail: true, Socket: "/s"}
	want = []string{"KA_POLICY_URL=http://127.0.0.1:1/", "KA_POLICY_HEADER=X-A:b", "KA_POLICY_TIMEOUT_MS=1500",
		"KA_POLICY_REJECT_ON_FAIL=yes", "KA_POLICY_SOCKET=/s"}
	if got := p.environ(); !slices.Equal(got, want) {
		t.Errorf("Policy: %q, want %q", got, want)
	}
}
