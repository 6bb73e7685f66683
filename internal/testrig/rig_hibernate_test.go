package testrig

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRigHibernate: h23 and h24 hand IMAP clients that IDLE for 1 s to one
// imap-hibernate process, which anvil lists them under, and wake them when
// they speak: DONE and NOOP are answered, and they hibernate again.
func TestRigHibernate(t *testing.T) {
	RequireIntegration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, name := range []string{H23, H24} {
		t.Run(name, func(t *testing.T) {
			in := StartT(t, name)
			var cs []*Conn
			for i, u := range []string{"alice", "bob"} {
				c, err := DialIMAP(ctx, netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)}), in.IMAPPort, u, Password)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if err := c.Select(ctx, "INBOX"); err != nil {
					t.Fatal(err)
				}
				if err := c.Idle(ctx); err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			pid := waitHibernated(t, ctx, in, "alice", "bob")
			t.Logf("%s: alice and bob hibernated in pid %d", name, pid)
			for _, c := range cs {
				if err := c.StillOpen(ctx); err != nil {
					t.Fatalf("%s: a hibernated client does not wake up: %v", name, err)
				}
			}
			pid = waitHibernated(t, ctx, in, "alice", "bob")
			t.Logf("%s: woken, then hibernated again in pid %d", name, pid)
		})
	}
}

// waitHibernated waits until doveadm who lists every user's one session
// under one pid whose process title ends in /imap-hibernate (service imap
// on 2.3, imap-hibernate on 2.4), and returns that pid.
func waitHibernated(t *testing.T, ctx context.Context, in *Instance, users ...string) int64 {
	t.Helper()
	service := "imap"
	if in.Is24() {
		service = "imap-hibernate"
	}
	var why string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rows, err := in.Who(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var pid int64
		why = ""
		for _, u := range users {
			var p int64
			n := 0
			for _, r := range rows {
				f := strings.Fields(r) // user service pid ip …
				if len(f) >= 3 && f[0] == u && f[1] == service {
					n++
					fmt.Sscan(f[2], &p)
				}
			}
			switch {
			case n != 1:
				why = fmt.Sprintf("%d %s sessions of %s", n, service, u)
			case pid != 0 && p != pid:
				why = fmt.Sprintf("pids %d and %d", pid, p)
			}
			pid = p
		}
		if why == "" {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			title, _, _ := bytes.Cut(b, []byte{0})
			if strings.HasSuffix(string(title), "/imap-hibernate") {
				return pid
			}
			why = fmt.Sprintf("pid %d is %q", pid, title)
		}
	}
	t.Fatalf("%s: %v not hibernated in one process: %s", in.Name, users, why)
	return 0
}
