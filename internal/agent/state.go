package agent

import (
	"strings"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
)

// state is what the loop remembers between cycles. Anvil keeps no session
// start times, so first-seen and first-decided times are the agent's own.
type state struct {
	// seen: session id → first snapshot it was in, and the last result
	// audited once (dry-run, allowed, held-back, breaker)
	seen      seenTable
	decidedAt map[string]time.Time // session id → first cycle a kick rule chose it
	kicksOf   map[string][]time.Time
	breaker   struct {
		open bool
		rev  string // the ruleset that tripped it
	}
	status string // one-line summary for systemd STATUS=
	// buckets pace rules with a rate: kicks allowed so far, per rule.
	buckets map[string]*bucket
	// cutoffs: reset time (UTC) → the first snapshot the agent took
	// at or after it (see engine.Input.SnapshotAfter), and the sessions
	// judged against them, kept across restarts (resets.go).
	cutoffs map[time.Time]*cutoff
	resets  resetState
	// decisionCounts is the cycle's scratch count of decisions by rule
	// and action (kickagent_decisions), reused between cycles.
	decisionCounts map[ruleAction]int
	// badLogged: the kinds of malformed anvil line already logged (once
	// per kind for the agent's life; the metric counts every one).
	badLogged map[string]bool
	// retries: session id → the last outcome of a kick that did not
	// close it (failed, still-connected, refused-collateral) and when
	// it is tried again.
	retries map[string]*retry
	// leftAfterKick: records of sent kicks whose session the last
	// snapshot no longer lists, to be audited as kicked (cycle.go).
	leftAfterKick []*audit.Record
	// auditFailing: audit writes are failing; auditLogged: when that was
	// last logged, auditSuppressed: failures since (see Agent.auditErr).
	auditFailing    bool
	auditLogged     time.Time
	auditSuppressed int
}

// retry is the backoff of a session whose kick did not close it.
type retry struct {
	result, rule string
	wait         time.Duration
	next         time.Time
	// sent: the record of the last try when its kick went out but was not
	// seen to work (still listed, or not confirmed in time). If the
	// session is gone from a later snapshot, the kick worked after all:
	// it is audited as kicked then (see observe).
	sent *audit.Record
}

// retryCap bounds the backoff of an unkickable session: a session whose
// kick keeps failing is still tried every retryCap (or every interval if
// that is longer), so that it is kicked soon after whatever stood in the
// way (a collateral session, a stuck process) is gone.
const retryCap = 2 * time.Minute

// bucket is a token bucket for one paced rule.
type bucket struct {
	tokens float64
	last   time.Time
	rate   float64
	max    float64 // capacity: one interval's worth plus one
}

func (s *state) init() {
	s.decidedAt = map[string]time.Time{}
	s.kicksOf = map[string][]time.Time{}
	s.buckets = map[string]*bucket{}
	s.cutoffs = map[time.Time]*cutoff{}
	s.resets.kept = map[string]time.Time{}
	s.decisionCounts = map[ruleAction]int{}
	s.badLogged = map[string]bool{}
	s.retries = map[string]*retry{}
}

// refill adds the kicks each paced rule has earned since the last cycle.
// A new rule starts with one kick, so that progress shows at once but the
// rate is never exceeded by more than one kick; a bucket holds at most one
// interval's worth (plus that one).
func (s *state) refill(kicks []*engine.Decision, now time.Time, interval time.Duration) {
	seen := map[string]bool{}
	for _, d := range kicks {
		if d.Rate <= 0 || seen[d.Rule] {
			continue
		}
		seen[d.Rule] = true
		b := s.buckets[d.Rule]
		if b == nil || b.rate != d.Rate {
			s.buckets[d.Rule] = &bucket{tokens: 1, last: now, rate: d.Rate, max: d.Rate*interval.Seconds() + 1}
			continue
		}
		b.tokens = min(b.tokens+d.Rate*now.Sub(b.last).Seconds(), b.max)
		b.last = now
	}
	for rule := range s.buckets {
		if !seen[rule] {
			delete(s.buckets, rule)
		}
	}
}

// take spends n kicks of rule's bucket (n > 1: a kick unit that Dovecot
// closes at once). A unit larger than the bucket goes when the bucket is
// full and leaves it in debt, so that the rate holds over time.
func (s *state) take(rule string, n int) bool {
	b := s.buckets[rule]
	if b == nil || b.tokens < min(float64(n), b.max) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// observe records the sessions present now and forgets those gone.
func (s *state) observe(sessions []anvil.Session, now time.Time) {
	restored := s.seen.restored
	s.seen.observe(sessions, now)
	s.observeResets(restored, now)
	// The sessions kick rules chose: few, so a pass is cheap.
	for id := range s.decidedAt {
		if !s.seen.present(id) {
			delete(s.decidedAt, id)
		}
	}
	for id, r := range s.retries {
		if !s.seen.present(id) {
			if r.sent != nil {
				s.leftAfterKick = append(s.leftAfterKick, r.sent)
			}
			delete(s.retries, id)
		}
	}
}

// notKicked records an outcome other than kicked of session id's kick by
// rule and sets its next try: one interval after a new outcome, then
// doubling up to retryCap. It reports whether the outcome is new for the
// session (to be audited and logged; a repeat is not).
func (s *state) notKicked(id, rule, result string, now time.Time, interval time.Duration, sent *audit.Record) bool {
	r := s.retries[id]
	if r == nil {
		r = &retry{}
		s.retries[strings.Clone(id)] = r // see seenTable.observe
	}
	r.sent = sent
	isNew := r.result != result || r.rule != rule
	if isNew {
		r.result, r.rule, r.wait = result, strings.Clone(rule), interval
	} else {
		r.wait = min(2*r.wait, max(retryCap, interval))
	}
	r.next = now.Add(r.wait)
	return isNew
}

// backingOff reports whether session id's kick by rule waits for its next
// try. Cycles start about an interval apart, give or take: half an
// interval early counts as on time.
func (s *state) backingOff(id, rule string, now time.Time, interval time.Duration) bool {
	r := s.retries[id]
	return r != nil && r.rule == rule && now.Before(r.next.Add(-interval/2))
}

// retrying reports whether session id's kick by rule was tried before and
// its intent audited then.
func (s *state) retrying(id, rule string) bool {
	r := s.retries[id]
	return r != nil && r.rule == rule
}

// kickedNow forgets the backoff of a session that was kicked.
func (s *state) kickedNow(id string) { delete(s.retries, id) }

// once reports whether (id, result, rule) is new since the last call, so
// that a long-lived session in dry-run or held back is audited once, not
// every cycle.
func (s *state) once(id, result, rule string) bool { return s.onceAt(-1, id, result, rule) }

// onceAt is once for session i of the last snapshot observed (-1: unknown).
func (s *state) onceAt(i int, id, result, rule string) bool {
	sl := s.seen.slotOf(i, id)
	if sl == nil {
		return true // not observed (cannot happen): audit rather than hide
	}
	if sl.reported.result == result && sl.reported.rule == rule {
		return false
	}
	// A copy: the rule name outlives this ruleset (a Rego decision's may
	// point into evaluation data).
	sl.reported = reported{result, strings.Clone(rule)}
	return true
}

// kicked records a kick of user and returns how many kicks of that user
// fall within the last hour.
func (s *state) kicked(user string, now time.Time) int {
	cut := now.Add(-time.Hour)
	times, ok := s.kicksOf[user]
	if !ok {
		user = strings.Clone(user) // see seenTable.observe
	}
	i := 0
	for i < len(times) && times[i].Before(cut) {
		i++
	}
	times = append(times[i:], now)
	s.kicksOf[user] = times
	return len(times)
}

// pruneKicks drops users with no kick in the last hour.
func (s *state) pruneKicks(now time.Time) {
	cut := now.Add(-time.Hour)
	for u, times := range s.kicksOf {
		if len(times) == 0 || times[len(times)-1].Before(cut) {
			delete(s.kicksOf, u)
		}
	}
}
