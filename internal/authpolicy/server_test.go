package authpolicy

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
)

// exactCounter counts every failure in its window exactly (a test stand-in
// for internal/bruteforce).
type exactCounter struct {
	mu     sync.Mutex
	scope  string
	window time.Duration
	times  map[string][]time.Time
}

func (c *exactCounter) key(ip netip.Addr, login string) string {
	switch c.scope {
	case "login":
		return login
	case "network":
		p, _ := ip.Unmap().Prefix(24)
		return p.String()
	}
	return ip.Unmap().String()
}

func (c *exactCounter) Add(ip netip.Addr, login string, now time.Time) int {
	c.mu.Lock()
	k := c.key(ip, login)
	c.times[k] = append(c.times[k], now)
	c.mu.Unlock()
	return c.Count(ip, login, now)
}

func (c *exactCounter) Count(ip netip.Addr, login string, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.times[c.key(ip, login)] {
		if now.Sub(t) < c.window {
			n++
		}
	}
	return n
}

type memAudit struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (m *memAudit) Write(r *audit.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, *r)
	return nil
}
func (m *memAudit) Flush() error { return nil }

func (m *memAudit) results() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.recs {
		out = append(out, r.Result+" "+r.Rule+" "+r.IP)
	}
	return out
}

type rig struct {
	t     *testing.T
	srv   *Server
	ts    *httptest.Server
	audit *memAudit
	now   time.Time
	woken int
}

func newRig(t *testing.T, rules string, set Settings) *rig {
	t.Helper()
	return newRigPolicy(t, rules, "", set)
}

// newRigPolicy is newRig with a Rego policy (one file) when policy is set.
func newRigPolicy(t *testing.T, rules, policy string, set Settings) *rig {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(f, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	src := engine.Sources{Rules: []string{f}}
	if policy != "" {
		pf := filepath.Join(dir, "p.rego")
		if err := os.WriteFile(pf, []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		src.Policies = []string{pf}
	}
	rs, err := engine.Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, audit: &memAudit{}, now: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	r.srv = New(set, Deps{Rules: func() *engine.Ruleset { return rs }, Audit: r.audit, Now: func() time.Time { return r.now },
		Counters: func(scope string, w time.Duration) FailureCounter {
			return &exactCounter{scope: scope, window: w, times: map[string][]time.Time{}}
		},
		OnBlock: func() { r.woken++ }})
	r.ts = httptest.NewServer(r.srv)
	t.Cleanup(r.ts.Close)
	return r
}

// post sends a request body; it returns the HTTP status and the answer.
func (r *rig) post(cmd string, body map[string]any, hdr ...string) (int, answer) {
	r.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, r.ts.URL+"/?command="+cmd, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			r.t.Fatal(err)
		}
	}
	return resp.StatusCode, a
}

func login(user, remote string) map[string]any {
	return map[string]any{"login": user, "remote": remote, "protocol": "imap", "pwhash": "0fbb",
		"session_id": "abc", "device_id": "", "tls": false}
}

const testRules = `
allow:
  users: [monitor]
rules:
  - name: block-net
    networks: [192.0.2.0/24]
  - name: watch
    users: [jane]
    dry_run: true
  - name: reset-bob
    users: [bob]
    logged_in_before: "2026-12-06T11:00:00Z"
  - name: brute
    failed_logins: 3
    within: 1m
    block_for: 10m
`

func TestAllowRefusesWhatARuleWouldKick(t *testing.T) {
	r := newRig(t, testRules, Settings{RefuseMessage: "go away"})
	for _, c := range []struct {
		user, remote string
		status       int
	}{
		{"alice", "192.0.2.5", -1},
		{"alice", "198.51.100.5", 0},
		{"monitor", "192.0.2.5", 0}, // allow list
		{"jane", "198.51.100.5", 0}, // dry run
		{"bob", "198.51.100.5", 0},  // reset: the password decides
	} {
		code, a := r.post("allow", login(c.user, c.remote))
		if code != 200 || a.Status != c.status {
			t.Errorf("%s from %s: HTTP %d status %d, want 200 %d", c.user, c.remote, code, a.Status, c.status)
		}
		if a.Status < 0 && a.Msg != "go away" {
			t.Errorf("refusal message %q", a.Msg)
		}
	}
	got := strings.Join(r.audit.results(), "; ")
	want := "login-refused block-net 192.0.2.5; login-allowed block-net 192.0.2.5; login-dry-run watch 198.51.100.5"
	if got != want {
		t.Errorf("audit:\n got %s\nwant %s", got, want)
	}
}

func TestAPIHeader(t *testing.T) {
	r := newRig(t, testRules, Settings{APIHeader: "X-Policy-Key: s3cret"})
	if code, _ := r.post("allow", login("alice", "192.0.2.5")); code != http.StatusUnauthorized {
		t.Errorf("no header: HTTP %d, want 401", code)
	}
	if code, _ := r.post("allow", login("alice", "192.0.2.5"), "X-Policy-Key", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong header: HTTP %d, want 401", code)
	}
	if code, a := r.post("allow", login("alice", "192.0.2.5"), "X-Policy-Key", "s3cret"); code != 200 || a.Status != -1 {
		t.Errorf("right header: HTTP %d status %d", code, a.Status)
	}
	bare := newRig(t, testRules, Settings{APIHeader: "tok"})
	if code, _ := bare.post("allow", login("alice", "192.0.2.5"), "X-API-Key", "tok"); code != 200 {
		t.Errorf("bare value as X-API-Key: HTTP %d", code)
	}
}

func TestBadRequests(t *testing.T) {
	r := newRig(t, testRules, Settings{})
	for _, body := range []map[string]any{
		{"login": 5},
		{"remote": "not-an-ip"},
		{"success": "yes"},
		{"alt": "x"},
	} {
		if code, _ := r.post("allow", body); code != http.StatusBadRequest {
			t.Errorf("%v: HTTP %d, want 400", body, code)
		}
	}
	if code, _ := r.post("frobnicate", login("alice", "192.0.2.5")); code != http.StatusBadRequest {
		t.Errorf("unknown command: HTTP %d", code)
	}
}

func TestBruteForceBlocks(t *testing.T) {
	r := newRig(t, testRules, Settings{})
	fail := func(ip string) {
		b := login("alice", ip)
		b["success"], b["policy_reject"] = false, false
		if code, _ := r.post("report", b); code != 200 {
			t.Fatalf("report: HTTP %d", code)
		}
	}
	attacker, other := "198.51.100.66", "203.0.113.7"
	fail(attacker)
	fail(attacker)
	if _, a := r.post("allow", login("alice", attacker)); a.Status != 0 {
		t.Fatal("refused after 2 failures (threshold 3)")
	}
	// Our own refusals and successes do not count.
	ok := login("alice", attacker)
	ok["success"] = true
	r.post("report", ok)
	refused := login("alice", attacker)
	refused["success"], refused["policy_reject"] = false, true
	r.post("report", refused)
	if _, a := r.post("allow", login("alice", attacker)); a.Status != 0 {
		t.Fatal("a success or a policy refusal counted as a failure")
	}
	fail(attacker)
	if _, a := r.post("allow", login("alice", attacker)); a.Status != -1 {
		t.Fatal("not refused after 3 failures within the window")
	}
	if _, a := r.post("allow", login("alice", other)); a.Status != 0 {
		t.Fatal("another IP refused")
	}
	if r.woken != 1 {
		t.Errorf("OnBlock called %d times, want 1", r.woken)
	}
	blocked := r.srv.Blocked()
	if blocked == nil {
		t.Fatal("Blocked() nil with a block held")
	}
	if b, ok := blocked(netip.MustParseAddr(attacker)); !ok || b.Rule != "brute" {
		t.Fatalf("cycle lookup: %+v %v", b, ok)
	}
	if _, ok := blocked(netip.MustParseAddr("::ffff:" + attacker)); !ok {
		t.Fatal("IPv4-mapped form of a blocked IP not blocked")
	}
	// An allow-listed user from the blocked IP still gets in.
	if _, a := r.post("allow", login("monitor", attacker)); a.Status != 0 {
		t.Fatal("allow-listed user refused from a blocked IP")
	}
	r.now = r.now.Add(10*time.Minute + time.Second)
	r.srv.Expire()
	if _, a := r.post("allow", login("alice", attacker)); a.Status != 0 {
		t.Fatal("still refused after block_for")
	}
	if r.srv.Blocked() != nil {
		t.Fatal("block not expired")
	}
	got := strings.Join(r.audit.results(), "; ")
	if !strings.Contains(got, "blocked brute 198.51.100.66") || !strings.Contains(got, "login-refused brute 198.51.100.66") {
		t.Errorf("audit lacks the block or the refusal: %s", got)
	}
}

func TestDryRunSettingRefusesNothing(t *testing.T) {
	r := newRig(t, testRules, Settings{DryRun: true})
	if _, a := r.post("allow", login("alice", "192.0.2.5")); a.Status != 0 {
		t.Fatal("dry_run agent refused a login")
	}
	for i := 0; i < 5; i++ {
		b := login("alice", "198.51.100.66")
		b["success"] = false
		r.post("report", b)
	}
	if _, a := r.post("allow", login("alice", "198.51.100.66")); a.Status != 0 {
		t.Fatal("dry_run agent refused after brute force")
	}
	got := strings.Join(r.audit.results(), "; ")
	if !strings.Contains(got, "login-dry-run block-net") || !strings.Contains(got, "block-dry-run brute") {
		t.Errorf("audit: %s", got)
	}
}

func TestPasswordHashNeverRecorded(t *testing.T) {
	r := newRig(t, testRules, Settings{})
	b := login("alice", "192.0.2.5")
	b["pwhash"] = "deadbeefcafe"
	r.post("allow", b)
	js, _ := json.Marshal(r.audit.recs)
	if strings.Contains(string(js), "deadbeefcafe") {
		t.Fatal("the password hash reached the audit trail")
	}
}

func TestCheckListen(t *testing.T) {
	for _, ok := range []string{"off", "127.0.0.1:9870", "[::1]:9870", "127.0.0.2:1", "unix:/run/kickagent/policy.sock"} {
		if err := CheckListen(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:9870", "192.0.2.1:9870", ":9870", "localhost:9870", "unix:rel.sock", "[::]:1"} {
		if err := CheckListen(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestNameAfterAuthentication: the name judged is the passdb's when the
// request carries it (after authentication), else user, else login.
func TestNameAfterAuthentication(t *testing.T) {
	r := newRig(t, "rules:\n  - {name: mallory, users: [mallory@example.com]}\n", Settings{})
	before := login("mallory", "198.51.100.1")
	before["user"], before["passdb_user"] = "mallory", ""
	if _, a := r.post("allow", before); a.Status != 0 {
		t.Fatal("refused before authentication on a name the rule does not name")
	}
	after := login("mallory", "198.51.100.1")
	after["user"], after["passdb_user"] = "mallory", "mallory@example.com"
	if _, a := r.post("allow", after); a.Status != -1 {
		t.Fatal("not refused after authentication, when the passdb named mallory@example.com")
	}
}

// TestFailureCountedOnce: a rule whose window is the failure window (the
// default 10m of both) shares its counter with input.attempt.failures, and
// two rules may share one: each failure is still counted once.
func TestFailureCountedOnce(t *testing.T) {
	// A policy that reads the counts: the failure window's counters are kept.
	r := newRigPolicy(t, `
rules:
  - {name: bf-a, failed_logins: 4}
  - {name: bf-b, failed_logins: 4, within: 10m}
`, `package kickagent

kick contains {"session": s.id, "rule": "many-failures", "reason": "r"} if {
	some s in input.sessions
	input.attempt.failures.ip > 100
}
`, Settings{})
	for i := 0; i < 3; i++ {
		b := login("alice", "198.51.100.9")
		b["success"] = false
		r.post("report", b)
	}
	if _, a := r.post("allow", login("alice", "198.51.100.9")); a.Status != 0 {
		t.Fatal("blocked after 3 failures with a threshold of 4: a failure was counted more than once")
	}
	b := login("alice", "198.51.100.9")
	b["success"] = false
	r.post("report", b)
	if _, a := r.post("allow", login("alice", "198.51.100.9")); a.Status != -1 {
		t.Fatal("not blocked after 4 failures")
	}
}

// TestBreakerOpenRefusesNothing: while the agent's circuit breaker holds
// the kicks (the rules are presumed wrong), no login is refused.
func TestBreakerOpenRefusesNothing(t *testing.T) {
	r := newRig(t, testRules, Settings{})
	open := true
	r.srv.breaker = func() bool { return open }
	if _, a := r.post("allow", login("alice", "192.0.2.5")); a.Status != 0 {
		t.Fatal("refused while the breaker is open")
	}
	open = false
	if _, a := r.post("allow", login("alice", "192.0.2.5")); a.Status != -1 {
		t.Fatal("not refused once the breaker closed")
	}
	if got := strings.Join(r.audit.results(), "; "); !strings.HasPrefix(got, "login-breaker block-net 192.0.2.5; login-refused") {
		t.Errorf("audit: %s", got)
	}
}

// TestBlocksSurviveRestart: a block is saved at the next cycle (Expire)
// and a new server on the same state directory refuses the client until
// the block ends; a block already over is not restored; a corrupt file is
// an error and no block.
func TestBlocksSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, testRules, Settings{StateDir: dir})
	for range 3 {
		b := login("alice", "198.51.100.66")
		b["success"] = false
		r.post("report", b)
	}
	r.srv.Expire() // the cycle saves
	data, err := os.ReadFile(filepath.Join(dir, "blocks.json"))
	if err != nil || !strings.Contains(string(data), `"198.51.100.66/32"`) {
		t.Fatalf("blocks.json: %s %v", data, err)
	}
	r2 := newRig(t, testRules, Settings{StateDir: dir})
	r2.now = r.now.Add(time.Minute)
	if _, a := r2.post("allow", login("alice", "198.51.100.66")); a.Status != -1 {
		t.Fatal("the restarted server let a blocked client in")
	}
	r3 := newRig(t, testRules, Settings{StateDir: dir})
	r3.now = r.now.Add(11 * time.Minute) // block_for 10m: over
	if n, err := r3.srv.blocks.restore(dir, r3.now); err != nil || n != 0 {
		t.Fatalf("restore after the block ended: %d blocks, %v", n, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blocks.json"), []byte("{half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newBlocks(10).restore(dir, r.now); err == nil || !strings.Contains(err.Error(), "blocks.json") {
		t.Fatalf("corrupt file: %v", err)
	}
}

// TestPolicyFailureLoggedOncePerMinute: a Rego policy failing on every
// login leaves the YAML verdict, is counted per login, and is logged at
// most once a minute (it was logged on every login: a log flood at 1,000
// logins/s).
func TestPolicyFailureLoggedOncePerMinute(t *testing.T) {
	r := newRigPolicy(t, testRules, `package kickagent

kick contains {"session": s.id, "rule": "bad", "reason": "r"} if {
	some s in input.sessions
	kickagent.in_networks(s.ip, [concat("", [input.attempt.login, "/99"])]) # fails at the door only
}
`, Settings{})
	var buf bytes.Buffer
	r.srv.log = slog.New(slog.NewTextHandler(&buf, nil))
	for range 5 {
		if code, a := r.post("allow", login("alice", "198.51.100.5")); code != 200 || a.Status != 0 {
			t.Fatalf("a login no YAML rule names: HTTP %d status %d while the policy failed", code, a.Status)
		}
	}
	if n := testutil.ToFloat64(r.srv.m.policyErrors); n != 5 {
		t.Errorf("policy errors counted: %v, want 5", n)
	}
	if n := strings.Count(buf.String(), "the Rego policy failed on a login"); n != 1 {
		t.Errorf("logged %d times in a minute, want once:\n%s", n, buf.String())
	}
	r.now = r.now.Add(time.Minute)
	r.post("allow", login("alice", "198.51.100.5"))
	if n := strings.Count(buf.String(), "the Rego policy failed on a login"); n != 2 {
		t.Errorf("not logged again a minute later: %d", n)
	}
}
