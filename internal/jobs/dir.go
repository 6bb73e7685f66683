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
// agent's whole rule set is known to load with it. A refused job is an
// ErrInvalid listing the loader's errors, and leaves the directory as it
// was; the file appears in one rename, so neither the agent nor a failure
// halfway ever sees part of it. It returns the file's path.
func (d Dir) Install(ctx context.Context, j Job, now time.Time) (string, error) {
	if err := os.MkdirAll(d.Path, 0o750); err != nil {
		return "", fmt.Errorf("jobs: %w", err)
	}
	data, err := render(j, now)
	if err != nil {
		return "", err
	}
	path := filepath.Join(d.Path, FileName(j.Kind, j.Target))
	src := d.sources()
	src.Staged = map[string][]byte{path: data}
	if _, err := engine.Load(ctx, src); err != nil {
		return "", fmt.Errorf("%w, nothing changed:\n%w", ErrInvalid, err)
	}
	return path, put(path, data)
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
// before networks were named canonically). None is os.ErrNotExist; a
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
