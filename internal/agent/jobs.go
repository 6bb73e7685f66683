package agent

import (
	"time"

	"github.com/kickagent/kickagent/internal/engine"
)

// endJobs ends the jobs whose work is over (jobs.Dir.End deletes their
// job files, and nothing else; the watcher then reloads without them) and
// reports what each drain has left.
func (a *Agent) endJobs(rs *engine.Ruleset, decisions []engine.Decision, now time.Time) {
	a.m.drainRemaining.Reset()
	for _, d := range a.jobs.End(rs, decisions, now, a.log) {
		a.m.drainRemaining.WithLabelValues(d.Name).Set(float64(d.Left))
	}
}
