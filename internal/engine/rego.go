package engine

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Rego policies.
//
// A policy is every *.rego file (not *_test.rego) under the directories
// given to LoadPolicy, all in package kickagent, Rego v1 syntax, compiled
// in strict mode (unused variables, imports and arguments are errors). The
// agent queries data.kickagent.kick, a set of objects:
//
//	{"session": <id from the input>, "rule": "name", "reason": "why",
//	 "dry_run": true}                       # dry_run optional
//
// The input document:
//
//	{"sessions": [<session>...], "now": "2006-01-02T15:04:05Z",
//	 "now_ns": <int>, "dovecot": "2.3"|"2.4",
//	 "allow": {"users": [<mask>...], "networks": [<cidr>...]}}
//
// and each session:
//
//	{"id" (anvil.Session.ID), "user", "service", "pid", "ip" ("" if none),
//	 "conn_guid" ("" on 2.3), "dest_ip" ("" unless proxied),
//	 "alt": {field: value}, "connections" (2.3 refcount, 1 on 2.4),
//	 "first_seen" (RFC 3339), "first_seen_ns",
//	 "user_sessions" (sessions of this user in the snapshot),
//	 "ip_sessions" (sessions from this client IP; 0 without IP)}
//
// Policies may call the Go builtins kickagent.in_networks and
// kickagent.user_match (rego_builtins.go); "kickagent test-policy" runs a
// policy's *_test.rego files with them (a stock "opa test" lacks them).
// They may not call OPA's non-deterministic builtins (rego_sandbox.go);
// a policy that compiles but could never work is refused at load
// (rego_validate.go); one that fails at run time fails alone, under its
// own budget, and the YAML rules are enforced (rego_budget.go).
//
// Cost and caching (rego_cache.go): a decision is cached per session id
// and reused while the session's input is unchanged, so a poll cycle
// evaluates only new (or changed) sessions. That is valid only when a
// session's decision depends on that session's object alone. LoadPolicy
// checks the compiled policy and falls back to evaluating every session
// every cycle (Volatile says why) when it reads input.now/now_ns, or
// relates sessions (non-deterministic builtins such as time.now_ns are
// refused: rego_sandbox.go). A
// policy that may relate sessions (anything but kick rules of the form
// "some s in input.sessions ... {"session": s.id, ...}", see
// analyzePolicy) is evaluated in one Eval over the whole snapshot, never
// in chunks (CrossSession says why): use the per-session aggregates
// (user_sessions, ip_sessions) instead of joins, and first_seen_ns
// instead of the clock. Of the sessions to evaluate, a per-session
// policy's guards (rego_guard.go: the leading tests of each kick rule,
// run in Go) decide those no kick rule can select, without OPA.
//
// Pitfalls for policy authors (measured in opa-performance.md):
//   - Rego costs microseconds per session and expression: put the cheap,
//     selective test first (s.dest_ip != "" before a lookup); the guards
//     then run it in Go for every session after a reload.
//   - Lists of CIDRs or masks: kickagent.in_networks / user_match, not a
//     loop of net.cidr_contains or glob.match (~1 µs per session and item).
//   - glob.match(p, [], x) treats "." as a delimiter ("*@example.org" does
//     not match "john.doe@example.org"), pass null; it is case-sensitive.
//   - OPA builtins fail silently: net.cidr_contains on "10.0.0.0/33" is
//     undefined, never true. The kickagent builtins fail the evaluation;
//     test-policy makes every builtin error fail the test.
//   - A partial set keyed by session (bad contains s.id if …) looked up
//     per session (bad[s.id]) is re-evaluated per lookup: quadratic. Use a
//     function of s, or a complete rule (bad := {s.id | …}).

// Package and query every policy must provide.
const (
	policyPackage = "kickagent"
	policyQuery   = "data.kickagent.kick"
)

// Policy is a loaded, compiled Rego policy with its prepared query and its
// decision cache. It is safe for concurrent use; Evaluate calls are
// serialized.
type Policy struct {
	name  string // the directories, for messages
	files []string
	rev   string
	query rego.PreparedEvalQuery
	bi    *regoBuiltins
	deps  policyDeps
	guard *regoGuard // nil: every session is evaluated by OPA (rego_guard.go)

	mu    sync.Mutex // serializes Evaluate; guards cache and stats
	cache regoCache
	stats PolicyStats
}

// PolicyInput is what one evaluation sees.
type PolicyInput struct {
	Snapshot *anvil.Snapshot
	Now      time.Time
	// FirstSeen returns when the agent first saw session i of Snapshot,
	// whose id is id. Nil: the time this Policy first evaluated the
	// session (Now for new ones).
	FirstSeen func(i int, id string) time.Time
	// Allow is passed to the policy as input.allow; it is applied by the
	// caller, in Go, whatever the policy does.
	Allow *Allow
}

// Rev is the policy's revision: sha256 over the file names and contents.
func (p *Policy) Rev() string { return p.rev }

// Files returns the policy files loaded, sorted.
func (p *Policy) Files() []string { return slices.Clone(p.files) }

// Volatile returns why every evaluation covers all sessions (the policy
// relates sessions or reads the time), or "" when decisions are cached.
func (p *Policy) Volatile() string { return cmp.Or(p.deps.cross, p.deps.volatile) }

// CrossSession returns why the policy is evaluated over the whole
// snapshot in one Eval (a session's decisions may depend on other
// sessions), or "" when it is proved per-session and may be chunked.
func (p *Policy) CrossSession() string { return p.deps.cross }

// policyOptions are knobs for tests.
type policyOptions struct {
	// strictBuiltinErrors makes every builtin error (net.cidr_contains on
	// a bad CIDR, …) an evaluation error instead of undefined.
	strictBuiltinErrors bool
	// noGuard evaluates every session in OPA (rego_guard.go), to compare.
	noGuard bool
}

// LoadPolicy loads, compiles and prepares the policy in dirs (directories
// searched recursively, or single .rego files). Every problem found is
// returned as Errors with the file and line.
func LoadPolicy(ctx context.Context, dirs []string) (*Policy, error) {
	return loadPolicy(ctx, dirs, policyOptions{})
}

func loadPolicy(ctx context.Context, dirs []string, opt policyOptions) (*Policy, error) {
	return loadPolicyWith(ctx, dirs, nil, opt)
}

// loadPolicyWith is loadPolicy with modules held in memory (a bundle's)
// compiled together with the files of dirs.
func loadPolicyWith(ctx context.Context, dirs []string, extra []SourceFile, opt policyOptions) (*Policy, error) {
	files, errs := policyFiles(dirs, false)
	if len(errs) > 0 {
		return nil, errs
	}
	modules, rev, errs := parsePolicySources(files, extra)
	if len(errs) > 0 {
		return nil, errs
	}
	for _, f := range extra {
		files = append(files, f.Name)
		dirs = append(dirs, f.Name)
	}
	for _, m := range modules {
		if m.Package.Path.String() != "data."+policyPackage {
			errs = append(errs, &Error{File: locFile(m.Package.Location), Line: locRow(m.Package.Location),
				Msg: fmt.Sprintf("package %s expected, got %s", policyPackage, strings.TrimPrefix(m.Package.Path.String(), "data."))})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}

	p := &Policy{name: strings.Join(dirs, ","), files: files, rev: rev, bi: newRegoBuiltins()}
	var compiler *ast.Compiler
	opts := []func(*rego.Rego){
		rego.Query(policyQuery),
		rego.SetRegoVersion(ast.RegoV1),
		rego.Strict(true),
		rego.StrictBuiltinErrors(opt.strictBuiltinErrors),
		rego.CompilerHook(func(c *ast.Compiler) { compiler = c }),
		rego.Capabilities(regoCapabilities()), // the sandbox: rego_sandbox.go
	}
	for _, m := range modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	opts = append(opts, p.bi.options()...)
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, explainDenied(astErrors(err, p.name))
	}
	p.query = pq
	if compiler == nil {
		return nil, errors.New("rego: compiler not captured") // cannot happen
	}
	p.deps, errs = analyzePolicy(compiler, files)
	if len(errs) > 0 {
		return nil, errs
	}
	// Validated without the guards: the synthetic sessions go through
	// OPA whatever the guards would skip.
	if errs = p.validate(ctx, compiler, opt); len(errs) > 0 {
		return nil, errs
	}
	if !opt.noGuard {
		p.guard = p.buildGuard(ctx, compiler, opt)
	}
	return p, nil
}

// policyFiles lists the .rego files under paths, sorted: policy files, or
// with tests also the *_test.rego files. A path without any is an error.
func policyFiles(paths []string, tests bool) ([]string, Errors) {
	var files []string
	var errs Errors
	want := func(name string) bool {
		return strings.HasSuffix(name, ".rego") && (tests || !strings.HasSuffix(name, "_test.rego"))
	}
	for _, root := range paths {
		n := len(files)
		walkRoot := root
		if fi, err := os.Stat(root); err == nil && fi.IsDir() {
			// A trailing separator makes WalkDir follow a symlinked root
			// (/etc/kickagent/policy -> …); names stay clean (Join).
			walkRoot = root + string(filepath.Separator)
		}
		err := filepath.WalkDir(walkRoot, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != walkRoot && d.IsDir() && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if !d.IsDir() && (want(d.Name()) || path == walkRoot) {
				files = append(files, path)
			}
			return nil
		})
		switch {
		case err != nil:
			errs = append(errs, &Error{File: root, Msg: regoPathErr(err)})
		case len(files) == n:
			errs = append(errs, &Error{File: root, Msg: "no .rego policy files"})
		}
	}
	slices.Sort(files)
	return slices.Compact(files), errs
}

func regoPathErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// parsePolicyFiles reads and parses files (Rego v1) and returns the
// modules and the revision hash.
func parsePolicyFiles(files []string) ([]*ast.Module, string, Errors) {
	return parsePolicySources(files, nil)
}

// parsePolicySources parses the files, then the modules held in memory.
func parsePolicySources(files []string, extra []SourceFile) ([]*ast.Module, string, Errors) {
	var errs Errors
	var modules []*ast.Module
	h := sha256.New()
	all := make([]SourceFile, 0, len(files)+len(extra))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, &Error{File: f, Msg: regoPathErr(err)})
			continue
		}
		all = append(all, SourceFile{Name: f, Data: src})
	}
	all = append(all, extra...)
	for _, sf := range all {
		f, src := sf.Name, sf.Data
		h.Write([]byte(f))
		h.Write([]byte{0})
		h.Write(src)
		h.Write([]byte{0})
		m, err := ast.ParseModuleWithOpts(f, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true})
		if err != nil {
			errs = append(errs, astErrors(err, f)...)
			continue
		}
		modules = append(modules, m)
	}
	return modules, hex.EncodeToString(h.Sum(nil)), errs
}

// astErrors converts OPA parse and compile errors to Errors located at
// file:line; other errors are attributed to fallback.
func astErrors(err error, fallback string) Errors {
	var aerrs ast.Errors
	if !errors.As(err, &aerrs) {
		var one *ast.Error
		if !errors.As(err, &one) {
			return Errors{{File: fallback, Msg: err.Error()}}
		}
		aerrs = ast.Errors{one}
	}
	out := make(Errors, 0, len(aerrs))
	for _, e := range aerrs {
		file, line := fallback, 0
		if e.Location != nil {
			file, line = locFile(e.Location), e.Location.Row
			if file == "" {
				file = fallback
			}
		}
		out = append(out, &Error{File: file, Line: line, Msg: e.Code + ": " + e.Message})
	}
	return out
}

func locFile(l *ast.Location) string {
	if l == nil {
		return ""
	}
	return l.File
}

func locRow(l *ast.Location) int {
	if l == nil {
		return 0
	}
	return l.Row
}
