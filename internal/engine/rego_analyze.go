package engine

import (
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// policyDeps is what the compiled policy reads, as far as the decision
// cache needs to know.
type policyDeps struct {
	// volatile, when set, says why decisions cannot be cached: every
	// Evaluate evaluates every session (only the input terms are reused).
	volatile string
	// aggregates: the policy reads user_sessions or ip_sessions, so a
	// session is re-evaluated when its counts change.
	aggregates bool
	// allow: the policy reads input.allow, so a new allow list
	// re-evaluates every session.
	allow bool
}

var (
	regoInputSessions = ast.MustParseRef("input.sessions")
	regoKickVar       = ast.VarTerm("kick")
)

// analyzePolicy walks the compiled modules (imports resolved, refs fully
// qualified) and decides whether decisions can be cached per session.
//
// Decisions are cached when a session's decision can only depend on its
// own input object. Conservatively, the policy is volatile when it:
//   - reads input.now or input.now_ns, all of input, or input[computed];
//   - calls a non-deterministic builtin (time.now_ns, rand.intn, http.send …);
//   - reads input.sessions anywhere but a kick rule, as a whole (count()),
//     by position (input.sessions[0]), inside a comprehension, or more
//     than once in one rule (a join of two sessions).
//
// What it cannot see: a policy that reads a session object's fields with a
// computed key (s[k], object.keys(s)) and so reaches user_sessions or
// ip_sessions without naming them; such a policy must name them (any
// string "user_sessions"/"ip_sessions" in the policy counts).
func analyzePolicy(c *ast.Compiler, files []string) (policyDeps, Errors) {
	var d policyDeps
	volatile := func(t *ast.Term, why string) {
		if d.volatile == "" {
			d.volatile = fmt.Sprintf("%s: %s", termPos(t), why)
		}
	}
	names := make([]string, 0, len(c.Modules))
	for name := range c.Modules {
		names = append(names, name)
	}
	slices.Sort(names)
	hasKick := false
	for _, name := range names {
		for _, r := range c.Modules[name].Rules {
			isKick := r.Head.Ref()[0].Equal(regoKickVar)
			hasKick = hasKick || isKick
			sessionRefs := 0
			ast.WalkTerms(r, func(t *ast.Term) bool {
				switch v := t.Value.(type) {
				case ast.String:
					if isAggregateKey(v) {
						d.aggregates = true
					}
				case *ast.ArrayComprehension, *ast.SetComprehension, *ast.ObjectComprehension:
					ast.WalkRefs(v, func(ref ast.Ref) bool {
						if ref.HasPrefix(regoInputSessions) {
							volatile(t, "reads input.sessions in a comprehension")
						}
						return false
					})
				case ast.Ref:
					for _, p := range v[1:] {
						if s, ok := p.Value.(ast.String); ok && isAggregateKey(s) {
							d.aggregates = true
						}
					}
					if b, ok := ast.BuiltinMap[v.String()]; ok && b.Nondeterministic {
						volatile(t, "calls "+b.Name)
					}
					if !v.HasPrefix(ast.InputRootRef) {
						break
					}
					if len(v) == 1 {
						volatile(t, "reads all of input")
						break
					}
					key, ok := v[1].Value.(ast.String)
					if !ok {
						volatile(t, "reads input with a computed key")
						break
					}
					switch key {
					case "now", "now_ns":
						volatile(t, "reads input."+string(key))
					case "allow":
						d.allow = true
					case "sessions":
						sessionRefs++
						switch {
						case !isKick:
							volatile(t, "reads input.sessions outside a kick rule")
						case len(v) == 2:
							volatile(t, "reads input.sessions as a whole")
						case !isVarTerm(v[2]):
							volatile(t, "reads a session by position")
						}
					}
				}
				return false
			})
			if sessionRefs > 1 && isKick {
				volatile(r.Head.Ref()[0], "a kick rule iterates input.sessions more than once")
			}
		}
	}
	if !hasKick {
		e := &Error{Msg: "no kick rule: the policy must define " + policyQuery}
		if len(files) > 0 {
			e.File = files[0]
			if m := c.Modules[files[0]]; m != nil {
				e.Line = locRow(m.Package.Location)
			}
		}
		return d, Errors{e}
	}
	return d, nil
}

func isAggregateKey(s ast.String) bool { return s == "user_sessions" || s == "ip_sessions" }

func isVarTerm(t *ast.Term) bool {
	_, ok := t.Value.(ast.Var)
	return ok
}

func termPos(t *ast.Term) string {
	if t == nil || t.Location == nil {
		return "policy"
	}
	return fmt.Sprintf("%s:%d", t.Location.File, t.Location.Row)
}
