package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A bundle's rules and modules load with the local files: its rules after
// theirs, its modules into one policy with the local policy directory's.
func TestLoadBundle(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(local, []byte("allow:\n  networks: [192.0.2.0/24]\nrules:\n  - {name: local, users: [mallory]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &Bundle{Revision: "r2",
		Rules: []SourceFile{{Name: "bundle:r2/rules/10-block.yaml", Data: []byte("rules:\n  - {name: fleet-block, networks: [198.51.100.0/24]}\n")}},
		Modules: []SourceFile{{Name: "bundle:r2/policy/p.rego", Data: []byte(`package kickagent

kick contains {"id": s.id, "rule": "fleet-rego", "reason": "r2"} if {
	some s in input.sessions
	s.user == "trudy"
}
`)}},
	}
	ctx := context.Background()
	rs, err := Load(ctx, Sources{Rules: []string{local}, Bundle: b})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rs.Files(), ","); got != local+",bundle:r2/rules/10-block.yaml" {
		t.Errorf("files %s", got)
	}
	if rs.policy == nil {
		t.Fatal("the bundle's module did not load as a policy")
	}
	without, err := Load(ctx, Sources{Rules: []string{local}})
	if err != nil {
		t.Fatal(err)
	}
	if without.Rev() == rs.Rev() {
		t.Error("the bundle does not change the ruleset's revision")
	}

	for _, tc := range []struct {
		name string
		b    *Bundle
		want string
	}{
		{"duplicate rule name", &Bundle{Revision: "r3", Rules: []SourceFile{{Name: "bundle:r3/rules/a.yaml", Data: []byte("rules:\n  - {name: local, users: [x]}\n")}}},
			`bundle:r3/rules/a.yaml:2: rule "local": duplicate rule name (first defined at ` + local},
		{"bad rule", &Bundle{Revision: "r3", Rules: []SourceFile{{Name: "bundle:r3/rules/a.yaml", Data: []byte("rules:\n  - {name: x, networks: [10/8]}\n")}}},
			"bundle:r3/rules/a.yaml:2"},
		{"bad rego", &Bundle{Revision: "r3", Modules: []SourceFile{{Name: "bundle:r3/policy/p.rego", Data: []byte("package kickagent\n\nkick contains x if {\n")}}},
			"bundle:r3/policy/p.rego:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadKeeping(ctx, Sources{Rules: []string{local}, Bundle: tc.b}, rs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
