package jobs

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
	n := FileName(Block, "192.0.2.0/24")
	if !strings.HasPrefix(n, "kickagent-block-192.0.2.0_24-") || !strings.HasSuffix(n, ".yaml") {
		t.Errorf("FileName = %q", n)
	}
	if FileName(Block, "Mallor?") == FileName(Block, "mallor?") {
		t.Error("targets that differ only in case share a file")
	}
	if RuleName(Reset, ":alice") != strings.TrimSuffix(FileName(Reset, ":alice"), ".yaml") {
		t.Error("RuleName is not the file name")
	}
	// Long targets: the slug stops at 40 characters, the hash keeps them apart.
	long := strings.Repeat("x", 300)
	a, b := FileName(Block, long), FileName(Block, long+"y")
	if len(a) > 80 || a == b {
		t.Errorf("long targets: %q (%d), %q", a, len(a), b)
	}
	for name, want := range map[string]Kind{
		FileName(Block, "x"): Block, FileName(Reset, "x"): Reset, FileName(Drain, "all"): Drain,
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

func block(t *testing.T, arg string) Job {
	t.Helper()
	j, err := NewBlock(arg, now.Add(time.Hour), "why")
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func drain(t *testing.T, dest, rate string) Job {
	t.Helper()
	j, err := NewDrain(dest, rate)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestInstallListRemove(t *testing.T) {
	d := Dir{Path: filepath.Join(t.TempDir(), "rules.d")}
	ctx := context.Background()
	jobs := []Job{
		block(t, "10.0.0.0/8"),
		NewReset("a-alt", "user_alt", now, 24*time.Hour),
		drain(t, "10.0.0.2", "10/s"),
	}
	for _, j := range jobs {
		path, err := d.Install(ctx, j, now)
		if err != nil || filepath.Base(path) != FileName(j.Kind, j.Target) {
			t.Fatalf("Install %s: %s %v", j.Kind, path, err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v %v", j.Kind, fi.Mode(), err)
		}
	}
	if err := os.WriteFile(filepath.Join(d.Path, "own.yaml"), []byte("rules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	all, err := d.List("")
	if err != nil || len(all) != 3 {
		t.Fatalf("List: %+v %v", all, err)
	}
	byKind := map[Kind]engine.RuleSpec{}
	for _, j := range jobs {
		byKind[j.Kind] = j.Rule
	}
	for _, e := range all {
		if got, want := e.Rule, byKind[e.Kind]; got.Name != want.Name || got.Rate != want.Rate || got.LoggedInBefore != want.LoggedInBefore ||
			got.Drain != want.Drain || got.PassdbField != want.PassdbField || strings.Join(got.Networks, ",") != strings.Join(want.Networks, ",") {
			t.Errorf("%s read back %+v, want %+v", e.Kind, got, want)
		}
	}
	if ds, _ := d.List(Drain); len(ds) != 1 || ds[0].Kind != Drain {
		t.Errorf("List(Drain) = %+v", ds)
	}
	// Every file the jobs write loads as rules.
	if _, err := d.Load(ctx); err != nil {
		t.Fatalf("the job files do not load: %v", err)
	}
	for _, e := range entries(t, d.Path) {
		if strings.HasPrefix(e, ".") {
			t.Errorf("temporary %s left", e)
		}
	}
	if err := d.Remove(Block, "10.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(Block, "10.0.0.0/8"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("second Remove: %v", err)
	}
	if l, _ := (Dir{Path: filepath.Join(d.Path, "missing")}).List(""); l != nil {
		t.Errorf("List of a missing dir: %v", l)
	}
	// A managed name with foreign content is an error, not skipped.
	if err := os.WriteFile(filepath.Join(d.Path, FileName(Block, "bad")), []byte("rules: [{name: a}, {name: b}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.List(Block); err == nil {
		t.Error("List accepted a managed file with two rules")
	}
}

// TestInstallRefused: a job the rule set would not load with is an
// ErrInvalid naming the problem, and the directory stays as it was: no new
// file, the previous file of the same job untouched, no temporary left.
func TestInstallRefused(t *testing.T) {
	cfg := t.TempDir()
	main := filepath.Join(cfg, "rules.yaml")
	j := block(t, "198.51.100.1")
	if err := os.WriteFile(main, []byte("rules:\n  - {name: "+j.Rule.Name+", users: [x]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := Dir{Path: filepath.Join(cfg, "rules.d"), Sources: engine.Sources{Rules: []string{main}}}
	_, err := d.Install(context.Background(), j, now)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "duplicate rule name") || !strings.Contains(err.Error(), FileName(Block, j.Target)) {
		t.Errorf("duplicate name: %v", err)
	}
	if e := entries(t, d.Path); len(e) != 0 {
		t.Errorf("refused job left %v", e)
	}

	j2 := block(t, "198.51.100.2")
	path, err := d.Install(context.Background(), j2, now)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path)
	// A broken main file: the agent keeps its whole last good set and
	// would not pick the job up. (A broken drop-in does not refuse it:
	// TestInstallDespiteBrokenDropIn.)
	if err := os.WriteFile(main, []byte("rules: [{name: b}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	j2.Rule.Expires = RFC3339Up(now.Add(5 * time.Hour))
	if _, err := d.Install(context.Background(), j2, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("install with a broken main file: %v", err)
	}
	if cur, err := os.ReadFile(path); err != nil || string(cur) != string(old) {
		t.Errorf("the job in force changed:\n%s\nwas:\n%s (%v)", cur, old, err)
	}
	for _, e := range entries(t, d.Path) {
		if strings.HasPrefix(e, ".") {
			t.Errorf("temporary file %s left", e)
		}
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
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
		data, err := render(Job{Kind: tc.kind, Target: tc.target, Rule: engine.RuleSpec{Name: "r", Users: []string{"x"}}}, now)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		if !strings.Contains(first, tc.want) || !strings.Contains(first, "2026-11-24T12:00:00Z") {
			t.Errorf("%s %s: header %q, want %q", tc.kind, tc.target, first, tc.want)
		}
	}
	evil := "x\nallow: {users: ['*']}\r\u2028"
	d := Dir{Path: t.TempDir()}
	j := block(t, evil)
	path, err := d.Install(context.Background(), j, now)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := d.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Allow.Users) != 0 || len(rs.Allow.Networks) != 0 {
		t.Errorf("a target's line break added an allow list: %+v", rs.Allow)
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != 7 {
		t.Errorf("%d lines:\n%s", n, data)
	}
}

func TestPutReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.yaml")
	for _, s := range []string{"one\n", "two\n"} {
		if err := put(path, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != s {
			t.Errorf("content %q, want %q", got, s)
		}
	}
	if es := entries(t, dir); len(es) != 1 {
		t.Errorf("entries %v", es)
	}
	if err := put(filepath.Join(dir, "missing", "f.yaml"), nil); err == nil {
		t.Error("put into a missing directory succeeded")
	}
}
