package bundle

import (
	"fmt"
	"slices"
	"strings"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// File is one rules file of a bundle.
type File struct {
	// Name is a pseudo file name for error messages and the engine's
	// sources, e.g. "bundle:r2/rules/10-block.yaml".
	Name string
	Data []byte
}

// Contents is what a bundle gives the engine.
type Contents struct {
	Revision string
	// Rules are the rules files in name order, as files of a drop-in
	// directory load.
	Rules []File
	// Modules are the Rego modules by pseudo file name
	// ("bundle:r2/policy/x.rego") for the engine's error messages.
	Modules map[string][]byte
}

// Extract returns the rules files and Rego modules of b (doc.go's layout).
// Data outside data.kickagent.rules, or a rules entry that is not a string,
// is an error: the agent must not run a bundle it only half understands.
func Extract(b *opabundle.Bundle) (*Contents, error) {
	rev := b.Manifest.Revision
	c := &Contents{Revision: rev, Modules: map[string][]byte{}}
	prefix := "bundle:" + rev + "/"
	rules, err := rulesData(b.Data)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", rev, err)
	}
	for name, v := range rules {
		s, ok := v.(string)
		if !ok || !isRulesName(name) || strings.Contains(name, "/") {
			return nil, fmt.Errorf("bundle %s: data.%s.%s[%q]: want a rules file's text under a name ending in .yaml or .yml", rev, Root, rulesDir, name)
		}
		c.Rules = append(c.Rules, File{Name: prefix + rulesDir + "/" + name, Data: []byte(s)})
	}
	slices.SortFunc(c.Rules, func(x, y File) int { return strings.Compare(x.Name, y.Name) })
	for _, m := range b.Modules {
		c.Modules[prefix+strings.TrimPrefix(m.Path, "/")] = m.Raw
	}
	if len(b.WasmModules) > 0 || len(b.PlanModules) > 0 || len(b.Wasm) > 0 {
		return nil, fmt.Errorf("bundle %s: wasm or plan modules are not supported", rev)
	}
	return c, nil
}

// rulesData returns data.kickagent.rules after checking that the bundle has
// no other data.
func rulesData(data map[string]any) (map[string]any, error) {
	for k := range data {
		if k != Root {
			return nil, fmt.Errorf("data.%s: unexpected (only data.%s.%s is read)", k, Root, rulesDir)
		}
	}
	if data[Root] == nil {
		return nil, nil
	}
	root, ok := data[Root].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("data.%s: want an object", Root)
	}
	for k := range root {
		if k != rulesDir {
			return nil, fmt.Errorf("data.%s.%s: unexpected (only data.%s.%s is read)", Root, k, Root, rulesDir)
		}
	}
	if root[rulesDir] == nil {
		return nil, nil
	}
	rules, ok := root[rulesDir].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("data.%s.%s: want an object of rules files", Root, rulesDir)
	}
	return rules, nil
}
