package engine

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func loadedNames(rs *Ruleset) []string {
	var out []string
	for _, r := range rs.rules {
		out = append(out, r.name)
	}
	return out
}

// TestLoadKeepingDropIns: a broken drop-in does not fail the agent's load:
// its last good version stays, a new broken one is left out, each named
// with file and line; main files stay strict, and so does Load.
func TestLoadKeepingDropIns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	main, rulesD := filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "rules.d")
	if err := os.Mkdir(rulesD, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, main, "rules: [{name: main, users: [nobody]}]\n")
	a, b := filepath.Join(rulesD, "10-a.yaml"), filepath.Join(rulesD, "20-b.yaml")
	mustWrite(t, a, "rules: [{name: a, users: [alice]}]\n")
	src := Sources{Rules: []string{main, rulesD}}
	good, err := LoadKeeping(ctx, src, nil)
	if err != nil || len(good.Rejected()) > 0 {
		t.Fatalf("good set: %v %v", err, good.Rejected())
	}

	// a edited into a typo; b new and broken; c a new job.
	mustWrite(t, a, "rules:\n  - name: a\n    userz: [alice]\n")
	mustWrite(t, b, "rules: [{name: main, users: [bob]}]\n") // a duplicate name
	mustWrite(t, filepath.Join(rulesD, "30-c.yaml"), "rules: [{name: c, users: [carol]}]\n")
	if _, err := Load(ctx, src); err == nil {
		t.Fatal("Load accepted a broken drop-in")
	}
	rs, err := LoadKeeping(ctx, src, good)
	if err != nil {
		t.Fatalf("LoadKeeping failed for broken drop-ins: %v", err)
	}
	if got := strings.Join(loadedNames(rs), ","); got != "main,a,c" {
		t.Errorf("rules %s, want main,a,c (a at its last good version, b left out, c new)", got)
	}
	if got := rs.Kept(); !slices.Equal(got, []string{a}) {
		t.Errorf("Kept = %v, want [%s]", got, a)
	}
	msg := rs.Rejected().Error()
	for _, want := range []string{a + ":3", `unknown key "userz"`, b + ":1", "duplicate rule name"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Rejected does not say %q:\n%s", want, msg)
		}
	}
	if rs.Rev() == good.Rev() {
		t.Error("the rev is unchanged although the rejected files changed")
	}
	// Without the previous set (at startup) a broken drop-in is left out.
	rs, err = LoadKeeping(ctx, src, nil)
	if err != nil || strings.Join(loadedNames(rs), ",") != "main,c" {
		t.Errorf("at startup: %v, rules %v; want main,c", err, loadedNames(rs))
	}
	// A broken main file fails the load.
	mustWrite(t, main, "rules: [{name: main, userz: [nobody]}]\n")
	if _, err := LoadKeeping(ctx, src, good); err == nil || !strings.Contains(err.Error(), main+":1") {
		t.Errorf("a broken main file: %v, want an error naming %s:1", err, main)
	}
}

// TestLoadSizeLimits: a rules file or a policy over its limit is refused
// with an error naming it, the rules file without being read whole.
func TestLoadSizeLimits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	line := "# " + strings.Repeat("x", 1021) + "\n"
	for range DefaultMaxRulesFileBytes/len(line) + 1 {
		f.WriteString(line)
	}
	f.WriteString("rules: []\n")
	f.Close()
	_, err = Load(ctx, Sources{Rules: []string{big}})
	if err == nil || !strings.Contains(err.Error(), big+": rules file of") || !strings.Contains(err.Error(), "over the limit of 4194304 bytes") {
		t.Errorf("a rules file over 4 MiB: %v", err)
	}
	// A drop-in over the limit is rejected like any broken drop-in.
	rulesD := filepath.Join(dir, "rules.d")
	os.Mkdir(rulesD, 0o755)
	mustWrite(t, filepath.Join(rulesD, "a.yaml"), "rules: [{name: a, users: [alice]}]\n"+strings.Repeat("#\n", 600))
	rs, err := LoadKeeping(ctx, Sources{Rules: []string{rulesD}, MaxRulesFileBytes: 1024}, nil)
	if err != nil || rs.RuleCount() != 0 || !strings.Contains(rs.Rejected().Error(), "over the limit of 1024 bytes") {
		t.Errorf("a drop-in over 1 KiB: %v %v", err, rs.Rejected())
	}

	policy := filepath.Join(dir, "policy")
	os.Mkdir(policy, 0o755)
	mustWrite(t, filepath.Join(policy, "p.rego"), "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"r\", \"reason\": \"y\"} if {\n\tsome s in input.sessions\n\ts.user == \"nobody\"\n}\n"+strings.Repeat("# padding\n", 20))
	_, err = Load(ctx, Sources{Policies: []string{policy}, MaxPolicyBytes: 100})
	if err == nil || !strings.Contains(err.Error(), policy+": policy (.rego files together) of") {
		t.Errorf("a policy over 100 bytes: %v", err)
	}
	if _, err := Load(ctx, Sources{Policies: []string{policy}}); err != nil {
		t.Errorf("the same policy under the default limit: %v", err)
	}
}
