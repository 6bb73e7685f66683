package agent

import (
	"time"
)

// state is what the loop remembers between cycles. Anvil keeps no session
// start times, so first-seen and first-decided times are the agent's own.
type state struct {
	firstSeen map[string]time.Time // session id → first snapshot it was in
	decidedAt map[string]time.Time // session id → first cycle a kick rule chose it
	reported  map[string]string    // session id → last result audited once (dry-run, allowed, held-back, breaker)
	kicksOf   map[string][]time.Time
	breaker   struct {
		open bool
		rev  string // the ruleset that tripped it
	}
	status string // one-line summary for systemd STATUS=
}

func (s *state) init() {
	s.firstSeen = map[string]time.Time{}
	s.decidedAt = map[string]time.Time{}
	s.reported = map[string]string{}
	s.kicksOf = map[string][]time.Time{}
}

// observe records the sessions present now and forgets those gone.
func (s *state) observe(ids []string, now time.Time) {
	present := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		present[id] = struct{}{}
		if _, ok := s.firstSeen[id]; !ok {
			s.firstSeen[id] = now
		}
	}
	for _, m := range []map[string]time.Time{s.firstSeen, s.decidedAt} {
		for id := range m {
			if _, ok := present[id]; !ok {
				delete(m, id)
			}
		}
	}
	for id := range s.reported {
		if _, ok := present[id]; !ok {
			delete(s.reported, id)
		}
	}
}

// once reports whether (id, key) is new since the last call, so that a
// long-lived session in dry-run or held back is audited once, not every
// cycle.
func (s *state) once(id, key string) bool {
	if s.reported[id] == key {
		return false
	}
	s.reported[id] = key
	return true
}

// kicked records a kick of user and returns how many kicks of that user
// fall within the last hour.
func (s *state) kicked(user string, now time.Time) int {
	cut := now.Add(-time.Hour)
	times := s.kicksOf[user]
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
