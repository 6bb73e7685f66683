package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/kickagent/kickagent/internal/anvil"
)

// crossTemplates are the cross-session rules of the property test, with
// {N} a random threshold and {SVC} a random service. The last one is
// per-session (chunked and cached), which must agree too.
var crossTemplates = []string{
	// count per user > N
	`kick contains {"session": s.id, "rule": "per-user", "reason": sprintf("%d", [n])} if {
	some s in input.sessions
	u := s.user
	n := count([1 | some t in input.sessions; t.user == u])
	n > {N}
}`,
	// another session of the user with a property
	`svc_users := {t.user | some t in input.sessions; t.service == "{SVC}"}

kick contains {"session": s.id, "rule": "other-svc", "reason": s.user} if {
	some s in input.sessions
	s.service != "{SVC}"
	s.user in svc_users
}`,
	// no session of the user from the office network
	`office_users := {t.user | some t in input.sessions; net.cidr_contains("10.1.0.0/16", t.ip)}

kick contains {"session": s.id, "rule": "no-office", "reason": s.user} if {
	some s in input.sessions
	s.pid % 7 != {N}
	not s.user in office_users
}`,
	// max over the user's sessions
	`kick contains {"session": s.id, "rule": "newest", "reason": sprintf("%d", [m])} if {
	some s in input.sessions
	u := s.user
	m := max([t.pid | some t in input.sessions; t.user == u])
	s.pid == m
}`,
	// min over the service's sessions
	`oldest := {svc: m | some svc in {t.service | some t in input.sessions}; m := min([t.pid | some t in input.sessions; t.service == svc])}

kick contains {"session": s.id, "rule": "oldest-of-svc", "reason": s.service} if {
	some s in input.sessions
	s.pid == oldest[s.service]
}`,
	// the whole snapshot's size
	`kick contains {"session": s.id, "rule": "crowded", "reason": "x", "dry_run": true} if {
	count(input.sessions) > {N} * 10
	some s in input.sessions
	s.service == "{SVC}"
}`,
	// position in the snapshot
	`kick contains {"session": s.id, "rule": "first", "reason": "x"} if {
	some i, s in input.sessions
	i < {N}
}`,
	// per-session: chunked and cached
	`kick contains {"session": s.id, "rule": "busy", "reason": s.user} if {
	some s in input.sessions
	s.service == "{SVC}"
	s.user_sessions > {N}
}`,
}

// randomCrossPolicy picks one to three templates.
func randomCrossPolicy(rng *rand.Rand) string {
	var b strings.Builder
	b.WriteString("package kickagent\n")
	for _, i := range rng.Perm(len(crossTemplates))[:1+rng.IntN(3)] {
		r := strings.NewReplacer("{N}", strconv.Itoa(1+rng.IntN(6)), "{SVC}", []string{"imap", "pop3", "submission"}[rng.IntN(3)])
		b.WriteString("\n" + r.Replace(crossTemplates[i]) + "\n")
	}
	return b.String()
}

// wholeEval evaluates p's query once, in one plain Eval over the whole
// snapshot, with aggregates counted by brute force: the reference.
func wholeEval(t *testing.T, p *Policy, snap *anvil.Snapshot, now time.Time, firstSeen func(int, string) time.Time) []string {
	t.Helper()
	users, ips := map[string]int{}, map[string]int{}
	for _, s := range snap.Sessions {
		users[s.User]++
		if s.IP.IsValid() {
			ips[s.IP.String()]++
		}
	}
	b := newTermBuilder()
	terms := make([]*ast.Term, len(snap.Sessions))
	for i, s := range snap.Sessions {
		e := &regoEntry{id: s.ID(), sess: s, firstSeen: firstSeen(i, s.ID())}
		e.setAggregates(users[s.User], ips[s.IP.String()])
		terms[i] = b.session(e)
	}
	rs, err := p.query.Eval(context.Background(), rego.EvalParsedInput(inputValue(terms, now, snap.Protocol, allowTerm(nil))))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if len(rs) > 0 {
		for _, it := range rs[0].Expressions[0].Value.([]any) {
			o := it.(map[string]any)
			action := ActionKick
			if o["dry_run"] == true {
				action = ActionDryRun
			}
			out = append(out, fmt.Sprintf("%s %s %s %s", o["session"], o["rule"], action, o["reason"]))
		}
	}
	slices.Sort(out)
	return out
}

func decisionSet(ds []Decision) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%s %s %s %s", d.ID, d.Rule, d.Action, d.Reason)
	}
	slices.Sort(out)
	return slices.Compact(out) // a duplicated record has its decisions twice
}

// crossChurn removes about a twentieth of the sessions, changes the
// service of a few (same id), adds fresh ones, and sometimes reorders.
func crossChurn(rng *rand.Rand, ss []anvil.Session, next *int) []anvil.Session {
	out := make([]anvil.Session, 0, len(ss)+len(ss)/20+1)
	for _, s := range ss {
		switch rng.IntN(40) {
		case 0, 1:
			continue
		case 2:
			s.Service = "imap"
		}
		out = append(out, s)
	}
	fresh := crossSessions(rng, 1+rng.IntN(len(ss)/20+2), *next)
	*next += len(fresh)
	out = append(out, fresh...)
	if rng.IntN(4) == 0 {
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	if rng.IntN(5) == 0 && len(out) > 0 { // one record twice
		out = append(out, out[rng.IntN(len(out))])
	}
	return out
}

// TestPolicyCrossSessionProperty: random snapshots of up to 100,000
// sessions (10,000 with -short), random cross-session policies; the
// engine (chunks, cache, successive cycles with churn) decides exactly
// as one plain Eval over the whole snapshot. Run with -cpu 1,2,4: the
// chunking depends on GOMAXPROCS. The sizes are drawn until the time
// budget is spent; the first case is always large.
func TestPolicyCrossSessionProperty(t *testing.T) {
	maxN, budget := 100_000, 6*time.Second
	if testing.Short() {
		maxN, budget = 10_000, 2*time.Second
	}
	start := time.Now()
	cases, decided := 0, 0
	for seed := uint64(0); cases < 4 || time.Since(start) < budget; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0xc5055))
		n := int(math.Exp(rng.Float64() * math.Log(float64(maxN))))
		if seed == 0 {
			n = maxN/2 + rng.IntN(maxN/2)
		}
		src := randomCrossPolicy(rng)
		p := mustLoadPolicy(t, src)
		caseStart := time.Now()
		next := n
		snap := &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: crossSessions(rng, n, 0)}
		seen := func(_ int, id string) time.Time { return regoT0.Add(time.Duration(len(id)%5) * time.Minute) }
		now := regoNow
		cycles := 3
		if n > 20_000 {
			cycles = 2
		}
		for cycle := range cycles {
			if cycle > 0 {
				snap = &anvil.Snapshot{Protocol: anvil.Proto24, Sessions: crossChurn(rng, snap.Sessions, &next)}
				now = now.Add(5 * time.Second)
			}
			got := decisionSet(mustEvaluate(t, p, PolicyInput{Snapshot: snap, Now: now, FirstSeen: seen}))
			want := wholeEval(t, p, snap, now, seen)
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d, %d sessions, cycle %d: engine %d decisions, whole snapshot %d\npolicy:\n%s\nfirst differences: %v",
					seed, len(snap.Sessions), cycle, len(got), len(want), src, firstDiffs(got, want))
			}
			decided += len(got)
		}
		cases++
		if testing.Verbose() {
			t.Logf("seed %d: %d sessions, %v, rules %q", seed, n, time.Since(caseStart).Round(time.Millisecond), ruleNames(src))
		}
	}
	t.Logf("%d cases, %d decisions, %v", cases, decided, time.Since(start).Round(time.Millisecond))
	if decided < cases*10 {
		t.Errorf("%d decisions in %d cases: the generator proves little", decided, cases)
	}
}

func firstDiffs(got, want []string) []string {
	var out []string
	for _, g := range got {
		if _, ok := slices.BinarySearch(want, g); !ok && len(out) < 5 {
			out = append(out, "+"+g)
		}
	}
	for _, w := range want {
		if _, ok := slices.BinarySearch(got, w); !ok && len(out) < 10 {
			out = append(out, "-"+w)
		}
	}
	return out
}

func ruleNames(src string) []string {
	var out []string
	for _, l := range strings.Split(src, "\n") {
		if i := strings.Index(l, `"rule": "`); i >= 0 {
			out = append(out, strings.SplitN(l[i+9:], `"`, 2)[0])
		}
	}
	return out
}
