package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// mustLoadRulesAndPolicy loads a YAML rules file and a one-file policy
// as the agent does.
func mustLoadRulesAndPolicy(tb testing.TB, rules, policy string) *Ruleset {
	tb.Helper()
	dir := tb.TempDir()
	rf := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rf, []byte(rules), 0o644); err != nil {
		tb.Fatal(err)
	}
	rs, err := Load(context.Background(), Sources{Rules: []string{rf}, Policies: []string{mustWritePolicy(tb, map[string]string{"p.rego": policy})}})
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

const isolationRules = "rules:\n  - name: block-eve\n    users: [eve@example.com]\n"

// isolationSnap: eve (blocked by YAML), alice (kicked by the policy), and
// the user who makes the policy fail.
func isolationSnap(trigger string) *anvil.Snapshot {
	return snapOf(anvil.Proto24,
		sess24("e", "eve@example.com", "192.0.2.5"),
		sess24("a", "alice@example.com", "192.0.2.1"),
		sess24("t", trigger, "192.0.2.9"))
}

// A policy that fails only when a given user is present: before, every
// cycle failed and the YAML-blocked session stayed; now the YAML
// decisions come back with a PolicyError.
func TestRulesetPolicyErrorKeepsYAML(t *testing.T) {
	rs := mustLoadRulesAndPolicy(t, isolationRules, `package kickagent

kick contains {"session": s.id, "rule": "rego-alice", "reason": "x"} if {
	some s in input.sessions
	s.user == "alice@example.com"
}

# Fails the evaluation (kickagent builtins never fail silently) whenever
# mallory is logged in.
kick contains {"session": s.id, "rule": "rego-broken", "reason": "x"} if {
	some s in input.sessions
	s.user == "mallory"
	kickagent.in_networks(s.user, "10.0.0.0/8")
}
`)
	ds, err := rs.Evaluate(context.Background(), Input{Snapshot: isolationSnap("bob"), Now: regoNow})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := brief(ds), []string{"e block-eve kick", "a rego-alice kick"}; !slices.Equal(got, want) {
		t.Fatalf("without mallory: %q, want %q", got, want)
	}

	ds, err = rs.Evaluate(context.Background(), Input{Snapshot: isolationSnap("mallory"), Now: regoNow})
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Reason != PolicyFailError {
		t.Fatalf("err = %v (%T), want a PolicyError (error)", err, err)
	}
	if !strings.Contains(err.Error(), `kickagent.in_networks: ip "mallory": not an address`) {
		t.Errorf("err = %v, want the builtin's error", err)
	}
	if got, want := brief(ds), []string{"e block-eve kick"}; !slices.Equal(got, want) {
		t.Errorf("with mallory: %q, want the YAML decisions %q", got, want)
	}
}

// slowPolicy takes minutes, only when the user slowpoke is logged in.
const slowPolicy = `package kickagent

kick contains {"session": s.id, "rule": "slow", "reason": "x"} if {
	some s in input.sessions
	s.user == "slowpoke"
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
}
`

// A policy slow only for one user: its own time budget ends it, the YAML
// decisions are returned, well before the caller's deadline.
func TestRulesetPolicyTimeBudget(t *testing.T) {
	rs := mustLoadRulesAndPolicy(t, isolationRules, slowPolicy)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan struct{})
	var ds []Decision
	var err error
	go func() {
		defer close(done)
		ds, err = rs.Evaluate(ctx, Input{Snapshot: isolationSnap("slowpoke"), Now: regoNow, PolicyBudget: Budget{Timeout: 200 * time.Millisecond}})
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the policy ran past its budget by a minute")
	}
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Reason != PolicyFailTimeout || !errors.Is(err, ErrPolicyTimeout) {
		t.Fatalf("err = %v, want a PolicyError (timeout)", err)
	}
	if got, want := brief(ds), []string{"e block-eve kick"}; !slices.Equal(got, want) {
		t.Errorf("%q, want the YAML decisions %q", got, want)
	}
}

// Without a budget the policy gets half of the time the context has
// left: the cycle's kicks still fit.
func TestRulesetPolicyDefaultBudget(t *testing.T) {
	rs := mustLoadRulesAndPolicy(t, isolationRules, slowPolicy)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ds, err := rs.Evaluate(ctx, Input{Snapshot: isolationSnap("slowpoke"), Now: regoNow})
	if !errors.Is(err, ErrPolicyTimeout) {
		t.Fatalf("err = %v, want ErrPolicyTimeout", err)
	}
	if ctx.Err() != nil {
		t.Error("the policy used the whole context, not half of it")
	}
	if got, want := brief(ds), []string{"e block-eve kick"}; !slices.Equal(got, want) {
		t.Errorf("%q, want the YAML decisions %q", got, want)
	}
}

// A policy whose memory runs away for one user (plan once grew to 16.8
// GB) is stopped by its memory budget.
func TestRulesetPolicyMemoryBudget(t *testing.T) {
	rs := mustLoadRulesAndPolicy(t, isolationRules, `package kickagent

kick contains {"session": s.id, "rule": "hog", "reason": "x"} if {
	some s in input.sessions
	s.user == "hog"
	pairs := [[i, j] | some i in numbers.range(1, 30000); some j in numbers.range(1, 30000)]
	count(pairs) == 1
}
`)
	ds, err := rs.Evaluate(context.Background(), Input{Snapshot: isolationSnap("hog"), Now: regoNow,
		PolicyBudget: Budget{Timeout: 5 * time.Minute, Memory: 64 << 20}})
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Reason != PolicyFailMemory || !errors.Is(err, ErrPolicyMemory) {
		t.Fatalf("err = %v, want a PolicyError (memory)", err)
	}
	if got, want := brief(ds), []string{"e block-eve kick"}; !slices.Equal(got, want) {
		t.Errorf("%q, want the YAML decisions %q", got, want)
	}
}
