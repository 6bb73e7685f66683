package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/config"
	"github.com/kickagent/kickagent/internal/dropin"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/kick"
)

// jobFlags locate the running agent's drop-in directory: from its config
// file (-c, rules_dir) or directly (--rules-dir).
type jobFlags struct {
	config   string
	rulesDir string
}

func (j *jobFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&j.config, "c", "/etc/kickagent/kickagent.yaml", "agent config file")
	fs.StringVar(&j.rulesDir, "rules-dir", "", "drop-in directory")
}

// resolve returns the drop-in dir and everything the agent loads, so that
// a new file is validated together with the rules it joins.
func (j *jobFlags) resolve() (string, engine.Sources, *config.Config, error) {
	c := &config.Config{}
	if j.rulesDir == "" || j.config != "/etc/kickagent/kickagent.yaml" {
		loaded, err := config.Load(j.config)
		switch {
		case err == nil:
			c = loaded
		case j.rulesDir == "":
			return "", engine.Sources{}, nil, err
		}
	}
	if j.rulesDir != "" {
		c.RulesDir = j.rulesDir
	}
	if c.RulesDir == "" {
		return "", engine.Sources{}, nil, errors.New("no drop-in directory: set rules_dir in the config or pass --rules-dir")
	}
	if err := os.MkdirAll(c.RulesDir, 0o750); err != nil {
		return "", engine.Sources{}, nil, err
	}
	return c.RulesDir, engine.Sources{Rules: c.RuleSources(), Policies: c.Policies}, c, nil
}

// install writes a job's rule after checking that the agent's whole rule
// set stays valid with it; a file that would break the set is never left
// in the directory.
func install(ctx context.Context, j *jobFlags, kind dropin.Kind, target string, r dropin.Rule, stdout, stderr io.Writer) int {
	dir, src, _, err := j.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "kickagent %s: %v\n", kind, err)
		return exitConfig
	}
	// Running a job again replaces its file; keep the old one to put back.
	prev, prevErr := os.ReadFile(filepath.Join(dir, dropin.Name(kind, target)))
	path, err := dropin.Write(dir, kind, target, r, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "kickagent %s: %v\n", kind, err)
		return exitFailure
	}
	if _, err := engine.Load(ctx, src); err != nil {
		if prevErr == nil {
			_ = dropin.Put(path, prev)
		} else {
			os.Remove(path)
		}
		fmt.Fprintf(stderr, "kickagent %s: the rule set would not load, nothing changed:\n%v\n", kind, err)
		return exitConfig
	}
	fmt.Fprintf(stdout, "%s: %s (the running agent picks it up within a second)\n", kind, path)
	return exitOK
}

// isNetwork tells a network argument from a user mask, as who/kick do.
func isNetwork(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// zoneProblem refuses an IPv6 zone ("fe80::1%eth0"): anvil records
// addresses without one, so a block would silently cover every interface.
func zoneProblem(s string) string {
	addr, _, _ := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() == "" {
		return ""
	}
	return fmt.Sprintf("%q: anvil records client addresses without an IPv6 zone; block %s (from any interface) instead", s, a.WithZone(""))
}

func runBlock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("block", blockUsage, stderr)
	var j jobFlags
	j.register(fs)
	dur := fs.Duration("for", 24*time.Hour, "how long")
	reason := fs.String("reason", "", "why")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOr(err)
	}
	if len(pos) != 1 || pos[0] == "" || *dur <= 0 {
		fmt.Fprint(stderr, blockUsage)
		return exitUsage
	}
	target := pos[0]
	if msg := zoneProblem(target); msg != "" {
		fmt.Fprintf(stderr, "kickagent block: %s\n", msg)
		return exitUsage
	}
	now := time.Now()
	r := dropin.Rule{Name: dropin.RuleName(dropin.Block, target), Expires: rfc3339Up(now.Add(*dur)),
		Description: cmpReason(*reason, "blocked with kickagent block")}
	if p, ok := isNetwork(target); ok {
		r.Networks = []string{p.String()}
	} else {
		r.Users = []string{target}
	}
	return install(ctx, &j, dropin.Block, target, r, stdout, stderr)
}

// rfc3339Up formats t in whole seconds, rounded up: RFC 3339 without a
// fraction would otherwise end a block up to a second early, and put a
// reset's cutoff before the reset, where a session that logged in between
// the two would count as new.
func rfc3339Up(t time.Time) string {
	if u := t.Truncate(time.Second); u.Before(t) {
		t = u.Add(time.Second)
	}
	return t.UTC().Format(time.RFC3339)
}

func cmpReason(r, def string) string {
	if r != "" {
		return r
	}
	return def
}

func helpOr(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

func runUnblock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("unblock", blockUsage, stderr)
	var j jobFlags
	j.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOr(err)
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, blockUsage)
		return exitUsage
	}
	dir, _, _, err := j.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "kickagent unblock: %v\n", err)
		return exitConfig
	}
	target := pos[0]
	if err := dropin.Remove(dir, dropin.Block, target); err == nil {
		fmt.Fprintf(stdout, "unblocked %s\n", target)
		return exitOK
	}
	// A network is blocked as written ("192.0.2.1", "192.0.2.7/24") and
	// listed normalized ("192.0.2.1/32", "192.0.2.0/24"): any form of the
	// same network unblocks it.
	if p, ok := isNetwork(target); ok {
		entries, err := dropin.List(dir, dropin.Block)
		if err != nil {
			fmt.Fprintf(stderr, "kickagent unblock: %v\n", err)
			return exitFailure
		}
		removed := 0
		for _, e := range entries {
			if len(e.Rule.Networks) == 1 && e.Rule.Networks[0] == p.String() && os.Remove(e.Path) == nil {
				removed++
			}
		}
		if removed > 0 {
			fmt.Fprintf(stdout, "unblocked %s\n", p)
			return exitOK
		}
	}
	fmt.Fprintf(stderr, "kickagent unblock: no block for %q in %s (see kickagent blocks)\n", target, dir)
	return exitNotFound
}

func runBlocks(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("blocks", blockUsage, stderr)
	var j jobFlags
	j.register(fs)
	if code, ok := parseNoArgs(fs, args); !ok {
		return code
	}
	dir, _, _, err := j.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "kickagent blocks: %v\n", err)
		return exitConfig
	}
	entries, err := dropin.List(dir, "")
	if err != nil {
		fmt.Fprintf(stderr, "kickagent blocks: %v\n", err)
		return exitFailure
	}
	t := newTable("kind", "target", "state", "expires", "reason", "file")
	now := time.Now()
	for _, e := range entries {
		r := e.Rule
		target := strings.Join(append(append(append(r.Networks, r.Users...), r.DestHosts...), r.Values...), ",")
		state := "active"
		if exp, err := time.Parse(time.RFC3339, r.Expires); err == nil && !now.Before(exp) {
			state = "expired"
		}
		if r.Rate != "" {
			state += " " + r.Rate
		}
		t.add(string(e.Kind), target, state, r.Expires, r.Description, filepath.Base(e.Path))
	}
	if err := t.write(stdout); err != nil {
		return exitFailure
	}
	return exitOK
}

func runReset(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("reset", resetUsage, stderr)
	var j jobFlags
	j.register(fs)
	at := fs.String("at", "", "reset time (RFC 3339; default now)")
	field := fs.String("f", "", "alt-username field")
	expire := fs.Duration("expire", 24*time.Hour, "rule lifetime")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOr(err)
	}
	if len(pos) != 1 || pos[0] == "" || *expire <= 0 {
		fmt.Fprint(stderr, resetUsage)
		return exitUsage
	}
	user := pos[0]
	t := time.Now()
	if *at != "" {
		if t, err = time.Parse(time.RFC3339, *at); err != nil {
			fmt.Fprintf(stderr, "kickagent reset: --at: %v\n", err)
			return exitUsage
		}
	}
	r := dropin.Rule{Name: dropin.RuleName(dropin.Reset, *field+":"+user), LoggedInBefore: rfc3339Up(t),
		Expires:     rfc3339Up(t.Add(*expire)),
		Description: "password reset of " + user + " at " + rfc3339Up(t) + ": sessions from before it"}
	if *field != "" {
		r.PassdbField, r.Values = *field, []string{user}
	} else {
		r.Users = []string{user}
	}
	return install(ctx, &j, dropin.Reset, *field+":"+user, r, stdout, stderr)
}

func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("drain", drainUsage, stderr)
	var j jobFlags
	j.register(fs)
	var af anvilFlags
	af.register(fs)
	dest := fs.String("dest", "", "proxy destination IP")
	all := fs.Bool("all", false, "every session")
	rate := fs.String("rate", "10/s", "kicks per second")
	status := fs.Bool("status", false, "show drains")
	cancel := fs.Bool("cancel", false, "stop a drain")
	if code, ok := parseNoArgs(fs, args); !ok {
		return code
	}
	if *status {
		return drainStatus(ctx, &j, &af, stdout, stderr)
	}
	if (*dest == "") == !*all {
		fmt.Fprint(stderr, drainUsage)
		return exitUsage
	}
	target := "all"
	r := dropin.Rule{Drain: true, Rate: *rate}
	if *dest != "" {
		a, err := parseDest(*dest)
		if err != nil {
			fmt.Fprintf(stderr, "kickagent drain: %v\n", err)
			return exitUsage
		}
		target = a.String()
		r.DestHosts = []string{target}
		r.Description = "drain of backend " + target
	} else {
		r.Users = []string{"*"}
		r.Description = "drain of every session on this server"
	}
	if *cancel {
		dir, _, _, err := j.resolve()
		if err != nil {
			fmt.Fprintf(stderr, "kickagent drain: %v\n", err)
			return exitConfig
		}
		if err := dropin.Remove(dir, dropin.Drain, target); err != nil {
			fmt.Fprintf(stderr, "kickagent drain: no drain of %s\n", target)
			return exitNotFound
		}
		fmt.Fprintf(stdout, "drain of %s cancelled\n", target)
		return exitOK
	}
	if _, err := parseRate(*rate); err != nil {
		fmt.Fprintf(stderr, "kickagent drain: --rate: %v\n", err)
		return exitUsage
	}
	r.Name = dropin.RuleName(dropin.Drain, target)
	return install(ctx, &j, dropin.Drain, target, r, stdout, stderr)
}

// parseRate reads "N/s", "N/m" or a plain N (per second), exactly as the
// agent reads the rule's rate.
func parseRate(s string) (float64, error) { return engine.ParseRate(s) }

// drainStatus lists the drains and counts what each has left to kick.
func drainStatus(ctx context.Context, j *jobFlags, af *anvilFlags, stdout, stderr io.Writer) int {
	dir, _, c, err := j.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "kickagent drain: %v\n", err)
		return exitConfig
	}
	entries, err := dropin.List(dir, dropin.Drain)
	if err != nil {
		fmt.Fprintf(stderr, "kickagent drain: %v\n", err)
		return exitFailure
	}
	if len(entries) == 0 {
		fmt.Fprintln(stdout, "no drain in progress")
		return exitOK
	}
	socket := af.socket
	if socket == "" {
		socket = c.AnvilSocket
	}
	ctx, cancel := context.WithTimeout(ctx, af.timeout)
	defer cancel()
	snap, err := (&anvil.Client{Path: socket}).Dump(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "kickagent drain: %v\n", err)
		return exitTempFail
	}
	warnBadLines(stderr, "drain", snap.BadLines)
	t := newTable("drain", "remaining", "rate", "eta", "file")
	for _, e := range entries {
		left := 0
		for i := range snap.Sessions {
			s := &snap.Sessions[i]
			if !kick.Kickable(s) {
				continue
			}
			if len(e.Rule.DestHosts) == 0 || (s.DestIP.IsValid() && s.DestIP.Unmap().String() == e.Rule.DestHosts[0]) {
				left++
			}
		}
		eta := "-"
		if v, err := parseRate(e.Rule.Rate); err == nil {
			eta = (time.Duration(float64(left)/v*float64(time.Second)) + time.Second - 1).Truncate(time.Second).String()
		}
		what := "all"
		if len(e.Rule.DestHosts) > 0 {
			what = "dest " + e.Rule.DestHosts[0]
		}
		t.add(what, strconv.Itoa(left), e.Rule.Rate, eta, filepath.Base(e.Path))
	}
	if err := t.write(stdout); err != nil {
		return exitFailure
	}
	return exitOK
}
