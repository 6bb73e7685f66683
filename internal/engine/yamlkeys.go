package engine

import "gopkg.in/yaml.v3"

// The rules parser's YAML helpers, exported for internal/config so that
// the agent's config file reports its errors exactly as a rules file does
// (file:line, "unknown key "x" (known: …)"). They depend on nothing but
// yaml.v3.

// ForEachKey walks mapping m: a key not in allowed is reported to bad as
// `unknown key "x" (known: a, b)`, a key given twice as `key "x" given
// twice`, both with the key's line; fn gets every other key once.
func ForEachKey(m *yaml.Node, allowed []string, bad func(line int, msg string), fn func(key string, v *yaml.Node)) {
	forEachKey(m, allowed, bad, fn)
}

// YAMLError is the 1-based line and the message of a yaml.v3 decoding
// error (its "yaml: line N:" prefix removed).
func YAMLError(err error) (line int, msg string) { return yamlErrLine(err), yamlErrMsg(err) }
