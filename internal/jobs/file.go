package jobs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/kickagent/kickagent/internal/engine"
)

// header marks a file as managed: the agent may delete it once its rule
// has expired or (drain) nothing is left to kick. It is how Dir.End knows
// a job command wrote the file (parseHeader reads it back), so its start,
// up to the target, must not change: every release has written it as is.
// The target is quoted: a newline in it must not end the comment.
const header = "# Managed by kickagent %s (%q) at %s. %s\n"

// render is the content of j's file: the header, then j's rule as the
// engine reads it.
func render(j Job, now time.Time) ([]byte, error) {
	data, err := yaml.Marshal(engine.RulesFile{Rules: []engine.RuleSpec{j.Rule}})
	if err != nil {
		return nil, fmt.Errorf("jobs: %s %s: %w", j.Kind, j.Target, err)
	}
	return append([]byte(fmt.Sprintf(header, j.Kind, j.Target, now.UTC().Format(time.RFC3339), oneLine(undo(j.Kind, j.Target)))), data...), nil
}

// undo tells how a job is taken back.
func undo(kind Kind, target string) string {
	switch kind {
	case Block:
		return "Remove with: kickagent unblock " + target
	case Drain:
		if target == DrainAll {
			return "Cancel with: kickagent drain --all --cancel"
		}
		return "Cancel with: kickagent drain --dest " + target + " --cancel"
	}
	return "It ends by itself when it expires; delete this file to cancel it."
}

// oneLine replaces what YAML would read as a line break.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return '?'
		}
		return r
	}, s)
}

// put writes data to path atomically: a hidden temporary file in the same
// directory (which the rules loader skips), renamed into place, so the
// agent never reads a half-written file.
func put(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kickagent-*.tmp")
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("jobs: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return fmt.Errorf("jobs: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("jobs: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	return nil
}

// Entry is one managed file.
type Entry struct {
	Path string
	Kind Kind
	Rule engine.RuleSpec
}

// Active reports whether the entry's rule is in force at now (not past
// its expiry; a rule without one never expires).
func (e Entry) Active(now time.Time) bool {
	exp, err := time.Parse(time.RFC3339, e.Rule.Expires)
	return err != nil || now.Before(exp)
}

// readEntry reads a managed file; anything but one rule is an error, not
// skipped, since the name claims it is a job.
func readEntry(path string, kind Kind) (Entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Entry{}, fmt.Errorf("jobs: %w", err)
	}
	r, err := decodeOne(data)
	if err != nil {
		return Entry{}, fmt.Errorf("jobs: %s: not a kickagent %s file: %w", path, kind, err)
	}
	return Entry{Path: path, Kind: kind, Rule: r}, nil
}

// decodeOne decodes a job file's content: one YAML document holding
// exactly one rule and no unknown key.
func decodeOne(data []byte) (engine.RuleSpec, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f engine.RulesFile
	if err := dec.Decode(&f); err != nil {
		return engine.RuleSpec{}, err
	}
	if len(f.Rules) != 1 {
		return engine.RuleSpec{}, fmt.Errorf("%d rules, not one", len(f.Rules))
	}
	if dec.Decode(new(any)) != io.EOF {
		return engine.RuleSpec{}, errors.New("more than one YAML document")
	}
	return f.Rules[0], nil
}
