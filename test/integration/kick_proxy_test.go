package integration

import (
	"slices"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/testrig"
)

// proxyLogins are clients of a 2.4 login proxy; the proxy forwards them to
// the v24 backend at 127.0.0.1.
var proxyLogins = []login{
	0: {"alice", "127.0.0.2", "imap"},
	1: {"alice", "127.0.0.3", "pop3"},
	2: {"bob", "127.0.0.4", "imap"},
	3: {"jane", "::1", "imap"},
}

// TestKickProxy24 kicks proxied sessions on v24proxy (one login process
// per connection: anvil's own kick leaves them open on Dovecot 2.4.0-2.4.4,
// so kickagent must SIGTERM the verified login process) and v24proxyhp
// (many connections per login process: anvil's KICK-USER works).
func TestKickProxy24(t *testing.T) {
	for _, name := range []string{testrig.V24Proxy, testrig.V24ProxyHP} {
		t.Run(name, func(t *testing.T) {
			proxy := instance(t, name)
			backend := instance(t, proxy.Backend)
			cases := []struct {
				name   string
				args   []string
				exit   int
				closed []int
			}{
				{"user", []string{"--json", "alice"}, 0, []int{0, 1}},
				{"dest", []string{"--json", "-h", "127.0.0.1"}, 0, []int{0, 1, 2, 3}},
				{"dest and user", []string{"-h", "127.0.0.1", "bob"}, 0, []int{2}},
				{"dest and ipv6", []string{"-h", "127.0.0.1", "::1"}, 0, []int{3}},
				{"other dest", []string{"-h", "127.0.0.9"}, 68, nil},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					ctx := testCtx(t)
					waitQuiet(t, ctx, proxy)
					waitQuiet(t, ctx, backend)
					hs := holdAll(t, ctx, proxy, proxyLogins...)
					// A direct backend client: a kick on the proxy must not reach it.
					direct := hold(t, ctx, backend, login{"carol", "127.0.0.5", "imap"})
					recs := waitListedAs(t, ctx, proxy, hs, "-login")
					for _, r := range recs {
						if r.DestIP != "127.0.0.1" {
							t.Fatalf("%s: proxied session %+v: dest_ip %q, want 127.0.0.1", proxy.Name, r, r.DestIP)
						}
					}
					// who -1 shows the dest_ip column too.
					out, _, code := kickagent(t, ctx, "who", "-1", "-a", proxy.Anvil, "alice")
					if code != 0 || !strings.Contains(out, "dest_ip") || !strings.Contains(out, "127.0.0.1") {
						t.Errorf("%s: who -1 alice: exit %d, no dest_ip 127.0.0.1:\n%s", proxy.Name, code, out)
					}

					var krecs []kickRec
					if tc.args[0] == "--json" {
						krecs, code = kickJSON(t, ctx, proxy, tc.args[1:]...)
					} else {
						var errOut string
						out, errOut, code = kickagent(t, ctx, append([]string{"kick", "-a", proxy.Anvil}, tc.args...)...)
						if code != tc.exit {
							t.Logf("stdout: %s\nstderr: %s", out, errOut)
						}
					}
					if code != tc.exit {
						t.Errorf("%s: kick %q: exit %d, want %d", proxy.Name, tc.args, code, tc.exit)
					}
					for _, r := range krecs {
						if r.Outcome != "kicked" || !strings.HasSuffix(r.Service, "-login") {
							t.Errorf("%s: record %+v: want a kicked login session", proxy.Name, r)
						}
						// The rig's Dovecot 2.4.1 has the bug: anvil's kick leaves a
						// one-connection login process open, kickagent signals it.
						if name == testrig.V24Proxy && r.Method != "login-sigterm" {
							t.Errorf("%s: %s closed by %s, want login-sigterm (Dovecot 2.4.0-2.4.4 login kick bug; newer Dovecot?)",
								proxy.Name, r.User, r.Method)
						}
						if name == testrig.V24ProxyHP && r.Method != "kick-user" {
							t.Errorf("%s: %s closed by %s, want kick-user", proxy.Name, r.User, r.Method)
						}
					}
					if krecs != nil && len(krecs) != len(tc.closed) {
						t.Errorf("%s: kick %q: %d records, want %d: %+v", proxy.Name, tc.args, len(krecs), len(tc.closed), krecs)
					}
					checkClosed(t, ctx, proxy, hs, tc.closed...)
					checkClosed(t, ctx, backend, direct)
				})
			}
		})
	}
}

// TestKickProxy24Collateral: on v24proxyhp two proxied connections of
// alice, from 127.0.0.2 and 127.0.0.3, share one login process with bob,
// who also connects from 127.0.0.2. KICK-USER alice reaches every
// connection of alice in that process, and the one from 127.0.0.2 cannot
// be closed alone by its socket (bob's has the same client address;
// TestProxy24ExactByIP covers distinct addresses), so kicking only it must
// be refused; --force closes both of alice's, and never bob's.
func TestKickProxy24Collateral(t *testing.T) {
	proxy := instance(t, testrig.V24ProxyHP)
	backend := instance(t, proxy.Backend)
	ctx := testCtx(t)
	waitQuiet(t, ctx, proxy)
	waitQuiet(t, ctx, backend)
	hs := hold(t, ctx, proxy,
		login{"alice", "127.0.0.2", "imap"},
		login{"alice", "127.0.0.3", "imap"},
		login{"bob", "127.0.0.2", "imap"},
	)
	recs := waitListedAs(t, ctx, proxy, hs, "-login")
	a2, a3, b := pidsOf(recs, "alice", "127.0.0.2"), pidsOf(recs, "alice", "127.0.0.3"), pidsOf(recs, "bob", "127.0.0.2")
	if len(a2) != 1 || !slices.Equal(a2, a3) || !slices.Equal(a2, b) {
		t.Fatalf("%s: the proxied sessions are not in one login process (alice .2 %v, alice .3 %v, bob %v): %+v",
			proxy.Name, a2, a3, b, recs)
	}

	out, errOut, code := kickagent(t, ctx, "kick", "-a", proxy.Anvil, "alice", "127.0.0.2")
	if code != 2 {
		t.Errorf("%s: kick alice 127.0.0.2: exit %d, want 2\nstdout: %s\nstderr: %s", proxy.Name, code, out, errOut)
	}
	if !strings.Contains(errOut, "alice (imap-login pid") || !strings.Contains(errOut, "127.0.0.3") {
		t.Errorf("%s: kick alice 127.0.0.2: stderr does not name alice's connection from 127.0.0.3: %s", proxy.Name, errOut)
	}
	checkClosed(t, ctx, proxy, hs)

	krecs, code := kickJSON(t, ctx, proxy, "--force", "alice", "127.0.0.2")
	if code != 0 {
		t.Errorf("%s: kick --force alice 127.0.0.2: exit %d", proxy.Name, code)
	}
	checkOutcomes(t, proxy, krecs, "alice kicked", "alice kicked collateral")
	for _, r := range krecs {
		if r.Collateral != (r.IP == "127.0.0.3") {
			t.Errorf("%s: record %+v: collateral must be the connection from 127.0.0.3", proxy.Name, r)
		}
	}
	checkClosed(t, ctx, proxy, hs, 0, 1)
}
