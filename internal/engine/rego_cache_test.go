package engine

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// A policy whose decisions depend on each session alone.
const cachePolicy = `package kickagent

kick contains {"session": s.id, "rule": "blocked", "reason": "blocked network"} if {
	some s in input.sessions
	kickagent.in_networks(s.ip, ["192.0.2.0/24"])
}

kick contains {"session": s.id, "rule": "shared-process", "reason": "refcount"} if {
	some s in input.sessions
	s.connections > 1
}
`

func wantStats(t *testing.T, p *Policy, evaluated, reused, decisions int, full bool) {
	t.Helper()
	st := p.Stats()
	if st.Evaluated != evaluated || st.Reused != reused || st.Decisions != decisions || st.Full != full {
		t.Errorf("stats %+v, want evaluated %d reused %d decisions %d full %v", st, evaluated, reused, decisions, full)
	}
	// Sessions the guards decide (rego_guard.go) need no Eval.
	if wantEvals := min(evaluated-st.Guarded, 1); evaluated < regoParallelMin && st.Evals != wantEvals {
		t.Errorf("%d Evals, want %d", st.Evals, wantEvals)
	}
}

func TestPolicyCache(t *testing.T) {
	p := mustLoadPolicy(t, cachePolicy)
	a := sess24("a", "alice@example.com", "192.0.2.1")
	b := sess24("b", "bob@example.com", "198.51.100.1")
	c := sess24("c", "carol@example.com", "192.0.2.3")

	ds := mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, b)})
	wantStats(t, p, 2, 0, 1, true)

	// The same snapshot again (a new dump: new slice): nothing evaluated,
	// the same decisions, pointing into the new snapshot.
	snap := snapOf(anvil.Proto24, b, a)
	ds2 := mustEvaluate(t, p, PolicyInput{Snapshot: snap})
	wantStats(t, p, 0, 2, 1, false)
	if !slices.Equal(brief(ds), brief(ds2)) || ds2[0].Session != &snap.Sessions[1] {
		t.Errorf("cached decisions %v (session %p), want %v", ds2, ds2[0].Session, ds)
	}

	// A new session is evaluated alone.
	ds = mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, b, c)})
	wantStats(t, p, 1, 2, 2, false)
	if got, want := brief(ds), []string{"a blocked kick", "c blocked kick"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	// Gone sessions are dropped from the cache.
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, c)})
	wantStats(t, p, 0, 1, 1, false)
	if n := len(p.cache.entries); n != 1 {
		t.Errorf("%d cache entries, want 1", n)
	}
	// … and a returning one is new again.
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, c)})
	wantStats(t, p, 1, 1, 2, false)

	// A new Policy (a reload) evaluates everything.
	p2 := mustLoadPolicy(t, cachePolicy)
	mustEvaluate(t, p2, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, b, c)})
	wantStats(t, p2, 3, 0, 2, true)
}

// On 2.3 the id is pid/service/ip/user, and a record's refcount changes.
func TestPolicyCache23(t *testing.T) {
	p := mustLoadPolicy(t, cachePolicy)
	a := sess23(10, "imap", "alice@example.com", "198.51.100.1")
	b := sess23(11, "imap", "bob@example.com", "198.51.100.2")
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto23, a, b)})
	wantStats(t, p, 2, 0, 0, true)

	a.Connections = 2 // a second connection in the same process
	ds := mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto23, a, b)})
	wantStats(t, p, 1, 1, 1, false)
	if got := brief(ds); !slices.Equal(got, []string{"10/imap/198.51.100.1/alice@example.com shared-process kick"}) {
		t.Errorf("got %q", got)
	}

	// Same pid, another user: another session.
	c := sess23(10, "imap", "carol@example.com", "198.51.100.1")
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto23, a, b, c)})
	wantStats(t, p, 1, 2, 1, false)

	// A change of protocol (Dovecot upgraded) starts over.
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, sess24("g", "alice@example.com", ""))})
	wantStats(t, p, 1, 0, 0, true)
}

func TestPolicyCacheFirstSeen(t *testing.T) {
	const src = `package kickagent

kick contains {"session": s.id, "rule": "old", "reason": s.first_seen} if {
	some s in input.sessions
	s.first_seen_ns < time.parse_rfc3339_ns("2025-03-02T00:00:00Z")
}
`
	p := mustLoadPolicy(t, src)
	if p.Volatile() != "" {
		t.Fatalf("Volatile() = %q", p.Volatile())
	}
	a := sess24("a", "alice@example.com", "")
	seen := regoT0
	in := PolicyInput{Snapshot: snapOf(anvil.Proto24, a), FirstSeen: func(int, string) time.Time { return seen }}
	if ds := mustEvaluate(t, p, in); len(ds) != 1 || ds[0].Reason != "2025-03-01T10:00:00Z" {
		t.Errorf("got %+v", ds)
	}
	mustEvaluate(t, p, in)
	wantStats(t, p, 0, 1, 1, false)
	// The tracker forgot the session (restart): first_seen changed.
	seen = regoNow
	if ds := mustEvaluate(t, p, in); len(ds) != 0 {
		t.Errorf("got %+v", ds)
	}
	wantStats(t, p, 1, 0, 0, false)

	// Without FirstSeen, first_seen is when this Policy first saw it.
	p = mustLoadPolicy(t, src)
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a), Now: regoT0})
	ds := mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a), Now: regoNow})
	wantStats(t, p, 0, 1, 1, false)
	if len(ds) != 1 || ds[0].Reason != "2025-03-01T10:00:00Z" {
		t.Errorf("got %+v", ds)
	}
}

func TestPolicyVolatile(t *testing.T) {
	head := "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"r\", \"reason\": \"x\"} if {\n\tsome s in input.sessions\n"
	tests := []struct {
		name, src, want string // want: part of Volatile(), "" for cacheable
	}{
		{"per session", head + "\ts.user == \"a\"\n}\n", ""},
		{"helper function", head + "\tbad(s)\n}\n\nbad(s) if s.user == \"a\"\n", ""},
		{"constant lists", head + "\ts.ip in blocked\n}\n\nblocked := {\"192.0.2.1\"}\n", ""},
		{"input.now", head + "\ts.first_seen_ns < input.now_ns - 3600000000000\n}\n", "p.rego:5: reads input.now_ns"},
		{"helper reads now", head + "\told(s)\n}\n\nold(s) if s.first_seen_ns < input.now_ns\n", "reads input.now_ns"},
		{"all of input", head + "\tobject.get(input, \"x\", 1) == 1\n}\n", "reads all of input"},
		{"count sessions", head + "\tcount(input.sessions) > 100\n}\n", "reads input.sessions as a whole"},
		{"by position", head + "\tinput.sessions[0].user == s.user\n}\n", "reads a session by position"},
		{"join", head + "\tsome t in input.sessions\n\tt.user == s.user\n\tt.id != s.id\n}\n", "more than once"},
		{"comprehension", head + "\tcount([t | some t in input.sessions; t.user == s.user]) > 3\n}\n", "comprehension"},
		{"helper rule", "package kickagent\n\nkick contains {\"session\": id, \"rule\": \"r\", \"reason\": \"x\"} if {\n\tsome id in bad\n}\n\nbad contains s.id if {\n\tsome s in input.sessions\n}\n", "does not iterate input.sessions"},
		{"helper rule only", head + "\ts.user in busy\n}\n\nbusy contains t.user if {\n\tsome t in input.sessions\n\tt.service == \"pop3\"\n}\n", "reads input.sessions outside a kick rule"},
		{"position", head[:len(head)-len("\tsome s in input.sessions\n")] + "\tsome i, s in input.sessions\n\ti < 3\n}\n", "position"},
		{"every", head + "\tevery t in input.sessions { t.user != \"b\" }\n}\n", "as a whole"},
		{"other session's id", "package kickagent\n\nkick contains {\"session\": s.alt.other, \"rule\": \"r\", \"reason\": \"x\"} if {\n\tsome s in input.sessions\n}\n", "not for the session it iterates"},
		{"fixed id", "package kickagent\n\nkick contains {\"session\": \"a\", \"rule\": \"r\", \"reason\": \"x\"} if {\n\tsome s in input.sessions\n\ts.user == \"b\"\n}\n", "not for the session it iterates"},
		{"no iteration", "package kickagent\n\nkick contains {\"session\": \"a\", \"rule\": \"r\", \"reason\": \"x\"} if true\n", "does not iterate"},
		{"result built in the body", "package kickagent\n\nkick contains x if {\n\tsome s in input.sessions\n\ts.user == \"a\"\n\tid := s.id\n\tx := {\"session\": id, \"rule\": \"r\", \"reason\": \"x\"}\n}\n", ""},
		{"key iteration", "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"r\", \"reason\": \"x\"} if {\n\ts := input.sessions[_]\n}\n", ""},
		{"with input", head + "\tallowed with input as {}\n}\n\nallowed if true\n", "reads all of input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoadPolicy(t, tc.src)
			got := p.Volatile()
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("Volatile() = %q, want %q", got, tc.want)
			}
			// Only the time makes a policy volatile without relating
			// sessions.
			timeOnly := strings.Contains(tc.want, "now") && !strings.Contains(tc.want, "input.sessions")
			if cross := p.CrossSession(); (cross != "") != (got != "" && !timeOnly) {
				t.Errorf("CrossSession() = %q", cross)
			}
		})
	}
}

// A time-dependent policy evaluates every session every cycle.
func TestPolicyVolatileEvaluatesAll(t *testing.T) {
	p := mustLoadPolicy(t, `package kickagent

kick contains {"session": s.id, "rule": "idle", "reason": "old"} if {
	some s in input.sessions
	input.now_ns - s.first_seen_ns > 3600 * 1000000000
}
`)
	snap := snapOf(anvil.Proto24, sess24("a", "alice@example.com", ""), sess24("b", "bob@example.com", ""))
	seen := func(int, string) time.Time { return regoT0 }
	mustEvaluate(t, p, PolicyInput{Snapshot: snap, Now: regoT0.Add(time.Minute), FirstSeen: seen})
	wantStats(t, p, 2, 0, 0, true)
	ds := mustEvaluate(t, p, PolicyInput{Snapshot: snap, Now: regoT0.Add(2 * time.Hour), FirstSeen: seen})
	wantStats(t, p, 2, 0, 2, true)
	if len(ds) != 2 {
		t.Errorf("got %v", brief(ds))
	}
}

// Aggregates: a session is re-evaluated when its counts change if the
// policy reads them, and not otherwise.
func TestPolicyAggregates(t *testing.T) {
	p := mustLoadPolicy(t, `package kickagent

kick contains {"session": s.id, "rule": "too-many", "reason": sprintf("%d sessions", [s.user_sessions])} if {
	some s in input.sessions
	s.user_sessions > 2
}

kick contains {"session": s.id, "rule": "shared-ip", "reason": "ip"} if {
	some s in input.sessions
	object.get(s, "ip_sessions", 0) > 1
}
`)
	if !p.deps.aggregates {
		t.Fatal("aggregates not detected")
	}
	a := sess24("a", "alice@example.com", "198.51.100.1")
	b := sess24("b", "alice@example.com", "198.51.100.2")
	c := sess24("c", "alice@example.com", "198.51.100.3")
	d := sess24("d", "bob@example.com", "198.51.100.4")
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, b, d)})
	wantStats(t, p, 3, 0, 0, true)
	// alice's third session: all three of hers are re-evaluated.
	ds := mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, b, c, d)})
	wantStats(t, p, 3, 1, 3, false)
	if got, want := brief(ds), []string{"a too-many kick", "b too-many kick", "c too-many kick"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// bob's second, from alice's first IP.
	e := sess24("e", "bob@example.com", "198.51.100.1")
	ds = mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, b, c, d, e)})
	wantStats(t, p, 3, 2, 5, false) // e new; a (ip) and d (user) changed
	if got, want := brief(ds), []string{"a shared-ip kick", "a too-many kick", "b too-many kick", "c too-many kick", "e shared-ip kick"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	// The same snapshots with a policy that ignores the counts: only new
	// sessions are evaluated.
	p = mustLoadPolicy(t, cachePolicy)
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, b, d)})
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, b, c, d)})
	wantStats(t, p, 1, 3, 0, false)
}

func TestPolicyAllowChange(t *testing.T) {
	src := `package kickagent

kick contains {"session": s.id, "rule": "r", "reason": "x"} if {
	some s in input.sessions
	not s.user in input.allow.users
}
`
	p := mustLoadPolicy(t, src)
	snap := snapOf(anvil.Proto24, sess24("a", "alice@example.com", ""), sess24("b", "bob@example.com", ""))
	allow := &Allow{Users: []string{"alice@example.com"}}
	mustEvaluate(t, p, PolicyInput{Snapshot: snap, Allow: allow})
	wantStats(t, p, 2, 0, 1, true)
	mustEvaluate(t, p, PolicyInput{Snapshot: snap, Allow: allow})
	wantStats(t, p, 0, 2, 1, false)
	mustEvaluate(t, p, PolicyInput{Snapshot: snap, Allow: &Allow{}})
	wantStats(t, p, 2, 0, 2, true)

	// A policy that does not read input.allow keeps its decisions.
	p = mustLoadPolicy(t, cachePolicy)
	mustEvaluate(t, p, PolicyInput{Snapshot: snap, Allow: allow})
	mustEvaluate(t, p, PolicyInput{Snapshot: snap, Allow: &Allow{}})
	wantStats(t, p, 0, 2, 0, false)
}

// A large batch is split in chunks across goroutines, with the same
// decisions.
func TestPolicyParallelBatch(t *testing.T) {
	ctx := context.Background()
	ss := anviltest.Sessions24(2*regoChunk + 100)
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, AltNames: anviltest.AltNames24, Sessions: ss}
	// Without the guards, which would leave OPA only the few sessions
	// that may be kicked.
	p, err := loadPolicy(ctx, []string{"../../policy"}, policyOptions{strictBuiltinErrors: true, noGuard: true})
	if err != nil {
		t.Fatal(err)
	}
	ds := mustEvaluate(t, p, PolicyInput{Snapshot: snap})
	workers := min(runtime.GOMAXPROCS(0), regoMaxWorkers)
	if want := max(workers, 3); p.Stats().Evals != want {
		t.Errorf("%d Evals, want %d", p.Stats().Evals, want)
	}
	// Sessions24 puts 192.0.2.x clients at i = 0x200…0x2ff (not i%4 == 3,
	// IPv6, nor i%10 == 9, lmtp): in the blocked 192.0.2.0/24.
	var want []string
	for i := range ss {
		if ss[i].IP.Is4() && netip.MustParsePrefix("192.0.2.0/24").Contains(ss[i].IP) {
			want = append(want, ss[i].ConnGUID+" blocked-networks kick")
		}
	}
	if got := brief(ds); !slices.Equal(got, want) || len(want) != 180 {
		t.Errorf("got %d decisions, want %d", len(got), len(want))
	}
}

// Duplicate ids in one snapshot (should not happen) share one entry.
func TestPolicyDuplicateIDs(t *testing.T) {
	p := mustLoadPolicy(t, cachePolicy)
	a := sess24("a", "alice@example.com", "192.0.2.1")
	ds := mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a, a)})
	if got := brief(ds); !slices.Equal(got, []string{"a blocked kick", "a blocked kick"}) {
		t.Errorf("got %q", got)
	}
	mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, a)})
	wantStats(t, p, 0, 1, 1, false)
}

func ExamplePolicy_Evaluate() {
	ctx := context.Background()
	p, err := LoadPolicy(ctx, []string{"../../policy"})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := anvil.Session{Service: "imap", User: "carol@example.com", PID: 4242, IP: netip.MustParseAddr("192.0.2.9"), ConnGUID: "0f0e0d0c0b0a09080706050403020100", Connections: 1}
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: []anvil.Session{s}}
	ds, err := p.Evaluate(ctx, PolicyInput{Snapshot: snap, Now: time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range ds {
		fmt.Println(d.ID, d.Rule, d.Action, d.Reason)
	}
	// Output:
	// 0f0e0d0c0b0a09080706050403020100 blocked-networks kick client 192.0.2.9 is in a blocked network
}
