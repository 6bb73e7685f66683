package engine

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestRuleSpecRoundTrip: a RuleSpec marshalled with its tags (as the job
// commands write it) parses back to the same values, every key included,
// so that the writer and the reader cannot drift apart.
func TestRuleSpecRoundTrip(t *testing.T) {
	in := RuleSpec{Name: "n", Description: "d", Users: []string{"u*"}, Networks: []string{"192.0.2.0/24"},
		Services: []string{"imap"}, DestHosts: []string{"10.0.0.2"}, PassdbField: "user_alt", Values: []string{"v"},
		ExceptUsers: []string{"x"}, ExceptNetworks: []string{"192.0.2.1"}, DryRun: true, Expires: "2030-01-01T00:00:00Z",
		MaxKicks: 3, LoggedInBefore: "2029-01-01T00:00:00Z", Rate: "5/s", Drain: true, AuthCacheFlush: "flushed",
		FailedLogins: 20, Within: "10m", Per: "network", BlockFor: "1h"}
	// Every key is set: a new field left out here fails the test.
	v := reflect.ValueOf(in)
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).IsExported() && v.Field(i).IsZero() {
			t.Fatalf("set %s in this test", v.Type().Field(i).Name)
		}
	}
	data, err := yaml.Marshal(RulesFile{Rules: []RuleSpec{in}})
	if err != nil {
		t.Fatal(err)
	}
	fs, errs := parseRulesFile("x.yaml", data)
	if len(errs) > 0 || len(fs.Rules) != 1 {
		t.Fatalf("parse:\n%s\n%v", data, errs)
	}
	got := *fs.Rules[0]
	got.line, got.lines, got.itemLines = 0, nil, nil
	if !reflect.DeepEqual(got, in) {
		t.Errorf("round trip:\n%+v\nwant\n%+v\n%s", got, in, data)
	}
	if len(ruleKeys) != len(ruleField) || ruleKeys[0] != "name" || ruleKeys[len(ruleKeys)-1] != "block_for" {
		t.Errorf("keys %v", ruleKeys)
	}
}

// TestLoadStaged: staged contents replace a file on disk or join its
// directory in name order, and errors name the staged file's path.
func TestLoadStaged(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "rules: [{name: a, users: [x]}]\n")
	write("c.yaml", "rules: [{name: c, users: [x]}]\n")
	src := Sources{Rules: []string{dir}, Staged: map[string][]byte{
		filepath.Join(dir, "b.yaml"): []byte("rules: [{name: b, users: [x]}]\n"),
		filepath.Join(dir, "c.yaml"): []byte("rules: [{name: c2, users: [x]}]\n"),
	}}
	rs, err := Load(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rs.Files(), " "); got != strings.Join([]string{filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "c.yaml")}, " ") {
		t.Errorf("files %s", got)
	}
	var names []string
	for _, r := range rs.rules {
		names = append(names, r.name)
	}
	if strings.Join(names, " ") != "a b c2" {
		t.Errorf("rules %v", names)
	}
	src.Staged[filepath.Join(dir, "b.yaml")] = []byte("rules: [{name: a, users: [x]}]\n")
	if _, err := Load(context.Background(), src); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "b.yaml")+":1") {
		t.Errorf("duplicate in a staged file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.yaml")); !os.IsNotExist(err) {
		t.Errorf("Load wrote the staged file: %v", err)
	}
}
