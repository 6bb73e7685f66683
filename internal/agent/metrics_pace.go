package agent

import "github.com/prometheus/client_golang/prometheus"

// paceMetrics show how often the agent makes anvil dump, and what a dump
// costs anvil (schedule.go, anvilcpu.go).
type paceMetrics struct {
	skipped  *prometheus.CounterVec
	gap      prometheus.Gauge
	idle     prometheus.Gauge
	anvilCPU prometheus.Histogram
}

func newPaceMetrics(reg prometheus.Registerer) paceMetrics {
	m := paceMetrics{
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kickagent_dumps_skipped_total",
			Help: "Ticks that took no anvil snapshot, by reason: nothing_selectable (no rule, policy or block can select a session), idle (the last snapshots selected nothing to kick; see idle_interval)."},
			[]string{"reason"}),
		gap: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_dump_gap_seconds",
			Help: "The wait after the last anvil snapshot before the next: the interval, or longer while the rules select nothing (up to idle_interval)."}),
		idle: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kickagent_idle_interval_seconds",
			Help: "The longest gap between anvil snapshots while the rules select nothing (idle_interval)."}),
		anvilCPU: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kickagent_anvil_dump_cpu_seconds",
			Help:    "CPU time of Dovecot's anvil process while it served one of the agent's snapshots (anvil is on every login's path; logins arriving meanwhile wait).",
			Buckets: []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1}}),
	}
	for _, r := range []string{skipNothing, skipIdle} {
		m.skipped.WithLabelValues(r)
	}
	reg.MustRegister(m.skipped, m.gap, m.idle, m.anvilCPU)
	return m
}
