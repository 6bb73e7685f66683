package integration

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// TestWhoIPv6Zone24: Dovecot 2.4 keeps a client's IPv6 scope id and prints
// it in CONNECT-DUMP ("fe80::1%lo", getnameinfo NI_NUMERICHOST). Such a
// session must not blind kickagent: who -1 lists it, zone included, with
// the other sessions, and exits 0 with no warning.
func TestWhoIPv6Zone24(t *testing.T) {
	ctx := testCtx(t)
	inst := instance(t, "v24")
	// Unique names and pids: other tests may use the instance at the same time.
	tag := fmt.Sprintf("ka-zone-%d-%d", os.Getpid(), time.Now().UnixNano()%1000000)
	pid := testrig.MinSyntheticPID + 100000 + os.Getpid()%100000
	sessions := []testrig.SyntheticSession{
		{User: tag + "-a", Service: "imap", IP: netip.MustParseAddr("fe80::1%lo"), PID: pid},
		{User: tag + "-b", Service: "imap-login", IP: netip.MustParseAddr("192.0.2.77"), PID: pid + 1,
			DestIP: netip.MustParseAddr("fe80::2%lo")},
		{User: tag + "-c", Service: "imap", IP: netip.MustParseAddr("192.0.2.78"), PID: pid + 2},
	}
	sc, err := testrig.RegisterSynthetic(ctx, inst, sessions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sc.Disconnect(testCtx(t)); err != nil {
			t.Errorf("disconnect the synthetic sessions: %v", err)
		}
	})

	// What real anvil prints for them (doveadm parses its own dump).
	dout, dcode, err := inst.Doveadm(ctx, "who", "-1", tag+"-*")
	if err != nil || dcode != 0 {
		t.Fatalf("doveadm who -1: exit %d: %v", dcode, err)
	}
	t.Logf("doveadm who -1 %s-*:\n%s", tag, dout)
	if !strings.Contains(dout, "fe80::1%lo") || !strings.Contains(dout, "fe80::2%lo") {
		t.Fatalf("anvil did not keep the zones; doveadm who -1:\n%s", dout)
	}

	out, errOut, code := kickagent(t, ctx, "who", "-1", "-a", inst.Anvil)
	if code != 0 || errOut != "" {
		t.Fatalf("kickagent who -1: exit %d, stderr %q", code, errOut)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], tag) {
			rows[f[0]] = l
		}
	}
	for _, want := range []struct{ user, ip string }{{"-a", "fe80::1%lo"}, {"-b", "fe80::2%lo"}, {"-c", "192.0.2.78"}} {
		if l := rows[tag+want.user]; !strings.Contains(l, want.ip) {
			t.Errorf("kickagent who -1 row of %s%s: %q, want %s in it\n%s", tag, want.user, l, want.ip, out)
		}
	}

	// The same through the snapshot path, and a network filter without a
	// zone selects the zoned client, as doveadm's net_is_in_network does.
	recs := whoJSON(t, ctx, inst, "fe80::/10")
	found := false
	for _, r := range recs {
		if r.User == tag+"-a" && r.IP == "fe80::1%lo" {
			found = true
		}
		if strings.HasPrefix(r.User, tag) && r.User != tag+"-a" {
			t.Errorf("fe80::/10 selected %+v", r)
		}
	}
	if !found {
		t.Errorf("who --json fe80::/10 does not list %s-a: %+v", tag, recs)
	}
}
