package agent

import (
	"os"
	"path/filepath"
	"time"

	"github.com/kickagent/kickagent/internal/dropin"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/kick"
)

// endJobs deletes the drop-in files that kickagent's job commands wrote
// once their work is over: blocks and resets past their expiry, and drains
// with nothing left to kick. Only managed files (kickagent-<kind>-*.yaml)
// are ever deleted; the watcher then reloads without them.
func (a *Agent) endJobs(rs *engine.Ruleset, decisions []engine.Decision, now time.Time) {
	for _, e := range rs.Expired(now) {
		if _, ok := dropin.KindOf(filepath.Base(e.File)); ok {
			a.removeJob(e.File, "expired", e.Name)
		}
	}
	left := map[string]int{}
	for i := range decisions {
		// Under --dry-run the drain's kicks are dry-run decisions: it has
		// drained nothing, so it does not end.
		// lmtp deliveries are never kicked, so they do not keep a drain open.
		if d := &decisions[i]; d.Drain && kick.Kickable(d.Session) && (d.Action == engine.ActionKick || d.Action == engine.ActionDryRun) {
			left[d.Rule]++
		}
	}
	a.m.drainRemaining.Reset()
	for _, r := range rs.DrainRules() {
		a.m.drainRemaining.WithLabelValues(r.Name).Set(float64(left[r.Name]))
		if left[r.Name] == 0 {
			if _, ok := dropin.KindOf(filepath.Base(r.File)); ok {
				a.removeJob(r.File, "drain complete", r.Name)
			}
		}
	}
}

func (a *Agent) removeJob(path, why, rule string) {
	if err := os.Remove(path); err != nil {
		if !os.IsNotExist(err) {
			a.log.Warn("cannot remove finished job file", "file", path, "err", err)
		}
		return
	}
	a.log.Info("job finished; its rule file removed", "why", why, "rule", rule, "file", path)
}
