package engine

import (
	"bytes"
	"errors"
	"io"

	"gopkg.in/yaml.v3"
)

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

// DecodeMapping decodes data as one YAML document whose top is a mapping
// (a "what", with the keys named by keys), reporting every problem to fail
// with its line: a syntax error, a second document, another top. It
// returns the mapping, or nil for an empty or null document, which
// defines nothing; ok is false when nothing of data can be used.
func DecodeMapping(data []byte, what, keys string, fail func(line int, msg string)) (root *yaml.Node, ok bool) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		fail(yamlErrLine(err), yamlErrMsg(err))
		return nil, false
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		fail(extra.Line, "more than one YAML document in a "+what)
	case !errors.Is(err, io.EOF):
		fail(yamlErrLine(err), yamlErrMsg(err))
	}
	root = &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, true
	}
	if root.Kind != yaml.MappingNode {
		fail(root.Line, "a "+what+" is a mapping with the keys "+keys)
		return nil, false
	}
	return root, true
}
