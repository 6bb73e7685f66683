package agent

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
)

// A failing Rego policy.
//
// When the policy fails (an evaluation error, or its time or memory
// budget exceeded: engine.PolicyError), the cycle goes on with the YAML
// rules' decisions, so blocks, resets and drains are still enforced. The
// failure is loud: an ERROR log line when it starts or its reason
// changes, then one every policyLogEvery while it lasts; the counter
// kickagent_policy_errors_total{reason} and the gauge
// kickagent_policy_failing; /healthz answers 503 "degraded" (the systemd
// watchdog is still fed: the loop works); and the audit log gets one
// record when the failure starts and one when it ends, so the window in
// which the policy was not enforced can be read from the audit trail.

// Audit results of the policy's own records (no session).
const (
	auditPolicyFailed    = "policy-failed"
	auditPolicyRecovered = "policy-recovered"
)

// policyLogEvery is how often a continuing failure is logged again.
const policyLogEvery = 5 * time.Minute

// policyHealth is the policy's failure state. degraded is read by the
// HTTP server; the rest is owned by the loop goroutine.
type policyHealth struct {
	degraded atomic.Pointer[string]

	failing  bool
	reason   string
	since    time.Time
	lastLog  time.Time
	failures int // cycles failed since the last log line
}

// policyMetrics are the metrics of policy failures.
type policyMetrics struct {
	errors  *prometheus.CounterVec
	failing prometheus.Gauge
}

func newPolicyMetrics(reg prometheus.Registerer) policyMetrics {
	m := policyMetrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_policy_errors_total",
			Help: "Cycles in which the Rego policy failed and only the YAML rules were enforced, by reason (error, timeout, memory)."},
			[]string{"reason"}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_policy_failing",
			Help: "1 while the Rego policy fails (its decisions are missing; the YAML rules are enforced)."}),
	}
	for _, r := range []string{engine.PolicyFailError, engine.PolicyFailTimeout, engine.PolicyFailMemory} {
		m.errors.WithLabelValues(r)
	}
	reg.MustRegister(m.errors, m.failing)
	return m
}

// Degraded returns why the agent runs degraded (the Rego policy fails
// while the YAML rules are enforced), or "".
func (a *Agent) Degraded() string {
	if s := a.policy.degraded.Load(); s != nil {
		return *s
	}
	return ""
}

// policyOutcome reports the policy's failure or recovery and returns the
// evaluation error the cycle must fail on: nil for a policy failure,
// whose decisions (the YAML rules') are enforced.
func (a *Agent) policyOutcome(err error, rs *engine.Ruleset, now time.Time) error {
	var pe *engine.PolicyError
	if !errors.As(err, &pe) {
		if err == nil {
			a.policyRecovered(rs, now)
		}
		return err
	}
	h := &a.policy
	a.m.policy.errors.WithLabelValues(pe.Reason).Inc()
	a.m.policy.failing.Set(1)
	h.failures++
	start := !h.failing
	if start || pe.Reason != h.reason || now.Sub(h.lastLog) >= policyLogEvery {
		a.log.Error("Rego policy failed; enforcing the YAML rules without it",
			"reason", pe.Reason, "err", pe.Err, "rev", rs.Rev(), "failing_since", h.sinceOr(now), "cycles", h.failures)
		h.lastLog, h.failures = now, 0
	}
	if start {
		h.failing, h.since = true, now
		a.writeAudit(&audit.Record{Time: now.UTC(), Result: auditPolicyFailed, Engine: string(engine.EngineRego),
			Reason: "policy not evaluated (" + pe.Reason + "); YAML rules enforced without it",
			Rev:    rs.Rev(), Error: pe.Err.Error()})
	}
	h.reason = pe.Reason
	msg := "degraded: Rego policy failing (" + pe.Reason + ") since " + h.since.UTC().Format(time.RFC3339) + "; YAML rules enforced"
	h.degraded.Store(&msg)
	return nil
}

func (h *policyHealth) sinceOr(now time.Time) time.Time {
	if h.failing {
		return h.since
	}
	return now
}

// policyRecovered ends a failure: the policy evaluated again (or the
// rules no longer have one).
func (a *Agent) policyRecovered(rs *engine.Ruleset, now time.Time) {
	h := &a.policy
	if !h.failing {
		return
	}
	a.log.Info("Rego policy evaluates again", "rev", rs.Rev(), "failed_since", h.since, "policy", rs.HasPolicy())
	a.writeAudit(&audit.Record{Time: now.UTC(), Result: auditPolicyRecovered, Engine: string(engine.EngineRego),
		Reason: "policy evaluated again after failing since " + h.since.UTC().Format(time.RFC3339), Rev: rs.Rev()})
	h.degraded.Store(nil)
	h.failing, h.reason, h.failures = false, "", 0
	a.m.policy.failing.Set(0)
}

// note is the systemd STATUS suffix while the policy fails.
func (h *policyHealth) note() string {
	if !h.failing {
		return ""
	}
	return " (Rego policy failing: " + h.reason + ")"
}
