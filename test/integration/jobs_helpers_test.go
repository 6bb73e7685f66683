package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// The job tests use client addresses 127.0.0.21-127.0.0.60 only.

// job runs a job command (block, unblock, blocks, reset, drain) the way an
// operator does, against the agent's drop-in directory, and waits until
// the agent has reloaded when the command changed the directory.
func (a *agentProc) job(t *testing.T, ctx context.Context, args ...string) (string, string, int) {
	t.Helper()
	before := a.count("rules reloaded")
	files := a.managedFiles(t)
	out, errOut, code := kickagent(t, ctx, append(args, "--rules-dir", a.rulesD)...)
	if after := a.managedFiles(t); code == 0 && after != files {
		a.waitLog(t, "rules reloaded", before+1, 5*time.Second)
	}
	return out, errOut, code
}

// mustJob is job that must exit 0.
func (a *agentProc) mustJob(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, errOut, code := a.job(t, ctx, args...)
	if code != 0 {
		t.Fatalf("%s: kickagent %s: exit %d\nstdout: %s\nstderr: %s", a.inst.Name, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// managedFiles lists rules.d's kickagent-* files with their sizes and
// modification times, to tell whether a command changed the directory.
func (a *agentProc) managedFiles(t *testing.T) string {
	t.Helper()
	ents, err := os.ReadDir(a.rulesD)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "kickagent-") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		b.WriteString(e.Name() + " " + fi.ModTime().String() + "\n")
	}
	return b.String()
}

// jobFile returns the file a job command reported writing ("KIND: PATH (…)").
func (a *agentProc) jobFile(t *testing.T, out string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, ": ")
	path, _, _ := strings.Cut(rest, " ")
	if !ok || filepath.Dir(path) != a.rulesD || !strings.HasPrefix(filepath.Base(path), "kickagent-") {
		t.Fatalf("%s: no file in rules.d in the job's output %q", a.inst.Name, out)
	}
	return path
}

// waitRemoved waits until the agent deleted path.
func (a *agentProc) waitRemoved(t *testing.T, path string, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a.alive(t)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the agent did not remove %s within %v:\n%s", a.inst.Name, filepath.Base(path), within, a.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stayOpen proves the connections survive several agent cycles.
func stayOpen(t *testing.T, ctx context.Context, cycles int, cs ...*testrig.Conn) {
	t.Helper()
	time.Sleep(time.Duration(cycles)*agentInterval + agentInterval/2)
	assertOpen(t, ctx, cs...)
}

// lineWith returns the first line of out containing every part ("" if none).
func lineWith(out string, parts ...string) string {
	for _, l := range strings.Split(out, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}
