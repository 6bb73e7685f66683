package agent

import (
	"time"

	"github.com/kickagent/kickagent/internal/engine"
)

// Why a tick takes no dump (kickagent_dumps_skipped_total's reason).
const (
	skipNothing = "nothing_selectable" // no rule, policy or block can select a session
	skipIdle    = "idle"               // the last dumps selected nothing to kick
)

// idleAfter is how many dumps in a row must select nothing to kick before
// dumps space out: a client kicked and reconnecting at once is seen at
// the next tick.
const idleAfter = 3

// idleSessions: while idle, the gap after a dump is one interval per
// idleSessions sessions in it (up to idle_interval). Anvil is one process
// on every login's path and formats a whole dump in one go, so a login
// arriving meanwhile waits; what it waits grows with the table (at
// 100,000 sessions 30–50 ms on 2.3, 130–200 ms on 2.4, BENCHMARKS.md
// "anvil during a dump"), and a small
// server, whose dumps cost anvil next to nothing, keeps the interval.
const idleSessions = 10000

// pacer decides at each tick whether the cycle takes a dump. Dumps are the
// agent's whole cost to Dovecot; they are skipped when no rule can select
// a session, and spaced out (up to idle) while the rules select nothing.
// A rule change, a block, a reset's time and a rule's expiry take one at
// once.
type pacer struct {
	base, idle time.Duration
	perGap     int           // idleSessions; smaller in tests
	last       time.Time     // when the last dump started; zero: none yet
	quiet      int           // dumps in a row that selected nothing to kick
	gap        time.Duration // the wait after the last dump
}

func newPacer(base, idle time.Duration) pacer {
	return pacer{base: base, idle: max(idle, base), perGap: idleSessions, gap: base}
}

// due says whether a tick at now takes a dump; if not, why.
func (p *pacer) due(now time.Time, d engine.Demand, blocks bool) (bool, string) {
	switch {
	case p.last.IsZero() || d.Due:
		return true, ""
	case !d.Selects && !blocks:
		return false, skipNothing
	case now.Sub(p.last) >= p.gap-p.base/2: // ticks jitter: half a tick early is on time
		return true, ""
	}
	return false, skipIdle
}

// dumped records a dump of n sessions started at start; kicks: it
// selected sessions to kick (or failed: retried at the next tick).
func (p *pacer) dumped(start time.Time, n int, kicks bool) {
	p.last = start
	if kicks {
		p.quiet = 0
	} else {
		p.quiet++
	}
	p.gap = p.base
	if p.quiet >= idleAfter {
		p.gap = min(p.idle, max(p.base, p.base*time.Duration(n/p.perGap)))
	}
}

// wake ends an idle spell: new rules or a new block may select sessions.
func (p *pacer) wake() { p.quiet, p.gap = 0, p.base }
