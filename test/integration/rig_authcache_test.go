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
