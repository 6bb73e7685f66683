package anvil_test

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// sessionLine is a valid session line of user, padded with 'p' to exactly
// size bytes (LF excluded) when size is not 0.
func sessionLine(proto anvil.Protocol, user string, pid, size int) string {
	l, _ := paddedLine(proto, user, pid, size)
	return l
}

// paddedLine is sessionLine, and the user name in it.
func paddedLine(proto anvil.Protocol, user string, pid, size int) (line, name string) {
	format := func(u string) string {
		if proto == anvil.Proto24 {
			return fmt.Sprintf("%d\t%s\timap\t192.0.2.5\t%s\t", pid, u, guidA)
		}
		return fmt.Sprintf("imap/192.0.2.5/%s\t%d\t1", u, pid)
	}
	if size > 0 {
		user += strings.Repeat("p", size-len(format(user)))
	}
	return format(user) + "\n", user
}

// header is the 2.4 header line ("" on 2.3).
func header(proto anvil.Protocol) string {
	if proto == anvil.Proto24 {
		return "\n"
	}
	return ""
}

// dumpAll takes one dump with Dump and one with Stream: the users of
// their sessions, their bad lines, and their errors.
func dumpAll(t *testing.T, srv *anviltest.Server, proto anvil.Protocol, lim anvil.Limits) (dumped, streamed []string, dbad, sbad anvil.BadLines, derr, serr error) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	cl := &anvil.Client{Path: srv.Path, Protocol: proto, Limits: lim}
	snap, derr := cl.Dump(ctx)
	if derr == nil {
		for _, s := range snap.Sessions {
			dumped = append(dumped, s.User)
		}
		dbad = snap.BadLines
	}
	sbad, serr = cl.Stream(ctx, nil, func(s *anvil.Session) error {
		streamed = append(streamed, strings.Clone(s.User))
		return nil
	})
	return dumped, streamed, dbad, sbad, derr, serr
}

// TestDumpLineTooLong (issue 12 item 14): a line over MaxLineBytes is
// skipped and counted as line_too_long, whether it fits one read or spans
// many, and the rest of the dump is used; a line of exactly the bound is a
// session.
func TestDumpLineTooLong(t *testing.T) {
	for _, proto := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		for _, tc := range []struct {
			name  string
			lim   anvil.Limits
			max   int
			longs []int // sizes of the lines to skip
		}{
			{"default", anvil.Limits{}, anvil.DefaultMaxLineBytes, []int{anvil.DefaultMaxLineBytes + 1, 1 << 20}},
			{"4 KiB", anvil.Limits{MaxLineBytes: 4096}, 4096, []int{4097, 5000, 300 << 10}},
		} {
			t.Run(proto.Dovecot()+"/"+tc.name, func(t *testing.T) {
				exactLine, exact := paddedLine(proto, "exact", 2, tc.max)
				reply := header(proto) + sessionLine(proto, "a", 1, 0) + exactLine
				for i, n := range tc.longs {
					reply += sessionLine(proto, fmt.Sprintf("long%d", i), 3, n)
				}
				reply += sessionLine(proto, "b", 4, 0) + "\n"
				srv := anviltest.New(t, proto, anviltest.WithDump(reply))
				dumped, streamed, dbad, sbad, derr, serr := dumpAll(t, srv, proto, tc.lim)
				if derr != nil || serr != nil {
					t.Fatalf("Dump: %v; Stream: %v", derr, serr)
				}
				want := []string{"a", exact, "b"}
				if !reflect.DeepEqual(dumped, want) || !reflect.DeepEqual(streamed, want) {
					t.Errorf("Dump gave %.20q, Stream %.20q; want %.20q", dumped, streamed, want)
				}
				if !reflect.DeepEqual(dbad, sbad) {
					t.Errorf("Dump's bad lines %+v, Stream's %+v", dbad, sbad)
				}
				first := 3 + len(header(proto)) // the line after a and exact
				if dbad.Count != len(tc.longs) || len(dbad.Problems) != 1 {
					t.Fatalf("bad lines %+v, want %d of one kind", dbad, len(tc.longs))
				}
				p := dbad.Problems[0]
				wantReason := fmt.Sprintf("line longer than %d bytes (limits.dump_max_line_bytes)", tc.max)
				if p.Kind != anvil.BadLineTooLong || p.Line != first || p.Reason != wantReason || p.Count != len(tc.longs) {
					t.Errorf("problem %+v: want kind %s, line %d, reason %q", p, anvil.BadLineTooLong, first, wantReason)
				}
				if len(p.Text) != 120+len("…") || !strings.HasSuffix(p.Text, "…") {
					t.Errorf("example text of %d bytes, want the first 120 and …", len(p.Text))
				}
			})
		}
	}
}

// TestDumpHeaderTooLong: a 2.4 header over MaxLineBytes cannot be skipped
// (every line's columns depend on it): the dump fails, and the connection
// stays in step for the next one.
func TestDumpHeaderTooLong(t *testing.T) {
	long := strings.Repeat("n", 5000) + "\n"
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump(long+sessionLine(anvil.Proto24, "a", 1, 0)+"\n"))
	lim := anvil.Limits{MaxLineBytes: 4096}
	ctx := testCtx(t, 30*time.Second)
	c, err := (&anvil.Client{Path: srv.Path, Limits: lim}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Dump(ctx)
	if !errors.Is(err, anvil.ErrTooLarge) || !strings.Contains(err.Error(), "header (alt field names) is longer than 4096 bytes (limits.dump_max_line_bytes)") {
		t.Errorf("Dump: %v", err)
	}
	srv.SetDump("\n" + sessionLine(anvil.Proto24, "a", 1, 0) + "\n")
	if snap, err := c.Dump(ctx); err != nil || len(snap.Sessions) != 1 {
		t.Errorf("next dump on the connection: %v", err)
	}
	srv.SetDump(long + "\n")
	_, err = (&anvil.Client{Path: srv.Path, Limits: lim}).Stream(ctx, nil, func(*anvil.Session) error { return nil })
	if !errors.Is(err, anvil.ErrTooLarge) || !strings.Contains(err.Error(), "longer than 4096 bytes") {
		t.Errorf("Stream: %v", err)
	}
}

// allocated runs f and returns the bytes the process allocated meanwhile.
func allocated(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// TestDumpEndless (issue 12 item 14: an endless line from anvil took RSS
// to 578 MB in one cycle): an endless line, or an endless run of session
// lines, fails the dump with ErrTooLarge at the bound instead of filling
// memory until the deadline. A Conn that failed so is closed: nothing of
// the runaway reply is read as the next one.
func TestDumpEndless(t *testing.T) {
	for _, proto := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		for _, tc := range []struct {
			name, repeat string
			lim          anvil.Limits
			msg          string
			alloc        uint64 // at most
		}{
			// The read buffer (256 KiB) and the parser's first blocks:
			// never the runaway line.
			{"line", "x", anvil.Limits{MaxDumpBytes: 8 << 20}, "dump exceeds 8388608 bytes (limits.dump_max_bytes", 4 << 20},
			{"line default", "x", anvil.Limits{}, fmt.Sprintf("dump exceeds %d bytes (limits.dump_max_bytes", anvil.DefaultMaxDumpBytes), 4 << 20},
			{"sessions", sessionLine(proto, "s", 7, 0), anvil.Limits{MaxSessions: 1000}, "dump exceeds 1000 sessions (limits.dump_max_sessions)", 4 << 20},
			// The sessions are kept until the bound: about 26,000 here.
			{"session bytes", sessionLine(proto, "s", 7, 0), anvil.Limits{MaxDumpBytes: 1 << 20}, "dump exceeds 1048576 bytes", 16 << 20},
		} {
			t.Run(proto.Dovecot()+"/"+tc.name, func(t *testing.T) {
				srv := anviltest.New(t, proto, anviltest.WithEndlessDump(header(proto)+sessionLine(proto, "a", 1, 0), tc.repeat))
				ctx := testCtx(t, time.Minute)
				c, err := (&anvil.Client{Path: srv.Path, Protocol: proto, Limits: tc.lim}).Open(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				var derr error
				n := allocated(func() { _, derr = c.Dump(ctx) })
				if !errors.Is(derr, anvil.ErrTooLarge) || !strings.Contains(derr.Error(), tc.msg) {
					t.Errorf("Dump: %v; want ErrTooLarge saying %q", derr, tc.msg)
				}
				t.Logf("Dump: %v; allocated %d KiB", derr, n>>10)
				if n > tc.alloc {
					t.Errorf("Dump allocated %d KiB", n>>10)
				}
				if _, err := c.Dump(ctx); err == nil {
					t.Error("the connection still answers after the runaway dump")
				}
				var serr error
				n = allocated(func() {
					_, serr = (&anvil.Client{Path: srv.Path, Protocol: proto, Limits: tc.lim}).Stream(ctx, nil,
						func(*anvil.Session) error { return nil })
				})
				if !errors.Is(serr, anvil.ErrTooLarge) || !strings.Contains(serr.Error(), tc.msg) {
					t.Errorf("Stream: %v; want ErrTooLarge saying %q", serr, tc.msg)
				}
				if n > tc.alloc {
					t.Errorf("Stream allocated %d KiB", n>>10)
				}
			})
		}
	}
}

// TestDumpBounds: a dump of exactly MaxSessions sessions and MaxDumpBytes
// bytes is read; one session or one byte more fails it.
func TestDumpBounds(t *testing.T) {
	for _, proto := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		t.Run(proto.Dovecot(), func(t *testing.T) {
			reply := dumpOf(proto, 5000) // several reads
			sessions := 5000
			for _, tc := range []struct {
				lim anvil.Limits
				ok  bool
			}{
				{anvil.Limits{MaxSessions: sessions, MaxDumpBytes: len(reply)}, true},
				{anvil.Limits{MaxSessions: sessions - 1}, false},
				{anvil.Limits{MaxDumpBytes: len(reply) - 1}, false},
			} {
				srv := anviltest.New(t, proto, anviltest.WithDump(reply))
				dumped, streamed, _, _, derr, serr := dumpAll(t, srv, proto, tc.lim)
				if tc.ok && (derr != nil || serr != nil || len(dumped) != sessions || len(streamed) != sessions) {
					t.Errorf("%+v: Dump %d sessions, %v; Stream %d, %v", tc.lim, len(dumped), derr, len(streamed), serr)
				}
				if !tc.ok && (!errors.Is(derr, anvil.ErrTooLarge) || !errors.Is(serr, anvil.ErrTooLarge)) {
					t.Errorf("%+v: Dump %v; Stream %v; want ErrTooLarge", tc.lim, derr, serr)
				}
			}
		})
	}
}

// TestShortRepliesBounded: a greeting or a KICK-USER reply that never ends
// is refused at the read buffer's size, not read into memory.
func TestShortRepliesBounded(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	long := strings.Repeat("x", 100<<10) + "\n"
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithGreeting(long))
	if _, err := (&anvil.Client{Path: srv.Path}).Open(ctx); !errors.Is(err, anvil.ErrTooLarge) {
		t.Errorf("Open with an endless greeting: %v, want ErrTooLarge", err)
	}
	srv = anviltest.New(t, anvil.Proto24, anviltest.WithReply("KICK-USER", long))
	c, err := (&anvil.Client{Path: srv.Path}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.KickUser(ctx, "alice", ""); !errors.Is(err, anvil.ErrTooLarge) || !strings.Contains(err.Error(), "short reply") {
		t.Errorf("KickUser with an endless reply: %v, want ErrTooLarge", err)
	}
}
