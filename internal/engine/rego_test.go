package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/kickagent/kickagent/internal/match"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

var (
	regoT0  = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	regoNow = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
)

// mustWritePolicy writes files (name → source) into a new directory.
func mustWritePolicy(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// mustLoadPolicy loads a one-file policy with strict builtin errors.
func mustLoadPolicy(tb testing.TB, src string) *Policy {
	tb.Helper()
	p, err := loadPolicy(context.Background(), []string{mustWritePolicy(tb, map[string]string{"p.rego": src})}, policyOptions{strictBuiltinErrors: true})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func mustEvaluate(tb testing.TB, p *Policy, in PolicyInput) []Decision {
	tb.Helper()
	if in.Now.IsZero() {
		in.Now = regoNow
	}
	ds, err := p.Evaluate(context.Background(), in)
	if err != nil {
		tb.Fatal(err)
	}
	return ds
}

func sess24(guid, user, ip string) anvil.Session {
	s := anvil.Session{Service: "imap", User: user, PID: 100, ConnGUID: guid, Connections: 1}
	if ip != "" {
		s.IP = netip.MustParseAddr(ip)
	}
	return s
}

func sess23(pid int64, service, user, ip string) anvil.Session {
	s := anvil.Session{Service: service, User: user, PID: pid, Connections: 1}
	if ip != "" {
		s.IP = netip.MustParseAddr(ip)
	}
	return s
}

func snapOf(proto anvil.Protocol, ss ...anvil.Session) *anvil.Snapshot {
	return &anvil.Snapshot{Protocol: proto, Sessions: ss}
}

// brief renders decisions as "id rule action" lines.
func brief(ds []Decision) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%s %s %s", d.ID, d.Rule, d.Action)
	}
	return out
}

func TestLoadPolicyInvalid(t *testing.T) {
	tests := []struct{ file, want string }{
		{"invalid-rego-v0-syntax.rego", "testdata/invalid-rego-v0-syntax.rego:3: rego_parse_error: `if` keyword is required before rule body\n" +
			"testdata/invalid-rego-v0-syntax.rego:3: rego_parse_error: `contains` keyword is required for partial set rules"},
		{"invalid-rego-parse.rego", "testdata/invalid-rego-parse.rego:4: rego_parse_error: unexpected if keyword: non-terminated object\n" +
			"testdata/invalid-rego-parse.rego:4: rego_parse_error: unexpected if keyword: expected rule key term (e.g., kick contains <VALUE> { ... })"},
		{"invalid-rego-package.rego", "testdata/invalid-rego-package.rego:2: package kickagent expected, got policy.kick"},
		{"invalid-rego-unused-var.rego", "testdata/invalid-rego-unused-var.rego:6: rego_compile_error: assigned var name unused"},
		{"invalid-rego-unused-import.rego", "testdata/invalid-rego-unused-import.rego:4: rego_compile_error: import data.lists unused"},
		{"invalid-rego-no-kick.rego", "testdata/invalid-rego-no-kick.rego:2: no kick rule: the policy must define data.kickagent.kick"},
		{"invalid-rego-unknown-builtin.rego", "testdata/invalid-rego-unknown-builtin.rego:6: rego_type_error: undefined function kickagent.net_in"},
		{"invalid-rego-builtin-args.rego", "testdata/invalid-rego-builtin-args.rego:6: rego_type_error: kickagent.in_networks: invalid argument(s)"},
		// Compiles, but would fail every evaluation (issue 12 item 5).
		{"invalid-rego-kick-number.rego", `testdata/invalid-rego-kick-number.rego:4: data.kickagent.kick is number; it must be a set of objects {"session": id, "rule": name, "reason": why}`},
		{"invalid-rego-kick-ids.rego", "testdata/invalid-rego-kick-ids.rego:4: the policy fails on a synthetic Dovecot 2.4 snapshot of 4 sessions: policy testdata/invalid-rego-kick-ids.rego: data.kickagent.kick: element 0123456789abcdef0123456789abcde0: want an object"},
		{"invalid-rego-bad-cidr-data.rego", `testdata/invalid-rego-bad-cidr-data.rego:7: kickagent.in_networks: data.kickagent.blocked: "203.0.113.0/33": the prefix length must be 0 to 32`},
		// The sandbox (issue 12 item 6).
		{"invalid-rego-http-send.rego", "testdata/invalid-rego-http-send.rego:5: builtin http.send is not allowed in kickagent policies: it reaches the network"},
		{"invalid-rego-lookup.rego", "testdata/invalid-rego-lookup.rego:5: builtin net.lookup_ip_addr is not allowed in kickagent policies: it reaches the network (DNS)"},
		{"invalid-rego-now-ns.rego", "testdata/invalid-rego-now-ns.rego:5: builtin time.now_ns is not allowed in kickagent policies: it reads the clock; use input.now_ns, the cycle's time"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadPolicy(context.Background(), []string{filepath.Join("testdata", tc.file)})
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v (%T), want Errors", err, err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			for _, e := range errs {
				if e.File == "" || (e.Line == 0 && !strings.Contains(tc.file, "no-kick")) {
					t.Errorf("error without location: %#v", e)
				}
			}
		})
	}
}

func TestLoadPolicyFiles(t *testing.T) {
	ctx := context.Background()
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "notes.txt"), []byte("x"), 0o644)
	_, err := LoadPolicy(ctx, []string{empty})
	if want := empty + ": no .rego policy files"; err == nil || err.Error() != want {
		t.Errorf("empty dir: %v, want %s", err, want)
	}
	_, err = LoadPolicy(ctx, []string{filepath.Join(empty, "missing")})
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("missing dir: %v", err)
	}

	src := "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"r\", \"reason\": \"x\"} if {\n\tsome s in input.sessions\n\ts.user == \"eve@example.com\"\n}\n"
	dir := mustWritePolicy(t, map[string]string{
		"b.rego":      src,
		"a.rego":      "package kickagent\n\nlist := [1]\n",
		"a_test.rego": "package kickagent_test\n\ntest_nothing if true\n",
	})
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "c.rego"), []byte("package kickagent\n\nother := 2\n"), 0o644)
	os.Mkdir(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "x.rego"), []byte("garbage"), 0o644)
	p, err := LoadPolicy(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a.rego"), filepath.Join(dir, "b.rego"), filepath.Join(dir, "sub", "c.rego")}
	if !slices.Equal(p.Files(), want) {
		t.Errorf("Files() = %q, want %q", p.Files(), want)
	}
	p2, err := LoadPolicy(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if p.Rev() != p2.Rev() || len(p.Rev()) != 64 {
		t.Errorf("Rev not stable: %s, %s", p.Rev(), p2.Rev())
	}
	os.WriteFile(filepath.Join(dir, "a.rego"), []byte("package kickagent\n\nlist := [2]\n"), 0o644)
	p3, err := LoadPolicy(ctx, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if p3.Rev() == p.Rev() {
		t.Error("Rev unchanged after an edit")
	}
	if p.Volatile() != "" {
		t.Errorf("Volatile() = %q", p.Volatile())
	}
}

// The shipped examples (policy/) on Dovecot 2.4 and 2.3 snapshots.
func TestPolicyExamples(t *testing.T) {
	p, err := loadPolicy(context.Background(), []string{"../../policy"}, policyOptions{strictBuiltinErrors: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Volatile() != "" || p.deps.aggregates || p.deps.allow {
		t.Errorf("examples: deps %+v: their decisions should be cached", p.deps)
	}
	proxied := sess24("g-proxy", "carol@example.com", "203.0.113.9")
	proxied.Service, proxied.DestIP = "imap-login", netip.MustParseAddr("198.51.100.10")
	proxiedOK := proxied
	proxiedOK.ConnGUID, proxiedOK.DestIP = "g-proxy-ok", netip.MustParseAddr("198.51.100.20")
	s24 := snapOf(anvil.Proto24,
		sess24("g-blocked", "carol@example.com", "192.0.2.44"),
		sess24("g-blocked6", "dave@example.com", "2001:db8:bad::7"),
		sess24("g-ok", "carol@example.com", "198.51.100.1"),
		sess24("g-alice-old", "Alice@Example.com", "198.51.100.2"),
		sess24("g-alice-new", "alice@example.com", "198.51.100.3"),
		proxied, proxiedOK,
	)
	firstSeen := map[string]time.Time{
		"g-alice-old": time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC),
		"g-alice-new": time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC),
	}
	fs := func(_ int, id string) time.Time {
		if t, ok := firstSeen[id]; ok {
			return t
		}
		return regoT0
	}
	ds := mustEvaluate(t, p, PolicyInput{Snapshot: s24, FirstSeen: fs})
	want := []string{
		"g-blocked blocked-networks kick",
		"g-blocked6 blocked-networks kick",
		"g-alice-old password-reset kick",
		"g-proxy drain kick",
	}
	if got := brief(ds); !slices.Equal(got, want) {
		t.Errorf("2.4 decisions\n got %q\nwant %q", got, want)
	}
	for _, d := range ds {
		if d.Engine != EngineRego || d.Session == nil || d.Session.ID() != d.ID || d.Reason == "" {
			t.Errorf("bad decision %+v", d)
		}
	}
	if ds[2].Reason != "session of Alice@Example.com first seen 2025-03-01T11:00:00Z, at or before the password reset at 2025-03-01T12:00:00Z" {
		t.Errorf("reason %q", ds[2].Reason)
	}

	s23 := snapOf(anvil.Proto23,
		sess23(501, "imap", "carol@example.com", "192.0.2.5"),
		sess23(502, "pop3", "bob@example.com", "198.51.100.5"),
		sess23(503, "lmtp", "carol@example.com", ""),
		sess23(504, "imap", "carol@example.com", "198.51.100.6"),
	)
	ds = mustEvaluate(t, p, PolicyInput{Snapshot: s23, FirstSeen: func(int, string) time.Time { return regoT0 }})
	want = []string{
		"501/imap/192.0.2.5/carol@example.com blocked-networks kick",
		"502/pop3/198.51.100.5/bob@example.com password-reset kick",
	}
	if got := brief(ds); !slices.Equal(got, want) {
		t.Errorf("2.3 decisions\n got %q\nwant %q", got, want)
	}
}

// The input document, as the policy sees it.
func TestPolicyInputDocument(t *testing.T) {
	p := mustLoadPolicy(t, `package kickagent

kick contains {"session": s.id, "rule": "echo", "reason": json.marshal({"s": s, "now": input.now, "now_ns": input.now_ns, "dovecot": input.dovecot, "allow": input.allow})} if {
	some s in input.sessions
}
`)
	if p.Volatile() == "" {
		t.Error("a policy reading input.now is not volatile")
	}
	s1 := sess24("0123456789abcdef0123456789abcdef", "alice@example.com", "192.0.2.1")
	s1.Service, s1.PID, s1.DestIP = "imap-login", 4711, netip.MustParseAddr("2001:db8::10")
	s1.SetAlt([]string{"user_alias", "user_ext"}, []string{"", "ali@ext.example"})
	s2 := sess24("fedcba9876543210fedcba9876543210", "alice@example.com", "")
	s2.Service = "lmtp"
	allow := &Allow{Users: []string{"monitor@example.com"}, Networks: []match.Network{{Prefix: netip.MustParsePrefix("203.0.113.0/24")}}}
	ds := mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, s1, s2), Now: regoNow, Allow: allow,
		FirstSeen: func(int, string) time.Time { return regoT0.Add(1500 * time.Millisecond) }})
	common := `"allow":{"networks":["203.0.113.0/24"],"users":["monitor@example.com"]},"dovecot":"2.4","now":"2025-03-03T00:00:00Z","now_ns":1740960000000000000`
	want := []string{
		`{` + common + `,"s":{"alt":{"user_alias":"","user_ext":"ali@ext.example"},"conn_guid":"0123456789abcdef0123456789abcdef","connections":1,"dest_ip":"2001:db8::10","first_seen":"2025-03-01T10:00:01.5Z","first_seen_ns":1740823201500000000,"id":"0123456789abcdef0123456789abcdef","ip":"192.0.2.1","ip_sessions":1,"pid":4711,"service":"imap-login","user":"alice@example.com","user_sessions":2}}`,
		`{` + common + `,"s":{"alt":{},"conn_guid":"fedcba9876543210fedcba9876543210","connections":1,"dest_ip":"","first_seen":"2025-03-01T10:00:01.5Z","first_seen_ns":1740823201500000000,"id":"fedcba9876543210fedcba9876543210","ip":"","ip_sessions":0,"pid":100,"service":"lmtp","user":"alice@example.com","user_sessions":2}}`,
	}
	if len(ds) != 2 {
		t.Fatalf("decisions %+v", ds)
	}
	for i, d := range ds {
		if d.Reason != want[i] {
			t.Errorf("input %d\n got %s\nwant %s", i, d.Reason, want[i])
		}
	}
}

func TestPolicyDryRunAndBuiltins(t *testing.T) {
	p := mustLoadPolicy(t, `package kickagent

kick contains {"session": s.id, "rule": "spam-users", "reason": "spam", "dry_run": true} if {
	some s in input.sessions
	kickagent.user_match(["SPAM*@example.com", "bot?@example.org"], s.user)
}

kick contains {"session": s.id, "rule": "one-user", "reason": "exact"} if {
	some s in input.sessions
	kickagent.user_match("Mallory@Example.com", s.user)
}

kick contains {"session": s.id, "rule": "nets", "reason": "net", "dry_run": false} if {
	some s in input.sessions
	kickagent.in_networks(s.ip, {"192.0.2.0/25", "2001:db8:1::/48", "198.51.100.7"})
}
`)
	snap := snapOf(anvil.Proto24,
		sess24("a", "spam.king@EXAMPLE.com", "203.0.113.1"),
		sess24("b", "bot1@example.org", "192.0.2.200"),
		sess24("c", "bot12@example.org", "192.0.2.100"),
		sess24("d", "mallory@example.com", "2001:db8:1::5"),
		sess24("e", "eve@example.com", "::ffff:198.51.100.7"),
		sess24("f", "eve@example.com", ""),
		sess24("g", "eve@example.com", "198.51.100.8"),
	)
	want := []string{
		"a spam-users dry-run",
		"b spam-users dry-run",
		"c nets kick",
		"d nets kick",
		"d one-user kick",
		"e nets kick",
	}
	if got := brief(mustEvaluate(t, p, PolicyInput{Snapshot: snap})); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// Our builtins fail the evaluation on a bad list even without strict
// builtin errors; OPA's own are silently undefined unless strict. A list
// known at load (a literal, a rule that does not read the input) is
// checked there; one from the session's data fails at run time, here
// only for eve, who is not in the load-time synthetic snapshot.
func TestPolicyBuiltinErrors(t *testing.T) {
	ctx := context.Background()
	s := sess24("a", "eve@example.com", "192.0.2.1")
	s.SetAlt([]string{"user_nets"}, []string{"192.0.2.0/33"})
	snap := snapOf(anvil.Proto24, s)
	tests := []struct {
		name, body string
		strict     bool
		load, want string // errors expected at load, at Evaluate ("" for none)
	}{
		{"bad cidr literal", `kickagent.in_networks(s.ip, ["192.0.2.0/33"])`, false, `p.rego:6: kickagent.in_networks: the list: "192.0.2.0/33": the prefix length must be 0 to 32`, ""},
		{"bad cidr literal strict", `kickagent.in_networks(s.ip, ["192.0.2.0/33"])`, true, `p.rego:6: kickagent.in_networks: the list: "192.0.2.0/33": the prefix length must be 0 to 32`, ""},
		{"bad cidr in a rule", "kickagent.in_networks(s.ip, blocked)\n}\n\nblocked := {\"10.0.0.0/8\", \"192.0.2.0/33\"", false, `p.rego:6: kickagent.in_networks: data.kickagent.blocked: "192.0.2.0/33": the prefix length must be 0 to 32`, ""},
		{"empty mask literal", `kickagent.user_match(["alice*", ""], s.user)`, false, `p.rego:6: kickagent.user_match: the list: empty user mask`, ""},
		{"bad cidr in session data", `kickagent.in_networks(s.ip, s.alt.user_nets)`, false, "", `p.rego:6: kickagent.in_networks: "192.0.2.0/33": the prefix length must be 0 to 32`},
		{"not a list of strings", `kickagent.in_networks(s.ip, [s.pid])`, false, "", `kickagent.in_networks: list element 100: want string`},
		{"bad ip", `kickagent.in_networks(s.user, ["192.0.2.0/24"])`, false, "", `kickagent.in_networks: ip "eve@example.com": not an address`},
		// Pitfall: OPA's net.cidr_contains on a bad CIDR is undefined, so
		// the rule never fires, silently, unless StrictBuiltinErrors.
		{"opa builtin silent", `net.cidr_contains("192.0.2.0/33", s.ip)`, false, "", ""},
		{"opa builtin strict", `net.cidr_contains("192.0.2.0/33", s.ip)`, true, "", `net.cidr_contains: invalid CIDR`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "package kickagent\n\nkick contains {\"session\": s.id, \"rule\": \"r\", \"reason\": \"x\"} if {\n\tsome s in input.sessions\n\ts.user == \"eve@example.com\"\n\t" + tc.body + "\n}\n"
			dir := mustWritePolicy(t, map[string]string{"p.rego": src})
			p, err := loadPolicy(ctx, []string{dir}, policyOptions{strictBuiltinErrors: tc.strict})
			if tc.load != "" {
				if err == nil || !strings.Contains(err.Error(), tc.load) {
					t.Errorf("load: err = %v, want %q", err, tc.load)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ds, err := p.Evaluate(ctx, PolicyInput{Snapshot: snap, Now: regoNow})
			switch {
			case tc.want == "" && (err != nil || len(ds) != 0):
				t.Errorf("got %v, %v; want no error, no decision", ds, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want %q", err, tc.want)
			case tc.want != "" && !strings.HasPrefix(err.Error(), "policy "+dir+": "):
				t.Errorf("err = %v, want it to name the policy", err)
			}
			if tc.want != "" {
				// Nothing was decided: the next cycle tries again.
				if _, err2 := p.Evaluate(ctx, PolicyInput{Snapshot: snap, Now: regoNow}); err2 == nil {
					t.Error("second Evaluate succeeded")
				}
			}
		})
	}
}

func TestPolicyResultErrors(t *testing.T) {
	snap := snapOf(anvil.Proto24, sess24("a", "alice@example.com", "192.0.2.1"))
	tests := []struct{ name, head, want string }{
		{"unknown session", `{"session": "nope", "rule": "r", "reason": "x"}`, `unknown session "nope"`},
		{"missing rule", `{"session": s.id, "reason": "x"}`, `missing "rule"`},
		{"missing reason", `{"session": s.id, "rule": "r"}`, `missing "reason"`},
		{"empty rule", `{"session": s.id, "rule": "", "reason": "x"}`, `"rule": want a non-empty string`},
		{"number session", `{"session": s.pid, "rule": "r", "reason": "x"}`, `"session": want a non-empty string`},
		{"bad dry_run", `{"session": s.id, "rule": "r", "reason": "x", "dry_run": "yes"}`, `dry_run: want a boolean`},
		{"not an object", `s.id`, `want an object`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoadPolicy(t, "package kickagent\n\nkick contains "+tc.head+" if {\n\tsome s in input.sessions\n}\n")
			_, err := p.Evaluate(context.Background(), PolicyInput{Snapshot: snap, Now: regoNow})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "data.kickagent.kick") || !strings.HasPrefix(err.Error(), "policy ") {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// Rule names from METADATA titles (rewritten at compile time: free).
func TestPolicyMetadataTitle(t *testing.T) {
	p := mustLoadPolicy(t, `package kickagent

# METADATA
# title: legacy-backend
kick contains {"session": s.id, "rule": rego.metadata.rule().title, "reason": "old backend"} if {
	some s in input.sessions
	s.dest_ip == "198.51.100.99"
}
`)
	s := sess24("a", "alice@example.com", "192.0.2.1")
	s.DestIP = netip.MustParseAddr("198.51.100.99")
	if got := brief(mustEvaluate(t, p, PolicyInput{Snapshot: snapOf(anvil.Proto24, s)})); !slices.Equal(got, []string{"a legacy-backend kick"}) {
		t.Errorf("got %q", got)
	}
}
