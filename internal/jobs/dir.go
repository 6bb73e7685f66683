package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/match"
)

// ErrInvalid marks a job refused because the agent's rule set would not
// load with it; nothing was written.
var ErrInvalid = errors.New("the rule set would not load with it")

// Dir is the running agent's drop-in directory and the rule set its files
// join.
type Dir struct {
	// Path is the drop-in directory (rules_dir, --rules-dir).
	Path string
	// Sources is everything else the agent loads (its rules files and Rego
	// policies); Path is added when it is not among them.
	Sources engine.Sources
}

// sources is what the agent loads, Path included.
func (d Dir) sources() engine.Sources {
	src := d.Sources
	if !slices.ContainsFunc(src.Rules, func(p string) bool { return filepath.Clean(p) == filepath.Clean(d.Path) }) {
		src.Rules = append(slices.Clip(src.Rules), d.Path)
	}
	return src
}

// Load loads the rule set as the agent does, Path included.
func (d Dir) Load(ctx context.Context) (*engine.Ruleset, error) {
	return engine.Load(ctx, d.sources())
}

// Install writes j's file, replacing the same job's previous one, once the
// agent is known to load it (InstallChecked); warnings about other files
// are dropped. It returns the file's path.
func (d Dir) Install(ctx context.Context, j Job, now time.Time) (string, error) {
	path, _, err := d.InstallChecked(ctx, j, now)
	return path, err
}

// InstallChecked writes j's file, replacing the same job's previous one,
// once the agent is known to load it: the rule set is loaded as the
// running agent loads it (engine.LoadKeeping), with the new file staged.
// The job is refused, an ErrInvalid listing the loader's errors, when the
// new file itself has errors (a rule name taken elsewhere) or the main
// rules files or policies do not load (the agent then keeps its whole last
// good rule set, and would not pick the job up). Another drop-in file with
// errors does not refuse it: the agent leaves that file out (or keeps its
// last good version) and loads the job, so its problems are returned as
// warnings. A refused job leaves the directory as it was; the file appears
// in one rename, so neither the agent nor a failure halfway ever sees part
// of it. It returns the file's path.
func (d Dir) InstallChecked(ctx context.Context, j Job, now time.Time) (string, engine.Errors, error) {
	if err := os.MkdirAll(d.Path, 0o750); err != nil {
		return "", nil, fmt.Errorf("jobs: %w", err)
	}
	data, err := render(j, now)
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(d.Path, FileName(j.Kind, j.Target))
	src := d.sources()
	src.Staged = map[string][]byte{path: data}
	rs, err := engine.LoadKeeping(ctx, src, nil)
	if err != nil {
		return "", nil, fmt.Errorf("%w, nothing changed:\n%w", ErrInvalid, err)
	}
	var own, others engine.Errors
	for _, e := range rs.Rejected() {
		if e.File == path {
			own = append(own, e)
		} else {
			others = append(others, e)
		}
	}
	if len(own) > 0 {
		return "", nil, fmt.Errorf("%w, nothing changed:\n%w", ErrInvalid, own)
	}
	return path, others, put(path, data)
}

// List reads the managed files of kind (every kind when empty), in name
// order. A missing directory holds none.
func (d Dir) List(kind Kind) ([]Entry, error) {
	ents, err := os.ReadDir(d.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("jobs: %w", err)
	}
	var out []Entry
	for _, e := range ents {
		k, ok := KindOf(e.Name())
		if !ok || (kind != "" && k != kind) {
			continue
		}
		en, err := readEntry(filepath.Join(d.Path, e.Name()), k)
		if err != nil {
			return nil, err
		}
		out = append(out, en)
	}
	return out, nil
}

// Remove deletes the managed file of kind on target; a missing file is
// os.ErrNotExist.
func (d Dir) Remove(kind Kind, target string) error {
	if err := os.Remove(filepath.Join(d.Path, FileName(kind, target))); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	return nil
}

// Unblock removes the blocks of target and returns the files removed:
// the block written for target as given, and for a network every block of
// the same network in any form ("192.0.2.1", "192.0.2.1/32"; files from
// before networks were named canonically), for a user mask every block of
// the same mask in any ASCII case. None is os.ErrNotExist; a
// network literal the parser refuses, with no file of that name, is an
// ErrUsage.
func (d Dir) Unblock(target string) ([]string, error) {
	var removed []string
	if err := d.Remove(Block, target); err == nil {
		removed = append(removed, filepath.Join(d.Path, FileName(Block, target)))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	n, isNet, cerr := match.ClassifyArg(target)
	if !isNet && cerr == nil {
		// User masks match ASCII case-insensitively (match.FoldASCII), so
		// "alice*" names the same block as "ALICE*".
		more, err := d.unblockMask(target, removed)
		removed = append(removed, more...)
		if err != nil {
			return removed, err
		}
	}
	if isNet {
		entries, err := d.List(Block)
		if err != nil {
			return removed, err
		}
		for _, e := range entries {
			if len(e.Rule.Networks) != 1 {
				continue
			}
			if m, err := match.ParseNetwork(e.Rule.Networks[0]); err == nil && m.String() == n.String() {
				if err := os.Remove(e.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
					return removed, fmt.Errorf("jobs: %w", err)
				}
				removed = append(removed, e.Path)
			}
		}
	}
	switch {
	case len(removed) > 0:
		return removed, nil
	case cerr != nil:
		return nil, usageError{cerr}
	}
	return nil, fmt.Errorf("jobs: no block of %q in %s: %w", target, d.Path, os.ErrNotExist)
}

// unblockMask removes the user-mask blocks whose mask equals mask but for
// ASCII case, other than the files already removed.
func (d Dir) unblockMask(mask string, removed []string) ([]string, error) {
	entries, err := d.List(Block)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		r := e.Rule
		if len(r.Users) != 1 || len(r.Networks) != 0 || slices.Contains(removed, e.Path) ||
			match.FoldASCII(r.Users[0]) != match.FoldASCII(mask) {
			continue
		}
		if err := os.Remove(e.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return out, fmt.Errorf("jobs: %w", err)
		}
		out = append(out, e.Path)
	}
	return out, nil
}
