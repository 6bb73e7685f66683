package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/jobs"
	"github.com/kickagent/kickagent/internal/kick"
	"github.com/kickagent/kickagent/internal/sdnotify"
)

// Settings tune the loop.
type Settings struct {
	Interval time.Duration
	// IdleInterval is the longest gap between dumps while the rules
	// select nothing to kick (schedule.go); at most Interval: a fixed one.
	IdleInterval       time.Duration
	DryRun             bool
	MaxKicksPerCycle   int
	BreakerFraction    float64
	BreakerMinSessions int
	RepeatThreshold    int
}

// DefaultIdleInterval is the longest gap between dumps while nothing is
// selected (Settings.IdleInterval).
const DefaultIdleInterval = time.Minute

// Defaults fills zero settings with the documented defaults.
func (s *Settings) Defaults() {
	if s.Interval <= 0 {
		s.Interval = 5 * time.Second
	}
	if s.IdleInterval == 0 {
		s.IdleInterval = DefaultIdleInterval
	}
	s.IdleInterval = max(s.IdleInterval, s.Interval)
	if s.MaxKicksPerCycle <= 0 {
		s.MaxKicksPerCycle = 100
	}
	if s.BreakerFraction <= 0 {
		s.BreakerFraction = 0.5
	}
	if s.BreakerMinSessions <= 0 {
		s.BreakerMinSessions = 20
	}
	if s.RepeatThreshold <= 0 {
		s.RepeatThreshold = 3
	}
}

// SessionSource takes anvil snapshots. each, if not nil, is called with
// every session in order while the dump arrives (anvil.Conn.DumpEach).
type SessionSource interface {
	Dump(ctx context.Context, each func(i int, s *anvil.Session)) (*anvil.Snapshot, error)
}

// Kicker kicks the sessions of snap that selected names.
type Kicker interface {
	Kick(ctx context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool) ([]kick.Result, error)
}

// Blocks are the brute-force blocks the cycles enforce (the auth policy
// listener's, authpolicy.Server).
type Blocks interface {
	// Blocked reports the block covering an IP; nil when none is held.
	Blocked() func(ip netip.Addr) (engine.Block, bool)
	// Expire ends the blocks that are over.
	Expire()
}

// Loader builds a complete new ruleset.
type Loader func(ctx context.Context) (*engine.Ruleset, error)

// KeepLoader builds a complete new ruleset given the active one (nil at
// startup), from which a broken drop-in file's last good version is kept
// (engine.LoadKeeping).
type KeepLoader func(ctx context.Context, prev *engine.Ruleset) (*engine.Ruleset, error)

// Agent is the loop. Create it with New; run it with Run.
type Agent struct {
	set     Settings
	src     SessionSource
	kicker  Kicker
	load    Loader
	keep    KeepLoader
	jobs    jobs.Dir
	audit   *audit.Log
	m       *Metrics
	log     *slog.Logger
	now     func() time.Time
	notify  *sdnotify.Notifier
	rules   atomic.Pointer[engine.Ruleset]
	healthy atomic.Int64 // unix nanos of the last completed cycle
	policy  policyHealth // a failing Rego policy (policyfail.go)

	st    state // owned by the loop goroutine
	sched pacer // owned by the loop goroutine
	// anvilCPU reads the CPU time of anvil, to report what each dump costs
	// Dovecot (anvilcpu.go).
	anvilCPU anvilCPU
	prep     *engine.Prepared // the cycle's per-session work done during the dump

	store *stateStore // nil: reset state in memory only

	blocks Blocks        // nil: no auth policy listener
	wake   chan struct{} // Wake: a cycle now
	proto  atomic.Int32  // anvil.Protocol of the last snapshot (0: none yet)
	// breakerOpen mirrors st.breaker.open for other goroutines (the auth
	// policy listener refuses nothing while it is open).
	breakerOpen atomic.Bool
}

// Deps are what New wires together.
type Deps struct {
	Source SessionSource
	Kicker Kicker
	Load   Loader
	// LoadKeeping, when set, is used instead of Load.
	LoadKeeping KeepLoader
	Audit       *audit.Log // nil: no audit file
	Metrics     *Metrics
	Logger      *slog.Logger
	Now         func() time.Time // nil: time.Now
	Notify      *sdnotify.Notifier
	// Jobs is the drop-in directory whose finished job files the agent
	// deletes, and the other rule sources it must never delete; zero: no
	// drop-in directory, nothing is deleted.
	Jobs jobs.Dir
	// StateDir keeps the reset state across restarts (persist.go; "": in
	// memory only). StateAnvil names the anvil socket the state is about.
	StateDir, StateAnvil string
	// Blocks, if set, are brute-force blocks whose sessions are kicked.
	Blocks Blocks
	// AnvilSocket, if set, is the socket of the anvil whose CPU time per
	// dump is reported (kickagent_anvil_dump_cpu_seconds).
	AnvilSocket string
}

// New returns an agent; it does not load rules yet.
func New(set Settings, d Deps) *Agent {
	set.Defaults()
	a := &Agent{set: set, src: d.Source, kicker: d.Kicker, load: d.Load, keep: d.LoadKeeping, jobs: d.Jobs, audit: d.Audit,
		m: d.Metrics, log: d.Logger, now: d.Now, notify: d.Notify, blocks: d.Blocks, wake: make(chan struct{}, 1)}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.st.init()
	a.sched = newPacer(set.Interval, set.IdleInterval)
	a.anvilCPU.socket = d.AnvilSocket
	if a.m != nil {
		a.m.interval.Set(set.Interval.Seconds())
		a.m.pace.idle.Set(set.IdleInterval.Seconds())
	}
	if d.StateDir != "" {
		var p *persisted
		a.store, p = openStateStore(d.StateDir, d.StateAnvil, a.log)
		if p != nil {
			a.st.restore(p, a.now(), a.log)
		}
	}
	return a
}

// Close releases the state directory; the agent must not run after.
func (a *Agent) Close() error { return a.store.Close() }

// Rules returns the active ruleset.
func (a *Agent) Rules() *engine.Ruleset { return a.rules.Load() }

// Protocol is the Dovecot generation of the last snapshot (2.4 before
// the first).
func (a *Agent) Protocol() anvil.Protocol {
	if p := anvil.Protocol(a.proto.Load()); p != 0 {
		return p
	}
	return anvil.Proto24
}

// BreakerOpen reports whether the circuit breaker holds the kicks: the
// rules in force would kick too many sessions and are presumed wrong.
func (a *Agent) BreakerOpen() bool { return a.breakerOpen.Load() }

// Wake asks for a cycle now (a brute-force block started: its client's
// sessions are kicked at once, not at the next tick).
func (a *Agent) Wake() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Healthy reports whether a cycle completed within three intervals.
func (a *Agent) Healthy() bool {
	last := a.healthy.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < 3*a.set.Interval
}

// ErrNoRules is returned by Run when the first load fails: an agent with
// no valid rules must not start.
var ErrNoRules = errors.New("no valid rules")

// Run loads the rules and runs cycles until ctx ends. A value on reload
// (SIGHUP, file watcher) reloads the rules; once=true runs one cycle and
// returns.
//
// A reload loads and compiles on its own goroutine while cycles go on with
// the active rules (a big rules file or policy takes seconds); the loop
// swaps the result in when it is done. Reload requests meanwhile are
// folded into one more load after it.
func (a *Agent) Run(ctx context.Context, reload <-chan struct{}, once bool) error {
	rs, err := a.loadRules(ctx, nil)
	if err != nil {
		a.m.reloadOK.Set(0)
		a.m.reloads.WithLabelValues("error").Inc()
		return fmt.Errorf("%w: %v", ErrNoRules, err)
	}
	a.swap(rs)
	a.log.Info("rules loaded", "rev", rs.Rev(), "yaml_rules", rs.RuleCount(), "policy", rs.HasPolicy())
	if once {
		return a.cycle(ctx)
	}
	ready := false
	t := time.NewTicker(a.set.Interval)
	defer t.Stop()
	var watchdog <-chan time.Time
	if wd := sdnotify.WatchdogInterval(); wd > 0 {
		wt := time.NewTicker(wd)
		defer wt.Stop()
		watchdog = wt.C
	}
	runCycle := func() {
		if err := a.cycle(ctx); err == nil && !ready {
			ready = true
			_ = a.notify.Send("READY=1\nSTATUS=" + a.st.status)
		} else if ready {
			_ = a.notify.Send("STATUS=" + a.st.status)
		}
	}
	type result struct {
		rs  *engine.Ruleset
		err error
	}
	loaded := make(chan result, 1) // buffered: a load ending after Run does not block
	loading, again := false, false
	startLoad := func() {
		if loading {
			again = true
			return
		}
		loading = true
		_ = a.notify.Reloading()
		prev := a.rules.Load() // only this goroutine swaps
		go func() {
			rs, err := a.loadRules(ctx, prev)
			loaded <- result{rs, err}
		}()
	}
	runCycle()
	for {
		select {
		case <-ctx.Done():
			_ = a.notify.Send("STOPPING=1")
			return a.audit.Flush()
		case <-t.C:
			a.tick(runCycle)
		case <-a.wake:
			a.sched.wake()
			runCycle()
			t.Reset(a.set.Interval)
		case <-watchdog:
			// Pinged only while cycles complete: a stuck loop gets restarted.
			if a.Healthy() {
				_ = a.notify.Send("WATCHDOG=1")
			}
		case <-reload:
			startLoad()
		case r := <-loaded:
			loading = false
			changed := a.apply(r.rs, r.err)
			_ = a.notify.Send("READY=1")
			if changed {
				// A new block takes effect now, not at the next tick.
				a.sched.wake()
				runCycle()
				t.Reset(a.set.Interval)
			}
			if again {
				again = false
				startLoad()
			}
		}
	}
}

// tick runs the cycle when a dump is due (schedule.go). A tick without
// one still counts as a completed cycle for /healthz, the watchdog and
// kickagent_last_successful_cycle_timestamp_seconds: the loop is alive
// and nothing it enforces needed a snapshot.
func (a *Agent) tick(run func()) {
	now := a.now()
	held := a.blocks != nil && (a.blocks.Blocked() != nil || blockedUser(a.blocks) != nil)
	due, why := a.sched.due(now, a.rules.Load().Demand(a.sched.last, now), held)
	if due {
		run()
		return
	}
	a.m.pace.skipped.WithLabelValues(why).Inc()
	a.healthy.Store(time.Now().UnixNano())
	a.m.lastCycleTime.Set(float64(now.Unix()))
}

// Step runs one cycle with the active rules, loading them first when none
// are active. It is for benchmarks (bench/cmd/cycle), which time cycles one
// by one; the agent itself runs cycles with Run.
func (a *Agent) Step(ctx context.Context) error {
	if a.rules.Load() == nil {
		rs, err := a.loadRules(ctx, nil)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNoRules, err)
		}
		a.swap(rs)
	}
	return a.cycle(ctx)
}

// loadRules builds a new ruleset with the keeping loader when there is one.
func (a *Agent) loadRules(ctx context.Context, prev *engine.Ruleset) (*engine.Ruleset, error) {
	if a.keep != nil {
		return a.keep(ctx, prev)
	}
	return a.load(ctx)
}

// Reload builds a new ruleset and swaps it in when it is valid and
// different. It reports whether the active rules changed.
func (a *Agent) Reload(ctx context.Context) bool {
	rs, err := a.loadRules(ctx, a.rules.Load())
	return a.apply(rs, err)
}

// apply swaps in rs, the result of a load, when it is valid and
// different, and reports whether the active rules changed.
func (a *Agent) apply(rs *engine.Ruleset, err error) bool {
	if err != nil {
		a.m.reloadOK.Set(0)
		a.m.reloads.WithLabelValues("error").Inc()
		a.log.Error("reload failed; the previous rules stay active", "err", err, "active_rev", a.rules.Load().Rev())
		return false
	}
	cur := a.rules.Load()
	if cur != nil && cur.Rev() == rs.Rev() {
		a.m.reloadOK.Set(okGauge(rs))
		a.m.reloads.WithLabelValues("unchanged").Inc()
		a.log.Debug("reload: rules unchanged", "rev", rs.Rev())
		return false
	}
	if err := engine.Replaces(cur, rs); err != nil {
		// Truncated or half-written: the same "keep the last good" path
		// as a broken file.
		a.m.reloadOK.Set(0)
		a.m.reloads.WithLabelValues("error").Inc()
		a.log.Error("reload refused; the previous rules stay active", "err", err, "active_rev", cur.Rev(), "rev", rs.Rev())
		return false
	}
	if users, nets := engine.AllowRemoved(cur, rs); len(users)+len(nets) > 0 {
		// Legitimate when someone lifts a protection; also what a file
		// caught mid-write looks like. Either way it must be seen.
		a.m.allowRemoved.WithLabelValues("users").Add(float64(len(users)))
		a.m.allowRemoved.WithLabelValues("networks").Add(float64(len(nets)))
		a.log.Warn("reload removes allow list entries: these sessions are no longer protected",
			"removed_users", users, "removed_networks", nets, "active_rev", cur.Rev(), "rev", rs.Rev())
	}
	a.swap(rs)
	if len(rs.Rejected()) > 0 {
		a.m.reloads.WithLabelValues("partial").Inc()
	} else {
		a.m.reloads.WithLabelValues("ok").Inc()
	}
	a.log.Info("rules reloaded", "rev", rs.Rev(), "yaml_rules", rs.RuleCount(), "policy", rs.HasPolicy())
	return true
}

// okGauge is kickagent_config_last_reload_successful for rs: 0 while a
// drop-in file with errors is left out or held at its last good version.
func okGauge(rs *engine.Ruleset) float64 {
	if len(rs.Rejected()) > 0 {
		return 0
	}
	return 1
}

// logRejected says, loudly, which drop-in files rs does not load as they
// are on disk and what the agent does instead.
func (a *Agent) logRejected(rs *engine.Ruleset) {
	a.m.rejectedFiles.Set(float64(len(rs.Rejected())))
	if len(rs.Rejected()) == 0 {
		return
	}
	a.log.Error("reload failed for drop-in files: each is left out, or kept at its last good version (kept); the other rules apply",
		"err", rs.Rejected(), "kept", rs.Kept(), "rev", rs.Rev())
}

func (a *Agent) swap(rs *engine.Ruleset) {
	if why := rs.PolicyVolatile(); why != "" {
		a.log.Warn("the Rego policy is evaluated for every session every cycle (no decision cache)", "why", why)
	}
	a.rules.Store(rs)
	a.m.forgetRules(rs)
	a.logRejected(rs)
	a.m.reloadOK.Set(okGauge(rs))
	a.m.reloadTime.Set(float64(a.now().Unix()))
	a.m.rulesLoaded.Set(float64(rs.RuleCount()))
	a.m.setRulesInfo(rs.Rev())
	if rs.HasPolicy() {
		a.m.policyLoaded.Set(1)
	} else {
		a.m.policyLoaded.Set(0)
	}
}
