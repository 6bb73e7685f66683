package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The builtin sandbox.
//
// A policy decides from the input document alone: it may call every OPA
// builtin that OPA marks deterministic (string, regex, glob, net.cidr_*,
// time parsing and arithmetic on given times, JSON/YAML, crypto hashes,
// print, trace …) and the kickagent builtins. The non-deterministic ones
// are not available: they reach the network or the host (http.send,
// net.lookup_ip_addr, opa.runtime, json.match_schema with remote refs,
// io.jwt.* with key fetching and the clock), read the clock (time.now_ns:
// the input has now and now_ns, the same for every session of a cycle)
// or are random (rand.intn, uuid.rfc4122). Filtering on OPA's own flag
// makes the list an allowlist of deterministic builtins: a builtin a
// future OPA adds with I/O comes marked non-deterministic and stays out.
//
// A policy that calls one is refused at load, at the call's file:line,
// naming the builtin and why (CONFIGURATION.md, "Builtins").

// regoDeniedWhy says why a builtin is refused, for the load error; a
// non-deterministic builtin not listed gets a generic reason.
var regoDeniedWhy = map[string]string{
	"http.send":              "it reaches the network",
	"net.lookup_ip_addr":     "it reaches the network (DNS)",
	"opa.runtime":            "it reads the host's environment",
	"time.now_ns":            "it reads the clock; use input.now_ns, the cycle's time",
	"rand.intn":              "it is random",
	"uuid.rfc4122":           "it is random",
	"json.match_schema":      "it may fetch remote schemas",
	"json.verify_schema":     "it may fetch remote schemas",
	"io.jwt.decode_verify":   "it reads the clock and may fetch keys",
	"io.jwt.encode_sign":     "it is not deterministic",
	"io.jwt.encode_sign_raw": "it is not deterministic",
}

// regoCapabilities returns OPA's capabilities without the
// non-deterministic builtins, plus the kickagent builtins.
func regoCapabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, regoDenied)
	caps.Builtins = append(caps.Builtins, regoBuiltinDecls()...)
	return caps
}

// regoDenied reports whether policies may not call b.
func regoDenied(b *ast.Builtin) bool {
	_, listed := regoDeniedWhy[b.Name]
	return listed || b.Nondeterministic
}

// deniedBuiltinNames lists the OPA builtins policies may not call, sorted.
func deniedBuiltinNames() []string {
	var out []string
	for _, b := range ast.CapabilitiesForThisVersion().Builtins {
		if regoDenied(b) {
			out = append(out, b.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// explainDenied rewrites the compiler's "undefined function X" for a
// builtin of the sandbox's deny list into a message that says so.
func explainDenied(errs Errors) Errors {
	const undefined = "rego_type_error: undefined function "
	denied := deniedBuiltinNames()
	for _, e := range errs {
		name, ok := strings.CutPrefix(e.Msg, undefined)
		if !ok {
			continue
		}
		if _, found := slices.BinarySearch(denied, name); !found {
			continue
		}
		why := regoDeniedWhy[name]
		if why == "" {
			why = "it is not deterministic"
		}
		e.Msg = fmt.Sprintf("builtin %s is not allowed in kickagent policies: %s", name, why)
	}
	return errs
}
