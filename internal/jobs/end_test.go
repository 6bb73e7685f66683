package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/engine"
)

// endRig is a main rules file next to a drop-in directory, loaded as the
// agent loads them.
type endRig struct {
	d    Dir
	main string
}

func newEndRig(t *testing.T, main string) *endRig {
	t.Helper()
	cfg := t.TempDir()
	r := &endRig{d: Dir{Path: filepath.Join(cfg, "rules.d")}, main: filepath.Join(cfg, "rules.yaml")}
	if err := os.Mkdir(r.d.Path, 0o750); err != nil {
		t.Fatal(err)
	}
	if main == "" {
		main = "rules:\n  - {name: main, users: [nobody]}\n"
	}
	r.write(t, r.main, main)
	r.d.Sources.Rules = []string{r.main}
	return r
}

func (r *endRig) write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

// install writes j as the job command does.
func (r *endRig) install(t *testing.T, j Job) string {
	t.Helper()
	path, err := r.d.Install(context.Background(), j, now)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// end loads the rule set, evaluates snap (nil: no session) and runs End,
// all at at.
func (r *endRig) end(t *testing.T, snap *anvil.Snapshot, at time.Time) []DrainLeft {
	t.Helper()
	rs, err := r.d.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap == nil {
		snap = &anvil.Snapshot{Protocol: anvil.Proto24}
	}
	decisions, err := rs.Evaluate(context.Background(), engine.Input{Snapshot: snap, Now: at})
	if err != nil {
		t.Fatal(err)
	}
	return r.d.End(rs, decisions, at, slog.New(slog.DiscardHandler))
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// jobContent is what the job command writes for j at now.
func jobContent(t *testing.T, j Job) string {
	t.Helper()
	data, err := render(j, now)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestEndDeletesFinishedJobs: a block, a reset and a drain written by the
// job commands are deleted once they have ended, and not before.
func TestEndDeletesFinishedJobs(t *testing.T) {
	r := newEndRig(t, "")
	b, err := NewBlock("192.0.2.1", now.Add(time.Minute), "")
	if err != nil {
		t.Fatal(err)
	}
	bPath := r.install(t, b)
	rPath := r.install(t, NewReset("alice", "", now, time.Minute))
	dPath := r.install(t, drain(t, "10.9.9.9", "10/s"))
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: []anvil.Session{{User: "bob", Service: "imap", PID: 7,
		IP: netip.MustParseAddr("192.0.2.9"), DestIP: netip.MustParseAddr("10.9.9.9"), Connections: 1}}}

	left := r.end(t, snap, now.Add(30*time.Second))
	if len(left) != 1 || left[0].Left != 1 {
		t.Fatalf("drains left %+v, want one with 1", left)
	}
	for _, p := range []string{bPath, rPath, dPath} {
		if !exists(t, p) {
			t.Fatalf("%s deleted before its job ended", filepath.Base(p))
		}
	}
	r.end(t, nil, now.Add(2*time.Minute))
	for _, p := range []string{bPath, rPath, dPath} {
		if exists(t, p) {
			t.Errorf("%s kept after its job ended", filepath.Base(p))
		}
	}
	if _, err := r.d.Load(context.Background()); err != nil {
		t.Errorf("the rule set does not load after End: %v", err)
	}
	if !exists(t, r.main) {
		t.Error("the main rules file was deleted")
	}
}

// TestEndKeepsOtherFiles: only job files are ever deleted. A file with an
// expired rule that a job command did not write, or that is one of the
// agent's rules files, is kept, and the rule set still loads.
func TestEndKeepsOtherFiles(t *testing.T) {
	exp := now.Add(-time.Minute).Format(time.RFC3339)
	later := now.Add(time.Hour).Format(time.RFC3339)
	expired, err := NewBlock("192.0.2.1", now.Add(-time.Minute), "")
	if err != nil {
		t.Fatal(err)
	}
	one := jobContent(t, expired)
	for _, tc := range []struct {
		name string
		// file is written in the drop-in directory under name, unless
		// main is set; then it is the main rules file.
		file, content string
		main          bool
	}{
		{name: "hand-written, one expired and one active rule", file: "custom.yaml",
			content: fmt.Sprintf("rules:\n  - {name: old, users: [a], expires: %q}\n  - {name: new, users: [b], expires: %q}\n", exp, later)},
		{name: "hand-written named as a job, one expired and one active rule", file: FileName(Block, "192.0.2.1"),
			content: fmt.Sprintf("rules:\n  - {name: old, users: [a], expires: %q}\n  - {name: new, users: [b], expires: %q}\n", exp, later)},
		{name: "named as a job, its rule, no header", file: FileName(Block, "192.0.2.1"),
			content: fmt.Sprintf("rules:\n  - {name: %s, networks: [192.0.2.1/32], expires: %q}\n", RuleName(Block, "192.0.2.1/32"), exp)},
		{name: "named as a job, header, two rules", file: FileName(Block, "192.0.2.1/32"),
			content: one + fmt.Sprintf("    - {name: other, users: [a], expires: %q}\n", exp)},
		{name: "named as a job, header, an allow list too", file: FileName(Block, "192.0.2.1/32"),
			content: one + "allow:\n  users: [postmaster]\n"},
		{name: "header of another target", file: FileName(Block, "192.0.2.2/32"), content: one},
		{name: "header of another kind", file: FileName(Reset, "192.0.2.1/32"), content: one},
		{name: "a job's file under another name", file: "blocks.yaml", content: one},
		{name: "main rules file, an expired rule", main: true,
			content: fmt.Sprintf("rules:\n  - {name: old, users: [a], expires: %q}\n", exp)},
		{name: "main rules file: a job's file", main: true, file: FileName(Block, "192.0.2.1/32"), content: one},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newEndRig(t, "")
			path := filepath.Join(r.d.Path, tc.file)
			if tc.main {
				if tc.file != "" {
					// A main file named as a job, outside the drop-in directory.
					r.main = filepath.Join(filepath.Dir(r.main), tc.file)
					r.d.Sources.Rules = []string{r.main}
				}
				path = r.main
			}
			r.write(t, path, tc.content)
			r.end(t, nil, now)
			if !exists(t, path) {
				t.Fatalf("%s deleted", path)
			}
			if _, err := r.d.Load(context.Background()); err != nil {
				t.Errorf("the rule set does not load after End: %v", err)
			}
		})
	}
}

// TestEndKeepsReplacedJob: a block that is run again after the agent
// loaded its expired rule is not deleted: the file now holds the new one.
func TestEndKeepsReplacedJob(t *testing.T) {
	r := newEndRig(t, "")
	old, err := NewBlock("192.0.2.1", now.Add(-time.Minute), "")
	if err != nil {
		t.Fatal(err)
	}
	path := r.install(t, old)
	rs, err := r.d.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := NewBlock("192.0.2.1", now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	r.install(t, renewed)
	r.d.End(rs, nil, now, slog.New(slog.DiscardHandler))
	if !exists(t, path) {
		t.Fatal("the renewed block was deleted on its expired predecessor's rule")
	}
}

// TestEndKeepsNamedRulesFile: a job's file in the drop-in directory that
// is also given as a rules file (--rules) is the operator's now: deleting
// it would make the next start fail on the missing file.
func TestEndKeepsNamedRulesFile(t *testing.T) {
	r := newEndRig(t, "")
	b, err := NewBlock("192.0.2.1", now.Add(-time.Minute), "")
	if err != nil {
		t.Fatal(err)
	}
	path := r.install(t, b)
	r.d.Sources.Rules = append(r.d.Sources.Rules, path)
	// Loaded through its own name only (with the directory it would be a
	// duplicate rule).
	rs, err := engine.Load(context.Background(), r.d.Sources)
	if err != nil {
		t.Fatal(err)
	}
	r.d.End(rs, nil, now, slog.New(slog.DiscardHandler))
	if !exists(t, path) {
		t.Fatal("a file given as a rules file was deleted")
	}
}

// TestEndWithoutDir: an agent with no drop-in directory deletes nothing.
func TestEndWithoutDir(t *testing.T) {
	r := newEndRig(t, "")
	b, err := NewBlock("192.0.2.1", now.Add(-time.Minute), "")
	if err != nil {
		t.Fatal(err)
	}
	path := r.install(t, b)
	rs, err := r.d.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	Dir{}.End(rs, nil, now, slog.New(slog.DiscardHandler))
	if !exists(t, path) {
		t.Fatal("deleted with no drop-in directory")
	}
}
