package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// TestAnvilSourceRestart: when Dovecot stops, the old anvil process lives
// on while a client is connected and answers with its frozen session table,
// and the socket file stays. The source must report Dovecot down while it
// is, and dump the new anvil after the restart.
func TestAnvilSourceRestart(t *testing.T) {
	for _, proto := range []anvil.Protocol{anvil.Proto23, anvil.Proto24} {
		t.Run(proto.String(), func(t *testing.T) {
			dump := func(users ...string) string {
				var ss []anvil.Session
				for i, u := range users {
					ss = append(ss, anvil.Session{User: u, Service: "imap", PID: int64(100 + i), Connections: 1,
						IP: netip.MustParseAddr("192.0.2.1"), ConnGUID: fmt.Sprintf("%032x", i+1)})
				}
				if proto == anvil.Proto23 {
					return anvil.FormatDump23(ss)
				}
				return anvil.FormatDump24(nil, ss)
			}
			old := anviltest.New(t, proto, anviltest.WithDump(dump("old")))
			src := &AnvilSource{Client: &anvil.Client{Path: old.Path}}
			defer src.Close()
			ctx := context.Background()
			users := func() []string {
				t.Helper()
				snap, err := src.Dump(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				var us []string
				for _, s := range snap.Sessions {
					us = append(us, s.User)
				}
				return us
			}
			if got := users(); len(got) != 1 || got[0] != "old" {
				t.Fatalf("first dump: %q", got)
			}
			// The kicker's view reuses the cycle's connection.
			if _, err := src.KickConn().Dump(ctx); err != nil {
				t.Fatal(err)
			}
			if n := old.Conns(); n != 1 {
				t.Errorf("%d connections for a cycle's dump and a confirming dump, want 1", n)
			}

			// Dovecot stops: the master is gone, its socket file stays but
			// nobody listens on it; the old anvil still serves the open
			// connection.
			dead := filepath.Join(t.TempDir(), "dead")
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: dead, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			ln.SetUnlinkOnClose(false)
			ln.Close()
			if err := os.Rename(dead, old.Path); err != nil {
				t.Fatal(err)
			}
			if snap, err := src.Dump(ctx, nil); err == nil {
				t.Fatalf("Dovecot is down, but the dump returned %d sessions and no error", len(snap.Sessions))
			}

			// Dovecot starts again: a new anvil at the same path.
			fresh := anviltest.New(t, proto, anviltest.WithDump(dump("new")))
			if err := os.Rename(fresh.Path, old.Path); err != nil {
				t.Fatal(err)
			}
			if got := users(); len(got) != 1 || got[0] != "new" {
				t.Fatalf("after the restart: %q, want [new]", got)
			}
		})
	}
}
