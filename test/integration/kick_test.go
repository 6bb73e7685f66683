package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// kickLogins are the sessions every case of TestKick starts from: IPv4
// from 127.0.0.2-6 and IPv6 from ::1, IMAP and POP3, users whose names
// differ by one letter and a name with a space.
var kickLogins = []login{
	0: {"alice", "127.0.0.2", "imap"},
	1: {"alice", "127.0.0.3", "pop3"},
	2: {"bob", "127.0.0.4", "imap"},
	3: {"jane", "127.0.0.5", "imap"},
	4: {"jano", "127.0.0.6", "pop3"},
	5: {"james", "127.0.0.2", "imap"},
	6: {"john doe", "127.0.0.3", "imap"},
	7: {"carol", "::1", "imap"},
	8: {"dave", "::1", "pop3"},
}

// kickCase is one kickagent kick run: args after "kick -a <anvil>", the
// exit code and the indexes into kickLogins the server must close; every
// other login must stay open.
type kickCase struct {
	name   string
	args   []string
	exit   int
	closed []int
	// v23, when set, replaces exit and closed on Dovecot 2.3.
	v23 *kickCase
	// stdout, if set, must appear in the output.
	stdout string
}

var kickCases = []kickCase{
	{name: "mask ?", args: []string{"jan?"}, closed: []int{3, 4}},
	{name: "mask * upper case", args: []string{"JAN*"}, closed: []int{3, 4}},
	{name: "mask * mixed case", args: []string{"jA*"}, closed: []int{3, 4, 5}},
	{name: "two masks", args: []string{"bob", "Dave"}, closed: []int{2, 8}},
	{name: "name with space", args: []string{"john doe"}, closed: []int{6}},
	{name: "ipv4 address", args: []string{"127.0.0.3"}, closed: []int{1, 6}},
	{name: "ipv4 /32", args: []string{"127.0.0.3/32"}, closed: []int{1, 6}},
	{name: "ipv4 /30", args: []string{"127.0.0.0/30"}, closed: []int{0, 1, 5, 6}},
	{name: "ipv6 address", args: []string{"::1"}, closed: []int{7, 8}},
	{name: "ipv6 /128", args: []string{"::1/128"}, closed: []int{7, 8}},
	{name: "ipv4 /8 spares ipv6", args: []string{"127.0.0.0/8"}, closed: []int{0, 1, 2, 3, 4, 5, 6}},
	{name: "user and ip", args: []string{"alice", "127.0.0.3"}, closed: []int{1}},
	{name: "mask and network", args: []string{"ja*", "127.0.0.0/30"}, closed: []int{5}},
	{name: "mask and ipv6", args: []string{"*", "::1"}, closed: []int{7, 8}},
	{name: "user and other ip", args: []string{"alice", "::1"}, exit: 68},
	// Issue 11: old-style IPv4 text was a second user mask, OR-ed with
	// "alice": every session of alice (and none by address) was kicked.
	// A zero-padded dotted quad is read as doveadm reads it (decimal);
	// the other inet_aton forms are refused, and nothing is kicked.
	{name: "user and zero-padded ip", args: []string{"alice", "127.000.000.003"}, closed: []int{1}},
	{name: "user and abbreviated ip", args: []string{"alice", "127.3"}, exit: 64},
	{name: "hex ip", args: []string{"0x7f.0.0.3"}, exit: 64},
	{name: "abbreviated network", args: []string{"127/8"}, exit: 64},
	{name: "mapped network", args: []string{"::ffff:127.0.0.0/104"}, exit: 64},
	{name: "bracketed ipv6", args: []string{"[::1]"}, closed: []int{7, 8}},
	{name: "no such user", args: []string{"nobody"}, exit: 68},
	{name: "no such mask", args: []string{"nob*dy?"}, exit: 68},
	{name: "dry run", args: []string{"--dry-run", "alice", "ja*"}, stdout: "alice james jane jano"},
	{
		name: "alt field wildcard", args: []string{"-f", "user_alt", "ali*"}, closed: []int{0, 1},
		v23: &kickCase{exit: 68},
	},
	{
		name: "alt field exact", args: []string{"-f", "user_alt", "JANE-alt"}, closed: []int{3},
		v23: &kickCase{exit: 68},
	},
}

// TestKick runs kickagent kick against real Dovecot 2.3 and 2.4 backends
// and checks, connection by connection, which clients the server closed.
func TestKick(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			for _, tc := range kickCases {
				t.Run(tc.name, func(t *testing.T) {
					exit, closed := tc.exit, tc.closed
					if tc.v23 != nil && !inst.Is24() {
						exit, closed = tc.v23.exit, tc.v23.closed
					}
					ctx := testCtx(t)
					waitQuiet(t, ctx, inst)
					hs := holdAll(t, ctx, inst, kickLogins...)
					waitListed(t, ctx, inst, hs)
					out, errOut, code := kickagent(t, ctx, append([]string{"kick", "-a", inst.Anvil}, tc.args...)...)
					if code != exit {
						t.Errorf("%s: kick %q: exit %d, want %d\nstdout: %s\nstderr: %s", inst.Name, tc.args, code, exit, out, errOut)
					}
					if tc.stdout != "" && !strings.Contains(out, tc.stdout) {
						t.Errorf("%s: kick %q: stdout %q does not say %q", inst.Name, tc.args, out, tc.stdout)
					}
					checkClosed(t, ctx, inst, hs, closed...)
				})
			}
		})
	}
}

// TestKickJSON checks the --json outcome of a kick and of a dry run.
func TestKickJSON(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			ctx := testCtx(t)
			waitQuiet(t, ctx, inst)
			hs := holdAll(t, ctx, inst, kickLogins...)
			waitListed(t, ctx, inst, hs)

			recs, code := kickJSON(t, ctx, inst, "--dry-run", "jan?")
			if code != 0 {
				t.Errorf("%s: kick --dry-run jan?: exit %d", inst.Name, code)
			}
			checkOutcomes(t, inst, recs, "jane dry-run", "jano dry-run")
			checkClosed(t, ctx, inst, hs)

			recs, code = kickJSON(t, ctx, inst, "jan?")
			if code != 0 {
				t.Errorf("%s: kick jan?: exit %d", inst.Name, code)
			}
			checkOutcomes(t, inst, recs, "jane kicked", "jano kicked")
			method := "kick-user"
			if !inst.Is24() {
				method = "sigterm"
			}
			for _, r := range recs {
				if r.Method != method || r.PID == 0 || r.Error != "" {
					t.Errorf("%s: record %+v: want method %s, a pid and no error", inst.Name, r, method)
				}
			}
			checkClosed(t, ctx, inst, hs, 3, 4)
		})
	}
}

// holdAll is hold with the logins done concurrently.
func holdAll(t *testing.T, ctx context.Context, inst *testrig.Instance, logins ...login) []*held {
	t.Helper()
	hs := make([]*held, len(logins))
	errs := make([]error, len(logins))
	var wg sync.WaitGroup
	for i, l := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := netip.MustParseAddr(l.src)
			var c *testrig.Conn
			var err error
			if l.proto == "pop3" {
				c, err = testrig.DialPOP3(ctx, src, inst.POP3Port, l.user, testrig.Password)
			} else {
				c, err = testrig.DialIMAP(ctx, src, inst.IMAPPort, l.user, testrig.Password)
			}
			hs[i], errs[i] = &held{login: l, conn: c}, err
		}()
	}
	wg.Wait()
	for i, h := range hs {
		if errs[i] == nil {
			t.Cleanup(func() { h.conn.Close() })
		}
	}
	for i, err := range errs {
		if err != nil {
			l := logins[i]
			t.Fatalf("%s: log in %s from %s over %s: %v", inst.Name, l.user, l.src, l.proto, err)
		}
	}
	return hs
}

// waitQuiet waits until anvil lists no session: sessions of an earlier
// test take a moment to leave after their clients closed, and would
// otherwise be selected too.
func waitQuiet(t *testing.T, ctx context.Context, inst *testrig.Instance) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		recs := whoJSON(t, ctx, inst)
		if len(recs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: anvil still lists sessions nobody in this test holds (another user of the instance?): %+v", inst.Name, recs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitListedAs is waitListed for sessions anvil lists under another
// service name (a 2.4 login proxy lists imap as imap-login).
func waitListedAs(t *testing.T, ctx context.Context, inst *testrig.Instance, hs []*held, suffix string) []whoRec {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := whoJSON(t, ctx, inst)
		missing := ""
		for _, h := range hs {
			if !listed(recs, h.user, h.proto+suffix, h.src) {
				missing = h.user + " " + h.proto + suffix + " " + h.src
				break
			}
		}
		if missing == "" {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: anvil does not list %s: %+v", inst.Name, missing, recs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkClosed checks that the server closed exactly the held connections
// with the given indexes: those must see EOF (after an IMAP BYE) within a
// generous deadline, every other one must still answer NOOP.
func checkClosed(t *testing.T, ctx context.Context, inst *testrig.Instance, hs []*held, closed ...int) {
	t.Helper()
	for _, i := range closed {
		h := hs[i]
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := h.conn.WaitClosed(wctx)
		cancel()
		if err != nil {
			t.Errorf("%s: %s %s from %s: not closed by the server: %v", inst.Name, h.user, h.proto, h.src, err)
		}
	}
	// A connection kicked by mistake may take a moment to be closed.
	time.Sleep(100 * time.Millisecond)
	for i, h := range hs {
		if slices.Contains(closed, i) {
			continue
		}
		if err := h.conn.StillOpen(ctx); err != nil {
			t.Errorf("%s: %s %s from %s: should be open: %v", inst.Name, h.user, h.proto, h.src, err)
		}
	}
}

// kickRec is one line of kickagent kick --json.
type kickRec struct {
	whoRec
	Outcome    string `json:"outcome"`
	Method     string `json:"method"`
	Collateral bool   `json:"collateral"`
	Error      string `json:"error"`
}

func (r kickRec) String() string {
	s := fmt.Sprintf("%s %s", r.User, r.Outcome)
	if r.Collateral {
		s += " collateral"
	}
	return s
}

// kickJSON runs kickagent kick --json and returns its records and exit code.
func kickJSON(t *testing.T, ctx context.Context, inst *testrig.Instance, args ...string) ([]kickRec, int) {
	t.Helper()
	out, errOut, code := kickagent(t, ctx, append([]string{"kick", "--json", "-a", inst.Anvil}, args...)...)
	var recs []kickRec
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var r kickRec
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s: bad kick --json output: %v\n%s", inst.Name, err, out)
		}
		recs = append(recs, r)
	}
	if code != 0 {
		t.Logf("%s: kick --json %q: exit %d, stderr: %s", inst.Name, args, code, errOut)
	}
	return recs, code
}

// checkOutcomes compares "user outcome [collateral]" of every record,
// order ignored.
func checkOutcomes(t *testing.T, inst *testrig.Instance, recs []kickRec, want ...string) {
	t.Helper()
	var got []string
	for _, r := range recs {
		got = append(got, r.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: kick --json outcomes %q, want %q (records %+v)", inst.Name, got, want, recs)
	}
}

// pidsOf returns the distinct pids anvil lists for user from src.
func pidsOf(recs []whoRec, user, src string) []int64 {
	want := netip.MustParseAddr(src)
	var pids []int64
	for _, r := range recs {
		ip, err := netip.ParseAddr(r.IP)
		if r.User == user && err == nil && ip.Unmap() == want && !slices.Contains(pids, r.PID) {
			pids = append(pids, r.PID)
		}
	}
	return pids
}
