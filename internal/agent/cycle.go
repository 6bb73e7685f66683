package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/kick"
	"github.com/kickagent/kickagent/internal/snapshot"
)

// cycle is one dump, one evaluation, and the kicks. It returns an error
// only when the snapshot or the evaluation failed.
func (a *Agent) cycle(ctx context.Context) error {
	start := time.Now()
	now := a.now()
	// The whole cycle, kicks included, ends before the next tick. A stop
	// (SIGTERM) does not cut it short: the kick in flight is finished and
	// audited, and Run returns after the cycle.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.set.Interval*9/10)
	defer cancel()
	defer func() { a.m.cycleDuration.Observe(time.Since(start).Seconds()) }()
	defer a.flushAudit()
	// Until the cycle shows it: the dump selected sessions to kick (or
	// failed), so the next tick takes one too (schedule.go).
	busy, dumped := true, 0
	defer func() {
		a.sched.dumped(now, dumped, busy)
		a.m.pace.gap.Set(a.sched.gap.Seconds())
	}()

	// Per-session work that needs only the session is done while the dump
	// arrives, in time otherwise spent waiting for anvil: the first-seen
	// lookups and the rules' cache keys (a reload during the dump just
	// leaves the keys unused).
	a.prep = a.rules.Load().Prepare(a.prep)
	cpu0, cpuOK := a.anvilCPU.read()
	snap, err := a.src.Dump(ctx, func(i int, s *anvil.Session) {
		a.st.seen.prepare(i, s)
		a.prep.Add(i, s)
	})
	if cpu1, ok := a.anvilCPU.read(); ok && cpuOK && err == nil {
		a.m.pace.anvilCPU.Observe((cpu1 - cpu0).Seconds())
	}
	if err != nil {
		a.m.anvilErrors.Inc()
		a.m.cycles.WithLabelValues("error").Inc()
		a.log.Warn("anvil snapshot failed; retrying next cycle", "err", err)
		a.st.status = "anvil unreachable: " + err.Error()
		return err
	}
	dumped = len(snap.Sessions)
	a.badLines(snap.BadLines)
	rs := a.rules.Load()
	a.st.observe(snap.Sessions, now)
	a.auditLeftAfterKick(now)
	a.m.sessions.Reset()
	for _, c := range countServices(snap.Sessions) {
		a.m.sessions.WithLabelValues(c.service).Set(float64(c.n))
	}
	a.m.expiredRules.Set(float64(len(rs.Expired(now))))
	flushes := rs.ResetFlushes(now)
	for _, r := range []string{engine.CacheFlushed, engine.CacheFlushFailed, engine.CacheFlushSkipped, "unknown"} {
		a.m.resetFlushes.WithLabelValues(r).Set(float64(flushes[r]))
	}

	a.proto.Store(int32(snap.Protocol))
	var blocked func(netip.Addr) (engine.Block, bool)
	var byUser func(string) (engine.Block, bool)
	if a.blocks != nil {
		a.blocks.Expire()
		blocked, byUser = a.blocks.Blocked(), blockedUser(a.blocks)
	}
	decisions, err := rs.Evaluate(ctx, engine.Input{Snapshot: snap, Now: now, Prepared: a.prep,
		FirstSeen: a.st.seen.firstSeen, Old: a.st.keepOld, Blocked: blocked, BlockedUser: byUser,
		SnapshotAfter: func(t time.Time) (time.Time, bool) { return a.st.snapshotAfter(t, now) }})
	// A failing Rego policy is reported and the YAML decisions enforced.
	if err = a.policyOutcome(err, rs, now); err != nil {
		a.m.cycles.WithLabelValues("error").Inc()
		a.log.Error("rule evaluation failed", "err", err, "rev", rs.Rev())
		a.st.status = "evaluation failed: " + err.Error()
		return err
	}
	a.saveState()
	counts := a.st.decisionCounts
	defer clear(counts)
	var kicks []*engine.Decision
	for i := range decisions {
		d := &decisions[i]
		if a.set.DryRun && d.Action == engine.ActionKick {
			d.Action = engine.ActionDryRun
		}
		counts[ruleAction{d.Rule, d.Action}]++
		switch d.Action {
		case engine.ActionKick:
			if !kick.Kickable(d.Session) {
				// Reported once, not retried every cycle as a failure.
				a.report(d, audit.Skipped, snap, rs, now)
				continue
			}
			kicks = append(kicks, d)
			if _, ok := a.st.decidedAt[d.ID]; !ok {
				a.st.decidedAt[strings.Clone(d.ID)] = now // see seenTable.observe
			}
		case engine.ActionDryRun:
			a.report(d, audit.DryRun, snap, rs, now)
		case engine.ActionAllowed:
			a.report(d, audit.Allowed, snap, rs, now)
		}
	}
	a.m.setDecisions(counts)
	a.endJobs(rs, decisions, now)
	busy = len(kicks) > 0 // the breaker holding them too: it is watched every tick
	kicked := 0
	if a.breakerHolds(kicks, snap, rs) {
		// Drains mean to empty the server: the breaker does not judge them.
		var drains []*engine.Decision
		for _, d := range kicks {
			if d.Drain {
				drains = append(drains, d)
				continue
			}
			a.report(d, audit.Breaker, snap, rs, now)
		}
		kicks = drains
	}
	kicked = a.enforce(ctx, kicks, snap, rs, now)
	a.st.pruneKicks(now)
	a.m.cycles.WithLabelValues("ok").Inc()
	a.healthy.Store(time.Now().UnixNano())
	a.m.lastCycleTime.Set(float64(now.Unix()))
	a.st.status = fmt.Sprintf("rules %s: %d sessions, %d to kick, %d kicked%s", rs.Rev(), len(snap.Sessions), len(kicks), kicked, dryRunNote(a.set.DryRun)+a.policy.note())
	return nil
}

// badLines counts the malformed lines anvil sent, which the dump skipped
// (the other sessions are used), and logs each kind of problem once: a
// line that stays in anvil's table would otherwise log every cycle. The
// confirming dumps of kicks are not counted: their lines are the cycle's.
func (a *Agent) badLines(bad anvil.BadLines) {
	for _, p := range bad.Problems {
		a.m.anvilBadLines.WithLabelValues(p.Kind).Add(float64(p.Count))
		if a.st.badLogged[p.Kind] {
			continue
		}
		a.st.badLogged[p.Kind] = true
		a.log.Warn("skipped malformed anvil dump lines; the other sessions are used (logged once per reason)",
			"reason", p.Reason, "kind", p.Kind, "lines", p.Count, "line", p.Line, "sample", p.Text)
	}
}

type serviceCount struct {
	service string
	n       int
}

// countServices counts sessions by service. A linear search: there are a
// handful of services, and it is cheaper than hashing 100,000 names. The
// names are copies: a metric label kept until the next cycle must not keep
// this dump's buffer alive into the next dump.
func countServices(sessions []anvil.Session) []serviceCount {
	var c []serviceCount
	last := -1
	for i := range sessions {
		svc := sessions[i].Service
		if last >= 0 && c[last].service == svc {
			c[last].n++
			continue
		}
		last = slices.IndexFunc(c, func(x serviceCount) bool { return x.service == svc })
		if last < 0 {
			c = append(c, serviceCount{strings.Clone(svc), 0})
			last = len(c) - 1
		}
		c[last].n++
	}
	return c
}

func dryRunNote(dry bool) string {
	if dry {
		return " (dry run)"
	}
	return ""
}

// breakerHolds trips, holds or resets the circuit breaker. A ruleset that
// would kick more than the set fraction of all sessions is presumed wrong:
// nothing is kicked until the rules change.
func (a *Agent) breakerHolds(kicks []*engine.Decision, snap *anvil.Snapshot, rs *engine.Ruleset) bool {
	b := &a.st.breaker
	if b.open && b.rev != rs.Rev() {
		b.open = false
		a.log.Info("circuit breaker reset: the rules changed", "rev", rs.Rev())
	}
	n := len(snap.Sessions)
	judged := 0
	for _, d := range kicks {
		if !d.Drain {
			judged++
		}
	}
	if !b.open && n >= a.set.BreakerMinSessions && float64(judged) > a.set.BreakerFraction*float64(n) {
		b.open, b.rev = true, rs.Rev()
		a.log.Error("CIRCUIT BREAKER OPEN: the rules would kick too many sessions; kicking nothing until the rules change",
			"would_kick", judged, "sessions", n, "fraction", a.set.BreakerFraction, "rev", rs.Rev())
	}
	if b.open {
		a.m.breakerOpen.Set(1)
	} else {
		a.m.breakerOpen.Set(0)
	}
	a.breakerOpen.Store(b.open)
	return b.open
}

// enforce kicks, oldest decisions first, within the per-rule and
// per-cycle caps; the rest wait for the next cycle.
func (a *Agent) enforce(ctx context.Context, kicks []*engine.Decision, snap *anvil.Snapshot, rs *engine.Ruleset, now time.Time) int {
	slices.SortStableFunc(kicks, func(x, y *engine.Decision) int {
		return a.st.decidedAt[x.ID].Compare(a.st.decidedAt[y.ID])
	})
	perRule := map[string]int{}
	chosen := map[*anvil.Session]*engine.Decision{}
	capped := 0 // kicks counted against the global cap (drains are not)
	a.st.refill(kicks, now, a.set.Interval)
	units := kickUnits(kicks, snap)
	for _, d := range kicks {
		if chosen[d.Session] != nil {
			continue // taken with its kick unit
		}
		if a.st.backingOff(d.ID, d.Rule, now, a.set.Interval) {
			continue // its last kick did not close it: tried again later
		}
		group := units.of(d)
		n := len(group)
		if (!d.Drain && capped+n > a.set.MaxKicksPerCycle) ||
			(d.MaxKicksPerCycle > 0 && perRule[d.Rule]+n > d.MaxKicksPerCycle) ||
			(d.Rate > 0 && !a.st.take(d.Rule, n)) {
			a.report(d, audit.HeldBack, snap, rs, now)
			continue
		}
		for _, g := range group {
			perRule[g.Rule]++
			if !g.Drain {
				capped++
			}
			chosen[g.Session] = g
		}
	}
	if len(chosen) == 0 {
		return 0
	}
	results, err := a.kick(ctx, snap, chosen, rs, now)
	if err != nil {
		a.log.Warn("kick interrupted", "err", err)
	}
	kicked := 0
	for i := range results {
		r := &results[i]
		d := chosen[r.Session]
		if d == nil {
			continue // not ours: collateral is never forced by the agent
		}
		if r.Outcome != kick.RefusedCollateral && r.Outcome != kick.Skipped && r.Outcome != kick.DryRun {
			// A kick went out: its client's next login is a new
			// session, even from the same address (seenTable.inherit).
			a.st.seen.markSent(d.ID)
		}
		res := resultOf(r.Outcome)
		rec := a.record(d, res, snap, rs, now)
		rec.Method = r.Method
		if r.Err != nil {
			rec.Error = r.Err.Error()
		}
		if res == audit.Kicked {
			kicked++
			rec.Repeat = a.st.kicked(d.Session.User, now)
			if rec.Repeat >= a.set.RepeatThreshold {
				a.m.countRepeat(d)
				a.log.Warn("user kicked repeatedly: the client reconnects with valid credentials; block it in the passdb or flush the auth cache",
					"user", d.Session.User, "kicks_last_hour", rec.Repeat, "rule", d.Rule)
			}
			a.log.Info("session kicked", "rule", d.Rule, "user", d.Session.User, "ip", addr(d.Session), "service", d.Session.Service, "pid", d.Session.PID)
			a.st.kickedNow(d.ID)
		} else if !a.st.notKicked(d.ID, d.Rule, res, now, a.set.Interval, sentRecord(rec, r)) {
			// Audited and logged when it first happened; tried again
			// with a backoff, not every cycle.
			a.m.kicks.WithLabelValues(d.Rule, res).Inc()
			a.log.Debug("session still not kicked; retrying with a backoff", "result", res, "rule", d.Rule, "user", d.Session.User, "err", rec.Error)
			continue
		} else {
			a.log.Warn("session not kicked; retrying with a backoff (logged once per session and result)", "result", res, "rule", d.Rule, "user", d.Session.User, "err", rec.Error)
		}
		a.m.countKick(d, res)
		a.writeAudit(rec)
	}
	a.flushAudit() // the outcomes, now: the intents are on disk already
	return kicked
}

// kick kicks the chosen sessions. Before any kick goes out, the intent to
// kick each session is audited and synced to disk: a crash between a
// kick and its outcome record leaves the intent in the trail. A session
// retried after a kick that did not close it had its intent audited at
// the first try.
func (a *Agent) kick(ctx context.Context, snap *anvil.Snapshot, chosen map[*anvil.Session]*engine.Decision, rs *engine.Ruleset, now time.Time) ([]kick.Result, error) {
	var announced []*anvil.Session
	intent := func(sessions []*anvil.Session) {
		announced = sessions
		wrote := false
		for _, s := range sessions {
			d := chosen[s]
			if d == nil || a.st.retrying(d.ID, d.Rule) {
				continue
			}
			a.writeAudit(a.record(d, audit.Intent, snap, rs, now))
			wrote = true
		}
		if wrote {
			a.syncAudit()
		}
	}
	selected := func(s *anvil.Session) bool { return chosen[s] != nil }
	var results []kick.Result
	var err error
	if k, ok := a.kicker.(intentKicker); ok {
		results, err = k.KickIntent(ctx, snap, selected, intent)
	} else {
		all := make([]*anvil.Session, 0, len(chosen))
		for i := range snap.Sessions {
			if s := &snap.Sessions[i]; chosen[s] != nil {
				all = append(all, s)
			}
		}
		intent(all)
		results, err = a.kicker.Kick(ctx, snap, selected)
	}
	if err != nil {
		// Anvil failed mid-kick: the sessions announced that got no
		// result (their kick may or may not have gone out) fail, so that
		// every intent has an outcome unless the agent died.
		got := make(map[*anvil.Session]bool, len(results))
		for i := range results {
			got[results[i].Session] = true
		}
		for _, s := range announced {
			if !got[s] {
				results = append(results, kick.Result{Session: s, Outcome: kick.Failed, Err: fmt.Errorf("not confirmed: %w", err)})
			}
		}
	}
	return results, err
}

// unitIndex groups the sessions of paced rules by what one Dovecot kick
// closes together (as kick.NewPlan does: a process on 2.3, a user within a
// process on 2.4).
type unitIndex struct {
	proto  anvil.Protocol
	units  map[unitKey][]*anvil.Session
	choice map[*anvil.Session]*engine.Decision
}

type unitKey struct {
	pid  int64
	user string
}

func kickUnits(kicks []*engine.Decision, snap *anvil.Snapshot) *unitIndex {
	u := &unitIndex{proto: snap.Protocol}
	if !slices.ContainsFunc(kicks, func(d *engine.Decision) bool { return d.Rate > 0 }) {
		return u
	}
	u.units = map[unitKey][]*anvil.Session{}
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		u.units[u.key(s)] = append(u.units[u.key(s)], s)
	}
	u.choice = make(map[*anvil.Session]*engine.Decision, len(kicks))
	for _, d := range kicks {
		u.choice[d.Session] = d
	}
	return u
}

func (u *unitIndex) key(s *anvil.Session) unitKey {
	if u.proto == anvil.Proto23 {
		return unitKey{pid: s.PID}
	}
	return unitKey{s.PID, s.User}
}

// of returns the decisions a kick of d's session is taken with. A paced
// rule that selects every session of a kick unit takes the unit whole:
// kicking one of its sessions alone would close the others too, so the
// kick would be refused as collateral on every cycle and a drain through a
// login process that serves many connections of one user never ended.
func (u *unitIndex) of(d *engine.Decision) []*engine.Decision {
	if d.Rate <= 0 || u.units == nil {
		return []*engine.Decision{d}
	}
	mates := u.units[u.key(d.Session)]
	group := make([]*engine.Decision, 0, len(mates))
	for _, s := range mates {
		m := u.choice[s]
		if m == nil || m.Rule != d.Rule {
			return []*engine.Decision{d} // real collateral: kick.Run refuses it
		}
		group = append(group, m)
	}
	return group
}

// sentRecord returns a copy of rec, owning its strings, when r's kick went
// out but was not seen to work; nil otherwise.
func sentRecord(rec *audit.Record, r *kick.Result) *audit.Record {
	if r.Outcome != kick.StillConnected && !errors.Is(r.Err, kick.ErrUnconfirmed) {
		return nil
	}
	c := *rec
	// Strings of the dump's buffer must not keep it alive across cycles.
	c.Rule, c.Engine, c.Reason, c.Rev = strings.Clone(c.Rule), strings.Clone(c.Engine), strings.Clone(c.Reason), strings.Clone(c.Rev)
	c.User, c.Service, c.IP, c.ConnGUID, c.DestIP = strings.Clone(c.User), strings.Clone(c.Service), strings.Clone(c.IP), strings.Clone(c.ConnGUID), strings.Clone(c.DestIP)
	alt := make(map[string]string, len(c.Alt))
	for k, v := range c.Alt {
		alt[strings.Clone(k)] = strings.Clone(v)
	}
	c.Alt, c.Error, c.Repeat = alt, "", 0
	return &c
}

// auditLeftAfterKick audits as kicked the sessions whose kick went out but
// was not seen to work in its cycle (the confirming dump did not fit the
// deadline, or still listed them) and that this snapshot no longer lists:
// the intent line then has the outcome it earned.
func (a *Agent) auditLeftAfterKick(now time.Time) {
	for _, rec := range a.st.leftAfterKick {
		rec.Time, rec.Result, rec.Note = now.UTC(), audit.Kicked, "left after the kick"
		rec.Repeat = a.st.kicked(rec.User, now)
		a.m.countKick(&engine.Decision{Rule: rec.Rule, Engine: engine.Engine(rec.Engine)}, audit.Kicked)
		a.log.Info("session kicked", "rule", rec.Rule, "user", rec.User, "ip", rec.IP, "service", rec.Service, "pid", rec.PID, "note", rec.Note)
		a.writeAudit(rec)
	}
	clear(a.st.leftAfterKick)
	a.st.leftAfterKick = a.st.leftAfterKick[:0]
}

func resultOf(o kick.Outcome) string {
	switch o {
	case kick.Kicked:
		return audit.Kicked
	case kick.StillConnected:
		return audit.StillConnected
	case kick.RefusedCollateral:
		return audit.RefusedCollateral
	}
	return audit.Failed
}

// report audits a decision that is not a kick, once per session and result.
func (a *Agent) report(d *engine.Decision, result string, snap *anvil.Snapshot, rs *engine.Ruleset, now time.Time) {
	i := -1
	if d.Index >= 0 && d.Index < len(snap.Sessions) && &snap.Sessions[d.Index] == d.Session {
		i = d.Index // the decision is about this snapshot's session i
	}
	if !a.st.onceAt(i, d.ID, result, d.Rule) {
		return
	}
	a.m.countKick(d, result)
	a.writeAudit(a.record(d, result, snap, rs, now))
}

func (a *Agent) record(d *engine.Decision, result string, snap *anvil.Snapshot, rs *engine.Ruleset, now time.Time) *audit.Record {
	return &audit.Record{Time: now.UTC(), Result: result, Rule: d.Rule, Engine: string(d.Engine), Reason: d.Reason,
		Rev: rs.Rev(), Dovecot: snap.Protocol.Dovecot(), Record: snapshot.RecordOf(d.Session)}
}

func (a *Agent) writeAudit(r *audit.Record) { a.auditErr(a.audit.Write(r)) }

// flushAudit writes the queued records, those a failed write left
// included (see audit.Log).
func (a *Agent) flushAudit() { a.auditErr(a.audit.Flush()) }

func (a *Agent) syncAudit() { a.auditErr(a.audit.Sync()) }

// auditLogEvery limits the audit failure log: a full disk fails every
// write of every cycle.
const auditLogEvery = time.Minute

// auditErr counts an audit failure and logs it at most once per
// auditLogEvery; the first success after failures is logged too.
func (a *Agent) auditErr(err error) {
	st := &a.st
	if err == nil {
		if st.auditFailing && a.audit.Err() == nil {
			st.auditFailing = false
			a.log.Info("audit log writes recovered; the queued records are written", "failures_not_logged", st.auditSuppressed)
			st.auditSuppressed = 0
		}
		return
	}
	a.m.auditErrors.Inc()
	if errors.Is(err, audit.ErrDropped) {
		a.m.auditDropped.Inc()
	}
	now := a.now()
	if st.auditFailing && now.Sub(st.auditLogged) < auditLogEvery {
		st.auditSuppressed++
		return
	}
	st.auditFailing = true
	a.log.Error("audit log write failed; records are queued and retried every cycle (logged at most once a minute)",
		"err", err, "queued", a.audit.Pending(), "failures_not_logged", st.auditSuppressed)
	st.auditLogged, st.auditSuppressed = now, 0
}

func addr(s *anvil.Session) string {
	if !s.IP.IsValid() {
		return ""
	}
	return s.IP.String()
}
