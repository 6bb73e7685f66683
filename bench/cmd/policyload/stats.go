package main

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// dist summarises latencies in milliseconds.
type dist struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// summarise sorts ds in place. Percentiles are nearest-rank: p99 of 20,000 requests is the
// 19,800th smallest.
func summarise(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	slices.Sort(ds)
	rank := func(q float64) float64 {
		i := int(q*float64(len(ds))+0.999999) - 1
		return ms(ds[min(max(i, 0), len(ds)-1)])
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return dist{N: len(ds), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: ms(ds[len(ds)-1]),
		Mean: ms(sum / time.Duration(len(ds)))}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// result is what a run prints.
type result struct {
	asJSON bool

	What     string  `json:"what"`
	Rate     float64 `json:"rate_per_s"`
	Duration float64 `json:"duration_s"`
	Sent     int     `json:"sent"`
	// Latency: scheduled send time → answer read (http); → LOGIN's tagged OK (logins).
	Latency dist `json:"latency"`
	// FromSend (http only): the same from when the request's goroutine started, which leaves
	// out the generator's own lateness (Lag: that start minus the scheduled time). The sends
	// never wait for answers, so a server stall still counts in it.
	FromSend *dist `json:"from_send,omitempty"`
	Lag      *dist `json:"lag,omitempty"`
	// Total (logins only): scheduled time → LOGOUT's tagged OK.
	Total *dist `json:"total,omitempty"`
	// Answers counts the answers by kind (http: allowed, refused, report; logins: ok, no).
	Answers map[string]int `json:"answers"`
	// Kinds counts the requests sent by kind (http only).
	Kinds map[string]int `json:"kinds,omitempty"`
	// Errors are requests or logins that got no usable answer; ErrorSamples shows a few.
	Errors       int      `json:"errors"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	// LateMax is the largest delay of a send behind its schedule, on the load generator's
	// side (already inside Latency): a large value means the generator itself was short of CPU.
	LateMax float64 `json:"late_dispatch_max_ms"`
}

func (r *result) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d sent at %.0f/s over %.1f s\n", r.What, r.Sent, r.Rate, r.Duration)
	line := func(name string, d dist) {
		fmt.Fprintf(&b, "%s: n=%d p50=%.3f p90=%.3f p99=%.3f max=%.3f mean=%.3f ms\n",
			name, d.N, d.P50, d.P90, d.P99, d.Max, d.Mean)
	}
	line("latency", r.Latency)
	if r.FromSend != nil {
		line("from send", *r.FromSend)
	}
	if r.Lag != nil {
		line("dispatch lag", *r.Lag)
	}
	if r.Total != nil {
		line("total", *r.Total)
	}
	fmt.Fprintf(&b, "answers: %s\n", counts(r.Answers))
	if len(r.Kinds) > 0 {
		fmt.Fprintf(&b, "kinds: %s\n", counts(r.Kinds))
	}
	fmt.Fprintf(&b, "errors: %d\n", r.Errors)
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	fmt.Fprintf(&b, "late dispatch max: %.3f ms\n", r.LateMax)
	return b.String()
}

func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// tally collects outcomes from concurrent requests.
type tally struct {
	lat, total, fromSend, lag []time.Duration
	answers                   map[string]int
	errors                    int
	samples                   []string
}

func newTally(n int) *tally {
	return &tally{lat: make([]time.Duration, 0, n), answers: map[string]int{}}
}

func (t *tally) fail(err error) {
	t.errors++
	if len(t.samples) < 5 {
		t.samples = append(t.samples, err.Error())
	}
}

// writeRaw writes one latency a line, in milliseconds (for pooling rounds); "" writes nothing.
func writeRaw(path string, ds []time.Duration) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, d := range ds {
		fmt.Fprintf(w, "%.3f\n", ms(d))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
