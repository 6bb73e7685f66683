package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/kickagent/kickagent/internal/match"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Sources names what a Ruleset is loaded from.
type Sources struct {
	// Rules are YAML rule files or directories of *.yaml / *.yml files
	// (a main file plus a drop-in directory such as rules.d), loaded in
	// the order given, directory entries in name order.
	Rules []string
	// Policies are directories of Rego files (package kickagent).
	Policies []string
	// Staged holds contents to load instead of what is on disk, by file
	// path; a staged file in a directory of Rules that does not exist yet
	// is loaded in its place in name order. It lets a change to the rules
	// be checked with everything it joins before it is written.
	Staged map[string][]byte
	// MaxRulesFileBytes and MaxPolicyBytes bound a rules file and the
	// .rego files of a policy path; zero: the defaults (limits.go).
	MaxRulesFileBytes int64
	MaxPolicyBytes    int64
	// Bundle is a rule set from a policy bundle (internal/bundle), loaded
	// with the local files: its rules after theirs, its Rego modules with
	// the policy directories' into one policy. It is strict like a main
	// rules file: any error in it fails the load, so a bundle is taken
	// whole or not at all.
	Bundle *Bundle
}

// Bundle is the rules and Rego modules of one bundle revision.
type Bundle struct {
	Revision string
	// Rules are rules files (the same documents as on disk) and
	// Modules Rego modules, each under a pseudo file name such as
	// "bundle:r2/rules/10-block.yaml" that errors name.
	Rules, Modules []SourceFile
}

// SourceFile is one file of a source held in memory.
type SourceFile struct {
	Name string
	Data []byte
}

// Empty reports whether nothing is to be loaded.
func (s Sources) Empty() bool {
	return len(s.Rules) == 0 && len(s.Policies) == 0 && (s.Bundle == nil || len(s.Bundle.Rules)+len(s.Bundle.Modules) == 0)
}

// ruleFiles expands the rule paths into files.
func (s Sources) ruleFiles() ([]string, Errors) {
	var files []string
	var errs Errors
	for _, p := range s.Rules {
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: fmt.Sprintf("cannot read rules: %v", err)})
			continue
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		if isRulesFileName(p) {
			// rules.yaml replaced by a directory, empty or not: not
			// a drop-in directory that happens to have a file's name.
			errs = append(errs, &Error{File: p, Msg: "is a directory; a rules path named *.yaml or *.yml must be a file"})
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: fmt.Sprintf("cannot read rules directory: %v", err)})
			continue
		}
		start := len(files)
		for _, e := range entries {
			n := e.Name()
			// Editors' temporaries and hidden files are not rules.
			if strings.HasPrefix(n, ".") || !isRulesFileName(n) {
				continue
			}
			if e.Type()&fs.ModeType != 0 && e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			files = append(files, filepath.Join(p, n))
		}
		files = s.addStaged(files, start, p)
	}
	return files, errs
}

// isRulesFileName reports whether name is that of a YAML rules file.
func isRulesFileName(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// IsSourceName reports whether a directory's load reads a file named base:
// a rules file (not hidden) or a policy file (policyFiles). The agent's
// watch reloads on these alone.
func IsSourceName(base string) bool {
	return (!strings.HasPrefix(base, ".") && isRulesFileName(base)) || strings.HasSuffix(base, ".rego")
}

// addStaged adds to files, whose entries from start on are directory
// dir's in name order, the staged files of dir that are not among them.
func (s Sources) addStaged(files []string, start int, dir string) []string {
	for f := range s.Staged {
		if filepath.Dir(f) == filepath.Clean(dir) && !slices.Contains(files[start:], f) {
			files = append(files, f)
		}
	}
	slices.Sort(files[start:])
	return files
}

// Load reads, checks and compiles every source. It returns all problems
// found, each with file and line; on any error the Ruleset is nil, so
// nothing of a broken file set is ever used.
func Load(ctx context.Context, src Sources) (*Ruleset, error) {
	return load(ctx, src, nil, false)
}

// LoadKeeping is Load for the running agent: a drop-in file (a file of a
// directory in Rules) with errors does not fail the load. Its version in
// prev, the active rules, is loaded instead when prev had one that still
// loads with the others; otherwise it is left out. Either way the problem
// is in the Ruleset's Rejected and changes its Rev. Main rules files and
// policies stay strict: any error in them fails the load, as in Load.
//
// Each drop-in file is thus wholly new or wholly as before, never half
// applied; one broken file (a typo in an unrelated drop-in) no longer
// stops a new block from taking effect.
func LoadKeeping(ctx context.Context, src Sources, prev *Ruleset) (*Ruleset, error) {
	return load(ctx, src, prev, true)
}

// fileRules is what one rules file contributes, compiled.
type fileRules struct {
	rules      []*rule
	allowUsers []string
	allowNets  []match.Network
	main       mainFile
}

// compileFile parses and compiles one rules file on its own; names holds
// the rules of the files before it, for duplicate names.
func compileFile(f string, data []byte, names map[string]*rule) (*fileRules, Errors) {
	spec, errs := parseRulesFile(f, data)
	if spec == nil {
		return nil, errs
	}
	fr := &fileRules{main: mainFile{entries: len(spec.Rules) + len(spec.AllowUsers) + len(spec.AllowNetworks), rulesList: spec.rulesList}}
	for i, u := range spec.AllowUsers {
		if u == "" {
			errs = append(errs, &Error{File: f, Line: itemLine(spec.allowLines["users"], i, 0), Msg: "allow.users: empty mask"})
		}
		fr.allowUsers = append(fr.allowUsers, u)
	}
	for i, n := range spec.AllowNetworks {
		p, err := parseNetwork(n)
		if err != nil {
			errs = append(errs, &Error{File: f, Line: itemLine(spec.allowLines["networks"], i, 0), Msg: "allow.networks: " + err.Error()})
			continue
		}
		fr.allowNets = append(fr.allowNets, p)
	}
	own := map[string]*rule{}
	for _, s := range spec.Rules {
		r, rerrs := compileRule(f, s)
		errs = append(errs, rerrs...)
		if len(rerrs) > 0 {
			continue
		}
		prev, dup := names[r.name]
		if !dup {
			prev, dup = own[r.name]
		}
		if dup {
			errs = append(errs, &Error{File: f, Line: r.line, Rule: r.name,
				Msg: fmt.Sprintf("duplicate rule name (first defined at %s:%d)", prev.file, prev.line)})
			continue
		}
		own[r.name] = r
		fr.rules = append(fr.rules, r)
	}
	return fr, errs
}

func load(ctx context.Context, src Sources, prev *Ruleset, keep bool) (*Ruleset, error) {
	files, errs := src.ruleFiles()
	rs := &Ruleset{cache: newYAMLCache(), mains: map[string]mainFile{}, dropIns: map[string][]byte{}}
	h := sha256.New()
	names := map[string]*rule{}
	var allowUsers []string
	var allowNets []match.Network
	// take adds a file's compiled rules and allow entries.
	take := func(f string, fr *fileRules) {
		for _, r := range fr.rules {
			names[r.name] = r
			if r.bf != nil {
				rs.bfRules = append(rs.bfRules, r) // never matched against sessions
				continue
			}
			r.order = len(rs.rules)
			rs.rules = append(rs.rules, r)
		}
		allowUsers = append(allowUsers, fr.allowUsers...)
		allowNets = append(allowNets, fr.allowNets...)
		rs.files = append(rs.files, f)
	}
	for _, f := range files {
		main := slices.Contains(src.Rules, f)
		data, err := src.read(f)
		var fr *fileRules
		var ferrs Errors
		if err != nil {
			ferrs = Errors{err}
		} else {
			fr, ferrs = compileFile(f, data, names)
		}
		if len(ferrs) > 0 && keep && !main {
			// A broken drop-in: its last good version, or nothing.
			rs.rejected = append(rs.rejected, ferrs...)
			sum := sha256.Sum256(data)
			fmt.Fprintf(h, "rejected %s %x\n", f, sum)
			fr, ferrs = nil, nil
			if old, ok := prev.dropIn(f); ok {
				if ofr, oerrs := compileFile(f, old, names); len(oerrs) == 0 {
					fr, data = ofr, old
					rs.kept = append(rs.kept, f)
				}
			}
			if fr == nil {
				continue
			}
		}
		errs = append(errs, ferrs...)
		if fr == nil || len(ferrs) > 0 {
			continue
		}
		fmt.Fprintf(h, "rules %s %d\n", f, len(data))
		h.Write(data)
		take(f, fr)
		if main {
			rs.mains[f] = fr.main
		} else {
			rs.dropIns[f] = data
		}
	}
	var memory []SourceFile
	if src.Bundle != nil {
		memory = src.Bundle.Rules
	}
	for _, f := range memory {
		var fr *fileRules
		var ferrs Errors
		if int64(len(f.Data)) > src.maxFile() {
			ferrs = Errors{tooBig(f.Name, "rules file", int64(len(f.Data)), src.maxFile())}
		} else {
			fr, ferrs = compileFile(f.Name, f.Data, names)
		}
		errs = append(errs, ferrs...)
		if fr == nil || len(ferrs) > 0 {
			continue
		}
		fmt.Fprintf(h, "bundle rules %s %d\n", f.Name, len(f.Data))
		h.Write(f.Data)
		take(f.Name, fr)
	}
	var modules []SourceFile
	if src.Bundle != nil {
		modules = src.Bundle.Modules
	}
	if err := src.checkPolicySize(); err != nil {
		errs = append(errs, err)
	} else if len(src.Policies) > 0 || len(modules) > 0 {
		p, err := loadPolicyWith(ctx, src.Policies, modules, policyOptions{})
		if err != nil {
			if es, ok := err.(Errors); ok {
				errs = append(errs, es...)
			} else {
				errs = append(errs, &Error{File: strings.Join(src.Policies, ","), Msg: err.Error()})
			}
		} else {
			rs.policy = p
			fmt.Fprintf(h, "policy %s\n", p.Rev())
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	rs.Allow = &Allow{Users: slices.Compact(allowUsers), Networks: allowNets}
	rs.Allow.compile()
	rs.index = newRuleIndex(rs.rules)
	rs.rev = hex.EncodeToString(h.Sum(nil))[:12]
	return rs, nil
}
