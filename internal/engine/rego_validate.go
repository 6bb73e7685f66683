package engine

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Load-time checks of what compiles but would fail every evaluation.
//
// The compiler accepts "kick := 5" and a constant list with a bad CIDR
// given to kickagent.in_networks; the agent would then fail the policy in
// every cycle. LoadPolicy refuses such a policy, so a reload keeps the
// last good rules instead:
//   - the type of data.kickagent.kick must be a set (or array);
//   - every constant list given to kickagent.in_networks or
//     kickagent.user_match (a literal, or a rule of the policy that does
//     not depend on the input) must compile, as the builtin would;
//   - the policy is evaluated on a small synthetic snapshot of each
//     Dovecot version, and its result must be the documented set of
//     objects, with no error (builtin errors as the agent has them: ours
//     fail, OPA's are undefined).
//
// What these cannot see (a failure only some session's data triggers, a
// policy slow only for some user) is caught at run time: the policy fails
// alone, under its own Budget, and the YAML rules are enforced.

// validateTimeout bounds the synthetic evaluations at load.
const validateTimeout = 10 * time.Second

func (p *Policy) validate(ctx context.Context, c *ast.Compiler, opt policyOptions) Errors {
	if errs := checkKickType(c); len(errs) > 0 {
		return errs
	}
	if errs := p.checkLiteralLists(ctx, c); len(errs) > 0 {
		return errs
	}
	if opt.strictBuiltinErrors {
		// A test knob: strict, OPA's builtins fail where the agent's
		// are undefined (net.cidr_contains on a session without IP),
		// so the synthetic run would refuse what the agent accepts.
		return nil
	}
	return p.checkSynthetic(ctx, c)
}

var regoKickRef = ast.MustParseRef(policyQuery)

// kickLocation returns where the first kick rule is defined.
func kickLocation(c *ast.Compiler) (string, int) {
	for _, r := range c.GetRulesExact(regoKickRef) {
		return locFile(r.Location), locRow(r.Location)
	}
	return "", 0
}

// checkKickType refuses a kick rule whose type is not a collection.
func checkKickType(c *ast.Compiler) Errors {
	t := c.TypeEnv.GetByRef(regoKickRef)
	if t == nil || collectionType(t) {
		return nil
	}
	file, line := kickLocation(c)
	return Errors{{File: file, Line: line,
		Msg: fmt.Sprintf("%s is %s; it must be a set of objects {\"session\": id, \"rule\": name, \"reason\": why}", policyQuery, types.Sprint(t))}}
}

func collectionType(t types.Type) bool {
	switch x := t.(type) {
	case *types.Set, *types.Array:
		return true
	case types.Any:
		if len(x) == 0 {
			return true // any: unknown statically; the synthetic run checks
		}
		for _, m := range x {
			if collectionType(m) {
				return true
			}
		}
	}
	return false
}

// listArg is the position of the list argument of each kickagent builtin.
var listArg = map[string]int{builtinInNetworks: 1, builtinUserMatch: 0}

// checkLiteralLists compiles the constant lists given to our builtins.
// The compiler hoists a rule reference out of a call into a local
// (__local5__ = data.kickagent.blocked), so each body's equalities are
// followed back to the term.
func (p *Policy) checkLiteralLists(ctx context.Context, c *ast.Compiler) Errors {
	var errs Errors
	for _, m := range c.Modules {
		ast.WalkBodies(m, func(b ast.Body) bool {
			bound := map[ast.Var]*ast.Term{}
			for _, e := range b {
				if e.IsEquality() || e.IsAssignment() {
					l, r := e.Operand(0), e.Operand(1)
					if v, ok := l.Value.(ast.Var); ok {
						bound[v] = r
					} else if v, ok := r.Value.(ast.Var); ok {
						bound[v] = l
					}
				}
			}
			for _, e := range b {
				if err := p.checkListCall(ctx, c, e, bound); err != nil {
					errs = append(errs, err)
				}
			}
			return false
		})
	}
	return errs
}

// checkListCall checks e's list argument if e calls one of our builtins
// and the list is known without the input.
func (p *Policy) checkListCall(ctx context.Context, c *ast.Compiler, e *ast.Expr, bound map[ast.Var]*ast.Term) *Error {
	if !e.IsCall() {
		return nil
	}
	name := e.Operator().String()
	i, ok := listArg[name]
	args := e.Operands()
	if !ok || i >= len(args) {
		return nil
	}
	t := args[i]
	for range 8 { // follow a short chain of locals
		v, isVar := t.Value.(ast.Var)
		if !isVar || bound[v] == nil {
			break
		}
		t = bound[v]
	}
	v, what := p.constantValue(ctx, c, t)
	if v == nil {
		return nil
	}
	var err error
	if name == builtinInNetworks {
		_, err = regoCompileNetworks(v)
	} else {
		_, err = regoCompileMasks(v)
	}
	if err == nil {
		return nil
	}
	return &Error{File: locFile(e.Location), Line: locRow(e.Location), Msg: fmt.Sprintf("%s: %s: %v", name, what, err)}
}

// constantValue returns t's value when it is known without the input: a
// ground term, or a data reference that evaluates without input. nil
// otherwise.
func (p *Policy) constantValue(ctx context.Context, c *ast.Compiler, t *ast.Term) (ast.Value, string) {
	ref, ok := t.Value.(ast.Ref)
	if !ok {
		if t.IsGround() {
			return t.Value, "the list"
		}
		return nil, ""
	}
	if !ref.HasPrefix(ast.DefaultRootRef) || !ref.IsGround() {
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	opts := []func(*rego.Rego){rego.Compiler(c), rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(ref))))}
	opts = append(opts, newRegoBuiltins().options()...)
	rs, err := rego.New(opts...).Eval(ctx)
	if err != nil || len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, "" // depends on the input, or fails: the synthetic run tells
	}
	v, err := ast.InterfaceToValue(rs[0].Expressions[0].Value)
	if err != nil {
		return nil, ""
	}
	return v, ref.String()
}

// syntheticSnapshots are small snapshots of each version with the kinds
// of session a server has: IPv4, IPv6, no IP, proxied, alt fields.
func syntheticSnapshots() []*anvil.Snapshot {
	v4, v6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")
	dest := netip.MustParseAddr("198.51.100.1")
	s24 := []anvil.Session{
		{Service: "imap", User: "alice@example.com", IP: v4, PID: 4194305, ConnGUID: "0123456789abcdef0123456789abcdef", Connections: 1},
		{Service: "pop3", User: "bob", IP: v6, PID: 4194306, ConnGUID: "0123456789abcdef0123456789abcde0", Connections: 1},
		{Service: "imap-login", User: "carol@example.org", IP: v4, DestIP: dest, PID: 4194307, ConnGUID: "0123456789abcdef0123456789abcde1", Connections: 1},
		{Service: "lmtp", User: "john doe", PID: 4194308, ConnGUID: "0123456789abcdef0123456789abcde2", Connections: 1},
	}
	s24[0].SetAlt([]string{"user_ou"}, []string{"staff"})
	s23 := []anvil.Session{
		{Service: "imap", User: "alice@example.com", IP: v4, PID: 4194309, Connections: 2},
		{Service: "pop3", User: "bob", IP: v6, PID: 4194310, Connections: 1},
		{Service: "submission", User: "john doe", PID: 4194311, Connections: 1},
	}
	return []*anvil.Snapshot{{Protocol: anvil.Proto24, Sessions: s24}, {Protocol: anvil.Proto23, Sessions: s23}}
}

// checkSynthetic evaluates the policy on the synthetic snapshots and
// leaves its cache and statistics empty again.
func (p *Policy) checkSynthetic(ctx context.Context, c *ast.Compiler) Errors {
	defer func() { p.cache, p.stats = regoCache{}, PolicyStats{} }()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, snap := range syntheticSnapshots() {
		snap.Taken = now
		gctx, stop := Budget{Timeout: validateTimeout}.Guard(ctx)
		_, err := p.Evaluate(gctx, PolicyInput{Snapshot: snap, Now: now, Allow: &Allow{}})
		if over := stop(); over != nil && err != nil {
			err = over
		}
		if err != nil {
			file, line := kickLocation(c)
			return Errors{{File: file, Line: line,
				Msg: fmt.Sprintf("the policy fails on a synthetic Dovecot %s snapshot of %d sessions: %v", snap.Protocol.Dovecot(), len(snap.Sessions), err)}}
		}
	}
	return nil
}
