package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
	"github.com/kickagent/kickagent/internal/testrig"
)

// TestRegoFieldValueMatchesTerm: the guards see each scalar field as the
// input object holds it.
func TestRegoFieldValueMatchesTerm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	snap := randomSnapshot(rng, 300)
	b := newTermBuilder()
	for i, s := range snap.Sessions {
		if i%2 == 0 {
			s.ConnGUID = fmt.Sprintf("%032x", s.PID)
		}
		s.PID *= int64(rng.IntN(3)) // 0 too
		s.Connections = rng.IntN(3)
		e := &regoEntry{id: s.ID(), sess: s, firstSeen: regoT0.Add(time.Duration(rng.IntN(1e6)) * time.Microsecond)}
		e.setAggregates(rng.IntN(4), rng.IntN(4))
		obj := b.session(e)
		for name, f := range regoFieldNames {
			want := obj.Get(ast.StringTerm(string(name)))
			if got := regoFieldValue(e, f); want == nil || got.Compare(want.Value) != 0 || got.Hash() != want.Value.Hash() {
				t.Fatalf("session %d field %s: guard sees %v, input holds %v", i, name, got, want)
			}
		}
	}
}

// TestRegoGuardExamplePolicy: every shipped kick rule has a guard, so a
// cold evaluation of the benchmark's sessions goes to OPA only for the
// few that may be kicked.
func TestRegoGuardExamplePolicy(t *testing.T) {
	p, err := LoadPolicy(context.Background(), []string{"../../policy"})
	if err != nil {
		t.Fatal(err)
	}
	if p.guard == nil || len(p.guard.rules) != 3 {
		t.Fatalf("guard %+v, want one program for each of the 3 kick rules", p.guard)
	}
	if q := mustLoadPolicy(t, perUserPolicy); q.guard != nil {
		t.Errorf("a cross-session policy has a guard")
	}

	// The benchmark's sessions, first seen before and after the resets:
	// the same decisions as without guards, and OPA sees few sessions.
	full, err := loadPolicy(context.Background(), []string{"../../policy"}, policyOptions{noGuard: true})
	if err != nil {
		t.Fatal(err)
	}
	ss := anviltest.Sessions24(20_000)
	for i := range ss {
		if i%7 == 0 {
			ss[i].User = "Alice@Example.com"
		}
	}
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, AltNames: anviltest.AltNames24, Sessions: ss}
	seen := func(i int, _ string) time.Time { // a third before the resets
		if i%3 == 0 {
			return regoT0.Add(time.Duration(i) * time.Second)
		}
		return regoNow
	}
	in := PolicyInput{Snapshot: snap, Now: regoNow, FirstSeen: seen}
	want, got := mustEvaluate(t, full, in), mustEvaluate(t, p, in)
	if g, w := policyLines(got), policyLines(want); !slices.Equal(g, w) || len(w) < 300 {
		t.Errorf("guarded: %d decisions, full: %d", len(g), len(w))
	}
	if st := p.Stats(); st.Evaluated != len(ss) || st.Guarded < len(ss)*9/10 {
		t.Errorf("stats %+v: the guards decided too few", st)
	}
}

// guardLines are body lines for random kick rules: tests the guards
// understand, bindings, and lines that end a guard program (negation,
// other calls with an output, input-dependent rules, errors).
var guardLines = []string{
	`s.service == "{SVC}"`,
	`s.service != "{SVC}"`,
	`s.user == "alice"`,
	`s.dest_ip != ""`,
	`s.dest_ip == ""`,
	`s.ip == ""`,
	`s.pid > {PID}`,
	`s.pid <= {PID}`,
	`s.pid < "{PID}"`,        // types differ: OPA orders numbers before strings
	`s.pid >= {PID}.0`,       // a float spelling of an integer
	`s.connections == 1.0`,   // equal as numbers
	`s.connections != 1`,     //
	`s.pid == s.connections`, // two fields
	`u := s.user
	u != "x"`,
	`s.first_seen_ns <= cutoff_ns`,
	`s.first_seen < "2025-03-01T10:0{N}:00Z"`,
	`s.user_sessions > {N}`,
	`s.ip_sessions >= {N}`,
	`kickagent.in_networks(s.ip, nets)`,
	`kickagent.in_networks(s.ip, ["192.0.2.0/30", "10.0.0.0/16"])`,
	`kickagent.in_networks(s.dest_ip, "10.0.0.{N}")`,
	`kickagent.in_networks(s.ip, nets_computed)`,
	`kickagent.user_match(["*@example.org", "alice", "j?hn*"], s.user)`,
	`kickagent.user_match(masks, s.user)`,
	`s.service == dovecot_service`, // a rule that reads the input
	`s.service == tricky`,          // defined without input, different with it
	`s.alt.user_alt == "legacy-a"`,
	`s.alt.user_ext != ""`,
	`x := s.alt.user_alt
	upper(x) == "LEGACY-B"`,
	`s.alt.user_none == "x"`, // not an alt column: undefined
	`s.alt == {}`,
	`not s.service == "lmtp"`,
	`not kickagent.in_networks(s.ip, nets)`,
	`not resets[lower(s.user)]`,
	`resets[lower(s.user)]`,
	`not s.alt.user_alt == "legacy-a"`,
	`flags[s.service]`, // false for pop3: a defined value that fails
	`not flags[s.service]`,
	`not svc_set[s.service]`,      // a set: OPA's
	`not startswith(s.user, "a")`, // a call the guards do not know
	`lower(s.user) != "zzz"`,
	`trim_space(s.user) != "zzz"`, // a call the guards do not know ends the program
	`s.id != ""`,
	`s.conn_guid != ""`,
	`r := resets[lower(s.user)]
	s.first_seen_ns <= r.ns`,
	`r := resets[s.user]
	r.ns > 0`,
	`s.first_seen_ns < resets.alice.ns`,
	`upper(s.service) == "IMAP"`,
	`pids[s.pid] != "b"`,
	`svc_set[s.service]`, // a set lookup as a test: OPA's
	`x := svc_set[s.service]
	x != "imap"`, // a lookup in a set: OPA's
	`s.user == resets`, // types differ
}

// guardErrorLines fail the evaluation (a builtin error) for sessions
// whose user is not an address: OPA must see them.
var guardErrorLines = []string{
	`kickagent.in_networks(s.user, ["10.0.0.0/8"])`,
	`not kickagent.in_networks(s.user, ["10.0.0.0/8"])`,
}

const guardPrelude = `package kickagent

nets := [{NETS}]

nets_computed := [n | some n in nets]

masks := {"carol@*", "x", "*@example.net"}

cutoff_ns := max({time.parse_rfc3339_ns("2025-03-01T10:02:00Z"), time.parse_rfc3339_ns("2025-03-01T10:01:00Z")})

dovecot_service := "imap" if input.dovecot == "2.4"

default tricky := "pop3"

tricky := "imap" if not input.dovecot

dry := {DRY}

resets := {lower(u): {"ns": time.parse_rfc3339_ns(at)} |
	some u, at in {"Alice": "2025-03-01T10:02:00Z", "carol@example.org": "2025-03-01T10:04:00Z", "JOHN DOE": "2025-03-01T10:01:00Z"}
}

pids := {100: "a", 101.0: "b", 102: "c", "103": "d"}

svc_set := {"imap", "pop3"}

flags := {"imap": true, "pop3": false, "lmtp": 0}
`

// randomGuardPolicy writes one to three kick rules of zero to four lines.
func randomGuardPolicy(rng *rand.Rand, withErrors bool) string {
	repl := func(s string) string {
		return strings.NewReplacer(
			"{SVC}", pick(rng, randServices),
			"{PID}", strconv.Itoa(100+rng.IntN(80)),
			"{N}", strconv.Itoa(1+rng.IntN(3)),
		).Replace(s)
	}
	var nets []string
	for range 1 + rng.IntN(4) {
		nets = append(nets, strconv.Quote(randomNetwork(rng)))
	}
	var b strings.Builder
	b.WriteString(strings.NewReplacer("{NETS}", strings.Join(nets, ", "), "{DRY}", strconv.FormatBool(rng.IntN(2) == 0)).Replace(guardPrelude))
	for r := range 1 + rng.IntN(3) {
		dry := ""
		if rng.IntN(3) == 0 {
			dry = `, "dry_run": dry`
		}
		fmt.Fprintf(&b, "\nkick contains {\"session\": s.id, \"rule\": \"r%d\", \"reason\": sprintf(\"%%s %%d\", [s.user, s.pid])%s} if {\n\tsome s in input.sessions\n", r, dry)
		for range rng.IntN(5) {
			line := pick(rng, guardLines)
			if withErrors && rng.IntN(12) == 0 {
				line = pick(rng, guardErrorLines)
			}
			b.WriteString("\t" + repl(line) + "\n")
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// TestRegoGuardEqualsFull: over random per-session policies and random
// snapshots with churn, cycle after cycle, a policy with guards decides
// exactly as the same policy evaluating every session in OPA, and fails
// exactly when it fails; strict builtin errors and not (as the agent).
func TestRegoGuardEqualsFull(t *testing.T) {
	iterations := 160
	if testing.Short() {
		iterations = 40
	}
	ctx := context.Background()
	guarded, evaluated, decided, failed, withGuard := 0, 0, 0, 0, 0
	for seed := range uint64(iterations) {
		rng := rand.New(rand.NewPCG(seed, 0x6775617264))
		strict := seed%2 == 0
		src := randomGuardPolicy(rng, strict)
		dir := mustWritePolicy(t, map[string]string{"p.rego": src})
		full, errFull := loadPolicy(ctx, []string{dir}, policyOptions{strictBuiltinErrors: strict, noGuard: true})
		fast, errFast := loadPolicy(ctx, []string{dir}, policyOptions{strictBuiltinErrors: strict})
		if (errFull == nil) != (errFast == nil) {
			t.Fatalf("seed %d: load: full %v, guarded %v\n%s", seed, errFull, errFast, src)
		}
		if errFull != nil {
			continue // refused at load either way (the synthetic run)
		}
		if fast.guard != nil {
			withGuard++
		}
		snap := randomSnapshot(rng, 40+rng.IntN(60))
		seen := func(_ int, id string) time.Time {
			return regoT0.Add(time.Duration(len(id)*7%5) * time.Minute)
		}
		now := regoNow
		for cycle := range 4 {
			if cycle > 0 {
				snap = churn(rng, snap)
				now = now.Add(5 * time.Second)
			}
			if seed%3 == 0 {
				snap.Protocol = anvil.Proto23
			} else {
				for i := range snap.Sessions {
					s := &snap.Sessions[i]
					s.ConnGUID = fmt.Sprintf("%032x", s.PID)
				}
			}
			in := PolicyInput{Snapshot: snap, Now: now, FirstSeen: seen}
			want, errW := full.Evaluate(ctx, in)
			got, errG := fast.Evaluate(ctx, in)
			if (errW == nil) != (errG == nil) {
				t.Fatalf("seed %d cycle %d: error: full %v, guarded %v\n%s", seed, cycle, errW, errG, src)
			}
			if errW != nil {
				failed++
				break // a failed Evaluate leaves the caches undecided: start over
			}
			if g, w := policyLines(got), policyLines(want); !slices.Equal(g, w) {
				t.Fatalf("seed %d cycle %d: guarded\n%v\nfull\n%v\npolicy:\n%s", seed, cycle, g, w, src)
			}
			st := fast.Stats()
			guarded += st.Guarded
			evaluated += st.Evaluated
			decided += len(got)
		}
	}
	t.Logf("%d policies with a guard; %d decisions, %d sessions evaluated, %d of them by the guards; %d failed evaluations",
		withGuard, decided, evaluated, guarded, failed)
	if withGuard < iterations/5 || guarded < evaluated/10 || decided < iterations*5 || failed == 0 {
		t.Errorf("the generator proves little")
	}
}

// TestRegoGuardSyntheticMix: the sessions the benchmark rig registers in
// anvil (testrig.SyntheticMix), and testdata/guards, a policy with hits
// for each of its guarded rules: the same decisions with and without
// guards, and the guards decide most sessions. (On b24, kickagent plan
// with and without guards gave the same 6,576 rows: BENCHMARKS.md.)
func TestRegoGuardSyntheticMix(t *testing.T) {
	ctx := context.Background()
	dir := "testdata/guards"
	fast, err := LoadPolicy(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	full, err := loadPolicy(ctx, []string{dir}, policyOptions{noGuard: true})
	if err != nil {
		t.Fatal(err)
	}
	if fast.guard == nil || len(fast.guard.rules) != 5 {
		t.Fatalf("guard %+v, want a program for each of the 5 kick rules", fast.guard)
	}
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	var ss []anvil.Session
	for _, m := range testrig.SyntheticMix(n, 1) {
		s := anvil.Session{User: m.User, Service: m.Service, IP: m.IP, DestIP: m.DestIP, PID: int64(m.PID), ConnGUID: m.GUID, Connections: 1}
		if len(m.Alt) > 0 {
			names, values := make([]string, len(m.Alt)), make([]string, len(m.Alt))
			for i, a := range m.Alt {
				names[i], values[i] = a.Key, a.Value
			}
			s.SetAlt(names, values)
		}
		ss = append(ss, s)
	}
	in := PolicyInput{Snapshot: &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: ss}, Now: regoNow}
	want, got := mustEvaluate(t, full, in), mustEvaluate(t, fast, in)
	if g, w := policyLines(got), policyLines(want); !slices.Equal(g, w) || len(w) < n/50 {
		t.Fatalf("guarded: %d decisions, full: %d", len(g), len(w))
	}
	if st := fast.Stats(); st.Guarded < n*8/10 {
		t.Errorf("stats %+v: the guards decided too few", st)
	}
}
