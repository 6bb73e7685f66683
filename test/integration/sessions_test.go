package integration

import (
	"context"
	"encoding/json"
	"github.com/kickagent/kickagent/internal/snapshot"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// login is one client session a test holds open.
type login struct {
	user, src, proto string // proto: imap or pop3
}

type held struct {
	login
	conn *testrig.Conn
}

// hold logs every session in and closes them at the end of the test.
func hold(t *testing.T, ctx context.Context, inst *testrig.Instance, logins ...login) []*held {
	t.Helper()
	var hs []*held
	for _, l := range logins {
		src := netip.MustParseAddr(l.src)
		var (
			c   *testrig.Conn
			err error
		)
		if l.proto == "pop3" {
			c, err = testrig.DialPOP3(ctx, src, inst.POP3Port, l.user, "pass")
		} else {
			c, err = testrig.DialIMAP(ctx, src, inst.IMAPPort, l.user, "pass")
		}
		if err != nil {
			t.Fatalf("%s: log in %s from %s over %s: %v", inst.Name, l.user, l.src, l.proto, err)
		}
		t.Cleanup(func() { c.Close() })
		hs = append(hs, &held{login: l, conn: c})
	}
	return hs
}

// waitListed polls kickagent who until every login is listed: a session
// registers in anvil only after its login completed.
func waitListed(t *testing.T, ctx context.Context, inst *testrig.Instance, hs []*held) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := whoJSON(t, ctx, inst)
		missing := ""
		for _, h := range hs {
			if !listed(recs, h.user, h.proto, h.src) {
				missing = h.user + " " + h.proto + " " + h.src
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: anvil does not list %s: %+v", inst.Name, missing, recs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// whoRec is one line of kickagent who --json.
type whoRec = snapshot.Record

func whoJSON(t *testing.T, ctx context.Context, inst *testrig.Instance, args ...string) []whoRec {
	t.Helper()
	out, errOut, code := kickagent(t, ctx, append([]string{"who", "--json", "-a", inst.Anvil}, args...)...)
	if code != 0 {
		t.Fatalf("%s: kickagent who --json: exit %d: %s", inst.Name, code, errOut)
	}
	var recs []whoRec
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var r whoRec
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s: bad who --json output: %v\n%s", inst.Name, err, out)
		}
		recs = append(recs, r)
	}
	return recs
}

func listed(recs []whoRec, user, service, ip string) bool {
	want := netip.MustParseAddr(ip)
	for _, r := range recs {
		got, err := netip.ParseAddr(r.IP)
		if r.User == user && r.Service == service && err == nil && got.Unmap() == want.Unmap() {
			return true
		}
	}
	return false
}

// assertClosed waits until the server closed every connection.
func assertClosed(t *testing.T, ctx context.Context, cs ...*testrig.Conn) {
	t.Helper()
	for _, c := range cs {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.WaitClosed(wctx)
		cancel()
		if err != nil {
			t.Errorf("%s from %s (%s) was not closed: %v", c.User, c.Src, c.Proto, err)
		}
	}
}

// assertOpen proves every connection is still served.
func assertOpen(t *testing.T, ctx context.Context, cs ...*testrig.Conn) {
	t.Helper()
	for _, c := range cs {
		if err := c.StillOpen(ctx); err != nil {
			t.Errorf("%s from %s (%s) should still be open: %v", c.User, c.Src, c.Proto, err)
		}
	}
}
