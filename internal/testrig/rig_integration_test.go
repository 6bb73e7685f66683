package testrig

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// waitWho polls `doveadm who -1` until rows starting with "user " (and containing each of
// want) number n.
func waitWho(t *testing.T, ctx context.Context, in *Instance, user string, n int, want ...string) []string {
	t.Helper()
	var rows []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		all, err := in.Who(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rows = rows[:0]
		for _, r := range all {
			ok := strings.HasPrefix(r, user+" ")
			for _, w := range want {
				ok = ok && strings.Contains(r, w)
			}
			if ok {
				rows = append(rows, r)
			}
		}
		if len(rows) == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(rows) != n {
		t.Fatalf("%s: doveadm who -1 shows %d sessions of %q %v, want %d: %q", in.Name, len(rows), user, want, n, rows)
	}
	return rows
}

func TestRigLogin(t *testing.T) {
	RequireIntegration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range []string{V23, V24, V24Proxy} {
		t.Run(name, func(t *testing.T) {
			in := StartT(t, name)
			service, pop3Service := "imap", "pop3"
			if in.Backend != "" {
				service, pop3Service = "imap-login", "pop3-login"
			}
			c1, err := DialIMAP(ctx, netip.MustParseAddr("127.0.0.2"), in.IMAPPort, "john doe", Password)
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			c2, err := DialPOP3(ctx, netip.IPv6Loopback(), in.POP3Port, "alice", Password)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			if err := c1.Idle(ctx); err != nil {
				t.Fatal(err)
			}
			waitWho(t, ctx, in, "john doe", 1, service, "127.0.0.2")
			waitWho(t, ctx, in, "alice", 1, pop3Service, "::1")
			if in.Backend != "" {
				waitWho(t, ctx, in, "alice", 1, "127.0.0.1", "alice-alt") // dest_ip and alt column
			}
			for _, c := range []*Conn{c1, c2, c1} {
				if err := c.StillOpen(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if c1.Closed(100 * time.Millisecond) {
				t.Fatal("IMAP session closed unexpectedly")
			}
			c1.Close()
			c2.Close()
			waitWho(t, ctx, in, "john doe", 0)
			waitWho(t, ctx, in, "alice", 0)
		})
	}
}

func TestRigKickSeenAsClose(t *testing.T) {
	RequireIntegration(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := StartT(t, V23)
	c, err := DialIMAP(ctx, netip.MustParseAddr("127.0.0.3"), in.IMAPPort, "bob", Password)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	waitWho(t, ctx, in, "bob", 1)
	if out, code, err := in.Doveadm(ctx, "kick", "bob"); err != nil || code != 0 {
		t.Fatalf("doveadm kick: %q %d %v", out, code, err)
	}
	if !c.Closed(5 * time.Second) {
		t.Fatal("kicked session not closed")
	}
	t.Logf("BYE line: %q", c.Bye())
}

func TestRigSynthetic100k(t *testing.T) {
	RequireIntegration(t)
	if testing.Short() {
		t.Skip("-short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	mix := SyntheticMix(100000, 1)
	for _, name := range []string{V23, V24} {
		t.Run(name, func(t *testing.T) {
			in := StartT(t, name)
			defer StartT(t, name) // restart: drops the synthetic sessions
			sessions := mix
			if !in.Is24() {
				sessions = StripFor23(mix)
			}
			start := time.Now()
			sc, err := RegisterSynthetic(ctx, in, sessions)
			if err != nil {
				t.Fatal(err)
			}
			reg := time.Since(start)
			sc.Close()
			start = time.Now()
			rows, err := in.Who(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: registered %d sessions in %v; doveadm who -1 listed %d rows in %v",
				name, len(sessions), reg, len(rows), time.Since(start))
			if len(rows) != len(sessions) {
				t.Fatalf("doveadm who -1 lists %d rows, want %d", len(rows), len(sessions))
			}
		})
	}
}

func TestRigSyntheticDisconnect(t *testing.T) {
	RequireIntegration(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{V23, V24} {
		t.Run(name, func(t *testing.T) {
			in := StartT(t, name)
			sessions := []SyntheticSession{
				{User: "syn user", Service: "imap", IP: netip.MustParseAddr("192.0.2.7"), PID: MinSyntheticPID + 1},
				{User: "syn user", Service: "pop3", IP: netip.MustParseAddr("2001:db8::7"), PID: MinSyntheticPID + 2},
			}
			if in.Is24() {
				sessions[1].Alt = []AltField{{"user_alt", "syn\talt"}}
			}
			sc, err := RegisterSynthetic(ctx, in, sessions)
			if err != nil {
				t.Fatal(err)
			}
			waitWho(t, ctx, in, "syn user", 2)
			if err := sc.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			waitWho(t, ctx, in, "syn user", 0)
		})
	}
}
