package agent

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/engine"
)

// Metrics are the agent's Prometheus metrics. Labels stay bounded (rule,
// result, service, action): never a user or an IP.
type Metrics struct {
	sessions       *prometheus.GaugeVec
	cycles         *prometheus.CounterVec
	cycleDuration  prometheus.Histogram
	anvilErrors    prometheus.Counter
	anvilBadLines  *prometheus.CounterVec
	decisions      *prometheus.GaugeVec
	kicks          *prometheus.CounterVec
	repeatKicks    *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	rejectedFiles  prometheus.Gauge // drop-ins not loaded as on disk (engine.LoadKeeping)
	rulesInfo      *prometheus.GaugeVec
	interval       prometheus.Gauge // for alerts on cycles near the interval
	allowRemoved   *prometheus.CounterVec
	reloadTime     prometheus.Gauge
	rulesLoaded    prometheus.Gauge
	policyLoaded   prometheus.Gauge
	breakerOpen    prometheus.Gauge
	lastCycleTime  prometheus.Gauge
	expiredRules   prometheus.Gauge
	resetFlushes   *prometheus.GaugeVec // active resets by what reset did with the auth cache
	drainRemaining *prometheus.GaugeVec
	auditErrors    prometheus.Counter
	auditDropped   prometheus.Counter
	policy         policyMetrics // policyfail.go
	pace           paceMetrics   // schedule.go

	// decisionGauges are the kickagent_decisions series of the last cycle,
	// kept so that a cycle sets them without looking labels up again.
	decisionGauges map[ruleAction]prometheus.Gauge
	// ruleSeries: the rule labels of the kicks_total and
	// repeat_kicks_total series, and which engines' decisions made them.
	ruleSeries map[string]engineSet
}

// engineSet is a set of engine.Engine values.
type engineSet uint8

const (
	yamlSeries engineSet = 1 << iota
	regoSeries
)

// countKick counts a decision acted on (kickagent_kicks_total).
func (m *Metrics) countKick(d *engine.Decision, result string) {
	m.kicks.WithLabelValues(d.Rule, result).Inc()
	m.noteRule(d)
}

// countRepeat counts a repeated kick (kickagent_repeat_kicks_total).
func (m *Metrics) countRepeat(d *engine.Decision) {
	m.repeatKicks.WithLabelValues(d.Rule).Inc()
	m.noteRule(d)
}

func (m *Metrics) noteRule(d *engine.Decision) {
	e := yamlSeries
	if d.Engine == engine.EngineRego {
		e = regoSeries
	}
	if m.ruleSeries == nil {
		m.ruleSeries = map[string]engineSet{}
	}
	if m.ruleSeries[d.Rule]&e == 0 {
		m.ruleSeries[strings.Clone(d.Rule)] |= e // kept across rulesets: see state.once
	}
}

// forgetRules deletes the rule-labelled series of the rules rs no longer
// has, so that rules that come and go (a fail2ban block per address) do
// not grow the metrics without bound. A Rego rule's series go when no
// policy is loaded: its rule names are the policy's output, not a list.
// (kickagent_decisions and kickagent_drain_remaining_sessions hold the
// last cycle only and lose such series by themselves.)
func (m *Metrics) forgetRules(rs *engine.Ruleset) {
	if len(m.ruleSeries) == 0 {
		return
	}
	names := make(map[string]bool, rs.RuleCount())
	for _, n := range rs.RuleNames() {
		names[n] = true
	}
	for rule, e := range m.ruleSeries {
		if (e&yamlSeries != 0 && names[rule]) || (e&regoSeries != 0 && rs.HasPolicy()) {
			continue
		}
		m.kicks.DeletePartialMatch(prometheus.Labels{"rule": rule})
		m.repeatKicks.DeleteLabelValues(rule)
		delete(m.ruleSeries, rule)
	}
}

type ruleAction struct {
	rule   string
	action engine.Action
}

// setDecisions sets kickagent_decisions to this cycle's counts and deletes
// the series of rules and actions that decided nothing.
func (m *Metrics) setDecisions(counts map[ruleAction]int) {
	if m.decisionGauges == nil {
		m.decisionGauges = map[ruleAction]prometheus.Gauge{}
	}
	for k, n := range counts {
		g := m.decisionGauges[k]
		if g == nil {
			k.rule = strings.Clone(k.rule) // kept across rulesets: see state.once
			g = m.decisions.WithLabelValues(k.rule, string(k.action))
			m.decisionGauges[k] = g
		}
		g.Set(float64(n))
	}
	for k := range m.decisionGauges {
		if counts[k] == 0 {
			m.decisions.DeleteLabelValues(k.rule, string(k.action))
			delete(m.decisionGauges, k)
		}
	}
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kickagent_sessions",
			Help: "Sessions in the last anvil snapshot, by service."}, []string{"service"}),
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_cycles_total",
			Help: "Cycles run, by result (ok, error)."}, []string{"result"}),
		cycleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kickagent_cycle_duration_seconds",
			Help: "Duration of a cycle: dump, evaluation, kicks.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}),
		anvilErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "kickagent_anvil_errors_total",
			Help: "Cycles whose anvil dump failed."}),
		anvilBadLines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_anvil_bad_lines_total",
			Help: "Malformed anvil dump lines skipped (the rest of the dump is used), by reason; a line is counted in every cycle's dump that carries it."},
			[]string{"reason"}),
		decisions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kickagent_decisions",
			Help: "Decisions of the last cycle, by rule and action (kick, dry-run, allowed)."}, []string{"rule", "action"}),
		kicks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_kicks_total",
			Help: "Decisions acted on, by rule and result (kicked, still-connected, refused-collateral, failed, dry-run, held-back, breaker)."},
			[]string{"rule", "result"}),
		repeatKicks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_repeat_kicks_total",
			Help: "Kicks of a user already kicked repeat_threshold times within an hour (a client looping on valid credentials)."},
			[]string{"rule"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_reloads_total",
			Help: "Rule reloads, by result (ok, partial: a drop-in file rejected, unchanged, error)."}, []string{"result"}),
		allowRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_allow_entries_removed_total",
			Help: "Allow list entries (users, networks) present in the running rules and missing from the rules a reload brought in."},
			[]string{"list"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_config_last_reload_successful",
			Help: "1 if the last rule reload succeeded, 0 if it failed (the previous rules stay active)."}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful rule reload."}),
		rulesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_rules_loaded",
			Help: "YAML rules in the active ruleset."}),
		policyLoaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_policy_loaded",
			Help: "1 if a Rego policy is active."}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_circuit_breaker_open",
			Help: "1 while the circuit breaker holds all kicks (until the rules change)."}),
		lastCycleTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_last_successful_cycle_timestamp_seconds",
			Help: "Time of the last cycle that completed."}),
		expiredRules: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_rules_expired",
			Help: "YAML rules past their expires time (inactive)."}),
		drainRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kickagent_drain_remaining_sessions",
			Help: "Sessions a drain rule still has to kick, by rule."}, []string{"rule"}),
		auditErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "kickagent_audit_write_errors_total",
			Help: "Failed audit log writes (the records are queued and retried every cycle)."}),
		auditDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "kickagent_audit_records_dropped_total",
			Help: "Audit records lost because the queue of unwritten records was full."}),
	}
	// Every reason is a fixed anvil.BadKinds value: the series exist at 0
	// from the start, so a rate() sees the first bad line.
	for _, k := range anvil.BadKinds {
		m.anvilBadLines.WithLabelValues(k)
	}
	m.allowRemoved.WithLabelValues("users")
	m.allowRemoved.WithLabelValues("networks")
	reg.MustRegister(m.sessions, m.cycles, m.cycleDuration, m.anvilErrors, m.anvilBadLines, m.decisions, m.kicks,
		m.repeatKicks, m.reloads, m.allowRemoved, m.reloadOK, m.reloadTime, m.rulesLoaded, m.policyLoaded,
		m.breakerOpen, m.lastCycleTime, m.expiredRules, m.drainRemaining)
	reg.MustRegister(m.auditErrors, m.auditDropped)
	m.policy = newPolicyMetrics(reg)
	m.pace = newPaceMetrics(reg)
	m.rejectedFiles = prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_rules_files_rejected",
		Help: "Drop-in rules files with errors in the active ruleset: each left out, or loaded at its last good version."})
	reg.MustRegister(m.rejectedFiles)
	m.resetFlushes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kickagent_resets",
		Help: "Active reset rules, by what kickagent reset did with Dovecot's auth cache (flushed, failed, skipped; unknown: written by hand)."},
		[]string{"auth_cache_flush"})
	for _, r := range []string{"flushed", "failed", "skipped", "unknown"} {
		m.resetFlushes.WithLabelValues(r) // at 0 from the start, for alerts on failed
	}
	reg.MustRegister(m.resetFlushes)
	m.rulesInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kickagent_rules_info",
		Help: "Always 1; rev is the revision of the active rule set (rules files, drop-ins and Rego policy together), as in every decision log line."},
		[]string{"rev"})
	reg.MustRegister(m.rulesInfo)
	m.interval = prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_interval_seconds",
		Help: "The cycle interval; a cycle is cut off at nine tenths of it."})
	reg.MustRegister(m.interval)
	return m
}

// setRulesInfo makes rev the one kickagent_rules_info series.
func (m *Metrics) setRulesInfo(rev string) {
	m.rulesInfo.Reset()
	m.rulesInfo.WithLabelValues(rev).Set(1)
}
