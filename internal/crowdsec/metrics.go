package crowdsec

import (
	csbouncer "github.com/crowdsecurity/go-cs-bouncer"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metrics are the Source's Prometheus metrics; labels are bounded (scope,
// action, reason), never a value from a decision.
type metrics struct {
	decisions *prometheus.GaugeVec
	applied   *prometheus.CounterVec
	ignored   *prometheus.CounterVec
	invalid   prometheus.Counter
	pulls     prometheus.Counter
	lastPull  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		decisions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kickagent_crowdsec_decisions",
			Help: "CrowdSec decisions held, by scope (ip, range, username)."}, []string{"scope"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_crowdsec_decisions_applied_total",
			Help: "CrowdSec decisions applied, by action (add, delete, expire)."}, []string{"action"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_crowdsec_decisions_ignored_total",
			Help: "CrowdSec decisions received and not applied, by reason (type, scope, simulated, expired, duplicate, noop_delete)."},
			[]string{"reason"}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{Name: "kickagent_crowdsec_decisions_invalid_total",
			Help: "CrowdSec decisions refused because their value or duration could not be read."}),
		pulls: prometheus.NewCounter(prometheus.CounterOpts{Name: "kickagent_crowdsec_pulls_total",
			Help: "Successful pulls of the CrowdSec decision stream."}),
		lastPull: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_crowdsec_last_pull_timestamp_seconds",
			Help: "When the CrowdSec decision stream was last pulled successfully (0: never)."}),
	}
	for _, s := range []Scope{ScopeIP, ScopeRange, ScopeUsername} {
		m.decisions.WithLabelValues(s.String())
	}
	for _, a := range []string{"add", "delete", "expire"} {
		m.applied.WithLabelValues(a)
	}
	if reg != nil {
		// The bouncer library counts failed pulls in a package-level counter
		// that it registers nowhere; this reads it (so it is per process).
		pullErrors := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kickagent_crowdsec_pull_errors_total",
			Help: "Failed pulls of the CrowdSec decision stream (LAPI down, refused, bad answer), in this process."},
			func() float64 { return counterValue(csbouncer.TotalLAPIError) })
		reg.MustRegister(m.decisions, m.applied, m.ignored, m.invalid, m.pulls, m.lastPull, pullErrors)
	}
	return m
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}

// record adds one outcome to the counters.
func (m *metrics) record(o outcome) {
	m.applied.WithLabelValues("add").Add(float64(o.added))
	m.applied.WithLabelValues("delete").Add(float64(o.deleted))
	m.applied.WithLabelValues("expire").Add(float64(o.expired))
	for r, n := range o.skipped {
		m.ignored.WithLabelValues(string(r)).Add(float64(n))
	}
	if o.duplicates > 0 {
		m.ignored.WithLabelValues("duplicate").Add(float64(o.duplicates))
	}
	if o.noopDeletes > 0 {
		m.ignored.WithLabelValues("noop_delete").Add(float64(o.noopDeletes))
	}
	m.invalid.Add(float64(len(o.errs)))
}

func (m *metrics) held(v *View) {
	for _, s := range []Scope{ScopeIP, ScopeRange, ScopeUsername} {
		m.decisions.WithLabelValues(s.String()).Set(float64(v.Count(s)))
	}
}
