package authpolicy

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the listener's Prometheus metrics (labels bounded: command,
// verdict, rule; never a user or an IP).
type Metrics struct {
	requests      *prometheus.CounterVec
	latency       prometheus.Histogram
	refusals      *prometheus.CounterVec
	failures      prometheus.Counter
	blocks        prometheus.Gauge
	blocksStarted *prometheus.CounterVec
	policyErrors  prometheus.Counter
}

// NewMetrics registers the metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_auth_policy_requests_total",
			Help: "Auth policy requests answered, by command (allow, report) and verdict (allow, refuse, dry-run, allow-listed, breaker, report, report-failure, unauthorized, error)."},
			[]string{"command", "verdict"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kickagent_auth_policy_request_seconds",
			Help:    "Time to answer one auth policy request.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 0.25}}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_auth_policy_refusals_total",
			Help: "Logins refused, by the rule that refused them."}, []string{"rule"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "kickagent_auth_failures_total",
			Help: "Failed logins Dovecot reported (counted toward brute-force rules)."}),
		blocks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_bruteforce_blocks",
			Help: "Brute-force blocks in force (client IPs and networks)."}),
		blocksStarted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_bruteforce_blocks_total",
			Help: "Brute-force blocks started, by rule."}, []string{"rule"}),
		policyErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "kickagent_auth_policy_policy_errors_total",
			Help: "Logins on which the Rego policy failed (judged by the YAML rules alone)."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.refusals, m.failures, m.blocks, m.blocksStarted, m.policyErrors)
	}
	return m
}
