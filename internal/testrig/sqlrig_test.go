package testrig

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
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

func TestPolicyServer(t *testing.T) {
	ps := StartPolicyServer(t)
	ps.SetAnswer(func(_ context.Context, r PolicyRequest) string {
		if r.Str("passdb_user") != "" {
			return `{"status":-1,"msg":"X"}`
		}
		return `{"status":0}`
	})
	post := func(command, body string) string {
		t.Helper()
		resp, err := http.Post(ps.URL+"?command="+command, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := post("allow", `{"user":"bob","passdb_user":""}`); got != `{"status":0}` {
		t.Errorf("allow before authentication: %s", got)
	}
	if got := post("allow", `{"user":"bob","passdb_user":"bob"}`); got != `{"status":-1,"msg":"X"}` {
		t.Errorf("allow after authentication: %s", got)
	}
	post("allow", `{"user":"carol"}`)
	if got := post("report", `{"user":"bob","success":false}`); got != "" {
		t.Errorf("report answered %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reqs, err := ps.WaitFor(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 || reqs[2].Command != "report" || reqs[2].Body["success"] != false {
		t.Errorf("bob's requests: %+v", reqs)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := ps.WaitFor(short, "carol"); err == nil {
		t.Error("WaitFor returned without a report for carol")
	}
}
