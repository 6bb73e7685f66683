// Package engine turns a snapshot of anvil sessions into decisions: which
// session to kick, by which rule, and why. Rules come as YAML rule files
// (compiled at load into indexed matchers) or Rego policies (compiled and
// prepared once per load, with decisions cached per session), or both.
// One allow list, applied in Go after both engines, protects the sessions
// no rule may touch.
//
// The engine never kicks; it only decides.
package engine
