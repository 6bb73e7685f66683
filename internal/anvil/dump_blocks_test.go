package anvil_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// TestDumpAcrossBlocks: a dump of several MB, read through a small buffer
// with lines cut at its end, parses as the whole text does, on a first
// dump (no size hint), a second one (hint from the first), one much larger
// than the hint and one with a line longer than the buffer; DumpEach
// passes the same sessions while they arrive.
func TestDumpAcrossBlocks(t *testing.T) {
	for _, proto := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		t.Run(proto.Dovecot(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			small, large := dumpOf(proto, 3000), dumpOf(proto, 60000)
			huge := withLongLine(proto, large)
			srv := anviltest.New(t, proto, anviltest.WithDump(small))
			// The long line is within the bound (limits_test.go has
			// lines beyond it).
			cl := &anvil.Client{Path: srv.Path, Protocol: proto, Limits: anvil.Limits{MaxLineBytes: 1 << 20}}
			c, err := cl.Open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var kept []*anvil.Snapshot
			for i, reply := range []string{small, small, large, large, huge, small} {
				srv.SetDump(reply)
				// DumpEach passes every session in order, as it will be
				// in the snapshot.
				var each []anvil.Session
				snap, err := c.DumpEach(ctx, func(j int, s *anvil.Session) {
					if j != len(each) {
						t.Fatalf("dump %d: session %d passed after %d", i, j, len(each))
					}
					each = append(each, s.Detached())
				})
				if err != nil {
					t.Fatalf("dump %d: %v", i, err)
				}
				if d := diffSessions(snap.AltNames, each, snap.AltNames, snap.Sessions); d != "" {
					t.Fatalf("dump %d: DumpEach passed other sessions: %s", i, d)
				}
				wantAlt, want := parseReply(t, proto, reply)
				if !reflect.DeepEqual(snap.Sessions, want) || !reflect.DeepEqual(snap.AltNames, wantAlt) {
					t.Fatalf("dump %d: %d sessions differ from the parsed text (%d)", i, len(snap.Sessions), len(want))
				}
				// DeepEqual sees only the first alt value of a session.
				if d := diffSessions(snap.AltNames, snap.Sessions, wantAlt, want); d != "" {
					t.Fatalf("dump %d: %s", i, d)
				}
				if snap.Bytes != len(reply) {
					t.Errorf("dump %d: Bytes %d, reply %d", i, snap.Bytes, len(reply))
				}
				kept = append(kept, snap)
			}
			// Later dumps on the connection leave earlier snapshots alone.
			for i, reply := range []string{small, small, large, large, huge} {
				wantAlt, want := parseReply(t, proto, reply)
				if d := diffSessions(kept[i].AltNames, kept[i].Sessions, wantAlt, want); d != "" {
					t.Fatalf("dump %d after the others: %s", i, d)
				}
			}
		})
	}
}

func dumpOf(proto anvil.Protocol, n int) string {
	if proto == anvil.Proto24 {
		return anvil.FormatDump24(anviltest.AltNames24, anviltest.Sessions24(n))
	}
	return anvil.FormatDump23(anviltest.Sessions23(n))
}

// parseReply parses a reply whole: its body without the final empty line.
func parseReply(t *testing.T, proto anvil.Protocol, reply string) ([]string, []anvil.Session) {
	body := reply[:len(reply)-1]
	if proto == anvil.Proto24 {
		alt, s, bad, err := anvil.ParseDump24(body)
		if err != nil || bad.Count != 0 {
			t.Fatal(err, bad)
		}
		return alt, s
	}
	s, bad, err := anvil.ParseDump23(body)
	if err != nil || bad.Count != 0 {
		t.Fatal(err, bad)
	}
	return nil, s
}

// withLongLine adds a session with a user name of 700 KB (2.3) or an alt
// value of that size (2.4) in the middle of reply.
func withLongLine(proto anvil.Protocol, reply string) string {
	long := strings.Repeat("x", 700<<10)
	line := "imap/192.0.2.99/" + long + "\t99\t1\n"
	if proto == anvil.Proto24 {
		line = "99\tu\timap\t192.0.2.99\t0123456789abcdef0123456789abcdef\t\t" + long + "\n"
	}
	i := len(reply) / 2
	i += strings.IndexByte(reply[i:], '\n') + 1
	return reply[:i] + line + reply[i:]
}
