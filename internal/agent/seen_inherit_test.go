package agent

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

func sess23(pid int64, svc, user, ip string, conns int) anvil.Session {
	return anvil.Session{PID: pid, Service: svc, User: user, IP: netip.MustParseAddr(ip), Connections: conns}
}

func sess24(guid int, svc, user, ip string) anvil.Session {
	return anvil.Session{PID: int64(1000 + guid), Service: svc, User: user, IP: netip.MustParseAddr(ip),
		ConnGUID: fmt.Sprintf("%032x", guid), Connections: 1}
}

// TestSeenInherit: a connection Dovecot moves to another process (it
// hibernates or wakes) keeps its first-seen time; logins do not.
func TestSeenInherit(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(1e9+int64(s), 0) }
	for _, tc := range []struct {
		name  string
		snaps [][]anvil.Session
		sent  string // id marked sent after the first snapshot
		want  time.Time
	}{
		{"2.3 hibernates: a new pid", [][]anvil.Session{
			{sess23(100, "imap", "alice", "192.0.2.1", 1)},
			{sess23(200, "imap", "alice", "192.0.2.1", 1)},
		}, "", at(0)},
		{"2.4 hibernates: a new GUID and service", [][]anvil.Session{
			{sess24(1, "imap", "alice", "192.0.2.1")},
			{sess24(2, "imap-hibernate", "alice", "::ffff:192.0.2.1")},
		}, "", at(0)},
		{"both listed for one snapshot", [][]anvil.Session{
			{sess23(100, "imap", "alice", "192.0.2.1", 1)},
			{sess23(100, "imap", "alice", "192.0.2.1", 1), sess23(200, "imap", "alice", "192.0.2.1", 1)},
			{sess23(200, "imap", "alice", "192.0.2.1", 1)},
		}, "", at(0)},
		{"2.3 refcount drops: one of two wakes", [][]anvil.Session{
			{sess23(200, "imap", "alice", "192.0.2.1", 2)},
			{sess23(200, "imap", "alice", "192.0.2.1", 1), sess23(300, "imap", "alice", "192.0.2.1", 1)},
		}, "", at(0)},
		{"a login while the old session stays", [][]anvil.Session{
			{sess23(100, "imap", "alice", "192.0.2.1", 1)},
			{sess23(100, "imap", "alice", "192.0.2.1", 1), sess23(200, "imap", "alice", "192.0.2.1", 1)},
		}, "", at(1)},
		{"the old session was kicked", [][]anvil.Session{
			{sess23(100, "imap", "alice", "192.0.2.1", 1)},
			{sess23(200, "imap", "alice", "192.0.2.1", 1)},
		}, "100/imap/192.0.2.1/alice", at(1)},
		{"another address", [][]anvil.Session{
			{sess23(100, "imap", "alice", "192.0.2.1", 1)},
			{sess23(200, "imap", "alice", "192.0.2.2", 1)},
		}, "", at(1)},
		{"another user", [][]anvil.Session{
			{sess23(100, "imap", "alice", "192.0.2.1", 1)},
			{sess23(200, "imap", "bob", "192.0.2.1", 1)},
		}, "", at(1)},
		{"another service", [][]anvil.Session{
			{sess23(100, "imap", "alice", "192.0.2.1", 1)},
			{sess23(200, "pop3", "alice", "192.0.2.1", 1)},
		}, "", at(1)},
		{"too late: it left two snapshots before", [][]anvil.Session{
			{sess23(100, "imap", "alice", "192.0.2.1", 1)},
			{},
			{sess23(200, "imap", "alice", "192.0.2.1", 1)},
		}, "", at(2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tab seenTable
			for i, snap := range tc.snaps {
				tab.observe(snap, at(i))
				if i == 0 && tc.sent != "" {
					tab.markSent(tc.sent)
				}
			}
			last := tc.snaps[len(tc.snaps)-1]
			s := &last[len(last)-1]
			if got := tab.firstSeen(len(last)-1, s.ID()); !got.Equal(tc.want) {
				t.Errorf("%s first seen at %v, want %v", s.ID(), got.Unix()-1e9, tc.want.Unix()-1e9)
			}
		})
	}
}

// One departure passes on once: of two new sessions from the address, one
// is the moved one, the other a login.
func TestSeenInheritOnce(t *testing.T) {
	var tab seenTable
	t0 := time.Unix(1e9, 0)
	tab.observe([]anvil.Session{sess24(1, "imap", "alice", "192.0.2.1")}, t0)
	tab.observe([]anvil.Session{sess24(2, "imap-hibernate", "alice", "192.0.2.1"), sess24(3, "imap", "alice", "192.0.2.1")}, t0.Add(time.Second))
	old := 0
	for i, id := range []string{fmt.Sprintf("%032x", 2), fmt.Sprintf("%032x", 3)} {
		if tab.firstSeen(i, id).Equal(t0) {
			old++
		}
	}
	if old != 1 {
		t.Errorf("%d sessions inherited the one departure, want 1", old)
	}
	// And not again a snapshot later.
	tab.observe([]anvil.Session{sess24(2, "imap-hibernate", "alice", "192.0.2.1"), sess24(3, "imap", "alice", "192.0.2.1")}, t0.Add(2*time.Second))
	old = 0
	for i, id := range []string{fmt.Sprintf("%032x", 2), fmt.Sprintf("%032x", 3)} {
		if tab.firstSeen(i, id).Equal(t0) {
			old++
		}
	}
	if old != 1 {
		t.Errorf("a snapshot later %d sessions are old, want 1", old)
	}
}
