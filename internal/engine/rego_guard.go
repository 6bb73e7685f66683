package engine

import (
	"context"
	"maps"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
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
//	x = s.<field>          a field of the session object (s.alt.<name>:
//	                       a lookup, undefined if the session lacks it)
//	x = data.<ref>         a rule that does not depend on the input,
//	                       evaluated once at load (its value, as OPA has it)
//	x = <ground value>
//	x = a[k]               a lookup in a constant object or a bound value
//	                       by a constant or bound key (undefined: rejects)
//	lower(a, x), upper(a, x)
//	a = b                  a unification of two known values: equality
//	equal, neq, lt, lte, gt, gte, kickagent.in_networks, kickagent.user_match
//	                       called with those, as a test (no output)
//	a                      one term as a test: defined and not false
//	not E                  E one of the above, with its own lookups and calls
//
// Those expressions become a small program. For a session, a test that is
// false, a lookup that is undefined or a "not E" whose E succeeds (computed with OPA's own comparison
// functions, builtins and our builtins, on the values the session's input
// object would hold) proves the rule has no result and no error for it:
// OPA evaluates a body in order and stops at the first expression without
// a solution, and everything before it was a binding or lookup that
// succeeded or a true test. A session that every kick rule's
// program rejects gets no decisions without an Eval; any other session
// (a test true to the end of the program, an error, anything unknown) is
// evaluated by OPA as before. The guards change no decision
// (TestRegoGuardEqualsFull compares them with full evaluation over random
// policies and snapshots). They are used only for per-session policies: a
// cross-session policy still sees the whole snapshot in one Eval.

// A guard program's operations.
type guardKind uint8

const (
	opTest  guardKind = iota // a test: false rejects the session
	opIndex                  // slot = a[keys...] in an object; undefined rejects
	opCall                   // slot = lower(a) or upper(a)
	opNot                    // not <inner>: rejects if inner succeeds
)

// guardTest is the function of an opTest.
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
	testTruthy // an expression of one term: defined and not false
)

var guardTests = map[string]guardTest{
	ast.Equal.Name: testEqual, ast.NotEqual.Name: testNeq,
	ast.LessThan.Name: testLt, ast.LessThanEq.Name: testLte,
	ast.GreaterThan.Name: testGt, ast.GreaterThanEq.Name: testGte,
	builtinInNetworks: testInNetworks, builtinUserMatch: testUserMatch,
}

// guardCalls are the builtins with an output a guard may call: pure,
// called through OPA's own implementation (topdown.GetBuiltin).
var guardCalls = map[string]bool{ast.Lower.Name: true, ast.Upper.Name: true}

// guardOperand is a session field, a constant, or a slot (the value an
// earlier opIndex or opCall computed).
type guardOperand struct {
	kind  uint8 // operandField, operandConst, operandSlot
	field regoField
	slot  int
	c     *ast.Term
}

const (
	operandField uint8 = iota
	operandConst
	operandSlot
)

// maxGuardSlots bounds the values one program computes.
const maxGuardSlots = 16

type guardOp struct {
	kind  guardKind
	test  guardTest
	fn    topdown.BuiltinFunc // opCall
	a, b  guardOperand        // opTest: both; opIndex, opCall: a
	keys  []guardOperand      // opIndex
	dst   int                 // opIndex, opCall: the slot written
	inner []guardOp           // opNot: one expression's operations
}

// regoGuard holds one program per kick rule. nil: no guard (some kick rule
// begins with no test it understands, so every session is evaluated).
type regoGuard struct {
	rules [][]guardOp
	bi    *regoBuiltins
	// The first_seen values of the last session, reused by the next
	// (a cold cycle's sessions are mostly first seen at the same time).
	seen            time.Time
	seenStr, seenNs ast.Value
}

// buildGuard compiles the guards of a per-session policy's kick rules, or
// returns nil.
func (p *Policy) buildGuard(ctx context.Context, c *ast.Compiler, opt policyOptions) *regoGuard {
	if p.deps.cross != "" {
		return nil
	}
	g := &regoGuard{bi: p.bi}
	gc := &guardCompiler{p: p, ctx: ctx, c: c, opt: opt, consts: map[string]*ast.Term{}}
	for _, r := range c.GetRulesExact(regoKickRef) {
		for ; r != nil; r = r.Else {
			prog := gc.program(r)
			if !hasTest(prog) || (!p.deps.aggregates && readsAggregates(prog)) {
				return nil // the counts are kept only for a policy that reads them
			}
			g.rules = append(g.rules, prog)
		}
	}
	if len(g.rules) == 0 {
		return nil
	}
	return g
}

func readsAggregates(prog []guardOp) bool {
	for _, op := range prog {
		for _, o := range append([]guardOperand{op.a, op.b}, op.keys...) {
			if o.kind == operandField && (o.field == fieldUserSessions || o.field == fieldIPSessions) {
				return true
			}
		}
		if readsAggregates(op.inner) {
			return true
		}
	}
	return false
}

// decides reports whether an operation can reject a session by itself
// (the others compute values for it).
func (op *guardOp) decides() bool { return op.kind == opTest || op.kind == opNot }

func hasTest(prog []guardOp) bool {
	for i := range prog {
		if prog[i].decides() {
			return true
		}
	}
	return false
}

// guardCompiler compiles kick rules into programs.
type guardCompiler struct {
	p      *Policy
	ctx    context.Context
	c      *ast.Compiler
	opt    policyOptions
	consts map[string]*ast.Term // data ref → value; nil: not constant

	// per rule
	sess  ast.Var
	bound map[ast.Var]guardOperand
	prog  []guardOp
	slots int
}

// program reads r's leading bindings and tests (see above).
func (gc *guardCompiler) program(r *ast.Rule) []guardOp {
	body := r.Body
	if len(body) == 0 || !isSessionBinding(body[0]) {
		return nil
	}
	gc.sess, gc.bound, gc.prog, gc.slots = sessionVar(body[0]), map[ast.Var]guardOperand{}, nil, 0
	for _, e := range body[1:] {
		if !gc.expr(e) {
			break
		}
	}
	// Trailing operations without a test after them decide nothing.
	for len(gc.prog) > 0 && !gc.prog[len(gc.prog)-1].decides() {
		gc.prog = gc.prog[:len(gc.prog)-1]
	}
	return gc.prog
}

// expr compiles one body expression; false ends the program there.
func (gc *guardCompiler) expr(e *ast.Expr) bool {
	if len(e.With) > 0 {
		return false
	}
	if e.Negated {
		return gc.not(e)
	}
	if t, ok := e.Terms.(*ast.Term); ok {
		a, ok := gc.operand(t)
		if ok {
			gc.prog = append(gc.prog, guardOp{kind: opTest, test: testTruthy, a: a})
		}
		return ok
	}
	if e.IsEquality() || e.IsAssignment() {
		l, r := e.Operand(0), e.Operand(1)
		if v, other, ok := gc.newBinding(l, r); ok {
			o, ok := gc.operand(other)
			if ok {
				gc.bound[v] = o
			}
			return ok
		}
		// Both sides known: a test. OPA unifies two values (a field, a
		// constant) by equality (biunifyValues).
		return gc.test(testEqual, l, r)
	}
	if !e.IsCall() {
		return false
	}
	name := e.Operator().String()
	args := e.Operands()
	if test, ok := guardTests[name]; ok && len(args) == 2 {
		return gc.test(test, args[0], args[1])
	}
	if guardCalls[name] && len(args) == 2 {
		out, ok := args[1].Value.(ast.Var)
		if !ok || gc.isBound(out) {
			return false
		}
		a, ok := gc.operand(args[0])
		if !ok {
			return false
		}
		fn := topdown.GetBuiltin(name)
		if fn == nil {
			return false
		}
		o, ok := gc.emit(guardOp{kind: opCall, fn: fn, a: a})
		if ok {
			gc.bound[out] = o
		}
		return ok
	}
	return false
}

// not compiles "not E": E's operations (lookups, calls, ending in its
// test) run apart; E without a solution lets the rule go on. Bindings
// inside E are E's own.
func (gc *guardCompiler) not(e *ast.Expr) bool {
	outer, bound := gc.prog, maps.Clone(gc.bound)
	gc.prog = nil
	inner := e.Copy()
	inner.Negated = false
	ok := gc.expr(inner)
	ops := gc.prog
	gc.prog, gc.bound = outer, bound
	if !ok || len(ops) == 0 || ops[len(ops)-1].kind != opTest {
		return false
	}
	gc.prog = append(gc.prog, guardOp{kind: opNot, inner: ops})
	return true
}

func (gc *guardCompiler) test(test guardTest, l, r *ast.Term) bool {
	a, okA := gc.operand(l)
	b, okB := gc.operand(r)
	if !okA || !okB {
		return false
	}
	gc.prog = append(gc.prog, guardOp{kind: opTest, test: test, a: a, b: b})
	return true
}

// emit appends an operation that writes a new slot.
func (gc *guardCompiler) emit(op guardOp) (guardOperand, bool) {
	if gc.slots == maxGuardSlots {
		return guardOperand{}, false
	}
	op.dst = gc.slots
	gc.slots++
	gc.prog = append(gc.prog, op)
	return guardOperand{kind: operandSlot, slot: op.dst}, true
}

func (gc *guardCompiler) isBound(v ast.Var) bool {
	_, ok := gc.bound[v]
	return ok || v.Compare(gc.sess) == 0
}

// newBinding returns the variable of a unification that binds a variable
// not bound yet, and the term it is bound to.
func (gc *guardCompiler) newBinding(l, r *ast.Term) (ast.Var, *ast.Term, bool) {
	for _, side := range [2][2]*ast.Term{{l, r}, {r, l}} {
		if v, ok := side[0].Value.(ast.Var); ok && !gc.isBound(v) {
			return v, side[1], true
		}
	}
	return "", nil, false
}

// operand returns what t stands for: a session field, a constant, a
// bound variable's value, or the result of a lookup (emitted as opIndex).
func (gc *guardCompiler) operand(t *ast.Term) (guardOperand, bool) {
	switch v := t.Value.(type) {
	case ast.Var:
		o, ok := gc.bound[v]
		return o, ok
	case ast.Ref:
		return gc.ref(v)
	}
	if t.IsGround() {
		return guardOperand{kind: operandConst, c: t}, true
	}
	return guardOperand{}, false
}

// ref resolves s.<field>, a constant data document, or a lookup by keys
// (constants or bound variables) in a constant or a bound variable.
func (gc *guardCompiler) ref(ref ast.Ref) (guardOperand, bool) {
	var base guardOperand
	var rest ast.Ref
	switch head := ref[0].Value.(type) {
	case ast.Var:
		switch {
		case head.Compare(gc.sess) == 0:
			if len(ref) < 2 {
				return guardOperand{}, false
			}
			key, ok := ref[1].Value.(ast.String)
			f, known := regoFieldNames[key]
			if !ok || !known {
				return guardOperand{}, false // s[k], or a field the input lacks
			}
			base, rest = guardOperand{kind: operandField, field: f}, ref[2:] // s.alt.<name>: a lookup
		case head.Equal(ast.DefaultRootDocument.Value):
			prefix := ref.GroundPrefix()
			if len(prefix) < 3 {
				return guardOperand{}, false
			}
			k := prefix.String()
			cv, seen := gc.consts[k]
			if !seen {
				cv = gc.p.constantTerm(gc.ctx, gc.c, gc.opt, prefix)
				gc.consts[k] = cv
			}
			if cv == nil {
				return guardOperand{}, false
			}
			base, rest = guardOperand{kind: operandConst, c: cv}, ref[len(prefix):]
		default:
			o, ok := gc.bound[head]
			if !ok {
				return guardOperand{}, false
			}
			base, rest = o, ref[1:]
		}
	default:
		return guardOperand{}, false
	}
	if len(rest) == 0 {
		return base, true
	}
	var keys []guardOperand
	for _, k := range rest {
		switch k.Value.(type) {
		case ast.Var: // bound: a lookup; unbound: an iteration, not ours
		case ast.String, ast.Number, ast.Boolean, ast.Null:
		default:
			return guardOperand{}, false
		}
		o, ok := gc.operand(k)
		if !ok {
			return guardOperand{}, false
		}
		keys = append(keys, o)
	}
	return gc.emit(guardOp{kind: opIndex, a: base, keys: keys})
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
