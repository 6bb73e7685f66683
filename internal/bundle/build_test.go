package bundle

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTripExactBytes(t *testing.T) {
	good, _ := testKeys(t)
	raw := mustBundle(t, mustSrcDir(t, ""), "r1", good.priv)
	b, err := Read(bytes.NewReader(raw), verifyWith(good))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Extract(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Revision != "r1" {
		t.Errorf("revision %q, want r1", c.Revision)
	}
	want := []File{
		{Name: "bundle:r1/rules/00-main.yaml", Data: []byte(rulesMain)},
		{Name: "bundle:r1/rules/10-block.yaml", Data: []byte(rulesDrop)},
	}
	if len(c.Rules) != len(want) {
		t.Fatalf("rules %d files, want %d", len(c.Rules), len(want))
	}
	for i, w := range want {
		if c.Rules[i].Name != w.Name || !bytes.Equal(c.Rules[i].Data, w.Data) {
			t.Errorf("rules[%d] = %s %q, want %s %q", i, c.Rules[i].Name, c.Rules[i].Data, w.Name, w.Data)
		}
	}
	if got := c.Modules["bundle:r1/policy/kickagent.rego"]; string(got) != policyRego || len(c.Modules) != 1 {
		t.Errorf("modules %v, want policy/kickagent.rego exactly", c.Modules)
	}
}

func TestReadRefuses(t *testing.T) {
	good, evil := testKeys(t)
	src := mustSrcDir(t, "")
	tests := []struct {
		name    string
		raw     []byte
		v       Verification
		wantErr string
	}{
		{"wrong key", mustBundle(t, src, "r1", evil.priv), verifyWith(good), "failed to verify JWT signature"},
		{"unsigned, keys configured", mustBundle(t, src, "r1", nil), verifyWith(good), "bundle missing .signatures.json file"},
		{"unknown key id", mustBundle(t, src, "r1", good.priv), Verification{Keys: []Key{{ID: "other", PEM: good.pub}}}, "verification key corresponding to ID ka not found"},
		{"signed, unsigned allowed", mustBundle(t, src, "r1", good.priv), Verification{AllowUnsigned: true}, "verification key not provided"},
		{"no keys", mustBundle(t, src, "r1", good.priv), Verification{}, "no verification keys"},
		{"garbage", []byte("not a tarball"), verifyWith(good), "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.raw), tt.v)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestUnsignedAllowedOnlyOnRequest(t *testing.T) {
	raw := mustBundle(t, mustSrcDir(t, ""), "r1", nil)
	if _, err := Read(bytes.NewReader(raw), Verification{AllowUnsigned: true}); err != nil {
		t.Fatal(err)
	}
}

func TestBuildRefuses(t *testing.T) {
	tests := []struct {
		name, file, data, wantErr string
	}{
		{"stray file", "README.md", "x", "README.md: unexpected file"},
		{"rules elsewhere", "policy/rules.yaml", "rules: []", "policy/rules.yaml: unexpected file"},
		{"nested dir", "rules/sub/x.yaml", "rules: []", "rules/sub: unexpected directory"},
		{"bad rego", "policy/bad.rego", "package kickagent\n\ndecisions contains", "policy/bad.rego"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := mustSrcDir(t, "")
			p := filepath.Join(src, tt.file)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Build(src, "r1")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBuildSkipsHidden(t *testing.T) {
	src := mustSrcDir(t, "")
	if err := os.WriteFile(filepath.Join(src, "rules", ".10-block.yaml.swp"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(src, "r1"); err != nil {
		t.Fatal(err)
	}
}

func TestExtractRefusesForeignData(t *testing.T) {
	for name, data := range map[string]map[string]any{
		"other root":     {"other": map[string]any{}},
		"other key":      {Root: map[string]any{"blocks": []any{}}},
		"structured doc": {Root: map[string]any{"rules": map[string]any{"x.yaml": map[string]any{"rules": []any{}}}}},
		"not yaml name":  {Root: map[string]any{"rules": map[string]any{"x.txt": "rules: []"}}},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Build(mustSrcDir(t, ""), "r1")
			if err != nil {
				t.Fatal(err)
			}
			b.Data = data
			if _, err := Extract(b); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestScope(t *testing.T) {
	good, _ := testKeys(t)
	b, err := Build(mustSrcDir(t, ""), "r1")
	if err != nil {
		t.Fatal(err)
	}
	write := func(scope string) []byte {
		var buf bytes.Buffer
		if err := Write(&buf, b, Signing{KeyPEM: good.priv, KeyID: "ka", Scope: scope}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	v := verifyWith(good)
	v.Scope = "mail-eu"
	if _, err := Read(bytes.NewReader(write("mail-eu")), v); err != nil {
		t.Errorf("signed for the agents' scope: %v", err)
	}
	for _, scope := range []string{"", "mail-us"} {
		if _, err := Read(bytes.NewReader(write(scope)), v); err == nil || !strings.Contains(err.Error(), "scope mismatch") {
			t.Errorf("signed for scope %q: err %v, want scope mismatch", scope, err)
		}
	}
}
