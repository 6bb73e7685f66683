package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kickagent/kickagent/internal/anvil"
)

var testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// MustLoadYAML loads rules given as text (one file per argument, in load
// order) and fails the test on any error.
func MustLoadYAML(tb testing.TB, files ...string) *Ruleset {
	tb.Helper()
	dir := tb.TempDir()
	var src Sources
	for i, text := range files {
		p := filepath.Join(dir, fmt.Sprintf("%02d.yaml", i))
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
		src.Rules = append(src.Rules, p)
	}
	rs, err := Load(context.Background(), src)
	if err != nil {
		tb.Fatalf("Load:\n%v", err)
	}
	return rs
}

// MustEvaluate evaluates rs on snap at testNow.
func MustEvaluate(tb testing.TB, rs *Ruleset, snap *anvil.Snapshot) []Decision {
	tb.Helper()
	ds, err := rs.Evaluate(context.Background(), Input{Snapshot: snap, Now: testNow})
	if err != nil {
		tb.Fatalf("Evaluate: %v", err)
	}
	return ds
}

var altNames = []string{"user_alt", "user_ext"}

// sess builds a session: "service user ip [dest=IP] [alt=v1,v2]".
func sess(spec string) anvil.Session {
	f := strings.Fields(spec)
	s := anvil.Session{Service: f[0], User: strings.ReplaceAll(f[1], "_", " "), PID: 1000, Connections: 1}
	for _, x := range f[2:] {
		switch {
		case strings.HasPrefix(x, "dest="):
			s.DestIP = netip.MustParseAddr(strings.TrimPrefix(x, "dest="))
		case strings.HasPrefix(x, "alt="):
			s.SetAlt(altNames, strings.Split(strings.TrimPrefix(x, "alt="), ","))
		case x == "-":
		default:
			s.IP = netip.MustParseAddr(x)
		}
	}
	return s
}

// selectorSnap has one session per interesting shape.
var selectorSnap = []string{
	"imap alice@example.com 192.0.2.10",                                   // 0
	"pop3 Bob@Example.COM 198.51.100.7",                                   // 1 mixed case
	"imap carol@example.org ::ffff:198.51.100.9",                          // 2 IPv4-mapped client
	"submission dave@example.org 2001:db8:bad::5",                         // 3 IPv6
	"imap-login eve@example.net 203.0.113.5 dest=10.0.0.2 alt=legacy-eve", // 4 proxied
	"imap-login frank 203.0.113.6 dest=::ffff:10.0.0.2 alt=frank-alt",     // 5 mapped destination
	"lmtp grace@example.org -",                                            // 6 no client IP
	"IMAP heidi@example.org 10.1.2.3 alt=legacy-heidi,heidi@ext.example",  // 7 upper-case service
	"imap ivan 2001:db8::1",                                               // 8 no alt columns
	"imap judy fe80::1%eth0 alt=,judy@ext.example",                        // 9 zone; user_alt empty
	"imap john_doe 192.0.2.200",                                           // 10 space in the name
}

func newSnap(specs []string) *anvil.Snapshot {
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, AltNames: altNames}
	for i, sp := range specs {
		s := sess(sp)
		s.PID = int64(1000 + i)
		snap.Sessions = append(snap.Sessions, s)
	}
	return snap
}

// summary is "index rule action" per decision.
func summary(snap *anvil.Snapshot, ds []Decision) []string {
	var out []string
	for _, d := range ds {
		i := -1
		for j := range snap.Sessions {
			if &snap.Sessions[j] == d.Session {
				i = j
			}
		}
		out = append(out, fmt.Sprintf("%d %s %s", i, d.Rule, d.Action))
	}
	return out
}

// kicks lists "index rule kick" for each session index.
func kicks(rule string, idx ...int) []string {
	var out []string
	for _, i := range idx {
		out = append(out, fmt.Sprintf("%d %s kick", i, rule))
	}
	return out
}

func TestEvaluateSelectors(t *testing.T) {
	tests := []struct {
		name, rule string // the rule's selectors, indented as in a rule
		want       []int  // sessions of selectorSnap it kicks
	}{
		// users: doveadm masks, ASCII case-insensitive.
		{"exact user", "users: [alice@example.com]", []int{0}},
		{"exact user, other case", "users: [BOB@example.com]", []int{1}},
		{"exact user with a space", `users: ["john doe"]`, []int{10}},
		{"several users", "users: [alice@example.com, ivan, nobody]", []int{0, 8}},
		{"domain mask", `users: ["*@example.org"]`, []int{2, 3, 6, 7}},
		{"domain mask, other case", `users: ["*@EXAMPLE.ORG"]`, []int{2, 3, 6, 7}},
		{"question mark", `users: ["?ve@*"]`, []int{4}},
		{"star matches all", `users: ["*"]`, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"exact and mask mixed", `users: [ivan, "*@example.net"]`, []int{4, 8}},

		// networks: v4, v6, addresses; mapped clients count as IPv4.
		{"v4 network", "networks: [198.51.100.0/24]", []int{1, 2}},
		{"v4 address", "networks: [192.0.2.10]", []int{0}},
		{"v6 network", `networks: ["2001:db8:bad::/48"]`, []int{3}},
		{"v6 network covering another", `networks: ["2001:db8::/32"]`, []int{3, 8}},
		{"all of IPv4", "networks: [0.0.0.0/0]", []int{0, 1, 2, 4, 5, 7, 10}},
		{"all of IPv6", `networks: ["::/0"]`, []int{3, 8, 9}},
		{"link-local with zone", `networks: ["fe80::/10"]`, []int{9}},
		{"nested networks", "networks: [192.0.2.0/24, 192.0.2.0/28, 10.0.0.0/8]", []int{0, 7, 10}},

		// services, case-insensitive both ways.
		{"service", "services: [imap]", []int{0, 2, 7, 8, 9, 10}},
		{"service, other case", "services: [POP3, submission]", []int{1, 3}},
		{"login service", "services: [imap-login]", []int{4, 5}},

		// dest_hosts: proxy destinations, compared exactly as doveadm
		// kick -h does (the mapped form is another address).
		{"dest host", "dest_hosts: [10.0.0.2]", []int{4}},
		{"dest host mapped", `dest_hosts: ["::ffff:10.0.0.2"]`, []int{5}},
		{"other dest host", "dest_hosts: [10.0.0.3]", nil},

		// passdb_field + values; sessions without the column never match.
		// An empty column is a value, as in doveadm who -1 -f: '*' matches
		// it (9), a mask needing a character does not.
		{"alt mask", "passdb_field: user_alt\n    values: [legacy-*]", []int{4, 7}},
		{"alt exact, other case", "passdb_field: user_alt\n    values: [LEGACY-EVE]", []int{4}},
		{"alt star needs the column", "passdb_field: user_alt\n    values: ['*']", []int{4, 5, 7, 9}},
		{"alt empty column", "passdb_field: user_alt\n    values: ['?*']", []int{4, 5, 7}},
		{"second alt column", "passdb_field: user_ext\n    values: ['*@ext.example']", []int{7, 9}},
		{"unknown alt field", "passdb_field: user_nope\n    values: ['*']", nil},

		// Combinations: every selector must match.
		{"users and services", "users: ['*@example.org']\n    services: [imap]", []int{2, 7}},
		{"users and networks", "users: ['*@example.org']\n    networks: [198.51.100.0/24, 2001:db8::/32]", []int{2, 3}},
		{"networks and services", "networks: [0.0.0.0/0]\n    services: [imap-login]", []int{4, 5}},
		{"dest and alt", "dest_hosts: [10.0.0.2]\n    passdb_field: user_alt\n    values: [legacy-*]", []int{4}},
		{"users and alt", "users: ['*']\n    passdb_field: user_alt\n    values: [frank-alt]", []int{5}},

		// except_users / except_networks remove sessions.
		{"except user", "users: ['*@example.org']\n    except_users: [DAVE@example.org]", []int{2, 6, 7}},
		{"except user mask", "users: ['*@example.org']\n    except_users: ['?race*', 'h*']", []int{2, 3}},
		{"except network", "users: ['*@example.org']\n    except_networks: [10.0.0.0/8]", []int{2, 3, 6}},
		{"except network, mapped client", "networks: [198.51.100.0/24]\n    except_networks: [198.51.100.8/29]", []int{1}},
		{"except v6 network", "services: [imap]\n    except_networks: ['2001:db8::/32', 192.0.2.0/24]", []int{2, 7, 9}},
	}
	snap := newSnap(selectorSnap)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := MustLoadYAML(t, "rules:\n  - name: r\n    "+tt.rule+"\n")
			got := summary(snap, MustEvaluate(t, rs, snap))
			if want := kicks("r", tt.want...); !slices.Equal(got, want) {
				t.Errorf("decisions %q; want %q", got, want)
			}
			// The index and the plain matcher agree.
			for i := range snap.Sessions {
				if m := rs.rules[0].matches(&snap.Sessions[i]); m != slices.Contains(tt.want, i) {
					t.Errorf("session %d: matches = %v", i, m)
				}
			}
		})
	}
}

// TestDestHostZone: anvil 2.4.1 prints a scope id in dest_ip; dest_hosts
// (no zones) match it, as doveadm's net_ip_compare ignores scope ids.
func TestDestHostZone(t *testing.T) {
	snap := newSnap([]string{"imap-login zed 2001:db8::7 dest=fe80::2%eth0", "imap-login amy 2001:db8::8 dest=fe80::3%eth0"})
	rs := MustLoadYAML(t, "rules:\n  - name: r\n    dest_hosts: ['fe80::2']\n")
	if got, want := summary(snap, MustEvaluate(t, rs, snap)), kicks("r", 0); !slices.Equal(got, want) {
		t.Errorf("decisions %q; want %q", got, want)
	}
	if !rs.rules[0].matches(&snap.Sessions[0]) || rs.rules[0].matches(&snap.Sessions[1]) {
		t.Error("the plain matcher disagrees")
	}
}

func TestEvaluatePrecedence(t *testing.T) {
	snap := newSnap([]string{
		"imap alice@example.org 192.0.2.10",
		"pop3 bob@example.org 192.0.2.11",
		"imap carol@example.com 192.0.2.12",
	})
	tests := []struct {
		name  string
		rules string
		want  []string
	}{
		{"kick after dry-run wins", `
  - {name: dry, users: ["*@example.org"], dry_run: true}
  - {name: kick, networks: [192.0.2.0/24]}`,
			[]string{"0 kick kick", "1 kick kick", "2 kick kick"}},
		{"kick before dry-run wins", `
  - {name: kick, networks: [192.0.2.10]}
  - {name: dry, users: ["*@example.org"], dry_run: true}`,
			[]string{"0 kick kick", "1 dry dry-run"}},
		{"first kick rule in load order", `
  - {name: by-service, services: [imap]}
  - {name: by-user, users: [alice@example.org, bob@example.org]}
  - {name: by-net, networks: [192.0.2.0/24]}`,
			[]string{"0 by-service kick", "1 by-user kick", "2 by-service kick"}},
		{"index order is not load order", `
  - {name: scan, users: ["*"]}
  - {name: net, networks: [192.0.2.10]}`,
			[]string{"0 scan kick", "1 scan kick", "2 scan kick"}},
		{"first dry-run rule when only dry-run rules match", `
  - {name: dry-1, users: [bob@example.org], dry_run: true}
  - {name: dry-2, users: ["*"], dry_run: true}`,
			[]string{"0 dry-2 dry-run", "1 dry-1 dry-run", "2 dry-2 dry-run"}},
		{"dry_run false is a kick rule", `
  - {name: dry, users: ["*"], dry_run: true}
  - {name: wet, users: ["*"], dry_run: false}`,
			[]string{"0 wet kick", "1 wet kick", "2 wet kick"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := MustLoadYAML(t, "rules:"+tt.rules+"\n")
			if got := summary(snap, MustEvaluate(t, rs, snap)); !slices.Equal(got, tt.want) {
				t.Errorf("decisions %q; want %q", got, tt.want)
			}
		})
	}
}

func TestEvaluateExpires(t *testing.T) {
	rs := MustLoadYAML(t, `rules:
  - name: expired
    users: ["*"]
    expires: 2026-05-01T00:00:00Z
  - name: expires-now
    users: ["*"]
    expires: 2026-06-01T12:00:00Z
  - name: expires-later-offset
    users: [bob]
    expires: 2026-06-01T14:00:01+02:00
  - name: forever
    users: [alice, bob]
    dry_run: true
`)
	snap := newSnap([]string{"imap alice 192.0.2.1", "imap bob 192.0.2.2", "imap carol 192.0.2.3"})
	got := summary(snap, MustEvaluate(t, rs, snap))
	want := []string{"0 forever dry-run", "1 expires-later-offset kick"}
	if !slices.Equal(got, want) {
		t.Errorf("decisions %q; want %q", got, want)
	}
	exp := rs.Expired(testNow)
	var names []string
	for _, e := range exp {
		names = append(names, fmt.Sprintf("%s %s:%d %s", e.Name, filepath.Base(e.File), e.Line, e.Expired.Format(time.RFC3339)))
	}
	wantExp := []string{"expired 00.yaml:2 2026-05-01T00:00:00Z", "expires-now 00.yaml:5 2026-06-01T12:00:00Z"}
	if !slices.Equal(names, wantExp) {
		t.Errorf("Expired = %q; want %q", names, wantExp)
	}
	// A second later, the offset rule has expired too; before, none had.
	if n := len(rs.Expired(testNow.Add(time.Second))); n != 3 {
		t.Errorf("Expired a second later: %d rules; want 3", n)
	}
	if n := len(rs.Expired(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))); n != 0 {
		t.Errorf("Expired in January: %d rules; want 0", n)
	}
}

func TestEvaluateAllow(t *testing.T) {
	rs := MustLoadYAML(t, `allow:
  users: [monitoring@example.com, "admin-*@example.com"]
  networks: [192.0.2.0/28, "2001:db8:1::/48"]
rules:
  - name: everyone
    users: ["*"]
    services: [imap]
  - name: dry
    services: [pop3]
    dry_run: true
`)
	snap := newSnap([]string{
		"imap MONITORING@example.com 203.0.113.1", // allowed user, any case
		"imap admin-joe@example.com 203.0.113.2",  // allowed mask
		"imap alice 192.0.2.5",                    // allowed network
		"imap bob ::ffff:192.0.2.6",               // allowed network, mapped client
		"imap carol 2001:db8:1::7",                // allowed v6 network
		"imap dave 192.0.2.16",                    // just outside
		"pop3 eve 192.0.2.1",                      // dry-run, allowed
		"pop3 frank 203.0.113.3",                  // dry-run
		"lmtp monitoring@example.com -",           // no rule: no decision
	})
	got := summary(snap, MustEvaluate(t, rs, snap))
	want := []string{
		"0 everyone allowed", "1 everyone allowed", "2 everyone allowed", "3 everyone allowed",
		"4 everyone allowed", "5 everyone kick", "6 dry allowed", "7 dry dry-run",
	}
	if !slices.Equal(got, want) {
		t.Errorf("decisions %q; want %q", got, want)
	}
}

func TestEvaluateDecisionFields(t *testing.T) {
	rs := MustLoadYAML(t, `rules:
  - name: block-net
    description: credential stuffing, OPS-1234
    networks: [198.51.100.0/24, 198.51.100.0/26]
  - name: compromised
    users: ["mallory@*"]
  - name: drain
    dest_hosts: [10.0.0.2]
    max_kicks_per_cycle: 50
  - name: alias
    passdb_field: user_alt
    values: [old-*, legacy-*]
    services: [imap, pop3]
  - name: exact
    users: [trent]
`)
	snap := newSnap([]string{
		"imap alice 198.51.100.7",
		"pop3 Mallory@example.com 203.0.113.9",
		"imap-login bob 203.0.113.10 dest=10.0.0.2",
		"pop3 carol 203.0.113.11 alt=legacy-carol",
		"imap trent 203.0.113.12",
	})
	snap.Protocol = anvil.Proto23
	snap.Sessions[0].ConnGUID = "0123456789abcdef0123456789abcdef"
	ds := MustEvaluate(t, rs, snap)
	type row struct {
		ID, Rule, Reason string
		Action           Action
		Max              int
		Engine           Engine
	}
	var got []row
	for _, d := range ds {
		got = append(got, row{d.ID, d.Rule, d.Reason, d.Action, d.MaxKicksPerCycle, d.Engine})
	}
	want := []row{
		{"0123456789abcdef0123456789abcdef", "block-net", "credential stuffing, OPS-1234; client 198.51.100.7 in 198.51.100.0/26", ActionKick, 0, EngineYAML},
		{"1001/pop3/203.0.113.9/Mallory@example.com", "compromised", `user "Mallory@example.com" matches "mallory@*"`, ActionKick, 0, EngineYAML},
		{"1002/imap-login/203.0.113.10/bob", "drain", "proxied to 10.0.0.2", ActionKick, 50, EngineYAML},
		{"1003/pop3/203.0.113.11/carol", "alias", `service pop3; user_alt "legacy-carol" matches "legacy-*"`, ActionKick, 0, EngineYAML},
		{"1004/imap/203.0.113.12/trent", "exact", `user "trent" matches "trent"`, ActionKick, 0, EngineYAML},
	}
	if !slices.Equal(got, want) {
		t.Errorf("decisions:\n%+v\nwant:\n%+v", got, want)
	}
	for i := range ds {
		if ds[i].Session != &snap.Sessions[i] {
			t.Errorf("decision %d: Session does not point into the snapshot", i)
		}
	}
}

// TestLoadDropIns: the main file, then the drop-in directory in name order
// (.yaml and .yml); hidden files, backups, other names and directories are
// ignored; allow lists add up.
func TestLoadDropIns(t *testing.T) {
	rs, err := Load(context.Background(), Sources{Rules: []string{"testdata/dropin/rules.yaml", "testdata/dropin/rules.d"}})
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{"testdata/dropin/rules.yaml", "testdata/dropin/rules.d/10-first.yml", "testdata/dropin/rules.d/20-second.yaml"}
	if !slices.Equal(rs.Files(), wantFiles) {
		t.Errorf("Files = %q; want %q", rs.Files(), wantFiles)
	}
	var names []string
	for _, r := range rs.rules {
		names = append(names, r.name)
	}
	if want := []string{"main-dry", "first", "second"}; !slices.Equal(names, want) {
		t.Errorf("rules in load order %q; want %q", names, want)
	}
	if len(rs.Allow.Users) != 1 || len(rs.Allow.Networks) != 1 {
		t.Errorf("allow list %v %v; want one user and one network from two files", rs.Allow.Users, rs.Allow.Networks)
	}
	snap := newSnap([]string{
		"imap a@example.org 203.0.113.1",
		"pop3 b@example.org 203.0.113.2",
		"pop3 c@example.org 192.0.2.3",
		"imap monitoring@example.com 203.0.113.4",
	})
	got := summary(snap, MustEvaluate(t, rs, snap))
	want := []string{"0 first kick", "1 second kick", "2 second allowed"}
	if !slices.Equal(got, want) {
		t.Errorf("decisions %q; want %q", got, want)
	}
	if rs.Rev() == "" || len(rs.Rev()) != 12 {
		t.Errorf("Rev = %q", rs.Rev())
	}
}

// TestEvaluateMatchesBruteForce is the index's property test: for random
// snapshots and rule sets mixing every kind of indexed and scanned rule,
// Evaluate decides exactly as trying every rule on every session does.
func TestEvaluateMatchesBruteForce(t *testing.T) {
	iterations := 300
	if testing.Short() {
		iterations = 30
	}
	total := 0
	actions := map[Action]int{}
	for seed := range uint64(iterations) {
		rng := rand.New(rand.NewPCG(seed, 0x6b69636b))
		snap := randomSnapshot(rng, 150)
		text := randomRules(rng, 1+rng.IntN(40))
		rs := MustLoadYAML(t, text)
		got := MustEvaluate(t, rs, snap)

		var want []Decision
		for i := range snap.Sessions {
			s := &snap.Sessions[i]
			var best *rule
			for _, r := range rs.rules {
				if r.active(testNow) && r.matches(s) && (best == nil || better(r, best)) {
					best = r
				}
			}
			if best == nil {
				continue
			}
			d := Decision{Session: s, Rule: best.name, Action: ActionKick}
			if best.dryRun {
				d.Action = ActionDryRun
			}
			if rs.Allow.Protects(s) {
				d.Action = ActionAllowed
			}
			want = append(want, d)
		}
		total += len(got)
		for _, d := range got {
			actions[d.Action]++
		}
		if len(got) != len(want) {
			t.Fatalf("seed %d: %d decisions; brute force %d\nrules:\n%s", seed, len(got), len(want), text)
		}
		for i := range got {
			if got[i].Session != want[i].Session || got[i].Rule != want[i].Rule || got[i].Action != want[i].Action {
				t.Fatalf("seed %d: decision %d: %s %s on %+v; brute force %s %s on %+v\nrules:\n%s", seed, i,
					got[i].Rule, got[i].Action, *got[i].Session, want[i].Rule, want[i].Action, *want[i].Session, text)
			}
		}
	}
	// The generator must keep producing all three outcomes, or the test
	// proves little.
	t.Logf("%d decisions over %d snapshots: %v", total, iterations, actions)
	for _, a := range []Action{ActionKick, ActionDryRun, ActionAllowed} {
		if actions[a] < iterations {
			t.Errorf("only %d %s decisions", actions[a], a)
		}
	}
}

var (
	randUsers    = []string{"alice", "Bob", "carol@example.org", "dave@example.org", "EVE@Example.org", "frank@example.net", "john doe", "x", ""}
	randServices = []string{"imap", "pop3", "submission", "imap-login", "pop3-login", "lmtp"}
	randAlt      = []string{"legacy-a", "LEGACY-b", "a-alt", "b-alt", "x@ext.example", ""}
)

func pick[T any](rng *rand.Rand, list []T) T { return list[rng.IntN(len(list))] }

// randomAddr draws from a few small networks so that rules hit often.
func randomAddr(rng *rand.Rand) netip.Addr {
	switch rng.IntN(6) {
	case 0:
		return netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(8))})
	case 1:
		return netip.AddrFrom4([4]byte{10, byte(rng.IntN(2)), byte(rng.IntN(2)), byte(rng.IntN(4))})
	case 2:
		return netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(4))}) // mapped below, sometimes
	case 3:
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(rng.IntN(2)), 15: byte(rng.IntN(4))})
	case 4:
		return netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(rng.IntN(3))}).WithZone("eth0")
	}
	return netip.Addr{}
}

func randomSnapshot(rng *rand.Rand, n int) *anvil.Snapshot {
	snap := &anvil.Snapshot{Protocol: anvil.Proto24, AltNames: altNames}
	for i := range n {
		s := anvil.Session{Service: pick(rng, randServices), User: pick(rng, randUsers), PID: int64(100 + i), Connections: 1}
		if rng.IntN(4) == 0 {
			s.User = strings.ToUpper(s.User)
		}
		if rng.IntN(8) == 0 {
			s.Service = strings.ToUpper(s.Service)
		}
		s.IP = randomAddr(rng)
		if s.IP.Is4() && rng.IntN(3) == 0 {
			s.IP = netip.AddrFrom16(s.IP.As16())
		}
		if rng.IntN(3) == 0 {
			s.DestIP = netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + rng.IntN(3))})
			if rng.IntN(3) == 0 {
				s.DestIP = netip.AddrFrom16(s.DestIP.As16())
			}
		}
		switch rng.IntN(4) {
		case 0: // no alt columns
		case 1:
			s.SetAlt(altNames, []string{pick(rng, randAlt)})
		default:
			s.SetAlt(altNames, []string{pick(rng, randAlt), pick(rng, randAlt)})
		}
		snap.Sessions = append(snap.Sessions, s)
	}
	return snap
}

func randomNetwork(rng *rand.Rand) string {
	a := randomAddr(rng).WithZone("")
	if !a.IsValid() {
		a = netip.MustParseAddr("192.0.2.1")
	}
	bits := a.BitLen() - rng.IntN(a.BitLen()/4+1)
	if rng.IntN(8) == 0 {
		bits = 0
	}
	// (IPv4-mapped spellings are refused by the parser: they match
	// nothing in doveadm.)
	return netip.PrefixFrom(a, bits).Masked().String()
}

func randomMasks(rng *rand.Rand, pool []string, wild bool) []string {
	var out []string
	for range 1 + rng.IntN(3) {
		m := pick(rng, pool)
		if m == "" {
			m = "nobody"
		}
		if rng.IntN(3) == 0 {
			m = strings.ToUpper(m)
		}
		if wild {
			switch rng.IntN(6) {
			case 0:
				m = "*"
			case 1: // literal prefix
				m = m[:len(m)/2] + "*"
			case 2: // literal suffix
				m = "?" + m[1:]
			case 3: // literal suffix
				m = "*" + m[len(m)/2:]
			case 4: // both; the longer one is indexed
				m = m[:1] + "*" + m[len(m)-1:]
			}
		}
		out = append(out, m)
	}
	return out
}

// randomRules writes n rules, each of one kind the index treats apart.
func randomRules(rng *rand.Rand, n int) string {
	type spec map[string]any
	var rules []spec
	for i := range n {
		r := spec{"name": fmt.Sprintf("r%d", i)}
		switch rng.IntN(5) {
		case 0: // network-indexed
			var nets []string
			for range 1 + rng.IntN(3) {
				nets = append(nets, randomNetwork(rng))
			}
			r["networks"] = nets
		case 1: // dest-indexed
			d := fmt.Sprintf("10.0.0.%d", 1+rng.IntN(3))
			if rng.IntN(3) == 0 {
				d = "::ffff:" + d
			}
			r["dest_hosts"] = []string{d}
		case 2: // exact users
			r["users"] = randomMasks(rng, randUsers, false)
		case 3: // alt values, exact or masks
			r["passdb_field"] = pick(rng, []string{"user_alt", "user_ext", "user_none"})
			r["values"] = randomMasks(rng, randAlt, rng.IntN(2) == 0)
		case 4: // scanned: wildcard users or services only
			if rng.IntN(2) == 0 {
				r["users"] = randomMasks(rng, randUsers, true)
			} else {
				r["services"] = []string{strings.ToUpper(pick(rng, randServices))}
			}
		}
		// Extra selectors narrow the rule without changing its index.
		if rng.IntN(4) == 0 {
			r["services"] = []string{pick(rng, randServices), pick(rng, randServices)}
		}
		if rng.IntN(5) == 0 && r["users"] == nil {
			r["users"] = randomMasks(rng, randUsers, true)
		}
		if rng.IntN(5) == 0 {
			r["except_users"] = randomMasks(rng, randUsers, rng.IntN(2) == 0)
		}
		if rng.IntN(5) == 0 {
			r["except_networks"] = []string{randomNetwork(rng)}
		}
		if rng.IntN(4) == 0 {
			r["dry_run"] = true
		}
		if rng.IntN(6) == 0 {
			r["expires"] = testNow.Add(time.Duration(rng.IntN(3)-1) * time.Hour).Format(time.RFC3339)
		}
		rules = append(rules, r)
	}
	file := map[string]any{"rules": rules}
	if rng.IntN(3) == 0 {
		file["allow"] = map[string]any{"users": randomMasks(rng, randUsers, true), "networks": []string{randomNetwork(rng)}}
	}
	out, err := yaml.Marshal(file)
	if err != nil {
		panic(err)
	}
	return string(out)
}
