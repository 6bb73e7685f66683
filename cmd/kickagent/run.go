package main

import (
	"cmp"
	"context"
	"errors"

	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kickagent/kickagent/internal/agent"
	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/authpolicy"
	"github.com/kickagent/kickagent/internal/bundle"
	"github.com/kickagent/kickagent/internal/config"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/jobs"
	"github.com/kickagent/kickagent/internal/kick"
	"github.com/kickagent/kickagent/internal/sdnotify"
)

const defaultMetrics = "127.0.0.1:9868"

// runSettings are config file values with flags laid over them.
type runSettings struct {
	cfg      config.Config
	once     bool
	logLevel slog.Level
	logJSON  bool
}

func parseRun(args []string, stderr io.Writer) (*runSettings, int, bool) {
	fs := newFlagSet("run", runUsage, stderr)
	cfgPath := fs.String("c", "", "config file")
	// Flags left out stay zero and keep the config file's value; a flag
	// given is checked as the config file is (a bad one is a usage error).
	var f config.Config
	fs.Var(checked(&f.AnvilSocket, parseString, nil), "a", "anvil socket")
	var rules, policies listFlag
	fs.Var(&rules, "rules", "rules file or directory")
	fs.Var(&policies, "policy", "policy directory")
	fs.Var(checked(&f.RulesDir, parseString, nil), "rules-dir", "drop-in directory")
	fs.Var(checked(&f.Interval.Duration, config.ParseDuration, config.CheckInterval), "interval", "cycle interval")
	fs.Var(checked(&f.IdleInterval.Duration, config.ParseDuration, config.CheckInterval), "idle-interval", "longest gap between snapshots while idle")
	fs.Var(checked(&f.Metrics, parseString, config.CheckMetricsListen), "metrics", "metrics listen address")
	fs.Var(checked(&f.AuditLog, parseString, nil), "audit-log", "audit log file")
	fs.Var(checked(&f.StateDir, parseString, config.CheckStateDir), "state-dir", "state directory")
	fs.Var(checked(&f.AuthPolicy.Listen, parseString, authpolicy.CheckListen), "auth-policy", "auth policy listen address")
	dryRun := fs.Bool("dry-run", false, "kick nothing")
	once := fs.Bool("once", false, "one cycle")
	fs.Var(checked(&f.Limits.MaxKicksPerCycle, parseInt, config.CheckMaxKicksPerCycle), "max-kicks-per-cycle", "cap")
	fs.Var(checked(&f.Limits.BreakerFraction, parseFloat, config.CheckBreakerFraction), "breaker-fraction", "breaker")
	level := fs.String("log-level", "info", "log level")
	logJSON := fs.Bool("log-json", false, "JSON logs")
	if code, ok := parseNoArgs(fs, args); !ok {
		return nil, code, false
	}
	rs := &runSettings{once: *once, logJSON: *logJSON}
	if err := rs.logLevel.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "kickagent run: --log-level: %v\n", err)
		return nil, exitUsage, false
	}
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			printErr(stderr, "run", err)
			return nil, exitConfig, false
		}
		rs.cfg = *c
	}
	c := &rs.cfg
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.AnvilSocket, f.AnvilSocket)
	set(&c.RulesDir, f.RulesDir)
	set(&c.Metrics, f.Metrics)
	set(&c.AuditLog, f.AuditLog)
	set(&c.StateDir, f.StateDir)
	set(&c.AuthPolicy.Listen, f.AuthPolicy.Listen)
	if c.StateDir == "" {
		c.StateDir = config.DefaultStateDir
	}
	c.Rules = append(c.Rules, rules...)
	c.Policies = append(c.Policies, policies...)
	if f.Interval.Duration != 0 {
		c.Interval = f.Interval
	}
	if f.IdleInterval.Duration != 0 {
		c.IdleInterval = f.IdleInterval
	}
	if *dryRun {
		c.DryRun = true
	}
	if f.Limits.MaxKicksPerCycle != 0 {
		c.Limits.MaxKicksPerCycle = f.Limits.MaxKicksPerCycle
	}
	if f.Limits.BreakerFraction != 0 {
		c.Limits.BreakerFraction = f.Limits.BreakerFraction
	}
	if len(c.Rules) == 0 && len(c.Policies) == 0 && c.RulesDir == "" {
		fmt.Fprintln(stderr, "kickagent run: no rules: give -c CONFIG, --rules, --rules-dir or --policy")
		return nil, exitUsage, false
	}
	if c.Metrics == "" {
		c.Metrics = defaultMetrics
	}
	return rs, exitOK, true
}

// stateDir is the agent's state directory, "" for off (memory only).
func stateDir(s string) string {
	if s == "off" {
		return ""
	}
	return s
}

// printErr prints a command's error. A config file's problems are printed
// one per line as file:line: message, as the rules' problems are.
func printErr(stderr io.Writer, cmd string, err error) {
	var es engine.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(stderr, e)
		}
		return
	}
	fmt.Fprintf(stderr, "kickagent %s: %v\n", cmd, err)
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	rs, code, ok := parseRun(args, stderr)
	if !ok {
		return code
	}
	c := &rs.cfg
	var h slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: rs.logLevel})
	if rs.logJSON {
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: rs.logLevel})
	}
	log := slog.New(h)
	if c.RulesDir != "" {
		// The drop-in directory exists from the start so that it is
		// watched before block/reset/drain write their first rule.
		if err := os.MkdirAll(c.RulesDir, 0o750); err != nil {
			log.Error("cannot create the drop-in directory", "dir", c.RulesDir, "err", err)
			return exitConfig
		}
	}
	var auditLog *audit.Log
	switch c.AuditLog {
	case "":
	case "-":
		auditLog = audit.New(stdout)
	default:
		l, err := audit.Open(c.AuditLog)
		if err != nil {
			log.Error("cannot open the audit log", "err", err)
			return exitConfig
		}
		auditLog = l
	}
	defer auditLog.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	build := currentBuild()
	reg.MustRegister(buildInfoGauge(build))
	metrics := agent.NewMetrics(reg)
	src := &agent.AnvilSource{Client: &anvil.Client{Path: c.AnvilSocket, Limits: c.Limits.Anvil()}}
	defer src.Close()
	interval := c.Interval.Duration
	if interval == 0 {
		interval = 5 * time.Second
	}
	// The drop-in directory is loaded even when missing (RuleSources would
	// skip it): a deleted rules.d then fails the reload, keeping its rules,
	// instead of silently dropping every block it held.
	ruleSources := slices.Clone(c.Rules)
	if c.RulesDir != "" {
		ruleSources = append(ruleSources, c.RulesDir)
	}
	local := func() engine.Sources { return engine.Sources{Rules: ruleSources, Policies: c.Policies} }
	var a *agent.Agent
	reload := make(chan struct{}, 1)
	var br *bundleRules
	if c.Bundle.URL != "" {
		var err error
		if br, err = newBundleRules(c, local, &a, reload, reg, log); err != nil {
			log.Error("bundle source", "err", err)
			return exitConfig
		}
	}
	sources := func() engine.Sources {
		s := local()
		s.Bundle = br.current()
		return s
	}
	var door *authpolicy.Server
	var parts []agent.Blocks
	if authPolicyOn(c) && !rs.once {
		door = newAuthPolicy(c, &a, auditLog, reg, log.With("component", "auth-policy"))
		parts = append(parts, door)
	}
	var cs *crowdsecBlocks
	if c.CrowdSec.URL != "" && !rs.once {
		var err error
		// a is set before the decisions are first pulled (cs.run below).
		if cs, err = newCrowdSec(&c.CrowdSec, func() { a.Wake() }, reg, log); err != nil {
			log.Error("CrowdSec decision source", "err", err)
			return exitConfig
		}
		parts = append(parts, cs)
		if door != nil {
			door.SetExternal(cs)
		}
	}
	blocks := agent.JoinBlocks(parts...)
	a = agent.New(agent.Settings{Interval: interval, IdleInterval: c.IdleInterval.Duration, DryRun: c.DryRun, MaxKicksPerCycle: c.Limits.MaxKicksPerCycle,
		BreakerFraction: c.Limits.BreakerFraction, BreakerMinSessions: c.Limits.BreakerMinSessions,
		RepeatThreshold: c.Limits.RepeatThreshold},
		agent.Deps{Source: src, Kicker: &agent.AnvilKicker{Conn: src.KickConn(), Signal: kick.ForSocket(c.AnvilSocket),
			Sockets: kick.KernelSockets{Proc: kick.ForSocket(c.AnvilSocket)}, Settle: min(2*time.Second, interval/3)},
			LoadKeeping: func(ctx context.Context, prev *engine.Ruleset) (*engine.Ruleset, error) {
				return engine.LoadKeeping(ctx, sources(), prev)
			},
			Jobs:        jobs.Dir{Path: c.RulesDir, Sources: engine.Sources{Rules: c.Rules, Policies: c.Policies}},
			AnvilSocket: cmp.Or(c.AnvilSocket, anvil.DefaultSocket),
			Audit:       auditLog, Metrics: metrics, Logger: log.With("component", "agent"), Notify: sdnotify.FromEnv(),
			StateDir: stateDir(c.StateDir), StateAnvil: c.AnvilSocket, Blocks: blocks})
	defer a.Close()

	if rs.once {
		if br != nil {
			if _, err := br.src.LoadPersisted(ctx); err != nil && !errors.Is(err, bundle.ErrNoPersisted) {
				log.Error("the persisted bundle is not usable", "err", err)
			}
		}
		if err := a.Run(ctx, nil, true); err != nil {
			log.Error("cycle failed", "err", err)
			if errors.Is(err, agent.ErrNoRules) {
				return exitConfig
			}
			return exitTempFail
		}
		return exitOK
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if c.Metrics != "off" {
		srv, err := serveMetrics(ctx, c.Metrics, reg, a, auditLog)
		if err != nil {
			log.Error("metrics listener", "err", err)
			return exitConfig
		}
		log.Info("metrics listening", "addr", srv)
	}
	if door != nil {
		addr, err := serveAuthPolicy(ctx, c.AuthPolicy.Listen, c.AuthPolicy.SocketGroup, door, log.With("component", "auth-policy"))
		if err != nil {
			log.Error("auth policy listener", "err", err)
			return exitConfig
		}
		log.Info("auth policy listening", "addr", addr)
	}
	if br != nil {
		br.start(ctx, log)
	}
	if cs != nil {
		cs.run(ctx)
	}
	localChanged := make(chan struct{}, 1) // SIGHUP or a watched file changed
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// After logrotate moved the audit log away (see
				// contrib/logrotate/kickagent).
				if err := auditLog.Reopen(); err != nil {
					log.Error("cannot reopen the audit log; writing to the old file", "err", err)
				}
				select {
				case localChanged <- struct{}{}:
				default:
				}
			}
		}
	}()
	watched := append(append([]string{}, c.Rules...), c.Policies...)
	if c.RulesDir != "" {
		watched = append(watched, c.RulesDir)
	}
	go func() {
		if err := agent.Watch(ctx, watched, 25*time.Millisecond, 30*time.Second, localChanged, log.With("component", "watch")); err != nil {
			log.Warn("file watching unavailable; reload with SIGHUP", "err", err)
		}
	}()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-localChanged:
			}
			select {
			case reload <- struct{}{}:
			default:
			}
			// A bundle refused for clashing with a local file (a rule
			// name both define) may load with the files as they are now.
			if br != nil {
				_, _ = br.src.Retry(ctx)
			}
		}
	}()
	log.Info("kickagent running", "anvil", cmp.Or(c.AnvilSocket, anvil.DefaultSocket), "interval", interval, "idle_interval", max(interval, cmp.Or(c.IdleInterval.Duration, agent.DefaultIdleInterval)), "dry_run", c.DryRun,
		"version", build.Version, "revision", build.Revision)
	if err := a.Run(ctx, reload, false); err != nil {
		log.Error("agent stopped", "err", err)
		if errors.Is(err, agent.ErrNoRules) {
			return exitConfig
		}
		return exitFailure
	}
	return exitOK
}

// serveMetrics serves /metrics and /healthz until ctx ends and returns the
// address it listens on.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, a *agent.Agent, auditLog *audit.Log) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Healthy() {
			http.Error(w, "no cycle completed recently", http.StatusServiceUnavailable)
			return
		}
		if err := auditLog.Err(); err != nil {
			// Kicks go on, but the trail is only in memory.
			http.Error(w, fmt.Sprintf("audit log not writable (%d records queued): %v", auditLog.Pending(), err), http.StatusServiceUnavailable)
			return
		}
		if msg := a.Degraded(); msg != "" {
			http.Error(w, msg, http.StatusServiceUnavailable) // the policy fails; YAML rules enforced
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), nil
}
