package engine

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// http.send is refused at load, so no policy ever reaches a listener with
// a user's name: before, one did, every cycle.
func TestPolicySandboxNoNetwork(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	src := `package kickagent

kick contains {"session": s.id, "rule": "leak", "reason": "x"} if {
	some s in input.sessions
	r := http.send({"method": "GET", "url": concat("", ["` + srv.URL + `/?u=", s.user])})
	r.status_code == 0
}
`
	dir := mustWritePolicy(t, map[string]string{"p.rego": src})
	_, err := LoadPolicy(context.Background(), []string{dir})
	want := filepath.Join(dir, "p.rego") + ":5: builtin http.send is not allowed in kickagent policies: it reaches the network"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the listener got %d requests", n)
	}
}

// The sandbox: every non-deterministic OPA builtin is out, and the
// builtins policies rely on are in.
func TestPolicySandboxList(t *testing.T) {
	denied := deniedBuiltinNames()
	for _, name := range []string{"http.send", "net.lookup_ip_addr", "opa.runtime", "time.now_ns", "rand.intn", "uuid.rfc4122"} {
		if _, ok := slices.BinarySearch(denied, name); !ok {
			t.Errorf("%s is allowed", name)
		}
	}
	caps := regoCapabilities()
	for _, name := range []string{"net.cidr_contains", "glob.match", "time.parse_rfc3339_ns", "print", builtinInNetworks, builtinUserMatch} {
		if !slices.ContainsFunc(caps.Builtins, func(b *ast.Builtin) bool { return b.Name == name }) {
			t.Errorf("%s is not allowed", name)
		}
	}
}

// test-policy runs tests in the same sandbox.
func TestPolicyTestsSandboxed(t *testing.T) {
	dir := mustWritePolicy(t, map[string]string{
		"p.rego":      "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"r\", \"reason\": \"x\"} if {\n\tsome s in input.sessions\n\ts.user == \"eve\"\n}\n",
		"p_test.rego": "package kickagent\n\ntest_net if {\n\tnet.lookup_ip_addr(\"localhost\")\n}\n",
	})
	_, err := RunPolicyTests(context.Background(), []string{dir}, "")
	if err == nil || !strings.Contains(err.Error(), "p_test.rego:4: builtin net.lookup_ip_addr is not allowed") {
		t.Errorf("err = %v, want the sandbox's refusal", err)
	}
}
