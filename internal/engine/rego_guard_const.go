package engine

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Constants for the guards (rego_guard.go): the data documents a guard may
// read, evaluated once at load.

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
