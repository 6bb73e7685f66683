package engine

import (
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Running the guards (rego_guard.go) on a session.

// regoField is a field of a session object (rego_input.go).
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
	fieldAlt // an object: read by lookups (s.alt.<name>)
	numRegoFields
)

var regoFieldNames = map[ast.String]regoField{
	"id": fieldID, "user": fieldUser, "service": fieldService, "pid": fieldPID,
	"ip": fieldIP, "conn_guid": fieldConnGUID, "dest_ip": fieldDestIP,
	"connections": fieldConnections, "first_seen": fieldFirstSeen,
	"first_seen_ns": fieldFirstSeenNs, "user_sessions": fieldUserSessions,
	"ip_sessions": fieldIPSessions, "alt": fieldAlt,
}

// regoFieldValue is the value of field f in e's input object, exactly as
// termBuilder.session builds it (TestRegoFieldValueMatchesTerm).
// fieldAlt allocates an object: read only by programs that look in it.
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
	case fieldAlt:
		return altObject(s, ast.StringTerm)
	}
	panic("regoFieldValue: unknown field")
}

// selects reports whether e may get a decision or an error from the
// policy: false only if every kick rule's program rejects it. Not safe
// for concurrent use (Evaluate is serialized).
func (g *regoGuard) selects(e *regoEntry) bool {
	r := guardRun{g: g, e: e}
	for _, prog := range g.rules {
		if r.run(prog) != guardFailed {
			return true
		}
	}
	return false
}

// guardOutcome is a program's: every test true (the rule may select the
// session), a test false or a lookup undefined (it cannot, without
// error), or unknown (an error, or a value the guards leave to OPA).
type guardOutcome uint8

const (
	guardPassed guardOutcome = iota
	guardFailed
	guardUnknown
)

// guardRun is one session's run: the fields computed once for every
// program, the slots per program.
type guardRun struct {
	g      *regoGuard
	e      *regoEntry
	fields [numRegoFields]ast.Value
	slots  [maxGuardSlots]ast.Value
}

func (r *guardRun) val(o guardOperand) ast.Value {
	switch o.kind {
	case operandConst:
		return o.c.Value
	case operandSlot:
		return r.slots[o.slot]
	}
	if r.fields[o.field] == nil {
		r.fields[o.field] = r.g.field(r.e, o.field)
	}
	return r.fields[o.field]
}

// field is regoFieldValue, with the first_seen values of the last
// session reused.
func (g *regoGuard) field(e *regoEntry, f regoField) ast.Value {
	if f != fieldFirstSeen && f != fieldFirstSeenNs {
		return regoFieldValue(e, f)
	}
	if g.seenNs == nil || !e.firstSeen.Equal(g.seen) {
		g.seen = e.firstSeen
		g.seenStr, g.seenNs = regoFieldValue(e, fieldFirstSeen), regoFieldValue(e, fieldFirstSeenNs)
	}
	if f == fieldFirstSeen {
		return g.seenStr
	}
	return g.seenNs
}

// run runs a program (or a "not"'s expression) in order, as OPA
// evaluates a body.
func (r *guardRun) run(prog []guardOp) guardOutcome {
	for i := range prog {
		op := &prog[i]
		switch op.kind {
		case opIndex:
			v := r.val(op.a)
			for _, k := range op.keys {
				obj, ok := v.(ast.Object)
				if !ok {
					return guardUnknown // a lookup in a set, array or scalar: OPA's
				}
				t := obj.Get(&ast.Term{Value: r.val(k)})
				if t == nil {
					return guardFailed // undefined
				}
				v = t.Value
			}
			r.slots[op.dst] = v
		case opCall:
			var out *ast.Term
			err := op.fn(topdown.BuiltinContext{}, []*ast.Term{{Value: r.val(op.a)}}, func(t *ast.Term) error {
				out = t
				return nil
			})
			if err != nil || out == nil {
				return guardUnknown // OPA reports the error
			}
			r.slots[op.dst] = out.Value
		case opNot:
			switch r.run(op.inner) {
			case guardPassed:
				return guardFailed
			case guardUnknown:
				return guardUnknown
			}
		case opTest:
			ok, err := r.test(op)
			if err != nil {
				return guardUnknown
			}
			if !ok {
				return guardFailed
			}
		}
	}
	return guardPassed
}

// test computes a test as OPA does (topdown/comparison.go, and an
// expression is true when its call returns anything but false).
func (r *guardRun) test(op *guardOp) (bool, error) {
	a, b := r.val(op.a), r.val(op.b)
	switch op.test {
	case testEqual:
		return ast.ValueEqual(a, b), nil
	case testNeq:
		return !ast.ValueEqual(a, b), nil
	case testLt:
		return a.Compare(b) < 0, nil
	case testLte:
		return a.Compare(b) <= 0, nil
	case testGt:
		return a.Compare(b) > 0, nil
	case testGte:
		return a.Compare(b) >= 0, nil
	case testTruthy:
		return !ast.ValueEqual(a, ast.Boolean(false)), nil
	}
	// No context: our builtins return an error, not record it; the
	// session is then evaluated, and OPA reports it.
	ta, tb := ast.Term{Value: a}, ast.Term{Value: b}
	var t *ast.Term
	var err error
	if op.test == testInNetworks {
		t, err = r.g.bi.inNetworks(rego.BuiltinContext{}, &ta, &tb)
	} else {
		t, err = r.g.bi.userMatch(rego.BuiltinContext{}, &ta, &tb)
	}
	if err != nil {
		return false, err
	}
	return !ast.ValueEqual(t.Value, ast.Boolean(false)), nil
}
