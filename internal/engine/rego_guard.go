package engine

import (
	"context"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Guards: the sessions a per-session policy cannot select are decided in
// Go, without OPA.
//
// A cold evaluation (after a load) of 100,000 sessions spent most of its
// time building each session's input object and iterating it through
// every kick rule in OPA, although most kick rules begin with a cheap,
// selective test that few sessions pass:
//
//	some s in input.sessions
//	s.dest_ip != ""                                   # neq(s.dest_ip, "")
//	kickagent.in_networks(s.dest_ip, drain_destinations)
//
// So at load, each kick rule's compiled body is read from its start: the
// session binding (s = input.sessions[k], which perSessionKick requires),
// then as long as each expression is one of
//
//	x = s.<field>          a scalar field of the session object
//	x = data.<ref>         a rule that does not depend on the input,
//	                       evaluated once at load (its value, as OPA has it)
//	x = <ground value>
//	equal, neq, lt, lte, gt, gte, kickagent.in_networks, kickagent.user_match
//	                       called with those, as a test (no output)
//
// Those expressions become a small program. For a session, a test that is
// false (computed with OPA's own comparison functions and our builtins, on
// the values the session's input object would hold) proves the rule has
// no result and no error for it: OPA evaluates a body in order and stops
// at the first false expression, and everything before it was a binding
// that cannot fail or a true test. A session that every kick rule's
// program rejects gets no decisions without an Eval; any other session
// (a test true to the end of the program, an error, anything unknown) is
// evaluated by OPA as before. The guards change no decision
// (TestRegoGuardEqualsFull compares them with full evaluation over random
// policies and snapshots). They are used only for per-session policies: a
// cross-session policy still sees the whole snapshot in one Eval.

// regoField is a scalar field of a session object (rego_input.go).
type regoField uint8

const (
	fieldID regoField = iota
	fieldUser
	fieldService
	fieldPID
	fieldIP
	fieldConnGUID
	fieldDestIP
	fieldConnections
	fieldFirstSeen
	fieldFirstSeenNs
	fieldUserSessions
	fieldIPSessions
	numRegoFields
)

var regoFieldNames = map[ast.String]regoField{
	"id": fieldID, "user": fieldUser, "service": fieldService, "pid": fieldPID,
	"ip": fieldIP, "conn_guid": fieldConnGUID, "dest_ip": fieldDestIP,
	"connections": fieldConnections, "first_seen": fieldFirstSeen,
	"first_seen_ns": fieldFirstSeenNs, "user_sessions": fieldUserSessions,
	"ip_sessions": fieldIPSessions,
}

// regoFieldValue is the value of field f in e's input object, exactly as
// termBuilder.session builds it (TestRegoFieldValueMatchesTerm).
func regoFieldValue(e *regoEntry, f regoField) ast.Value {
	s := &e.sess
	switch f {
	case fieldID:
		return ast.String(e.id)
	case fieldUser:
		return ast.String(s.User)
	case fieldService:
		return ast.String(s.Service)
	case fieldPID:
		return ast.Number(strconv.FormatInt(s.PID, 10))
	case fieldIP:
		if !s.IP.IsValid() {
			return ast.String("")
		}
		return ast.String(s.IP.String())
	case fieldConnGUID:
		return ast.String(s.ConnGUID)
	case fieldDestIP:
		if !s.DestIP.IsValid() {
			return ast.String("")
		}
		return ast.String(s.DestIP.String())
	case fieldConnections:
		return ast.Number(strconv.Itoa(s.Connections))
	case fieldFirstSeen:
		return ast.String(timeString(e.firstSeen))
	case fieldFirstSeenNs:
		return ast.Number(strconv.FormatInt(e.firstSeen.UnixNano(), 10))
	case fieldUserSessions:
		return ast.Number(strconv.Itoa(e.userSessions))
	case fieldIPSessions:
		return ast.Number(strconv.Itoa(e.ipSessions))
	}
	panic("regoFieldValue: unknown field")
}

// guardTest is a test expression of a guard program.
type guardTest uint8

const (
	testEqual guardTest = iota
	testNeq
	testLt
	testLte
	testGt
	testGte
	testInNetworks
	testUserMatch
)

var guardTests = map[string]guardTest{
	ast.Equal.Name: testEqual, ast.NotEqual.Name: testNeq,
	ast.LessThan.Name: testLt, ast.LessThanEq.Name: testLte,
	ast.GreaterThan.Name: testGt, ast.GreaterThanEq.Name: testGte,
	builtinInNetworks: testInNetworks, builtinUserMatch: testUserMatch,
}

// guardOperand is a session field (field ≥ 0) or a constant.
type guardOperand struct {
	field int // -1: constant
	c     *ast.Term
}

// guardOp is one test; the bindings before it were resolved at load into
// its operands.
type guardOp struct {
	test guardTest
	a, b guardOperand
}

// regoGuard holds one program per kick rule. nil: no guard (some kick rule
// begins with no test it understands, so every session is evaluated).
type regoGuard struct {
	rules [][]guardOp
	bi    *regoBuiltins
}

// buildGuard compiles the guards of a per-session policy's kick rules, or
// returns nil.
func (p *Policy) buildGuard(ctx context.Context, c *ast.Compiler, opt policyOptions) *regoGuard {
	if p.deps.cross != "" {
		return nil
	}
	g := &regoGuard{bi: p.bi}
	consts := map[string]*ast.Term{} // data ref → value; nil: not constant
	for _, r := range c.GetRulesExact(regoKickRef) {
		for ; r != nil; r = r.Else {
			prog := p.guardProgram(ctx, c, opt, r, consts)
			if len(prog) == 0 {
				return nil
			}
			g.rules = append(g.rules, prog)
		}
	}
	if len(g.rules) == 0 {
		return nil
	}
	return g
}

// guardProgram reads r's leading tests (see above); empty if none.
func (p *Policy) guardProgram(ctx context.Context, c *ast.Compiler, opt policyOptions, r *ast.Rule, consts map[string]*ast.Term) []guardOp {
	body := r.Body
	if len(body) == 0 || !isSessionBinding(body[0]) {
		return nil
	}
	sess := sessionVar(body[0])
	bound := map[ast.Var]guardOperand{}
	// resolve returns what t stands for, if known.
	resolve := func(t *ast.Term) (guardOperand, bool) {
		switch v := t.Value.(type) {
		case ast.Var:
			o, ok := bound[v]
			return o, ok
		case ast.Ref:
			if len(v) == 2 && v[0].Value.Compare(sess) == 0 {
				if key, ok := v[1].Value.(ast.String); ok {
					if f, ok := regoFieldNames[key]; ok {
						return guardOperand{field: int(f)}, true
					}
				}
				return guardOperand{}, false
			}
			k := v.String()
			cv, seen := consts[k]
			if !seen {
				cv = p.constantTerm(ctx, c, opt, v)
				consts[k] = cv
			}
			return guardOperand{field: -1, c: cv}, cv != nil
		default:
			if t.IsGround() {
				return guardOperand{field: -1, c: t}, true
			}
		}
		return guardOperand{}, false
	}
	var prog []guardOp
	for _, e := range body[1:] {
		if e.Negated || len(e.With) > 0 {
			break
		}
		if e.IsEquality() || e.IsAssignment() {
			l, rt := e.Operand(0), e.Operand(1)
			if v, other, ok := newBinding(l, rt, bound, sess); ok {
				o, ok := resolve(other)
				if !ok {
					break
				}
				bound[v] = o
				continue
			}
			// Both sides known: a test. OPA unifies two values (a
			// field, a constant) by equality (biunifyValues).
			a, okA := resolve(l)
			b, okB := resolve(rt)
			if !okA || !okB {
				break
			}
			prog = append(prog, guardOp{test: testEqual, a: a, b: b})
			continue
		}
		if !e.IsCall() || len(e.Operands()) != 2 {
			break
		}
		test, ok := guardTests[e.Operator().String()]
		if !ok {
			break
		}
		a, okA := resolve(e.Operand(0))
		b, okB := resolve(e.Operand(1))
		if !okA || !okB {
			break
		}
		prog = append(prog, guardOp{test: test, a: a, b: b})
	}
	return prog
}

// newBinding returns the variable of a unification that binds a variable
// not bound yet, and the term it is bound to.
func newBinding(l, r *ast.Term, bound map[ast.Var]guardOperand, sess ast.Var) (ast.Var, *ast.Term, bool) {
	for _, side := range [2][2]*ast.Term{{l, r}, {r, l}} {
		v, ok := side[0].Value.(ast.Var)
		if !ok || v.Compare(sess) == 0 {
			continue
		}
		if _, dup := bound[v]; !dup {
			return v, side[1], true
		}
	}
	return "", nil, false
}

func isSessionBinding(e *ast.Expr) bool {
	if e.Negated || len(e.With) > 0 || !(e.IsEquality() || e.IsAssignment()) {
		return false
	}
	ref, ok := e.Operand(1).Value.(ast.Ref)
	if _, isVar := e.Operand(0).Value.(ast.Var); !isVar || !ok {
		return false
	}
	return len(ref) == 3 && ref.HasPrefix(regoInputSessions) && isVarTerm(ref[2])
}

func sessionVar(e *ast.Expr) ast.Var { return e.Operand(0).Value.(ast.Var) }

// constantTerm evaluates a data reference that does not depend on the
// input (inputFree) as OPA would in the policy's Eval, or returns nil
// (depends on the input, undefined, fails, or any builtin error).
func (p *Policy) constantTerm(ctx context.Context, c *ast.Compiler, opt policyOptions, ref ast.Ref) *ast.Term {
	if !ref.HasPrefix(ast.DefaultRootRef) || !ref.IsGround() || !inputFree(c, ref) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	ctx, berrs := withRegoBuiltinErrs(ctx)
	var got *ast.Term
	opts := []func(*rego.Rego){
		rego.Compiler(c),
		rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(ref)))),
		rego.StrictBuiltinErrors(opt.strictBuiltinErrors),
		rego.Capabilities(regoCapabilities()),
		// The value as OPA holds it, not a JSON round trip.
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) {
			got = t
			return nil, nil
		}),
	}
	opts = append(opts, p.bi.options()...)
	rs, err := rego.New(opts...).Eval(ctx)
	if err != nil || berrs.err() != nil || len(rs) != 1 || got == nil || !got.IsGround() {
		return nil
	}
	return got
}

// inputFree reports whether every rule ref may reach (transitively, over
// an over-approximation of the rules a ref names) reads nothing of the
// input, calls no non-deterministic builtin and uses no with.
func inputFree(c *ast.Compiler, ref ast.Ref) bool {
	seen := map[*ast.Rule]bool{}
	work := c.GetRulesDynamicWithOpts(ref, ast.RulesOptions{})
	free := true
	for len(work) > 0 && free {
		r := work[len(work)-1]
		work = work[:len(work)-1]
		if seen[r] {
			continue
		}
		seen[r] = true
		ast.WalkExprs(r, func(e *ast.Expr) bool {
			if len(e.With) > 0 {
				free = false
			}
			return !free
		})
		ast.WalkVars(r, func(v ast.Var) bool {
			if v.Equal(ast.InputRootDocument.Value) {
				free = false
			}
			return !free
		})
		ast.WalkRefs(r, func(x ast.Ref) bool {
			switch {
			case x.HasPrefix(ast.InputRootRef):
				free = false
			case x.HasPrefix(ast.DefaultRootRef):
				work = append(work, c.GetRulesDynamicWithOpts(x, ast.RulesOptions{})...)
			default:
				if b, ok := ast.BuiltinMap[x.String()]; ok && b.Nondeterministic {
					free = false
				}
			}
			return !free
		})
		if r.Else != nil {
			work = append(work, r.Else)
		}
	}
	return free
}

// selects reports whether e may get a decision or an error from the
// policy: false only if every kick rule's program has a false test.
func (g *regoGuard) selects(e *regoEntry) bool {
	var vals [numRegoFields]ast.Value // computed once per session
	val := func(o guardOperand) ast.Value {
		if o.field < 0 {
			return o.c.Value
		}
		if vals[o.field] == nil {
			vals[o.field] = regoFieldValue(e, regoField(o.field))
		}
		return vals[o.field]
	}
	for _, prog := range g.rules {
		if !g.rejects(prog, val) {
			return true
		}
	}
	return false
}

// rejects runs one program: true if a test is false (without error).
func (g *regoGuard) rejects(prog []guardOp, val func(guardOperand) ast.Value) bool {
	for _, op := range prog {
		a, b := val(op.a), val(op.b)
		var ok bool
		switch op.test {
		case testEqual:
			ok = ast.ValueEqual(a, b)
		case testNeq:
			ok = !ast.ValueEqual(a, b)
		case testLt:
			ok = a.Compare(b) < 0
		case testLte:
			ok = a.Compare(b) <= 0
		case testGt:
			ok = a.Compare(b) > 0
		case testGte:
			ok = a.Compare(b) >= 0
		case testInNetworks, testUserMatch:
			f := g.bi.inNetworks
			if op.test == testUserMatch {
				f = g.bi.userMatch
			}
			// No context: an error is returned, not recorded; the
			// session is then evaluated and OPA reports it.
			t, err := f(rego.BuiltinContext{}, ast.NewTerm(a), ast.NewTerm(b))
			if err != nil {
				return false
			}
			ok = !ast.ValueEqual(t.Value, ast.Boolean(false)) // as OPA: any result but false
		}
		if !ok {
			return true
		}
	}
	return false
}
