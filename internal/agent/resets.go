package agent

import (
	"log/slog"
	"strings"
	"time"
)

// cutoff is one reset's cutoff snapshot.
type cutoff struct {
	at    time.Time // the first snapshot taken at or after the reset time
	asked time.Time // the last cycle an active rule used it
}

// resetState is what the agent keeps across restarts of its resets
// (persist.go).
type resetState struct {
	// kept: the sessions present now that the rules judged against a
	// cutoff and that were first seen no later than it (id → first seen):
	// the sessions a restarted agent must still judge old. Any other
	// session was not there at the cutoff.
	kept map[string]time.Time
	// maxCut is the latest cutoff (zero: none).
	maxCut time.Time
	// dirty: the cutoffs or kept changed since the last save.
	dirty bool
	// tooMany: kept was last too large to persist (logged once).
	tooMany bool
	// taken: the reset times whose cutoff this cycle took, to log (the
	// audit trail of a reset kick names the rule; the log, its cutoff).
	taken []time.Time
}

// snapshotAfter returns the first snapshot time at or after t: the cutoff
// of a logged_in_before rule. The current snapshot (now) is the first one
// evaluated with t in the past, unless one was recorded before (by this
// run or, through the state file, the previous one).
func (s *state) snapshotAfter(t, now time.Time) (time.Time, bool) {
	if now.Before(t) {
		return time.Time{}, false
	}
	// UTC: one key per instant, whatever offset the rule was written with.
	k := t.UTC()
	c := s.cutoffs[k]
	if c == nil {
		c = &cutoff{at: now}
		s.cutoffs[k] = c
		s.resets.dirty = true
		s.resets.taken = append(s.resets.taken, k)
		if now.After(s.resets.maxCut) {
			s.resets.maxCut = now
		}
	}
	c.asked = now
	return c.at, true
}

// keepOld keeps a session a logged_in_before rule judged old (engine
// Input.Old), for a restarted agent to judge old too.
func (s *state) keepOld(_ int, id string, first time.Time) {
	r := &s.resets
	if _, ok := r.kept[id]; !ok {
		r.kept[strings.Clone(id)] = first // see seenTable.observe
		r.dirty = true
	}
}

// observeResets follows a snapshot: kept sessions gone are dropped (so
// that a 2.3 id reused by a new process is not taken for the old session
// after a restart), restored ones present are kept, and cutoffs no rule
// used for cutoffGrace are forgotten.
func (s *state) observeResets(restored map[string]time.Time, now time.Time) {
	r := &s.resets
	for id, first := range restored {
		if s.seen.present(id) {
			r.kept[id] = first
		} else {
			r.dirty = true
		}
	}
	r.maxCut = time.Time{}
	for k, c := range s.cutoffs {
		if now.Sub(c.asked) > cutoffGrace {
			delete(s.cutoffs, k)
			r.dirty = true
			continue
		}
		if c.at.After(r.maxCut) {
			r.maxCut = c.at
		}
	}
	for id, first := range r.kept {
		if r.maxCut.IsZero() || first.After(r.maxCut) || !s.seen.present(id) {
			delete(r.kept, id)
			r.dirty = true
		}
	}
}

// restore takes the previous run's state; its cutoffs count as used now.
func (s *state) restore(p *persisted, now time.Time, log *slog.Logger) {
	for _, r := range p.Resets {
		s.cutoffs[r.LoggedInBefore.UTC()] = &cutoff{at: r.Cutoff, asked: now}
		log.Info("reset cutoff restored: sessions first seen later are new", "logged_in_before", r.LoggedInBefore, "cutoff", r.Cutoff)
	}
	if len(p.Sessions) > 0 {
		s.seen.restored = make(map[string]time.Time, len(p.Sessions))
		for _, x := range p.Sessions {
			s.seen.restored[x.ID] = x.FirstSeen
		}
	}
}

// persisted is what to write: nil when there is nothing to keep, or too
// much (then a restart judges the resets afresh: conservative, it kicks
// again rather than spare an old session).
func (s *state) persisted() (p *persisted, tooMany bool) {
	if len(s.cutoffs) == 0 {
		return nil, false
	}
	if len(s.resets.kept) > maxStateSessions {
		return nil, true
	}
	p = &persisted{Resets: make([]persistReset, 0, len(s.cutoffs)), Sessions: make([]persistSeen, 0, len(s.resets.kept))}
	for t, c := range s.cutoffs {
		p.Resets = append(p.Resets, persistReset{LoggedInBefore: t, Cutoff: c.at})
	}
	for id, f := range s.resets.kept {
		p.Sessions = append(p.Sessions, persistSeen{ID: id, FirstSeen: f})
	}
	return p, false
}

// saveState writes the reset state when it changed. It runs before the
// cycle's kicks: a crash during them finds the cutoff already saved.
func (a *Agent) saveState() {
	r := &a.st.resets
	for _, t := range r.taken {
		a.log.Info("reset cutoff taken: sessions first seen later are new", "logged_in_before", t, "cutoff", a.st.cutoffs[t].at)
	}
	r.taken = r.taken[:0]
	if !r.dirty || a.store == nil {
		r.dirty = false
		return
	}
	p, tooMany := a.st.persisted()
	if tooMany && !r.tooMany {
		a.log.Warn("reset state too large to persist; a restart now would kick again sessions logged in after the reset",
			"sessions", len(r.kept), "max", maxStateSessions)
	}
	r.tooMany = tooMany
	if a.store.save(p) == nil {
		r.dirty = false
	}
}
