package engine

import (
	"context"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kickagent/kickagent/internal/anvil"
)

// A Rego policy judging a login: input.sessions holds the one session the
// attempt would become (id "login", first_seen now, user_sessions and
// ip_sessions 1), and input.attempt describes the attempt:
//
//	{"login": <name as sent>, "failures": {"ip": n, "network": n, "login": n}}
//
// (failures: the failed logins counted by the auth policy listener within
// its failure window). In a poll cycle input.attempt is undefined.

var (
	regoKeyAttempt  = ast.StringTerm("attempt")
	regoKeyLogin    = ast.StringTerm("login")
	regoKeyFailures = ast.StringTerm("failures")
)

// DoorSkip says why the policy does not judge logins ("" when it does): a
// policy that relates sessions, or reads the per-user or per-IP session
// counts, cannot judge a login that sees no other session.
func (p *Policy) DoorSkip() string {
	switch {
	case p.deps.cross != "":
		return "the policy relates sessions (" + p.deps.cross + ")"
	case p.deps.aggregates:
		return "the policy reads user_sessions or ip_sessions"
	}
	return ""
}

// judge evaluates the policy on the attempt's session s: its first kick,
// else its first dry-run (ok false when it selects nothing). Safe for
// concurrent use: it touches no cache.
func (p *Policy) judge(ctx context.Context, s *anvil.Session, a *Attempt, allow *ast.Term) (Decision, bool, error) {
	ctx, berrs := withRegoBuiltinErrs(ctx)
	e := &regoEntry{id: "login", sess: *s, firstSeen: a.Now, userSessions: 1, ipSessions: 1}
	term := newTermBuilder().session(e)
	in := inputValue([]*ast.Term{term}, a.Now, a.Protocol, allow).(ast.Object)
	fails := ast.NewObject()
	keys := make([]string, 0, len(a.Failures))
	for k := range a.Failures {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fails.Insert(ast.StringTerm(k), ast.InternedTerm(a.Failures[k]))
	}
	in.Insert(regoKeyAttempt, ast.ObjectTerm(
		ast.Item(regoKeyLogin, ast.StringTerm(a.Login)),
		ast.Item(regoKeyFailures, ast.NewTerm(fails)),
	))
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(in))
	if berr := berrs.err(); berr != nil {
		err = berr
	}
	if err != nil {
		return Decision{}, false, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, false, nil
	}
	if err := collectVerdicts(rs[0].Expressions[0].Value, map[string]*regoEntry{e.id: e}); err != nil {
		return Decision{}, false, err
	}
	if len(e.verdicts) == 0 {
		return Decision{}, false, nil
	}
	slices.SortFunc(e.verdicts, func(x, y regoVerdict) int {
		switch {
		case x.action == ActionKick && y.action != ActionKick:
			return -1
		case x.action != ActionKick && y.action == ActionKick:
			return 1
		}
		return 0
	})
	v := e.verdicts[0]
	return Decision{Session: s, ID: "login", Rule: v.rule, Engine: EngineRego, Reason: v.reason, Action: v.action}, true, nil
}

// timeOrNow is t, or the wall clock when t is zero.
func timeOrNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
