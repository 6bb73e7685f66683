package agent

import (
	"strconv"
	"strings"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// seenTable is the first-seen time of every session in the last snapshot.
// It costs one map lookup per session per cycle: each entry carries the
// generation (snapshot count) it was last seen in, so the sessions gone are
// the entries with an older generation, found without a present set. They
// are deleted in a batch once they make up an eighth of the table; until
// then they are ignored, and an id that comes back after missing a snapshot
// starts over, as if it had been deleted at once.
type seenTable struct {
	index map[string]int32 // session id → slot
	slots []seenSlot
	free  []int32 // slots of deleted entries, for reuse
	gen   uint32  // generation of the last snapshot observed
	live  int     // entries of generation gen (distinct ids present)
	buf   []byte  // scratch for 2.3 ids
}

type seenSlot struct {
	first time.Time
	gen   uint32
	// reported is what state.once last let through for the session: kept
	// here rather than in a map of its own, it goes with the session.
	reported reported
}

// reported is an audit result and the rule it was for.
type reported struct{ result, rule string }

// observe records the sessions of a snapshot taken at now.
func (t *seenTable) observe(sessions []anvil.Session, now time.Time) {
	if t.index == nil {
		t.index = make(map[string]int32, len(sessions))
		t.slots = make([]seenSlot, 0, len(sessions))
	}
	t.gen++
	t.live = 0
	for i := range sessions {
		s := &sessions[i]
		var id string
		var at int32
		var ok bool
		if s.ConnGUID != "" {
			id = s.ConnGUID
			at, ok = t.index[id]
		} else {
			// The 2.3 id is built in a reused buffer: the lookup of
			// string(buf) does not allocate; only a new entry's key does.
			t.buf = appendSessionID(t.buf[:0], s)
			at, ok = t.index[string(t.buf)]
		}
		if ok {
			sl := &t.slots[at]
			switch sl.gen {
			case t.gen: // the same id twice in one snapshot
				continue
			case t.gen - 1:
			default: // gone for a snapshot or more: it starts over
				*sl = seenSlot{first: now}
			}
			sl.gen = t.gen
			t.live++
			continue
		}
		// A copied key: the 2.4 GUID points into the dump's buffer, which
		// must not stay alive for as long as the session lasts.
		if id != "" {
			id = strings.Clone(id)
		} else {
			id = string(t.buf)
		}
		t.index[id] = t.alloc(seenSlot{first: now, gen: t.gen})
		t.live++
	}
	if gone := len(t.index) - t.live; gone > 0 && gone >= len(t.index)/8 {
		t.prune()
	}
}

func (t *seenTable) alloc(sl seenSlot) int32 {
	if n := len(t.free); n > 0 {
		at := t.free[n-1]
		t.free = t.free[:n-1]
		t.slots[at] = sl
		return at
	}
	t.slots = append(t.slots, sl)
	return int32(len(t.slots) - 1)
}

// prune deletes the entries of sessions gone.
func (t *seenTable) prune() {
	for id, at := range t.index {
		if t.slots[at].gen != t.gen {
			delete(t.index, id)
			t.slots[at] = seenSlot{}
			t.free = append(t.free, at)
		}
	}
}

// present reports whether id was in the last snapshot.
func (t *seenTable) present(id string) bool {
	at, ok := t.index[id]
	return ok && t.slots[at].gen == t.gen
}

// slot returns id's entry, nil if id is not in the last snapshot.
func (t *seenTable) slot(id string) *seenSlot {
	if at, ok := t.index[id]; ok && t.slots[at].gen == t.gen {
		return &t.slots[at]
	}
	return nil
}

// firstSeen returns when id was first seen, zero if it is not in the last
// snapshot.
func (t *seenTable) firstSeen(id string) time.Time {
	if at, ok := t.index[id]; ok && t.slots[at].gen == t.gen {
		return t.slots[at].first
	}
	return time.Time{}
}

// len is the number of distinct sessions in the last snapshot.
func (t *seenTable) len() int { return t.live }

// appendSessionID appends engine.SessionID(s) to b (the same bytes; a test
// holds them equal).
func appendSessionID(b []byte, s *anvil.Session) []byte {
	if s.ConnGUID != "" {
		return append(b, s.ConnGUID...)
	}
	b = strconv.AppendInt(b, s.PID, 10)
	b = append(b, '/')
	b = append(b, s.Service...)
	b = append(b, '/')
	if s.IP.IsValid() {
		b = s.IP.AppendTo(b)
	}
	b = append(b, '/')
	return append(b, s.User...)
}
