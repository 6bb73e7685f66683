package bundle

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Failure reasons, the bounded values of kickagent_bundle_failures_total.
const (
	// ReasonDownload: the request failed or the server answered neither
	// 200 nor 304 (the server is down, 404, ...).
	ReasonDownload = "download"
	// ReasonVerify: OPA's reader refused the bundle: a missing or bad
	// signature, a digest mismatch, or a malformed archive or module.
	ReasonVerify = "verify"
	// ReasonLayout: a verified bundle that does not follow doc.go's layout.
	ReasonLayout = "layout"
	// ReasonRejected: the agent's OnBundle refused it (rules that do not
	// compile, ...); the previous revision stays.
	ReasonRejected = "rejected"
	// ReasonPersist: the bundle could not be saved under the state
	// directory; it is not handed on, and is fetched again next poll.
	ReasonPersist = "persist"
)

var reasons = []string{ReasonDownload, ReasonVerify, ReasonLayout, ReasonRejected, ReasonPersist}

type metrics struct {
	info        *prometheus.GaugeVec
	lastSuccess prometheus.Gauge
	failures    *prometheus.CounterVec
	persisted   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kickagent_bundle_info",
			Help: "The bundle revision in force (value 1).",
		}, []string{"revision"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kickagent_bundle_last_success_timestamp_seconds",
			Help: "When the last poll of the bundle service succeeded: a new bundle taken or 304 Not Modified.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kickagent_bundle_failures_total",
			Help: "Bundle polls or bundles that failed, by reason: download, verify, layout, rejected, persist.",
		}, []string{"reason"}),
		persisted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kickagent_bundle_from_persisted",
			Help: "1 while the bundle in force is the copy persisted under the state directory (none downloaded since start).",
		}),
	}
	for _, c := range []prometheus.Collector{m.info, m.lastSuccess, m.failures, m.persisted} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range reasons {
		m.failures.WithLabelValues(r) // every reason exported from the start, at 0
	}
	return m, nil
}

// inForce records rev as the bundle in force.
func (m *metrics) inForce(rev string, fromPersisted bool) {
	m.info.Reset()
	m.info.WithLabelValues(rev).Set(1)
	if fromPersisted {
		m.persisted.Set(1)
	} else {
		m.persisted.Set(0)
	}
}
