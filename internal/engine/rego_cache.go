package engine

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/kickagent/kickagent/internal/anvil"
)

// The decision cache.
//
// Rego costs ~46 µs per session naively and ~10 µs with the builtins
// (opa-performance.md); building a session's input term costs ~3 µs more.
// But sessions live for many poll cycles and do not change. So each
// Policy keeps, per session id, the session's input (fields, first_seen,
// aggregates) and the verdicts the policy gave it. A cycle evaluates only
// the sessions that are new or whose input changed, in one batched Eval
// (a large batch, as after a reload, in chunks of regoChunk spread over
// up to regoMaxWorkers goroutines); the others reuse their verdicts. Ids
// no longer in the snapshot are dropped. BenchmarkRegoCold100k and
// BenchmarkRegoSteady100k measure both cases.
//
// Invalidation:
//   - a new Policy (reload) starts with an empty cache: full evaluation;
//   - a volatile policy (reads the time; see analyzePolicy) evaluates
//     every session every cycle; only the input terms are reused. At 100k
//     sessions that is the full cold cost (about a second of CPU) every
//     cycle: keep time out of policies, or compare against first_seen_ns
//     instead;
//   - a cross-session policy (anything analyzePolicy cannot prove
//     per-session: joins, counts over input.sessions, helper rules over
//     the sessions) is evaluated in one Eval over the whole snapshot,
//     never chunked, so that it sees every session. Its decisions are
//     reused only if the snapshot is unchanged (same sessions, same
//     order, same content and first_seen, same aggregates and allow) and
//     the policy is not volatile; any change re-evaluates every session,
//     on one core;
//   - a changed session (2.3 refcount, alt fields, first_seen) is
//     re-evaluated;
//   - changed aggregates (user_sessions, ip_sessions) re-evaluate the
//     session only if the policy reads them; a new session of a user with
//     n sessions then re-evaluates n+1 sessions;
//   - a different Allow (pointer) re-evaluates everything if the policy
//     reads input.allow;
//   - a different protocol (2.3 ↔ 2.4) empties the cache.
//
// Memory: an entry holds a copy of the session and its verdicts, ~320 B
// (32 MB at 100k sessions). Its input term (~1.5 KB, an OPA object is a Go
// map) is dropped once the session is decided and rebuilt if it changes;
// only a volatile policy keeps the terms (~1.8 KB per session), as it
// needs them every cycle (building them costs ~0.4 s of CPU at 100k).

// regoCache is a Policy's decision cache; guarded by Policy.mu.
type regoCache struct {
	proto     anvil.Protocol
	allow     *Allow
	allowTerm *ast.Term
	entries   map[uint64]*regoEntry
	seed      maphash.Seed
	gen       uint64
	// prev holds the entries of the last snapshot, to drop the gone ones
	// without a walk over the map; spare is the buffer of the next.
	prev, spare []*regoEntry
	// users and ips are countAll's maps, reused.
	users map[string]int
	ips   map[netip.Addr]int
}

// regoLookahead is how far ahead of the cursor a session's entry is
// looked for (sessions gone since the last dump) before the map.
const regoLookahead = 16

// Finding an entry: anvil's dump order is stable from dump to dump (see
// yaml_cache.go), so a cursor walks the last snapshot's entries (prev)
// alongside the new one and usually finds a session's entry next or a
// few ahead: an id comparison on memory read in order. Only a miss (a new
// session, or a reordered dump) hashes the id and looks in the map below,
// and a map hit moves the cursor there. The random map lookups were 40% of
// a steady cycle at 100k sessions.
//
// The entries are found by the session's anvil.Session.IDHash in a
// map[uint64], colliding entries chained and told apart by SameID: a
// lookup neither builds the id string (2.3) nor hashes a struct key (both
// several times slower at 100k).

func (c *regoCache) lookup(h uint64, s *anvil.Session) *regoEntry {
	for e := c.entries[h]; e != nil; e = e.next {
		if e.sess.SameID(s) {
			return e
		}
	}
	return nil
}

func (c *regoCache) insert(e *regoEntry) {
	e.next = c.entries[e.hash]
	c.entries[e.hash] = e
}

func (c *regoCache) remove(e *regoEntry) {
	head := c.entries[e.hash]
	if head == e {
		if e.next == nil {
			delete(c.entries, e.hash)
		} else {
			c.entries[e.hash] = e.next
		}
		return
	}
	for p := head; p != nil; p = p.next {
		if p.next == e {
			p.next = e.next
			return
		}
	}
}

type regoEntry struct {
	hash         uint64
	next         *regoEntry // same hash
	id           string
	sess         anvil.Session
	firstSeen    time.Time
	userSessions int
	ipSessions   int
	aggsKnown    bool
	term         *ast.Term // nil: to build
	verdicts     []regoVerdict
	decided      bool
	gen          uint64 // last Evaluate that saw the id
	pos          int    // index in the last Evaluate's prev (its snapshot)
}

// setAggregates records the session's counts; a change invalidates the
// term (it carries them).
func (e *regoEntry) setAggregates(users, ips int) {
	if e.aggsKnown && users == e.userSessions && ips == e.ipSessions {
		return
	}
	e.userSessions, e.ipSessions, e.aggsKnown = users, ips, true
	e.term = nil
}

type regoVerdict struct {
	rule, reason string
	action       Action
}

// PolicyStats describes the last Evaluate.
type PolicyStats struct {
	Sessions  int  // sessions in the snapshot
	Evaluated int  // sessions decided (again) in this Evaluate
	Guarded   int  // of Evaluated, decided by the guards without OPA (rego_guard.go)
	Reused    int  // sessions whose cached decisions were reused
	Evals     int  // OPA evaluations run (batches)
	Decisions int  // decisions returned
	Full      bool // every session was evaluated (reload, volatile or cross-session policy)
	Duration  time.Duration
}

// Stats returns the figures of the last Evaluate.
func (p *Policy) Stats() PolicyStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Evaluate returns the policy's decisions on the snapshot, in snapshot
// order (then by rule). Actions are kick or dry-run: the caller applies
// the allow list.
func (p *Policy) Evaluate(ctx context.Context, in PolicyInput) ([]Decision, error) {
	snap := in.Snapshot
	if snap == nil {
		return nil, fmt.Errorf("policy %s: no snapshot", p.name)
	}
	now := in.Now
	if now.IsZero() {
		now = snap.Taken
	}
	if now.IsZero() {
		now = time.Now() // no clock given; still a sane first_seen
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	c := &p.cache
	full := false
	if c.entries == nil || c.proto != snap.Protocol {
		c.entries = make(map[uint64]*regoEntry, len(snap.Sessions))
		c.seed = maphash.MakeSeed()
		c.prev, c.spare = nil, nil
		c.proto = snap.Protocol
		full = true
	}
	if c.allowTerm == nil || in.Allow != c.allow {
		if c.allowTerm != nil && (p.deps.allow || p.deps.cross != "") {
			full = true
		}
		c.allow, c.allowTerm = in.Allow, allowTerm(in.Allow)
	}
	volatile := p.deps.volatile != ""
	cross := p.deps.cross != ""
	full = full || volatile
	c.gen++

	// With a volatile or cross-session policy every term may be used
	// every cycle and is kept, so keep its counts current; if the policy
	// reads the counts, a change re-decides. Otherwise only the sessions
	// to evaluate need counts.
	keepTerms := volatile || cross
	allAggs := p.deps.aggregates || keepTerms
	if allAggs {
		c.countAll(snap)
	}
	ents := c.spare[:0]
	var batch []*regoEntry
	prev, cur := c.prev, 0 // the cursor (see above)
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		var e *regoEntry
		for j := cur; j < len(prev) && j < cur+regoLookahead; j++ {
			if prev[j].sess.SameID(s) {
				e, cur = prev[j], j+1
				break
			}
		}
		var h uint64
		if e == nil {
			h = s.IDHash(c.seed)
			if e = c.lookup(h, s); e != nil && e.pos < len(prev) && prev[e.pos] == e {
				cur = e.pos + 1 // resume the walk from here
			}
		}
		switch {
		case e == nil:
			// Detached: the entry outlives this snapshot's dump buffer.
			d := s.Detached()
			e = &regoEntry{hash: h, id: d.ID(), sess: d, firstSeen: now}
			if in.FirstSeen != nil {
				e.firstSeen = in.FirstSeen(i, e.id)
			}
			c.insert(e)
		case e.gen == c.gen:
			// The same id twice in one snapshot: evaluated once, its
			// decisions apply to both records.
			e.pos = len(ents)
			ents = append(ents, e)
			continue
		default:
			fs := e.firstSeen
			if in.FirstSeen != nil {
				fs = in.FirstSeen(i, e.id)
			}
			if !e.sess.SameContent(s) || !fs.Equal(e.firstSeen) {
				e.sess, e.firstSeen = s.Detached(), fs
				e.term, e.decided = nil, false
			}
		}
		if allAggs {
			us, is := c.aggregatesOf(s)
			if e.aggsKnown && (us != e.userSessions || is != e.ipSessions) && p.deps.aggregates {
				e.decided = false
			}
			e.setAggregates(us, is)
		}
		e.gen = c.gen
		if full {
			e.decided = false
		}
		if !e.decided {
			batch = append(batch, e)
		}
		e.pos = len(ents)
		ents = append(ents, e)
	}
	// A cross-session policy sees the whole snapshot: any change (a
	// session new, changed, gone or moved) re-evaluates every session, in
	// one Eval over all of them.
	if cross && (len(batch) > 0 || !slices.Equal(ents, c.prev)) {
		full = true
		batch = append(batch[:0], ents...) // duplicates included, as in the snapshot
	}
	for _, e := range c.prev {
		if e.gen != c.gen {
			c.remove(e)
		}
	}
	clear(c.prev)
	c.prev, c.spare = ents, c.prev[:0]
	// The guards decide the sessions no kick rule can select (never for a
	// cross-session policy, which sees every session). They read the
	// aggregates only if the policy does, and then allAggs set them above.
	guarded := 0
	if p.guard != nil && !cross && len(batch) > 0 {
		kept := batch[:0]
		for _, e := range batch {
			if p.guard.selects(e) {
				kept = append(kept, e)
				continue
			}
			e.verdicts, e.decided = nil, true
		}
		guarded = len(batch) - len(kept)
		batch = kept
	}
	if !allAggs && len(batch) > 0 {
		c.countFor(snap, batch)
	}

	evals := 0
	if len(batch) > 0 {
		var err error
		if evals, err = p.evalBatch(ctx, batch, now, snap.Protocol, c.allowTerm, keepTerms, cross); err != nil {
			return nil, fmt.Errorf("policy %s: %w", p.name, err)
		}
	}

	n := 0
	for _, e := range ents {
		n += len(e.verdicts)
	}
	out := make([]Decision, 0, n)
	for i, e := range ents {
		for _, v := range e.verdicts {
			out = append(out, Decision{
				Session: &snap.Sessions[i],
				Index:   i,
				ID:      e.id,
				Rule:    v.rule,
				Engine:  EngineRego,
				Reason:  v.reason,
				Action:  v.action,
			})
		}
	}
	p.stats = PolicyStats{
		Sessions:  len(snap.Sessions),
		Evaluated: len(batch) + guarded,
		Guarded:   guarded,
		Reused:    len(ents) - len(batch) - guarded,
		Evals:     evals,
		Decisions: len(out),
		Full:      full,
		Duration:  time.Since(start),
	}
	return out, nil
}
