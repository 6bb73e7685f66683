package dropin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/engine"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func TestNames(t *testing.T) {
	n := Name(Block, "192.0.2.0/24")
	if !strings.HasPrefix(n, "kickagent-block-192.0.2.0_24-") || !strings.HasSuffix(n, ".yaml") {
		t.Errorf("Name = %q", n)
	}
	if Name(Block, "Mallor?") == Name(Block, "mallor?") {
		t.Error("targets that differ only in case share a file")
	}
	if RuleName(Reset, ":alice") != strings.TrimSuffix(Name(Reset, ":alice"), ".yaml") {
		t.Error("RuleName is not the file name")
	}
	// Long targets: the slug stops at 40 characters, the hash keeps them apart.
	long := strings.Repeat("x", 300)
	a, b := Name(Block, long), Name(Block, long+"y")
	if len(a) > 80 || a == b {
		t.Errorf("long targets: %q (%d), %q", a, len(a), b)
	}
	for name, want := range map[string]Kind{
		Name(Block, "x"): Block, Name(Reset, "x"): Reset, Name(Drain, "all"): Drain,
	} {
		if k, ok := KindOf(name); !ok || k != want {
			t.Errorf("KindOf(%q) = %q %v", name, k, ok)
		}
	}
	for _, name := range []string{"rules.yaml", "kickagent-block-x.yml", "kickagent-other-x.yaml", ".kickagent-block-x.yaml~", "kickagent-block-x.txt"} {
		if _, ok := KindOf(name); ok {
			t.Errorf("KindOf(%q): managed", name)
		}
	}
}

func TestWriteListRemove(t *testing.T) {
	dir := t.TempDir()
	rules := map[Kind]Rule{
		Block: {Name: RuleName(Block, "10.0.0.0/8"), Networks: []string{"10.0.0.0/8"}, Expires: "2026-11-25T12:00:00Z", Description: "why"},
		Reset: {Name: RuleName(Reset, "user_alt:a-alt"), PassdbField: "user_alt", Values: []string{"a-alt"}, LoggedInBefore: "2026-11-24T12:00:00Z", Expires: "2026-11-25T12:00:00Z"},
		Drain: {Name: RuleName(Drain, "10.0.0.2"), DestHosts: []string{"10.0.0.2"}, Rate: "10/s", Drain: true},
	}
	targets := map[Kind]string{Block: "10.0.0.0/8", Reset: "user_alt:a-alt", Drain: "10.0.0.2"}
	for k, r := range rules {
		path, err := Write(dir, k, targets[k], r, now)
		if err != nil || filepath.Base(path) != Name(k, targets[k]) {
			t.Fatalf("Write %s: %s %v", k, path, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v %v", k, fi.Mode(), err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "own.yaml"), []byte("rules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	all, err := List(dir, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("List: %+v %v", all, err)
	}
	for _, e := range all {
		if got, want := e.Rule, rules[e.Kind]; got.Name != want.Name || got.Rate != want.Rate || got.LoggedInBefore != want.LoggedInBefore ||
			got.Drain != want.Drain || got.PassdbField != want.PassdbField {
			t.Errorf("%s read back %+v, want %+v", e.Kind, got, want)
		}
	}
	if ds, _ := List(dir, Drain); len(ds) != 1 || ds[0].Kind != Drain {
		t.Errorf("List(Drain) = %+v", ds)
	}
	// Every file the jobs write loads as rules.
	if _, err := engine.Load(context.Background(), engine.Sources{Rules: []string{dir}}); err != nil {
		t.Fatalf("the job files do not load: %v", err)
	}
	for _, e := range mustEntries(t, dir) {
		if strings.HasPrefix(filepath.Base(e), ".") {
			t.Errorf("temporary %s left", e)
		}
	}
	if err := Remove(dir, Block, "10.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir, Block, "10.0.0.0/8"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("second Remove: %v", err)
	}
	if l, _ := List(filepath.Join(dir, "missing"), ""); l != nil {
		t.Errorf("List of a missing dir: %v", l)
	}
	// A managed name with foreign content is an error, not skipped.
	if err := os.WriteFile(filepath.Join(dir, Name(Block, "bad")), []byte("rules: [{name: a}, {name: b}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := List(dir, Block); err == nil {
		t.Error("List accepted a managed file with two rules")
	}
}

func mustEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestHeader: the comment names the command that undoes the job, and a
// target with a line break cannot add YAML to the file.
func TestHeader(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		kind   Kind
		target string
		want   string
	}{
		{Block, "192.0.2.1", "Remove with: kickagent unblock 192.0.2.1"},
		{Drain, "all", "kickagent drain --all --cancel"},
		{Drain, "10.0.0.2", "kickagent drain --dest 10.0.0.2 --cancel"},
		{Reset, ":alice", "delete this file"},
	} {
		path, err := Write(dir, tc.kind, tc.target, Rule{Name: "r", Users: []string{"x"}}, now)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		first, _, _ := strings.Cut(string(data), "\n")
		if !strings.Contains(first, tc.want) || !strings.Contains(first, "2026-11-24T12:00:00Z") {
			t.Errorf("%s %s: header %q, want %q", tc.kind, tc.target, first, tc.want)
		}
		os.Remove(path)
	}
	evil := "x\nallow: {users: ['*']}\r\u2028"
	path, err := Write(dir, Block, evil, Rule{Name: RuleName(Block, evil), Users: []string{"mallory"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := engine.Load(context.Background(), engine.Sources{Rules: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Allow.Users) != 0 || len(rs.Allow.Networks) != 0 {
		t.Errorf("a target's line break added an allow list: %+v", rs.Allow)
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != 5 {
		t.Errorf("%d lines:\n%s", n, data)
	}
}

func TestPutReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.yaml")
	for _, s := range []string{"one\n", "two\n"} {
		if err := Put(path, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != s {
			t.Errorf("content %q, want %q", got, s)
		}
	}
	if es := mustEntries(t, dir); len(es) != 1 {
		t.Errorf("entries %v", es)
	}
	if err := Put(filepath.Join(dir, "missing", "f.yaml"), nil); err == nil {
		t.Error("Put into a missing directory succeeded")
	}
}
