package jobs

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/kick"
)

// DrainLeft is what one drain rule has left to kick.
type DrainLeft struct {
	engine.RuleRef
	Left int
}

// DrainsLeft counts, for each drain rule of rs, the sessions that the
// engine's decisions on one snapshot give to it to kick: after the allow
// list, and only sessions a kick can reach (lmtp deliveries never are, so
// they do not keep a drain open). A dry-run kick counts as left: under
// --dry-run the drain has drained nothing. The agent ends a drain on this
// count and drain --status shows it, so both agree by construction.
func DrainsLeft(rs *engine.Ruleset, decisions []engine.Decision) []DrainLeft {
	left := map[string]int{}
	for i := range decisions {
		if d := &decisions[i]; d.Drain && kick.Kickable(d.Session) && (d.Action == engine.ActionKick || d.Action == engine.ActionDryRun) {
			left[d.Rule]++
		}
	}
	var out []DrainLeft
	for _, r := range rs.DrainRules() {
		out = append(out, DrainLeft{r, left[r.Name]})
	}
	return out
}

// End deletes the managed job files whose work is over after one cycle:
// blocks and resets past their expiry, and drains with nothing left to
// kick. Files that are not managed (KindOf) are never deleted, whatever
// they hold. It returns DrainsLeft for the cycle's metrics.
func End(rs *engine.Ruleset, decisions []engine.Decision, now time.Time, log *slog.Logger) []DrainLeft {
	for _, e := range rs.Expired(now) {
		endFile(e.File, "expired", e.Name, log)
	}
	drains := DrainsLeft(rs, decisions)
	for _, d := range drains {
		if d.Left == 0 {
			endFile(d.File, "drain complete", d.Name, log)
		}
	}
	return drains
}

func endFile(path, why, rule string, log *slog.Logger) {
	if _, ok := KindOf(filepath.Base(path)); !ok {
		return
	}
	if err := os.Remove(path); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("cannot remove finished job file", "file", path, "err", err)
		}
		return
	}
	log.Info("job finished; its rule file removed", "why", why, "rule", rule, "file", path)
}
