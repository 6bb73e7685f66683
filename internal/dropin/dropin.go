// Package dropin manages the rule files that kickagent's job commands
// (block, reset, drain) write into the agent's drop-in directory. The
// running agent picks them up by hot reload; nothing talks to the agent
// directly. Files are written atomically (a hidden temporary file renamed
// into place, which the rules loader never reads half-written).
package dropin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Kind is the job a managed file belongs to.
type Kind string

// Job kinds; the file name starts with "kickagent-<kind>-".
const (
	Block Kind = "block"
	Reset Kind = "reset"
	Drain Kind = "drain"
)

// Rule is the YAML rule a job writes; field names are the rules file keys.
type Rule struct {
	Name           string   `yaml:"name"`
	Description    string   `yaml:"description,omitempty"`
	Users          []string `yaml:"users,omitempty"`
	Networks       []string `yaml:"networks,omitempty"`
	DestHosts      []string `yaml:"dest_hosts,omitempty"`
	Services       []string `yaml:"services,omitempty"`
	PassdbField    string   `yaml:"passdb_field,omitempty"`
	Values         []string `yaml:"values,omitempty"`
	LoggedInBefore string   `yaml:"logged_in_before,omitempty"`
	Expires        string   `yaml:"expires,omitempty"`
	Rate           string   `yaml:"rate,omitempty"`
	Drain          bool     `yaml:"drain,omitempty"`
}

type file struct {
	Rules []Rule `yaml:"rules"`
}

// header marks a file as managed: the agent may delete it once its rules
// have expired or (drain) nothing is left to kick. The target is quoted: a
// newline in it must not end the comment.
const header = "# Managed by kickagent %s (%q) at %s. %s\n"

// undo tells how a job is taken back.
func undo(kind Kind, target string) string {
	switch kind {
	case Block:
		return "Remove with: kickagent unblock " + target
	case Drain:
		if target == "all" {
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

// Name returns the file name for a job on target.
func Name(kind Kind, target string) string {
	sum := sha256.Sum256([]byte(target))
	return fmt.Sprintf("kickagent-%s-%s-%s.yaml", kind, slug(target), hex.EncodeToString(sum[:4]))
}

// RuleName is the rule's name: stable per kind and target, so that a job
// is replaced, not duplicated, when it is run again.
func RuleName(kind Kind, target string) string {
	return strings.TrimSuffix(Name(kind, target), ".yaml")
}

func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if b.Len() >= 40 {
			break // the hash suffix keeps long targets apart
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Write stores r as the managed file for kind/target in dir, atomically,
// and returns its path.
func Write(dir string, kind Kind, target string, r Rule, now time.Time) (string, error) {
	data, err := yaml.Marshal(file{Rules: []Rule{r}})
	if err != nil {
		return "", err
	}
	content := fmt.Sprintf(header, kind, target, now.UTC().Format(time.RFC3339), oneLine(undo(kind, target))) + string(data)
	path := filepath.Join(dir, Name(kind, target))
	return path, Put(path, []byte(content))
}

// Put writes data to path atomically: a hidden temporary file in the same
// directory (which the rules loader skips), renamed into place.
func Put(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kickagent-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Remove deletes the managed file for kind/target; a missing file is
// os.ErrNotExist.
func Remove(dir string, kind Kind, target string) error {
	return os.Remove(filepath.Join(dir, Name(kind, target)))
}

// Entry is one managed file.
type Entry struct {
	Path string
	Kind Kind
	Rule Rule
}

// List reads the managed files of kind in dir (all kinds when empty).
func List(dir string, kind Kind) ([]Entry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []Entry
	for _, e := range ents {
		k, ok := KindOf(e.Name())
		if !ok || (kind != "" && k != kind) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var f file
		if err := yaml.Unmarshal(data, &f); err != nil || len(f.Rules) != 1 {
			return nil, fmt.Errorf("%s: not a kickagent %s file", path, k)
		}
		out = append(out, Entry{Path: path, Kind: k, Rule: f.Rules[0]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// KindOf tells whether a file name is a managed drop-in, and its kind.
func KindOf(name string) (Kind, bool) {
	for _, k := range []Kind{Block, Reset, Drain} {
		if strings.HasPrefix(name, "kickagent-"+string(k)+"-") && strings.HasSuffix(name, ".yaml") {
			return k, true
		}
	}
	return "", false
}
