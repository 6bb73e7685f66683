package engine

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kickagent/kickagent/internal/match"
)

// RuleSpec is one rule as written in YAML: the one schema of a rule, read
// by the engine (parseRuleNode) and written by the job commands
// (internal/jobs), which marshal it with these tags.
//
// Adding a rule key: add a field here, with its key as the yaml tag
// (omitempty), in the order the key should be listed in error messages;
// the parser reads it by its type (string, bool, int or []string) and the
// list of known keys comes from the tags. Then check and compile it in
// compileRule (rules.go) and document it in CONFIGURATION.md. Nothing else
// reads the file format.
type RuleSpec struct {
	Name           string   `yaml:"name"`
	Description    string   `yaml:"description,omitempty"`
	Users          []string `yaml:"users,omitempty"`
	Networks       []string `yaml:"networks,omitempty"`
	Services       []string `yaml:"services,omitempty"`
	DestHosts      []string `yaml:"dest_hosts,omitempty"`
	PassdbField    string   `yaml:"passdb_field,omitempty"`
	Values         []string `yaml:"values,omitempty"`
	ExceptUsers    []string `yaml:"except_users,omitempty"`
	ExceptNetworks []string `yaml:"except_networks,omitempty"`
	DryRun         bool     `yaml:"dry_run,omitempty"`
	Expires        string   `yaml:"expires,omitempty"`
	MaxKicks       int      `yaml:"max_kicks_per_cycle,omitempty"`
	LoggedInBefore string   `yaml:"logged_in_before,omitempty"`
	Rate           string   `yaml:"rate,omitempty"`
	Drain          bool     `yaml:"drain,omitempty"`
	// AuthCacheFlush records what reset did with Dovecot's auth cache
	// (flushed, failed, skipped): reset rules only, for the metrics.
	AuthCacheFlush string `yaml:"auth_cache_flush,omitempty"`
	// Brute-force rules (bruteforce_rule.go).
	FailedLogins int    `yaml:"failed_logins,omitempty"`
	Within       string `yaml:"within,omitempty"`
	Per          string `yaml:"per,omitempty"`
	BlockFor     string `yaml:"block_for,omitempty"`

	line      int
	lines     map[string]int   // key → line
	itemLines map[string][]int // list key → line of each entry
}

// RulesFile is the top of a rules file as the job commands write it (the
// allow list is left out: jobs never write one).
type RulesFile struct {
	Rules []RuleSpec `yaml:"rules"`
}

// fileSpec is one rules file.
type fileSpec struct {
	AllowUsers    []string
	AllowNetworks []string
	allowLines    map[string][]int // users, networks → line of each entry
	Rules         []*RuleSpec
	// rulesList: the file has a rules key holding a list, possibly empty
	// ("rules: []" says "no rules" on purpose; see Replaces).
	rulesList bool
}

// Keys a rules file may contain; anything else is an error, so that a
// misspelt selector never silently widens a rule.
var (
	topKeys   = []string{"allow", "rules"}
	allowKeys = []string{"users", "networks"}
)

// ruleKeys are RuleSpec's yaml tags in field order; ruleField maps each
// to its field's index.
var ruleField, ruleKeys = specKeys(reflect.TypeFor[RuleSpec]())

func specKeys(t reflect.Type) (map[string]int, []string) {
	index := map[string]int{}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || key == "" || key == "-" {
			continue
		}
		index[key] = i
		keys = append(keys, key)
	}
	return index, keys
}

// parseRulesFile decodes one rules file strictly. Every problem is
// collected with its line; the caller uses nothing of a file with errors,
// but still checks the rules that parsed, to report all problems at once.
func parseRulesFile(file string, data []byte) (*fileSpec, Errors) {
	var errs Errors
	fail := func(line int, rule, format string, a ...any) {
		errs = append(errs, &Error{File: file, Line: line, Rule: rule, Msg: fmt.Sprintf(format, a...)})
	}
	root, ok := DecodeMapping(data, "rules file", "allow and rules", func(line int, msg string) { fail(line, "", "%s", msg) })
	if !ok {
		return nil, errs
	}
	fs := &fileSpec{}
	if root == nil {
		return fs, errs // an empty file defines nothing
	}
	forEachKey(root, topKeys, func(line int, msg string) { fail(line, "", "%s", msg) }, func(key string, v *yaml.Node) {
		switch key {
		case "allow":
			fs.allowLines = map[string][]int{}
			if v.Kind != yaml.MappingNode {
				fail(v.Line, "", "allow: want a mapping with users and networks")
				return
			}
			forEachKey(v, allowKeys, func(line int, msg string) { fail(line, "", "allow: %s", msg) }, func(k string, lv *yaml.Node) {
				list, lines, err := yamlList(lv)
				if err != nil {
					fail(errLine(err, lv.Line), "", "allow.%s: %v", k, err)
				}
				fs.allowLines[k] = lines
				if k == "users" {
					fs.AllowUsers = list
				} else {
					fs.AllowNetworks = list
				}
			})
		case "rules":
			if v.Kind != yaml.SequenceNode {
				fail(v.Line, "", "rules: want a list of rules")
				return
			}
			fs.rulesList = true
			for _, rn := range v.Content {
				if r := parseRuleNode(rn, fail); r != nil {
					fs.Rules = append(fs.Rules, r)
				}
			}
		}
	})
	// fs holds what did parse, so that the caller can check those rules
	// too and report every problem at once.
	return fs, errs
}

func parseRuleNode(n *yaml.Node, fail func(int, string, string, ...any)) *RuleSpec {
	if n.Kind != yaml.MappingNode {
		fail(n.Line, "", "a rule is a mapping (name, selectors, options)")
		return nil
	}
	r := &RuleSpec{line: n.Line, lines: map[string]int{}, itemLines: map[string][]int{}}
	// The name first, so that every later error can name the rule.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			r.Name = n.Content[i+1].Value
		}
	}
	ok := true
	fields := reflect.ValueOf(r).Elem()
	forEachKey(n, ruleKeys, func(line int, msg string) { fail(line, r.Name, "%s", msg); ok = false }, func(key string, v *yaml.Node) {
		r.lines[key] = v.Line
		if err := decodeField(fields.Field(ruleField[key]), v, func(lines []int) { r.itemLines[key] = lines }); err != nil {
			fail(errLine(err, v.Line), r.Name, "%s: %v", key, err)
			ok = false
		}
	})
	if !ok {
		return nil
	}
	return r
}

// decodeField reads v into a RuleSpec field by the field's type: a single
// value for a string, bool or int, a list (see yamlList) for []string,
// whose entries' lines go to itemLines.
func decodeField(f reflect.Value, v *yaml.Node, itemLines func([]int)) error {
	var text string
	if f.Kind() != reflect.Slice {
		if err := scalar(v, &text); err != nil {
			return err
		}
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(text)
	case reflect.Bool:
		var b bool
		if v.Decode(&b) != nil {
			return fmt.Errorf("want true or false, not %q", v.Value)
		}
		f.SetBool(b)
	case reflect.Int:
		var i int
		if v.Decode(&i) != nil {
			return fmt.Errorf("want a whole number, not %q", v.Value)
		}
		f.SetInt(int64(i))
	case reflect.Slice:
		list, lines, err := yamlList(v)
		itemLines(lines)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(list))
	default:
		panic("engine: RuleSpec field of unsupported type " + f.Type().String())
	}
	return nil
}

// forEachKey walks a mapping, reporting unknown and duplicate keys.
func forEachKey(m *yaml.Node, allowed []string, bad func(line int, msg string), fn func(key string, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch {
		case !contains(allowed, k.Value):
			bad(k.Line, fmt.Sprintf("unknown key %q (known: %s)", k.Value, strings.Join(allowed, ", ")))
		case seen[k.Value]:
			bad(k.Line, fmt.Sprintf("key %q given twice", k.Value))
		default:
			seen[k.Value] = true
			fn(k.Value, v)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// scalar decodes a string value; lists and mappings are refused.
func scalar(v *yaml.Node, dst *string) error {
	if v.Kind != yaml.ScalarNode {
		return errors.New("want a single value")
	}
	*dst = v.Value
	return nil
}

// yamlList accepts a list of scalars, or one scalar as a list of one,
// and returns the line of each entry. An empty list is refused like an
// empty value: a selector that is present but empty would silently drop
// out of the rule, widening it.
func yamlList(v *yaml.Node) ([]string, []int, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return nil, nil, errors.New("empty value: give at least one entry")
		}
		return []string{v.Value}, []int{v.Line}, nil
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			return nil, nil, errors.New("empty list: give at least one entry")
		}
		out := make([]string, 0, len(v.Content))
		lines := make([]int, 0, len(v.Content))
		for _, e := range v.Content {
			if e.Kind != yaml.ScalarNode || e.Tag == "!!null" {
				return nil, nil, &lineError{e.Line, "want a plain value in the list"}
			}
			out = append(out, e.Value)
			lines = append(lines, e.Line)
		}
		return out, lines, nil
	}
	return nil, nil, errors.New("want a value or a list of values")
}

// lineError is a problem on a line other than the key's.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return e.msg }

// errLine is the line err names, else def.
func errLine(err error, def int) int {
	var le *lineError
	if errors.As(err, &le) {
		return le.line
	}
	return def
}

// itemLine is the line of entry i of a list, else def.
func itemLine(lines []int, i, def int) int {
	if i < len(lines) {
		return lines[i]
	}
	return def
}

// yamlErrLine digs the line out of a yaml.v3 error ("yaml: line N: …").
// yaml.v3 reports parser errors (as opposed to scanner errors) with the
// 0-based line of the construct being parsed (parser.fail adds 1 only
// for scanner errors), so those are shifted to the 1-based line here.
func yamlErrLine(err error) int {
	var n int
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		fmt.Sscanf(msg[i+5:], "%d", &n)
	}
	if isParserError(yamlErrMsg(err)) {
		n++
	}
	return n
}

// isParserError recognizes the messages of yaml.v3's parser (parserc.go);
// everything else comes from the scanner.
func isParserError(msg string) bool {
	for _, p := range []string{"did not find expected ", "found undefined tag handle",
		"found duplicate %YAML directive", "found incompatible YAML document", "found duplicate %TAG directive"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func yamlErrMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.Index(msg, "line "); i == 0 {
		if j := strings.Index(msg, ": "); j > 0 {
			msg = msg[j+2:]
		}
	}
	return msg
}

// parseTime accepts RFC 3339.
func parseTime(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }

// parseNetwork reads a network literal with match.ParseNetwork, the one
// parser of who/kick arguments, job targets and the Rego builtins.
func parseNetwork(s string) (match.Network, error) {
	n, err := match.ParseNetwork(s)
	switch {
	case errors.Is(err, match.ErrNotCanonical):
		return match.Network{}, fmt.Errorf("bad network: %w", err)
	case err != nil:
		return match.Network{}, fmt.Errorf("bad network: %w; want a CIDR such as 192.0.2.0/24 or an address", err)
	}
	return n, nil
}
