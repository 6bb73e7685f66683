package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/config"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/jobs"
)

// defaultConfig is where the job commands look for the agent's config
// when -c is not given (a variable for the tests).
var defaultConfig = "/etc/kickagent/kickagent.yaml"

// jobFlags locate the running agent's drop-in directory: from its config
// file (-c, rules_dir) or directly (--rules-dir).
type jobFlags struct {
	config   string
	rulesDir string
}

func (j *jobFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&j.config, "c", defaultConfig, "agent config file")
	fs.StringVar(&j.rulesDir, "rules-dir", "", "drop-in directory")
}

// dir resolves the flags of the parsed fs into the drop-in directory and
// the rules it joins, and the config read. A -c that was given must be
// read; only the default config may be missing, and only when --rules-dir
// says where the directory is.
func (j *jobFlags) dir(fs *flag.FlagSet) (jobs.Dir, *config.Config, error) {
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "c" })
	c, err := config.Load(j.config)
	switch {
	case err == nil:
	case !explicit && j.rulesDir != "" && errors.Is(err, os.ErrNotExist):
		c = &config.Config{}
	case !explicit && errors.Is(err, os.ErrNotExist):
		return jobs.Dir{}, nil, fmt.Errorf("%w (no agent config here: pass --rules-dir DIR, the drop-in directory, or -c CONFIG)", err)
	default:
		return jobs.Dir{}, nil, err
	}
	if j.rulesDir != "" {
		c.RulesDir = j.rulesDir
	}
	if c.RulesDir == "" {
		return jobs.Dir{}, nil, fmt.Errorf("no drop-in directory: set rules_dir in %s or pass --rules-dir", j.config)
	}
	// The drop-in directory is added by jobs.Dir, as the agent adds it
	// after the rules files.
	return jobs.Dir{Path: c.RulesDir, Sources: engine.Sources{Rules: c.Rules, Policies: c.Policies}}, c, nil
}

// jobError prints err for command cmd and returns its exit code.
func jobError(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "kickagent %s: %v\n", cmd, err)
	switch {
	case errors.Is(err, jobs.ErrUsage):
		return exitUsage
	case errors.Is(err, jobs.ErrInvalid):
		return exitConfig
	case errors.Is(err, os.ErrNotExist):
		return exitNotFound
	}
	return exitFailure
}

// install writes a job through jobs.Dir.Install and says where.
func install(ctx context.Context, fs *flag.FlagSet, j *jobFlags, job jobs.Job, stdout, stderr io.Writer) int {
	d, _, err := j.dir(fs)
	if err != nil {
		printErr(stderr, fmt.Sprint(job.Kind), err)
		return exitConfig
	}
	return installIn(ctx, d, job, stdout, stderr)
}

// installIn is install into a directory already resolved.
func installIn(ctx context.Context, d jobs.Dir, job jobs.Job, stdout, stderr io.Writer) int {
	path, others, err := d.InstallChecked(ctx, job, time.Now())
	if err != nil {
		return jobError(stderr, string(job.Kind), err)
	}
	// Another drop-in is broken: the job is installed all the same (the
	// agent leaves that file out), but someone must fix it.
	for _, e := range others {
		fmt.Fprintf(stderr, "kickagent %s: warning: %v (the agent leaves this file out, or keeps its last good version)\n", job.Kind, e)
	}
	// A block says how its target was read (a network or a user mask),
	// after the path, which scripts cut from the first line.
	what := ""
	if job.Kind == jobs.Block {
		what = job.ReadAs() + " until " + job.Rule.Expires + "; "
	}
	fmt.Fprintf(stdout, "%s: %s (%sthe running agent picks it up within a second)\n", job.Kind, path, what)
	return exitOK
}

func helpOr(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

func runBlock(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("block", blockUsage, stderr)
	var j jobFlags
	j.register(fs)
	dur := fs.Duration("for", 24*time.Hour, "how long")
	reason := fs.String("reason", "", "why")
	force := fs.Bool("force", false, "allow a block of everyone")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOr(err)
	}
	switch {
	case len(pos) != 1 || pos[0] == "":
		fmt.Fprint(stderr, "kickagent block: give one network or user mask\n\n", blockUsage)
		return exitUsage
	case *dur <= 0:
		fmt.Fprintf(stderr, "kickagent block: --for %v: the block must last a positive duration (unblock ends one)\n", *dur)
		return exitUsage
	}
	job, err := jobs.NewBlock(pos[0], time.Now().Add(*dur), *reason)
	if err != nil {
		return jobError(stderr, "block", err)
	}
	if job.Everyone() && !*force {
		fmt.Fprintf(stderr, "kickagent block: %s selects every session: the agent would kick everyone on every cycle for %v; add --force if that is meant\n", job.ReadAs(), *dur)
		return exitUsage
	}
	if job.LooksLikeHost() {
		fmt.Fprintf(stderr, "kickagent block: warning: %s\n", job.HostWarning())
	}
	return install(ctx, fs, &j, job, stdout, stderr)
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
	d, _, err := j.dir(fs)
	if err != nil {
		printErr(stderr, "unblock", err)
		return exitConfig
	}
	removed, err := d.Unblock(pos[0])
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("no block for %q in %s (see kickagent blocks): %w", pos[0], d.Path, os.ErrNotExist)
		}
		return jobError(stderr, "unblock", err)
	}
	for _, p := range removed {
		fmt.Fprintf(stdout, "unblocked %s (%s)\n", pos[0], filepath.Base(p))
	}
	return exitOK
}

func runBlocks(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("blocks", blockUsage, stderr)
	var j jobFlags
	j.register(fs)
	if code, ok := parseNoArgs(fs, args); !ok {
		return code
	}
	d, _, err := j.dir(fs)
	if err != nil {
		printErr(stderr, "blocks", err)
		return exitConfig
	}
	entries, err := d.List("")
	if err != nil {
		return jobError(stderr, "blocks", err)
	}
	t := newTable("kind", "target", "state", "expires", "reason", "file")
	now := time.Now()
	for _, e := range entries {
		r := e.Rule
		target := strings.Join(append(append(append(r.Networks, r.Users...), r.DestHosts...), r.Values...), ",")
		state := "active"
		if !e.Active(now) {
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
	socket := fs.String("auth-master", "", "auth-master socket")
	noFlush := fs.Bool("no-cache-flush", false, "do not flush the auth cache")
	dryRun := fs.Bool("dry-run", false, "change nothing, say what would be done")
	timeout := defaultFlushTimeout
	fs.Var(checked(&timeout, config.ParseDuration, config.CheckTimeout), "timeout", "auth cache flush timeout")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return helpOr(err)
	}
	switch {
	case len(pos) != 1 || pos[0] == "":
		fmt.Fprint(stderr, "kickagent reset: give one user (or, with -f, one value)\n\n", resetUsage)
		return exitUsage
	case *expire <= 0:
		fmt.Fprintf(stderr, "kickagent reset: --expire %v: the reset must last a positive duration (its rule ends by itself)\n", *expire)
		return exitUsage
	}
	if *noFlush && *socket != "" {
		fmt.Fprint(stderr, "kickagent reset: --auth-master with --no-cache-flush: give one or the other\n")
		return exitUsage
	}
	t := time.Now()
	if *at != "" {
		if t, err = time.Parse(time.RFC3339, *at); err != nil {
			fmt.Fprintf(stderr, "kickagent reset: --at: %v\n", err)
			return exitUsage
		}
	}
	// The config is read before the flush: a reset whose config cannot
	// be read flushes nothing.
	d, c, err := j.dir(fs)
	if err != nil {
		printErr(stderr, "reset", err)
		return exitConfig
	}
	f := planFlush(pos[0], *field, *socket, c, *noFlush, timeout)
	if *dryRun {
		what := pos[0]
		if *field != "" {
			what = *field + "=" + pos[0]
		}
		f.dryRun(stdout, what, *at)
		return exitOK
	}
	return f.reset(ctx, d, t, func(t time.Time) jobs.Job { return jobs.NewReset(pos[0], *field, t, *expire) }, stdout, stderr)
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
		return drainStatus(ctx, fs, &j, &af, stdout, stderr)
	}
	if (*dest == "") == !*all {
		fmt.Fprint(stderr, drainUsage)
		return exitUsage
	}
	target := *dest
	if *all {
		target = jobs.DrainAll
	}
	job, err := jobs.NewDrain(target, *rate)
	if err != nil {
		return jobError(stderr, "drain", err)
	}
	if !*cancel {
		code := install(ctx, fs, &j, job, stdout, stderr)
		if code == exitOK {
			drainHint(ctx, fs, &j, &af, job, stderr)
		}
		return code
	}
	d, _, err := j.dir(fs)
	if err != nil {
		printErr(stderr, "drain", err)
		return exitConfig
	}
	if err := d.Remove(jobs.Drain, job.Target); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("no drain of %s: %w", job.Target, os.ErrNotExist)
		}
		return jobError(stderr, "drain", err)
	}
	fmt.Fprintf(stdout, "drain of %s cancelled\n", job.Target)
	return exitOK
}

// drainStatus prints each drain and what it has left, as the agent would
// decide on a snapshot taken now (jobs.Dir.Drains).
func drainStatus(ctx context.Context, fs *flag.FlagSet, j *jobFlags, af *anvilFlags, stdout, stderr io.Writer) int {
	d, c, err := j.dir(fs)
	if err != nil {
		printErr(stderr, "drain", err)
		return exitConfig
	}
	if entries, err := d.List(jobs.Drain); err != nil {
		return jobError(stderr, "drain", err)
	} else if len(entries) == 0 {
		fmt.Fprintln(stdout, "no drain in progress")
		return exitOK
	}
	socket := af.socket
	if socket == "" {
		socket = c.AnvilSocket
	}
	dctx, cancel := context.WithTimeout(ctx, af.timeout)
	defer cancel()
	snap, err := (&anvil.Client{Path: socket}).Dump(dctx)
	if err != nil {
		fmt.Fprintf(stderr, "kickagent drain: %v\n", err)
		return exitTempFail
	}
	warnBadLines(stderr, "drain", snap.BadLines)
	drains, err := d.Drains(ctx, snap, time.Now())
	if err != nil {
		return jobError(stderr, "drain", err)
	}
	t := newTable("drain", "remaining", "rate", "eta", "file")
	for _, s := range drains {
		what := "all"
		if len(s.Rule.DestHosts) > 0 {
			what = "dest " + s.Rule.DestHosts[0]
		}
		eta := "-"
		if s.ETA > 0 || s.Left == 0 {
			eta = s.ETA.String()
		}
		t.add(what, strconv.Itoa(s.Left), s.Rule.Rate, eta, filepath.Base(s.Path))
	}
	if err := t.write(stdout); err != nil {
		return exitFailure
	}
	return exitOK
}
