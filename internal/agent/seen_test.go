package agent

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/kickagent/kickagent/internal/anvil"
)

// refSeen is the first-seen bookkeeping as it was specified: a map of the
// ids present, rebuilt every snapshot.
type refSeen map[string]time.Time

func (r refSeen) observe(ss []anvil.Session, now time.Time) {
	present := map[string]bool{}
	for i := range ss {
		id := ss[i].ID()
		present[id] = true
		if _, ok := r[id]; !ok {
			r[id] = now
		}
	}
	for id := range r {
		if !present[id] {
			delete(r, id)
		}
	}
}

// The generation table answers like the reference over random churn, with
// duplicates, sessions that leave and come back, and both id kinds.
func TestSeenTableMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	universe := make([]anvil.Session, 400)
	for i := range universe {
		s := anvil.Session{PID: int64(i % 37), Service: []string{"imap", "pop3"}[i%2], User: fmt.Sprintf("u%d", i%91),
			IP: netip.AddrFrom4([4]byte{10, 0, byte(i % 5), byte(i)})}
		switch i % 6 {
		case 0, 3: // the same GUID in lower and upper case: two ids
			s.ConnGUID = fmt.Sprintf("%032x", i/6+0xabc)
		case 1:
			s.ConnGUID = fmt.Sprintf("%032X", i/6+0xabc)
		case 2:
			s.ConnGUID = fmt.Sprintf("%031x", i) // not a GUID's form
		}
		universe[i] = s
	}
	var tab seenTable
	ref := refSeen{}
	t0 := time.Unix(1e9, 0)
	for c := range 300 {
		now := t0.Add(time.Duration(c) * time.Second)
		var snap []anvil.Session
		p := rng.Float64() // from a few sessions to nearly all
		for i := range universe {
			if rng.Float64() < p {
				snap = append(snap, universe[i])
				if rng.IntN(20) == 0 {
					snap = append(snap, universe[i])
				}
			}
		}
		// Now and then anvil's table is reordered (a resize): the cursor
		// over the last snapshot finds nothing near and the map answers.
		if rng.IntN(8) == 0 {
			rng.Shuffle(len(snap), func(i, j int) { snap[i], snap[j] = snap[j], snap[i] })
		}
		// Looked up while the dump arrived, or not, or in part.
		switch prep := rng.IntN(4); prep {
		case 1, 2:
			for i := range snap {
				tab.prepare(i, &snap[i])
			}
			if prep == 2 { // retried: the first attempt went half way
				for i := range len(snap) / 2 {
					tab.prepare(i, &snap[i])
				}
				for i := range snap {
					tab.prepare(i, &snap[i])
				}
			}
		case 3:
			for i := range len(snap) / 2 {
				tab.prepare(i, &snap[i])
			}
		}
		// The cursor's answers are the map's.
		if tab.preOrder.Whole(len(snap)) && len(tab.pre) == len(snap) {
			for i := range snap {
				if want := mapSlot(&tab, &snap[i]); tab.pre[i] != want {
					t.Fatalf("cycle %d: session %d prepared at slot %d, the map has %d", c, i, tab.pre[i], want)
				}
			}
		}
		tab.observe(snap, now)
		ref.observe(snap, now)
		if tab.len() != len(ref) {
			t.Fatalf("cycle %d: %d present, want %d", c, tab.len(), len(ref))
		}
		for i := range universe {
			id := universe[i].ID()
			want, in := ref[id]
			if got := tab.firstSeen(-1, id); !got.Equal(want) || tab.present(id) != in {
				t.Fatalf("cycle %d, %s: first seen %v present %v, want %v %v", c, id, got, tab.present(id), want, in)
			}
		}
		// By the snapshot's index, as the engine asks, duplicates included.
		for i := range snap {
			id := snap[i].ID()
			if got := tab.firstSeen(i, id); !got.Equal(ref[id]) {
				t.Fatalf("cycle %d, session %d (%s): first seen %v, want %v", c, i, id, got, ref[id])
			}
		}
		if n := len(tab.index) + len(tab.guids); n-tab.live > 0 && n-tab.live >= n/8 {
			t.Fatalf("cycle %d: %d gone entries kept of %d", c, n-tab.live, n)
		}
	}
}

// Keys kept across snapshots are copies, never strings of the dump.
func TestSeenTableKeysAreCopies(t *testing.T) {
	buf := []byte("0123456789ABCDEF0123456789ABCDEFimapuser")
	ss := []anvil.Session{
		{ConnGUID: unsafeString(buf[:32]), Service: "imap"},
		{PID: 1, Service: unsafeString(buf[32:36]), User: unsafeString(buf[36:])},
	}
	var tab seenTable
	tab.observe(ss, time.Unix(1, 0))
	if len(tab.index) != 2 {
		t.Fatalf("%d string keys, want 2", len(tab.index))
	}
	for k := range tab.index {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(k))); p >= uintptr(unsafe.Pointer(&buf[0])) && p < uintptr(unsafe.Pointer(&buf[0]))+uintptr(len(buf)) {
			t.Fatalf("the key %q shares the dump's memory", k)
		}
	}
}

func TestGUIDKey(t *testing.T) {
	for id, ok := range map[string]bool{
		"0123456789abcdef0123456789abcdef": true, "0123456789ABCDEF0123456789abcdef": false,
		"0123456789abcdef0123456789abcde": false, "0123456789abcdef0123456789abcdeg": false, "": false,
		"1/imap/10.0.0.1/0123456789abcdef": false,
	} {
		k, got := guidKey(id)
		if got != ok || ok && fmt.Sprintf("%x", k) != id {
			t.Errorf("guidKey(%q) = %x, %v", id, k, got)
		}
	}
}

func unsafeString(b []byte) string { return unsafe.String(&b[0], len(b)) }

// A result is audited once per session, again when it changes, and again
// when the session comes back after missing a snapshot.
func TestOnceFollowsTheSession(t *testing.T) {
	var st state
	st.init()
	a := anvil.Session{ConnGUID: fmt.Sprintf("%032x", 1)}
	b := anvil.Session{PID: 2, Service: "imap", User: "b"}
	t0 := time.Unix(1e9, 0)
	step := func(c int, want string, ss ...anvil.Session) {
		t.Helper()
		st.observe(ss, t0.Add(time.Duration(c)*time.Second))
		got := ""
		for i := range ss {
			id := ss[i].ID()
			got += fmt.Sprint(st.once(id, "dry-run", "r"), st.once(id, "dry-run", "r"), " ")
		}
		if got != want {
			t.Fatalf("cycle %d: once %q, want %q", c, got, want)
		}
	}
	step(1, "true false true false ", a, b)
	step(2, "false false false false ", a, b)
	step(3, "false false ", a)
	step(4, "false false true false ", a, b) // b came back
	if !st.once(a.ID(), "allowed", "r") || !st.once(a.ID(), "dry-run", "q") {
		t.Fatal("a changed result or rule is not audited")
	}
}

// mapSlot is s's slot by the map alone (-1: none), as lookup was before it
// followed the last snapshot.
func mapSlot(t *seenTable, s *anvil.Session) int32 {
	id := s.ID()
	at, ok := t.index[id]
	if g, isGUID := guidKey(id); isGUID {
		at, ok = t.guids[g]
	}
	if !ok {
		return -1
	}
	return at
}
