package agent

import (
	"hash/maphash"
	"slices"
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
//
// The lookups follow the last snapshot: anvil dumps its hash table, whose
// order holds from dump to dump (see engine's yaml_cache.go), so session i
// is usually the id of the last snapshot's next session, or a few further
// when sessions left. A cursor over the last snapshot's slots (at) finds
// it by comparing the id with the slot's own copy, without a probe of the
// map, a cache miss per session (17 ms a cycle at 100,000 sessions). Only
// an id not near the cursor is looked up in the map, and the cursor then
// resumes after the slot found. Both find the one slot holding the id.
type seenTable struct {
	// The table is keyed by anvil.Session.ID. guids holds the ids that
	// are 32 lowercase hex digits (the 2.4 GUID) as their 16 bytes: no
	// string per session to keep and mark. Any other id (2.3's
	// pid/service/ip/user) is a key of index. The split is by the id's
	// form only, so it is one-to-one.
	guids map[[16]byte]int32
	index map[string]int32
	slots []seenSlot
	free  []int32 // slots of deleted entries, for reuse
	gen   uint32  // generation of the last snapshot observed
	live  int     // entries of generation gen (distinct ids present)
	// at[i] is the slot of the last snapshot's session i (-1: its id was
	// already taken by an earlier session of the snapshot). next is the
	// one being built by observe.
	at, next []int32
	cur      int    // the cursor: the index in at where the next lookup starts
	buf      []byte // scratch: the id of the last lookup
	// pre[i] is session i's slot, looked up by prepare while the dump
	// arrived (-1: not in the table then), usable when preOrder is whole.
	pre      []int32
	preOrder anvil.InOrder
	// key: the GUID form of the id of the last lookup.
	key    [16]byte
	isGUID bool
	// restored: first-seen times read from the state file, for the
	// first snapshot only (its new entries; then nil): a session of the
	// previous run keeps the time that run first saw it.
	restored map[string]time.Time
	// born: the slots of the entries the last observe created (first
	// seen then); young: those of the observe before. dec: connections
	// that left an entry still present (2.3 refcounts). See inherit.
	born, young []int32
	dec         []donor
	seed        maphash.Seed
	conts       []uint64 // conts[at]: slot at's continuity key (contKey)
}

// donor is a connection that left: its continuity key and first-seen time.
type donor struct {
	cont  uint64
	first time.Time
}

type seenSlot struct {
	first time.Time
	gen   uint32
	// idx is the index of the session in the snapshot of generation gen
	// (the cursor resumes after it).
	idx int32
	// The entry's id, which the cursor compares: guid for an id of the
	// GUID form (id ""), else id, the map's key. Never empty for a live
	// non-GUID id: a 2.3 id holds slashes.
	guid [16]byte
	id   string
	// reported is what state.once last let through for the session: kept
	// here rather than in a map of its own, it goes with the session.
	reported reported
	// conns is the session's connection count (2.3's refcount, else 1),
	// sent whether the agent sent it a kick: see inherit. (Its continuity
	// key is in seenTable.conts, out of the slot that every lookup reads.)
	conns int32
	sent  bool
}

// reported is an audit result and the rule it was for.
type reported struct{ result, rule string }

// prepare looks up session i of a dump that is still arriving. Lookups
// are most of observe's cost, and they change nothing: a dump that fails
// leaves the table as it was. Sessions must come in order from 0; a
// restart at 0 (a retried dump) starts over.
func (t *seenTable) prepare(i int, s *anvil.Session) {
	if !t.preOrder.Next(i) {
		return
	}
	if i == 0 {
		t.pre = t.pre[:0]
		t.cur = 0
	}
	at, ok := t.lookup(s, t.gen)
	if !ok {
		at = -1
	}
	t.pre = append(t.pre, at)
}

// seenLookahead is how many of the last snapshot's sessions in a row the
// cursor steps over (sessions gone) before the map is asked.
const seenLookahead = 32

// lookup finds s's slot, following the cursor over t.at (the last
// snapshot, generation last); t.key if t.isGUID, else t.buf, then holds
// its id.
func (t *seenTable) lookup(s *anvil.Session, last uint32) (int32, bool) {
	// Built in a reused buffer: the lookup of string(buf) does not
	// allocate; only a new entry's key does, and that key is a copy,
	// never a string of the dump's buffer, which must not stay alive for
	// as long as the session lasts.
	// A session with a GUID has it as its id (anvil.Session.ID): packed
	// straight from the session, without a copy into t.buf, which is then
	// stale.
	t.isGUID = false
	if s.ConnGUID != "" {
		t.key, t.isGUID = guidKey(s.ConnGUID)
	}
	if !t.isGUID {
		t.buf = s.AppendID(t.buf[:0])
	}
	for j := t.cur; j < len(t.at) && j < t.cur+seenLookahead; j++ {
		at := t.at[j]
		if at < 0 {
			continue
		}
		sl := &t.slots[at]
		if sl.gen != last {
			continue // not an entry of the last snapshot (cannot happen)
		}
		if t.isGUID && sl.id == "" && sl.guid == t.key || !t.isGUID && sl.id == string(t.buf) {
			t.cur = j + 1
			return at, true
		}
	}
	var at int32
	var ok bool
	if t.isGUID {
		at, ok = t.guids[t.key]
	} else {
		at, ok = t.index[string(t.buf)]
	}
	if ok && t.slots[at].gen == last {
		t.cur = int(t.slots[at].idx) + 1
	}
	return at, ok
}

// observe records the sessions of a snapshot taken at now.
func (t *seenTable) observe(sessions []anvil.Session, now time.Time) {
	if t.index == nil {
		t.guids = make(map[[16]byte]int32, len(sessions))
		t.index = map[string]int32{}
		t.slots = make([]seenSlot, 0, len(sessions))
		t.seed = maphash.MakeSeed()
	}
	t.young, t.born = t.born, t.young[:0]
	t.dec = t.dec[:0]
	// The lookups prepare made still hold: nothing changed the table
	// since. A session not found then is looked up again (its id may have
	// been added by an earlier session of this snapshot).
	pre := t.pre
	if !t.preOrder.Whole(len(sessions)) || len(pre) != len(sessions) {
		pre = nil
	}
	t.preOrder.Void()
	// Lookups follow the last snapshot (t.at, generation t.gen) while the
	// new one is built in t.next.
	t.cur = 0
	t.next = t.next[:0]
	t.gen++
	prevLive, kept := t.live, 0
	t.live = 0
	for i := range sessions {
		s := &sessions[i]
		var at int32
		var ok bool
		if pre != nil && pre[i] >= 0 {
			at, ok = pre[i], true
		} else {
			at, ok = t.lookup(s, t.gen-1) // t.at is still the last snapshot's
		}
		if ok {
			sl := &t.slots[at]
			switch sl.gen {
			case t.gen: // the same id twice in one snapshot
				t.next = append(t.next, -1)
				continue
			case t.gen - 1:
				kept++
				if n := conns(s); n < sl.conns && !sl.sent {
					for range sl.conns - n {
						t.dec = append(t.dec, donor{t.conts[at], sl.first})
					}
					sl.conns = n
				} else if n > sl.conns {
					sl.conns = n
				}
			default: // gone for a snapshot or more: it starts over
				*sl = seenSlot{first: now, guid: sl.guid, id: sl.id, conns: conns(s)}
				t.conts[at] = t.contKey(s)
				t.born = append(t.born, at)
			}
			sl.gen, sl.idx = t.gen, int32(i)
			t.live++
			t.next = append(t.next, at)
			continue
		}
		first, restored := now, false
		if t.restored != nil {
			first, restored = t.restored[s.ID()]
			if !restored {
				first = now
			}
		}
		sl := seenSlot{first: first, gen: t.gen, idx: int32(i), conns: conns(s)}
		if t.isGUID {
			sl.guid = t.key
		} else {
			sl.id = string(t.buf)
		}
		at = t.alloc(sl)
		t.conts[at] = t.contKey(s)
		if t.isGUID {
			t.guids[t.key] = at
		} else {
			t.index[sl.id] = at
		}
		t.live++
		t.next = append(t.next, at)
		if !restored {
			t.born = append(t.born, at)
		}
	}
	t.restored = nil
	t.at, t.next = t.next, t.at
	t.inherit(prevLive > kept)
	if n := len(t.guids) + len(t.index); n > t.live && n-t.live >= n/8 {
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
	t.conts = append(t.conts, 0)
	return int32(len(t.slots) - 1)
}

// prune deletes the entries of sessions gone.
func (t *seenTable) prune() {
	gone := func(at int32) bool {
		if t.slots[at].gen == t.gen {
			return false
		}
		t.slots[at] = seenSlot{}
		t.free = append(t.free, at)
		return true
	}
	for k, at := range t.guids {
		if gone(at) {
			delete(t.guids, k)
		}
	}
	for k, at := range t.index {
		if gone(at) {
			delete(t.index, k)
		}
	}
}

// slot returns id's entry, nil if id is not in the last snapshot.
func (t *seenTable) slot(id string) *seenSlot {
	var at int32
	var ok bool
	if g, isGUID := guidKey(id); isGUID {
		at, ok = t.guids[g]
	} else {
		at, ok = t.index[id]
	}
	if ok && t.slots[at].gen == t.gen {
		return &t.slots[at]
	}
	return nil
}

// slotOf returns the entry of the last snapshot's session i, known to
// have id; without a second lookup when session i was the first with it.
func (t *seenTable) slotOf(i int, id string) *seenSlot {
	if i >= 0 && i < len(t.at) && t.at[i] >= 0 {
		return &t.slots[t.at[i]]
	}
	return t.slot(id)
}

// present reports whether id was in the last snapshot.
func (t *seenTable) present(id string) bool { return t.slot(id) != nil }

// firstSeen returns when the last snapshot's session i, whose id is id,
// was first seen; zero if id is not in the last snapshot. (The engine asks
// for every session of a Rego evaluation: by index, it costs no lookup.)
func (t *seenTable) firstSeen(i int, id string) time.Time {
	if sl := t.slotOf(i, id); sl != nil {
		return sl.first
	}
	return time.Time{}
}

// len is the number of distinct sessions in the last snapshot.
func (t *seenTable) len() int { return t.live }

// guidKey returns the bytes of id if it is 32 lowercase hex digits. Only
// lowercase: "AB…" and "ab…" are different ids and must stay apart. It
// only packs the id's text (anvil.Session.ID): which sessions have such an
// id, a 2.4 GUID, is anvil's business.
func guidKey[T string | []byte](id T) (k [16]byte, ok bool) {
	if len(id) != 32 {
		return k, false
	}
	bad := byte(0)
	for i := range k {
		hi, lo := hexVal[id[2*i]], hexVal[id[2*i+1]]
		bad |= hi | lo
		k[i] = hi<<4 | lo&15
	}
	return k, bad&0x10 == 0
}

// hexVal maps a lowercase hex digit to its value and every other byte to
// 0x10. A table, not comparisons: random hex digits made the branches
// mispredict, 220 ns per GUID at 100,000 sessions.
var hexVal = func() (t [256]byte) {
	for c := range t {
		t[c] = 0x10
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
	}
	return t
}()

// inherit carries first-seen times over to sessions that Dovecot moved to
// another process: a client that hibernates (imap -> imap-hibernate) or
// wakes gets a new pid in anvil (2.3) or a new connection GUID (2.4), and
// would otherwise count as a login made now, so a reset would stop
// applying to it. A session that appeared in this snapshot or the one
// before takes the first-seen time of one that left it (gone, or a 2.3
// refcount that dropped) with the same user, client address and service
// (imap-hibernate counted as imap), when that is older; each departure
// passes on once, oldest first. A session the agent sent a kick passes on
// nothing: its client's next login is a new session. The cost of a wrong
// match is a real new login from the same address within one interval
// taken for the old session (a reset kicks it once), never an old session
// spared.
// left says whether a session of the last snapshot is gone: without one,
// and without a dropped refcount, there is nothing to pass on and the last
// snapshot's slots are not scanned.
func (t *seenTable) inherit(left bool) {
	if len(t.born) == 0 && len(t.young) == 0 || !left && len(t.dec) == 0 {
		return
	}
	donors := make(map[uint64][]time.Time)
	for _, d := range t.dec {
		donors[d.cont] = append(donors[d.cont], d.first)
	}
	// t.next is the last snapshot's slots now: those of an older
	// generation than this one left.
	var last []int32
	if left {
		last = t.next
	}
	for _, at := range last {
		if at < 0 {
			continue
		}
		if sl := &t.slots[at]; sl.gen == t.gen-1 && !sl.sent {
			for range max(sl.conns, 1) {
				donors[t.conts[at]] = append(donors[t.conts[at]], sl.first)
			}
			sl.sent = true // passed on: never twice
		}
	}
	if len(donors) == 0 {
		return
	}
	for _, ts := range donors {
		slices.SortFunc(ts, time.Time.Compare)
	}
	for _, list := range [][]int32{t.young, t.born} {
		for _, at := range list {
			sl := &t.slots[at]
			ts := donors[t.conts[at]]
			// A session first seen no later than the departure cannot
			// be where it went (nor be the 2.3 entry that lost it).
			if sl.gen != t.gen || len(ts) == 0 || !ts[0].Before(sl.first) {
				continue
			}
			sl.first = ts[0]
			donors[t.conts[at]] = ts[1:]
		}
	}
}

// contKey identifies a client connection across Dovecot processes: user,
// client address, and the service with imap-hibernate as imap.
func (t *seenTable) contKey(s *anvil.Session) uint64 {
	var h maphash.Hash
	h.SetSeed(t.seed)
	h.WriteString(s.User)
	h.WriteByte(0)
	b, _ := s.IP.Unmap().WithZone("").MarshalBinary()
	h.Write(b)
	h.WriteByte(0)
	svc := s.Service
	if svc == "imap-hibernate" {
		svc = "imap"
	}
	h.WriteString(svc)
	return h.Sum64()
}

// conns is s's connection count (2.3's refcount, at least 1).
func conns(s *anvil.Session) int32 { return int32(max(s.Connections, 1)) }

// markSent records that the agent sent session id a kick.
func (t *seenTable) markSent(id string) {
	if sl := t.slot(id); sl != nil {
		sl.sent = true
	}
}
