package jobs

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// End deletes the job files of d whose work is over after one cycle:
// blocks and resets past their expiry, and drains with nothing left to
// kick. It returns DrainsLeft for the cycle's metrics.
//
// A file is deleted only when it is a job file (jobFile): directly in
// d.Path, not one of the files d.Sources names, and written by a job
// command, holding that job's one rule; and when that rule, as the file
// holds it now, has ended. Anything else (a hand-written drop-in, a main
// rules file, a file named like a job but not one) is never deleted, and
// an expired rule in it is just inactive. A zero d (no drop-in directory)
// deletes nothing.
func (d Dir) End(rs *engine.Ruleset, decisions []engine.Decision, now time.Time, log *slog.Logger) []DrainLeft {
	drains := DrainsLeft(rs, decisions)
	if d.Path == "" {
		return drains
	}
	for _, e := range rs.Expired(now) {
		d.end(e.File, e.Name, "expired", now, log)
	}
	for _, l := range drains {
		if l.Left == 0 {
			d.end(l.File, l.Name, "drain complete", now, log)
		}
	}
	return drains
}

// end deletes path when it is a job file whose one rule, named rule, has
// ended at now: expired (blocks, resets) or, for a drain, why the caller
// found it complete.
func (d Dir) end(path, rule, why string, now time.Time, log *slog.Logger) {
	e, err := d.jobFile(path)
	if err != nil {
		log.Debug("ended rule kept: its file is not a job file", "rule", rule, "file", path, "why", err)
		return
	}
	if e.Rule.Name != rule {
		return
	}
	if e.Kind == Drain {
		if !e.Rule.Drain {
			return
		}
	} else if e.Rule.Drain || e.Active(now) {
		// Not ended as the file holds it now: replaced since the rule set
		// was loaded (a job run again), or an expiry we cannot read.
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

// jobFile reads path as a file a job command wrote into d, or says why it
// is not one. A job file is a regular file directly in d.Path, none of the
// files d.Sources names explicitly, named FileName(kind, target), whose
// first line is the header render writes (the same in every release that
// wrote job files) for that kind and target, and which holds exactly one
// rule, named RuleName(kind, target), and no other key.
func (d Dir) jobFile(path string) (Entry, error) {
	if filepath.Dir(filepath.Clean(path)) != filepath.Clean(d.Path) {
		return Entry{}, errors.New("not in the drop-in directory")
	}
	kind, ok := KindOf(filepath.Base(path))
	if !ok {
		return Entry{}, errors.New("not named as a job file")
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return Entry{}, err
	}
	if !fi.Mode().IsRegular() {
		return Entry{}, errors.New("not a regular file")
	}
	for _, p := range d.Sources.Rules {
		if pi, err := os.Stat(p); err == nil && !pi.IsDir() && os.SameFile(fi, pi) {
			return Entry{}, errors.New("named as a rules file")
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Entry{}, err
	}
	target, err := parseHeader(data, kind)
	if err != nil {
		return Entry{}, err
	}
	if FileName(kind, target) != filepath.Base(path) {
		return Entry{}, errors.New("the header's target is not the file name's")
	}
	r, err := decodeOne(data)
	if err != nil {
		return Entry{}, err
	}
	if r.Name != RuleName(kind, target) {
		return Entry{}, errors.New("the rule is not named after the job")
	}
	return Entry{Path: path, Kind: kind, Rule: r}, nil
}

// parseHeader returns the target of the header line that render writes
// for kind, which must be the first line of data.
func parseHeader(data []byte, kind Kind) (string, error) {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	prefix := "# Managed by kickagent " + string(kind) + " ("
	rest, ok := strings.CutPrefix(string(line), prefix)
	if !ok {
		return "", errors.New("no kickagent job header")
	}
	q, err := strconv.QuotedPrefix(rest)
	if err != nil {
		return "", errors.New("no kickagent job header")
	}
	target, _ := strconv.Unquote(q)
	if !strings.HasPrefix(rest[len(q):], ") at ") {
		return "", errors.New("no kickagent job header")
	}
	return target, nil
}
