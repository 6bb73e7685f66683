package anvil_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// TestStreamMatchesDump: Stream passes on the sessions Dump returns, in
// order, with the same alt columns, escaped lines and IPv6 zones included,
// and skips and records the same malformed lines.
func TestStreamMatchesDump(t *testing.T) {
	const g = "0123456789abcdef0123456789abcdef"
	extra := map[anvil.Protocol]string{
		anvil.Proto23: "imap/192.0.2.7/we\x01tird\t12700\t1\nimap/192.0.2.8/bad\tjunk\t1\nlmtp/a/b\t5\t1\n",
		anvil.Proto24: "7\tu\x01n\timap\t::1\t" + g + "\t\tv\x01t\n8\tw\timap-login\t192.0.2.9\t" + g + "\t10.0.0.1\t\tx\n" +
			"9\tbad\timap\t::1\tnot-a-guid\t\n10\tz\timap-login\tfe80::1%lo\t" + g + "\tfe80::2%eth0\n",
	}
	for _, proto := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		t.Run(proto.Dovecot(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			reply := dumpOf(proto, 5000)
			reply = reply[:len(reply)-1] + extra[proto] + "\n"
			srv := anviltest.New(t, proto, anviltest.WithDump(reply))
			cl := &anvil.Client{Path: srv.Path, Protocol: proto}
			snap, err := cl.Dump(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			var got []anvil.Session
			bad, err := cl.Stream(ctx, func(p anvil.Protocol, alt []string) error {
				names = slices.Clone(alt)
				return nil
			}, func(s *anvil.Session) error {
				got = append(got, s.Detached())
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if bad.Count != 1 || !reflect.DeepEqual(bad, snap.BadLines) {
				t.Errorf("Stream's bad lines %+v, Dump's %+v", bad, snap.BadLines)
			}
			if d := diffSessions(snap.AltNames, snap.Sessions, names, got); d != "" {
				t.Fatal(d)
			}
		})
	}
}
