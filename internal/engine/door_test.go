package engine

import (
	"context"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

var doorNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// loadDoorRules loads YAML rules (and a policy, if any) from strings.
func loadDoorRules(t *testing.T, rules string, policy string) *Ruleset {
	t.Helper()
	dir := t.TempDir()
	src := Sources{}
	if rules != "" {
		f := filepath.Join(dir, "rules.yaml")
		if err := os.WriteFile(f, []byte(rules), 0o600); err != nil {
			t.Fatal(err)
		}
		src.Rules = []string{f}
	}
	if policy != "" {
		pd := filepath.Join(dir, "policy")
		if err := os.MkdirAll(pd, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pd, "p.rego"), []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		src.Policies = []string{pd}
	}
	rs, err := Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func judge(t *testing.T, rs *Ruleset, a Attempt) Decision {
	t.Helper()
	if a.Now.IsZero() {
		a.Now = doorNow
	}
	d, err := rs.Judge(context.Background(), &a)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestJudgeWhichRulesRefuse: kick rules refuse the login they would kick;
// reset, drain, dest_hosts, expired and brute-force rules never refuse;
// dry-run rules say so; the allow list wins; a passdb_field rule needs the
// field in the request.
func TestJudgeWhichRulesRefuse(t *testing.T) {
	rs := loadDoorRules(t, `
allow:
  users: [monitor]
  networks: [192.0.2.99]
rules:
  - name: reset-alice
    users: [alice]
    logged_in_before: "2026-12-06T11:00:00Z"
  - name: drain
    users: [bob]
    drain: true
  - name: dest
    users: [carol]
    dest_hosts: [10.0.0.1]
  - name: old
    users: [dave]
    expires: "2026-12-01T00:00:00Z"
  - name: bf
    failed_logins: 5
  - name: watch-jane
    users: [jane]
    dry_run: true
  - name: block-net
    networks: [192.0.2.0/24]
  - name: ext
    passdb_field: user_ext
    values: ["*@ext.example"]
`, "")
	ip := func(s string) Attempt { return Attempt{User: "x", IP: mustAddr(s), Service: "imap"} }
	cases := []struct {
		name   string
		a      Attempt
		rule   string
		action Action
	}{
		{"reset", Attempt{User: "alice", Service: "imap"}, "", ""},
		{"drain", Attempt{User: "bob", Service: "imap"}, "", ""},
		{"dest", Attempt{User: "carol", Service: "imap"}, "", ""},
		{"expired", Attempt{User: "dave", Service: "imap"}, "", ""},
		{"dry-run", Attempt{User: "jane", Service: "imap"}, "watch-jane", ActionDryRun},
		{"network", ip("192.0.2.7"), "block-net", ActionKick},
		{"other network", ip("198.51.100.7"), "", ""},
		{"allow-listed network", ip("192.0.2.99"), "block-net", ActionAllowed},
		{"allow-listed user", Attempt{User: "monitor", IP: mustAddr("192.0.2.7"), Service: "imap"}, "block-net", ActionAllowed},
		{"alt field absent", Attempt{User: "eve", Service: "imap"}, "", ""},
		{"alt field", Attempt{User: "eve", Service: "imap", Alt: map[string]string{"user_ext": "e@ext.example"}}, "ext", ActionKick},
		{"dry-run and kick", Attempt{User: "jane", IP: mustAddr("192.0.2.8"), Service: "imap"}, "block-net", ActionKick},
	}
	for _, c := range cases {
		d := judge(t, rs, c.a)
		if d.Rule != c.rule || d.Action != c.action {
			t.Errorf("%s: got rule %q action %q, want %q %q", c.name, d.Rule, d.Action, c.rule, c.action)
		}
	}
	if n := len(rs.BruteForceRules(doorNow)); n != 1 {
		t.Errorf("brute-force rules: %d, want 1", n)
	}
}

// TestBruteForceRuleNeverSelectsSessions: a brute-force rule has no
// selectors; in a cycle it must select nothing (it blocks through
// Input.Blocked only).
func TestBruteForceRuleNeverSelectsSessions(t *testing.T) {
	rs := loadDoorRules(t, "rules:\n  - name: bf\n    failed_logins: 3\n", "")
	snap := randomEquivSnapshot(rand.New(rand.NewSource(1)), 200)
	ds, err := rs.Evaluate(context.Background(), Input{Snapshot: snap, Now: doorNow})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 0 {
		t.Fatalf("a brute-force rule selected %d sessions", len(ds))
	}
	blocked := mustAddr("192.0.2.9")
	ds, err = rs.Evaluate(context.Background(), Input{Snapshot: snap, Now: doorNow,
		Blocked: func(ip netip.Addr) (Block, bool) { return Block{Rule: "bf", Reason: "test"}, ip == blocked }})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for i := range snap.Sessions {
		if snap.Sessions[i].IP == blocked {
			want++
		}
	}
	if want == 0 || len(ds) != want {
		t.Fatalf("blocked sessions decided: %d, want %d (>0)", len(ds), want)
	}
	for _, d := range ds {
		if d.Session.IP != blocked || d.Rule != "bf" || d.Action != ActionKick {
			t.Errorf("unexpected decision %+v", d)
		}
	}
}

func TestBruteForceRuleErrors(t *testing.T) {
	for _, c := range []struct{ rule, want string }{
		{"failed_logins: 0\n    within: 5m", "failed_logins must be 1 or more"},
		{"failed_logins: 5\n    per: login", "lock its owner out"},
		{"failed_logins: 5\n    per: subnet", "want ip or network"},
		{"failed_logins: 5\n    within: 0s", "within"},
		{"failed_logins: 5\n    block_for: 90d", "block_for"},
		{"failed_logins: 5\n    networks: [10.0.0.0/8]", "networks: not allowed in a brute-force rule"},
	} {
		dir := t.TempDir()
		f := filepath.Join(dir, "r.yaml")
		os.WriteFile(f, []byte("rules:\n  - name: bf\n    "+c.rule+"\n"), 0o600)
		_, err := Load(context.Background(), Sources{Rules: []string{f}})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "r.yaml:") {
			t.Errorf("%q: got %v, want an error with %q and the file", c.rule, err, c.want)
		}
	}
}

// TestJudgeYAMLAndRegoAgree: the equivalence scenario's YAML rules and
// Rego policy refuse the same logins (as they kick the same sessions).
func TestJudgeYAMLAndRegoAgree(t *testing.T) {
	ctx := context.Background()
	yrs, rrs := loadEquiv(t)
	if why := rrs.DoorSkip(); why != "" {
		t.Fatalf("the scenario policy does not judge logins: %s", why)
	}
	snap := randomEquivSnapshot(rand.New(rand.NewSource(11)), 2000)
	refused, agree := 0, 0
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		a := Attempt{User: s.User, IP: s.IP, Service: s.Service, Now: doorNow}
		s.AltFields(func(k, v string) {
			if a.Alt == nil {
				a.Alt = map[string]string{}
			}
			a.Alt[k] = v
		})
		yd, err := yrs.Judge(ctx, &a)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := rrs.Judge(ctx, &a)
		if err != nil {
			t.Fatal(err)
		}
		if yd.Rule != rd.Rule || yd.Action != rd.Action {
			t.Errorf("%+v: yaml %q %q, rego %q %q", a, yd.Rule, yd.Action, rd.Rule, rd.Action)
			continue
		}
		agree++
		if yd.Action == ActionKick {
			refused++
		}
	}
	if refused < 100 {
		t.Fatalf("only %d refusals in %d attempts: the scenario does not exercise the door", refused, agree)
	}
	t.Logf("%d attempts, %d refused, all agree", agree, refused)
}

// TestDoorSkipsCrossSessionPolicy: a policy that relates sessions does not
// judge logins (it cannot see the other sessions), and says why.
func TestDoorSkipsCrossSessionPolicy(t *testing.T) {
	rs := loadDoorRules(t, "", `package kickagent

kick contains {"session": s.id, "rule": "many", "reason": "r"} if {
	some s in input.sessions
	count([x | some x in input.sessions; x.user == s.user]) > 0
}
`)
	if rs.DoorSkip() == "" {
		t.Fatal("DoorSkip empty for a cross-session policy")
	}
	if d := judge(t, rs, Attempt{User: "alice", Service: "imap"}); d.Rule != "" {
		t.Fatalf("a cross-session policy judged a login: %+v", d)
	}
}

// TestJudgeRegoAttemptInput: a policy sees input.attempt (login name and
// failure counts) at the door.
func TestJudgeRegoAttemptInput(t *testing.T) {
	rs := loadDoorRules(t, "", `package kickagent

kick contains {"session": s.id, "rule": "too-many-failures", "reason": "failures"} if {
	some s in input.sessions
	input.attempt.failures.login >= 10
}
`)
	if d := judge(t, rs, Attempt{User: "alice", Login: "alice", Service: "imap", Failures: map[string]int{"login": 9}}); d.Rule != "" {
		t.Fatalf("9 failures refused: %+v", d)
	}
	d := judge(t, rs, Attempt{User: "alice", Login: "alice", Service: "imap", Failures: map[string]int{"login": 10}})
	if d.Rule != "too-many-failures" || d.Action != ActionKick || d.Engine != EngineRego {
		t.Fatalf("10 failures: %+v", d)
	}
}

// TestJudgeConcurrentWithEvaluate: logins are judged on the listener's
// goroutines while a cycle evaluates the same ruleset (run with -race).
func TestJudgeConcurrentWithEvaluate(t *testing.T) {
	ctx := context.Background()
	_, rrs := loadEquiv(t)
	snap := randomEquivSnapshot(rand.New(rand.NewSource(5)), 500)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			if _, err := rrs.Evaluate(ctx, Input{Snapshot: snap, Now: doorNow}); err != nil {
				t.Error(err)
			}
		}
	}()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				s := &snap.Sessions[(g*200+i)%len(snap.Sessions)]
				a := Attempt{User: s.User, IP: s.IP, Service: s.Service, Now: doorNow}
				if _, err := rrs.Judge(ctx, &a); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	<-done
}

// TestResetFlushes: reset rules are counted by auth_cache_flush; the key
// is only for reset rules and takes three values.
func TestResetFlushes(t *testing.T) {
	rs := loadDoorRules(t, `
rules:
  - {name: r1, users: [a], logged_in_before: "2026-12-06T11:00:00Z", auth_cache_flush: flushed}
  - {name: r2, users: [b], logged_in_before: "2026-12-06T11:00:00Z", auth_cache_flush: failed}
  - {name: r3, users: [c], logged_in_before: "2026-12-06T11:00:00Z"}
  - {name: r4, users: [d], logged_in_before: "2026-12-06T11:00:00Z", auth_cache_flush: failed, expires: "2026-12-01T00:00:00Z"}
`, "")
	got := rs.ResetFlushes(doorNow)
	if got["flushed"] != 1 || got["failed"] != 1 || got["unknown"] != 1 || len(got) != 3 {
		t.Errorf("ResetFlushes = %v", got)
	}
	for _, bad := range []string{
		"rules:\n  - {name: x, users: [a], auth_cache_flush: flushed}\n",
		"rules:\n  - {name: x, users: [a], logged_in_before: \"2026-12-06T11:00:00Z\", auth_cache_flush: maybe}\n",
	} {
		f := filepath.Join(t.TempDir(), "r.yaml")
		os.WriteFile(f, []byte(bad), 0o600)
		if _, err := Load(context.Background(), Sources{Rules: []string{f}}); err == nil || !strings.Contains(err.Error(), "auth_cache_flush") {
			t.Errorf("%q: got %v", bad, err)
		}
	}
}
