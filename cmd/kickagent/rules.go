package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kickagent/kickagent/internal/config"
	"github.com/kickagent/kickagent/internal/engine"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// ruleFlags are the flags of every command that loads rules: -c names the
// agent's config file; --rules and --policy add to what it names.
type ruleFlags struct {
	config   string
	rules    listFlag
	policies listFlag
}

func (r *ruleFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.config, "c", "", "agent config file")
	fs.Var(&r.rules, "rules", "YAML rules file or directory (repeatable)")
	fs.Var(&r.policies, "policy", "Rego policy directory (repeatable)")
}

// sources resolves the config file and flags into what to load, and the
// anvil socket the config names ("" if none).
func (r *ruleFlags) sources() (engine.Sources, string, error) {
	var src engine.Sources
	socket := ""
	if r.config != "" {
		c, err := config.Load(r.config)
		if err != nil {
			return src, "", errConfig{err}
		}
		src.Rules = c.RuleSources()
		src.Policies = c.Policies
		socket = c.AnvilSocket
	}
	src.Rules = append(src.Rules, r.rules...)
	src.Policies = append(src.Policies, r.policies...)
	if src.Empty() {
		return src, "", fmt.Errorf("no rules: give -c CONFIG, --rules PATH or --policy DIR")
	}
	return src, socket, nil
}

// errConfig is a config file that cannot be read: a configuration
// problem, where a missing --rules is a usage one.
type errConfig struct{ error }

func (e errConfig) Unwrap() error { return e.error }

// loadRules loads and reports every error as file:line: message.
func loadRules(ctx context.Context, rf *ruleFlags, stderr io.Writer, cmd string) (*engine.Ruleset, string, int) {
	src, socket, err := rf.sources()
	if err != nil {
		printErr(stderr, cmd, err)
		if errors.As(err, new(errConfig)) {
			return nil, "", exitConfig
		}
		return nil, "", exitUsage
	}
	rs, err := engine.Load(ctx, src)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, line)
		}
		return nil, "", exitConfig
	}
	return rs, socket, exitOK
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", checkUsage, stderr)
	var rf ruleFlags
	rf.register(fs)
	if code, ok := parseNoArgs(fs, args); !ok {
		return code
	}
	rs, _, code := loadRules(ctx, &rf, stderr, "check")
	if rs == nil {
		return code
	}
	policy := "no"
	if rs.HasPolicy() {
		policy = "yes"
	}
	fmt.Fprintf(stdout, "ok: %d YAML rules in %d files, Rego policy: %s, allow list: %d users %d networks, rev %s\n",
		rs.RuleCount(), len(rs.Files()), policy, len(rs.Allow.Users), len(rs.Allow.Networks), rs.Rev())
	return exitOK
}

// parseNoArgs parses flags of a command that takes no positional args.
func parseNoArgs(fs *flag.FlagSet, args []string) (int, bool) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		if err == flag.ErrHelp {
			return exitOK, false
		}
		return exitUsage, false
	}
	if len(pos) > 0 {
		fmt.Fprintf(fs.Output(), "kickagent %s: unexpected argument %q\n", fs.Name(), pos[0])
		return exitUsage, false
	}
	return exitOK, true
}
