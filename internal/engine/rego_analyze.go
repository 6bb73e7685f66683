package engine

import (
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// policyDeps is what the compiled policy reads, as far as the decision
// cache and the batching need to know.
type policyDeps struct {
	// cross, when set, says why a session's decisions may depend on other
	// sessions (or why the analysis cannot prove they do not): the policy
	// is evaluated in one Eval whose input.sessions is the whole snapshot,
	// never in chunks, and its decisions are reused only while the
	// snapshot is unchanged.
	cross string
	// volatile, when set, says why decisions cannot be cached even for an
	// unchanged session (the policy reads the time, or calls a
	// non-deterministic builtin): every Evaluate evaluates every session
	// (only the input terms are reused).
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
	regoSessionKey    = ast.StringTerm("session")
	regoIDKey         = ast.StringTerm("id")
)

// analyzePolicy walks the compiled modules (imports resolved, refs fully
// qualified, "some s in xs" and ":=" rewritten to unifications) and
// decides how the policy is evaluated.
//
// A policy is per-session, and may be evaluated in chunks of sessions and
// its decisions cached per session, only when every kick rule is proved
// to have the shape
//
//	kick contains {"session": s.id, ...} if { some s in input.sessions; ... }
//
// that is: the rule reads input.sessions exactly once, as one top-level
// s = input.sessions[k] with a variable k used nowhere else (no position),
// the result's "session" is s.id (through any chain of unifications), and
// no other rule reads input.sessions, all of input, or input[computed].
// Anything else is cross-session (deps.cross): a join of two sessions, a
// count or comprehension over input.sessions, every, a helper rule over
// the sessions, a session by position, a result for a session other than
// the one iterated. Reading the time (input.now, input.now_ns) or calling
// a non-deterministic builtin (time.now_ns, rand.intn, http.send …) makes
// it volatile.
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
	cross := func(t *ast.Term, why string) {
		if d.cross == "" {
			d.cross = fmt.Sprintf("%s: %s", termPos(t), why)
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
							cross(t, "reads input.sessions in a comprehension")
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
						cross(t, "reads all of input")
						volatile(t, "reads all of input") // input.now too, perhaps
						break
					}
					key, ok := v[1].Value.(ast.String)
					if !ok {
						cross(t, "reads input with a computed key")
						volatile(t, "reads input with a computed key") // input.now too, perhaps
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
							cross(t, "reads input.sessions outside a kick rule")
						case len(v) == 2:
							cross(t, "reads input.sessions as a whole")
						case !isVarTerm(v[2]):
							cross(t, "reads a session by position")
						}
					}
				}
				return false
			})
			if !isKick {
				continue
			}
			switch {
			case sessionRefs > 1:
				cross(r.Head.Ref()[0], "a kick rule iterates input.sessions more than once")
			case sessionRefs == 0:
				cross(r.Head.Ref()[0], "a kick rule does not iterate input.sessions (its result is not one session's)")
			default:
				if why := perSessionKick(r); why != "" {
					cross(r.Head.Ref()[0], why)
				}
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

// perSessionKick checks a compiled kick rule that reads input.sessions
// exactly once: the read must be a top-level s = input.sessions[k], k
// used nowhere else, and the result's "session" must be s.id. It returns
// why not, or "".
func perSessionKick(r *ast.Rule) string {
	// Unifications of a variable at the top level of the body: what the
	// variable equals in every solution.
	binds := map[ast.Var][]*ast.Term{}
	var sess, index ast.Var
	for _, e := range r.Body {
		if e.Negated || len(e.With) > 0 || !(e.IsEquality() || e.IsAssignment()) {
			continue
		}
		ops := e.Operands()
		if len(ops) != 2 {
			continue
		}
		for i, t := range ops {
			v, ok := t.Value.(ast.Var)
			if !ok {
				continue
			}
			other := ops[1-i]
			binds[v] = append(binds[v], other)
			if ref, ok := other.Value.(ast.Ref); ok && len(ref) == 3 && ref.HasPrefix(regoInputSessions) {
				if k, ok := ref[2].Value.(ast.Var); ok {
					sess, index = v, k
				}
			}
		}
	}
	if sess == "" {
		return "a kick rule reads input.sessions other than as \"some s in input.sessions\" at the top of its body"
	}
	uses := 0
	ast.WalkVars(r, func(v ast.Var) bool {
		if v == index {
			uses++
		}
		return false
	})
	if uses != 1 {
		return "a kick rule uses a session's position in input.sessions"
	}
	head := r.Head.Key
	if head == nil {
		head = r.Head.Value
	}
	var isID func(t *ast.Term, depth int) bool
	isID = func(t *ast.Term, depth int) bool {
		if t == nil || depth > 16 {
			return false
		}
		switch v := t.Value.(type) {
		case ast.Ref:
			return len(v) == 2 && v[0].Equal(ast.VarTerm(string(sess))) && v[1].Equal(regoIDKey)
		case ast.Var:
			for _, b := range binds[v] {
				if isID(b, depth+1) {
					return true
				}
			}
		}
		return false
	}
	var result func(t *ast.Term, depth int) bool
	result = func(t *ast.Term, depth int) bool {
		if t == nil || depth > 16 {
			return false
		}
		switch v := t.Value.(type) {
		case ast.Object:
			return isID(v.Get(regoSessionKey), 0)
		case ast.Var:
			for _, b := range binds[v] {
				if result(b, depth+1) {
					return true
				}
			}
		}
		return false
	}
	if !result(head, 0) {
		return "a kick rule's result is not for the session it iterates (\"session\": s.id)"
	}
	return ""
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
