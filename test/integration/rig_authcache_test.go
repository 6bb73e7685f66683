package integration

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// TestAuthCacheRig proves that p23 and p24 (SQLite passdb, auth cache on) have a cache a
// test can observe, the baseline of the issue 14 tests: after the password changes in the
// db, the old one still logs in (the cache answers, for IMAP and POP3 alike) until
// `doveadm auth cache flush USER`; then the old one fails and the new one works. A user
// who was never cached fails with the old password at once, which shows the db change is
// real. On p24 the session also carries user_alt in anvil.
//
// Each instance is restarted fresh first (new db, empty cache, no auth penalty) and
// stopped at the end. Every login that may fail comes from its own source address:
// anvil's auth penalty would otherwise delay the next login from that address.
func TestAuthCacheRig(t *testing.T) {
	testrig.RequireIntegration(t)
	for i, name := range []string{testrig.P23, testrig.P24} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inst := testrig.StartSQLT(t, name, testrig.Policy{})
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := testrig.Stop(ctx, name); err != nil {
					t.Error(err)
				}
			})
			authCacheRig(t, inst, byte(60+i))
		})
	}
}

func authCacheRig(t *testing.T, inst *testrig.Instance, subnet byte) {
	ctx := testCtx(t)
	n := byte(0)
	src := func() netip.Addr { n++; return netip.AddrFrom4([4]byte{127, 33, subnet, n}) }
	login := func(p testrig.Protocol, user, pass string, wantOK bool) {
		t.Helper()
		r, err := inst.TryLogin(ctx, p, src(), user, pass)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK != wantOK {
			t.Fatalf("%s login %q/%q: got %q, want success=%v", p, user, pass, r.Line, wantOK)
		}
	}

	login(testrig.IMAP, "alice", "pass", true) // fills the cache
	inst.PasswdT(t, "alice", "new")
	inst.PasswdT(t, "bob", "new")
	login(testrig.IMAP, "bob", "pass", false) // never cached: the db answers
	login(testrig.IMAP, "alice", "pass", true)
	login(testrig.POP3, "alice", "pass", true) // the cache key has no protocol

	if inst.Is24() {
		c, err := testrig.DialIMAP(ctx, src(), inst.IMAPPort, "alice", "pass")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		waitUserAlt(t, ctx, inst, "alice", "alice-alt")
	}

	got, err := inst.FlushAuthCache(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	// One passdb entry; p24's SQL userdb is cached too (a static userdb is not).
	want := 1
	if inst.Is24() {
		want = 2
	}
	if got != want {
		t.Errorf("doveadm auth cache flush alice: %d entries flushed, want %d", got, want)
	}
	login(testrig.IMAP, "alice", "pass", false)
	login(testrig.IMAP, "alice", "new", true)
	login(testrig.POP3, "alice", "new", true)
}

// waitUserAlt waits until `doveadm who -1` lists user with the alt name alt.
func waitUserAlt(t *testing.T, ctx context.Context, inst *testrig.Instance, user, alt string) {
	t.Helper()
	var rows []string
	for {
		var err error
		if rows, err = inst.Who(ctx, user); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if slices.Contains(strings.Fields(r), alt) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("doveadm who -1 %s never showed %s: %s", user, alt, fmt.Sprint(rows))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestAuthPolicyRig pins down what p23/p24 send to an auth policy server (the facts in
// test/dovecot/README.md): the attributes of each request, that only passdb_user (both
// versions) and user_alt (2.4) tell the after-authentication allow request from the one
// before, and what IMAP and POP3 clients see when the server refuses with a message,
// before or after authentication. The request bodies are logged (go test -v).
func TestAuthPolicyRig(t *testing.T) {
	testrig.RequireIntegration(t)
	for i, name := range []string{testrig.P23, testrig.P24} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ps := testrig.StartPolicyServer(t)
			inst := testrig.StartSQLT(t, name, testrig.Policy{URL: ps.URL, Header: "X-Test:abc"})
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := testrig.Stop(ctx, name); err != nil {
					t.Error(err)
				}
			})
			authPolicyRig(t, inst, ps, byte(70+i))
		})
	}
}

func authPolicyRig(t *testing.T, inst *testrig.Instance, ps *testrig.PolicyServer, subnet byte) {
	ctx := testCtx(t)
	n := byte(0)
	// login logs user in from a new source address and returns the server's answer and
	// the policy requests of that login.
	login := func(p testrig.Protocol, user, pass string) (testrig.LoginResult, []testrig.PolicyRequest) {
		t.Helper()
		n++
		r, err := inst.TryLogin(ctx, p, netip.AddrFrom4([4]byte{127, 33, subnet, n}), user, pass)
		if err != nil {
			t.Fatal(err)
		}
		reqs, err := ps.WaitFor(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range reqs {
			t.Logf("%s %s/%s: command=%s %s", inst.Name, user, p, q.Command, q.Raw)
		}
		return r, reqs
	}
	keys := []string{"device_id", "login", "passdb_user", "protocol", "pwhash", "remote", "session_id", "tls", "user"}
	if inst.Is24() {
		keys = append(keys, "fail_type", "user_alt")
	}
	checkKeys := func(q testrig.PolicyRequest) {
		t.Helper()
		want := append([]string(nil), keys...)
		if q.Command == "report" {
			want = append(want, "policy_reject", "success")
		}
		var got []string
		for k := range q.Body {
			got = append(got, k)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s request attributes %q, want %q", q.Command, got, want)
		}
		if h := q.Header.Get("X-Test"); h != "abc" {
			t.Errorf("%s request header X-Test %q, want abc", q.Command, h)
		}
	}
	commands := func(reqs []testrig.PolicyRequest) string {
		var c []string
		for _, q := range reqs {
			c = append(c, q.Command)
		}
		return strings.Join(c, ",")
	}
	alt := func(q testrig.PolicyRequest) string { return q.Str("user_alt") }

	// Success: allow before, allow after, report.
	r, reqs := login(testrig.IMAP, "bob", "pass")
	if !r.OK || commands(reqs) != "allow,allow,report" {
		t.Fatalf("bob: %q with requests %s, want success with allow,allow,report", r.Line, commands(reqs))
	}
	for _, q := range reqs {
		checkKeys(q)
	}
	before, after, report := reqs[0], reqs[1], reqs[2]
	if before.Str("passdb_user") != "" || after.Str("passdb_user") != "bob" || report.Str("passdb_user") != "bob" {
		t.Errorf("passdb_user before/after/report %q/%q/%q, want \"\"/bob/bob",
			before.Str("passdb_user"), after.Str("passdb_user"), report.Str("passdb_user"))
	}
	if inst.Is24() && (alt(before) != "" || alt(after) != "bob-alt" || alt(report) != "bob-alt") {
		t.Errorf("user_alt before/after/report %q/%q/%q, want \"\"/bob-alt/bob-alt", alt(before), alt(after), alt(report))
	}
	if report.Body["success"] != true || report.Body["policy_reject"] != false {
		t.Errorf("report of a success: %s", report.Raw)
	}

	// Wrong password: no allow after authentication.
	r, reqs = login(testrig.IMAP, "carol", "wrong")
	if r.OK || commands(reqs) != "allow,report" {
		t.Fatalf("carol/wrong: %q with requests %s, want a refusal with allow,report", r.Line, commands(reqs))
	}
	if q := reqs[1]; q.Body["success"] != false || q.Body["policy_reject"] != false || q.Str("passdb_user") != "" {
		t.Errorf("report of a wrong password: %s", q.Raw)
	}

	// Refused with a message, before authentication and after it.
	refuse := func(_ context.Context, _ testrig.PolicyRequest) string { return `{"status":-1,"msg":"X"}` }
	refuseAfter := func(ctx context.Context, q testrig.PolicyRequest) string {
		if q.Str("passdb_user") == "" {
			return `{"status":0}`
		}
		return refuse(ctx, q)
	}
	for _, tc := range []struct {
		answer   testrig.PolicyAnswer
		proto    testrig.Protocol
		user     string
		commands string
		line     string
	}{
		{refuse, testrig.IMAP, "dave", "allow,report", "a NO [ALERT] X"},
		{refuse, testrig.POP3, "eve", "allow,report", "-ERR [AUTH] X"},
		{refuseAfter, testrig.IMAP, "jane", "allow,allow,report", "a NO [ALERT] X"},
		{refuseAfter, testrig.POP3, "jano", "allow,allow,report", "-ERR [AUTH] X"},
	} {
		ps.SetAnswer(tc.answer)
		r, reqs := login(tc.proto, tc.user, "pass")
		if r.OK || r.Line != tc.line || commands(reqs) != tc.commands {
			t.Errorf("%s refused over %s: %q with requests %s, want %q with %s",
				tc.user, tc.proto, r.Line, commands(reqs), tc.line, tc.commands)
			continue
		}
		if q := reqs[len(reqs)-1]; q.Body["success"] != false || q.Body["policy_reject"] != true {
			t.Errorf("report of a refusal: %s", q.Raw)
		}
	}
}
