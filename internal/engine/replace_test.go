package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// guarded is a main rules file with an allow list and a rule, as the
// running set before each case of TestReplaces.
const guarded = `allow:
  users: [monitoring, alice]
  networks: [192.0.2.0/24]
rules:
  - name: everyone
    users: ["*"]
`

// TestReplaces: a main rules file that had rules or an allow list may only
// become empty on purpose (rules: []); truncation, a prefix cut before the
// first entry, and a directory in its place are refused.
func TestReplaces(t *testing.T) {
	for _, tc := range []struct {
		name, next string
		dir        bool   // replace the file by an empty directory
		want       string // error text; "" accepted
	}{
		{name: "truncated", next: "", want: "is empty (truncated or half-written?) but had 4 rules and allow entries"},
		{name: "whitespace", next: "\n  \n", want: "is empty"},
		{name: "comments", next: "# being rewritten\n", want: "is empty"},
		{name: "prefix-rules-key", next: "rules:\n", want: "want a list of rules"}, // already invalid
		{name: "null", next: "~\n", want: "is empty"},
		{name: "empty-mapping", next: "{}\n", want: "is empty"},
		{name: "allow-without-entries", next: "allow: {users: []}\n", want: "empty list"}, // already invalid
		{name: "explicit-empty", next: "rules: []\n"},
		{name: "explicit-empty-commented", next: "# all rules lifted, ticket 123\nrules: []\n"},
		{name: "fewer-rules", next: "rules:\n  - {name: one, users: [bob]}\n"},
		{name: "directory", dir: true, want: "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "rules.yaml")
			if err := os.WriteFile(p, []byte(guarded), 0o644); err != nil {
				t.Fatal(err)
			}
			prev, err := Load(context.Background(), Sources{Rules: []string{p}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.dir {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(p, []byte(tc.next), 0o644); err != nil {
				t.Fatal(err)
			}
			next, err := Load(context.Background(), Sources{Rules: []string{p}})
			if err == nil {
				err = Replaces(prev, next)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v; want one containing %q", err, tc.want)
			}
			var es Errors
			if err != nil && (!errors.As(err, &es) || es[0].File != p) {
				t.Errorf("error %v does not name the file %s", err, p)
			}
		})
	}
}

// TestReplacesDropInsAndFirstLoad: a drop-in may become empty (removing a
// block empties its file); an empty main file after an empty one is no
// loss; the first load has nothing to protect.
func TestReplacesDropInsAndFirstLoad(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "rules.yaml")
	rulesD := filepath.Join(dir, "rules.d")
	drop := filepath.Join(rulesD, "50-block.yaml")
	if err := os.Mkdir(rulesD, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load := func() *Ruleset {
		t.Helper()
		rs, err := Load(context.Background(), Sources{Rules: []string{main, rulesD}})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	write(main, "")
	write(drop, "rules: [{name: block, users: [mallory]}]\n")
	first := load()
	if err := Replaces(nil, first); err != nil {
		t.Fatalf("first load: %v", err)
	}
	write(drop, "")
	second := load()
	if err := Replaces(first, second); err != nil {
		t.Fatalf("emptied drop-in refused: %v", err)
	}
	write(main, "# still nothing\n")
	if err := Replaces(second, load()); err != nil {
		t.Fatalf("empty main file after an empty one refused: %v", err)
	}
}

// TestLoadDirectoryAtRulesFilePath: a directory where a rules file is named
// is an error, not an empty set; a directory path not named like a file
// stays a drop-in directory.
func TestLoadDirectoryAtRulesFilePath(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"rules.yaml", "rules.yml"} {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		_, err := Load(context.Background(), Sources{Rules: []string{p}})
		if err == nil || !strings.Contains(err.Error(), p+": is a directory") {
			t.Errorf("%s: Load error %v; want %q", name, err, "is a directory")
		}
	}
	d := filepath.Join(dir, "rules.d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(context.Background(), Sources{Rules: []string{d}}); err != nil {
		t.Errorf("empty drop-in directory: %v", err)
	}
}

// TestAllowRemoved names the allow entries a new set drops.
func TestAllowRemoved(t *testing.T) {
	prev := MustLoadYAML(t, "allow: {users: [monitoring, alice, \"admin-*\"], networks: [192.0.2.0/24, \"2001:db8::/32\"]}\n")
	next := MustLoadYAML(t, "allow: {users: [monitoring, \"admin-*\", bob], networks: [\"2001:db8::/32\"]}\n")
	users, nets := AllowRemoved(prev, next)
	if !slices.Equal(users, []string{"alice"}) || !slices.Equal(nets, []string{"192.0.2.0/24"}) {
		t.Errorf("removed users %q networks %q; want [alice] [192.0.2.0/24]", users, nets)
	}
	if u, n := AllowRemoved(next, next); u != nil || n != nil {
		t.Errorf("same set: removed %q %q", u, n)
	}
}
