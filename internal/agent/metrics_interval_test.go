package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// kickagent_interval_seconds is the configured interval (the default when
// unset): the shipped alert on cycles near the interval divides by it.
func TestIntervalGauge(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		want     string
	}{{7 * time.Second, "7"}, {0, "5"}} {
		r := newRig(t, "rules: []\n", Settings{Interval: tc.interval}, sessions(0, nil))
		want := `
# HELP kickagent_interval_seconds The cycle interval; a cycle is cut off at nine tenths of it.
# TYPE kickagent_interval_seconds gauge
kickagent_interval_seconds ` + tc.want + "\n"
		if err := testutil.GatherAndCompare(r.reg, strings.NewReader(want), "kickagent_interval_seconds"); err != nil {
			t.Errorf("interval %v: %v", tc.interval, err)
		}
	}
}
