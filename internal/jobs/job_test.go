package jobs

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/match"
)

// TestNewBlockClassifies: a block target is a network exactly when who and
// kick read it as one (match.ClassifyArg), written in canonical form;
// network-like text the parser refuses is a usage error with its message,
// never a user mask that would match nobody.
func TestNewBlockClassifies(t *testing.T) {
	for _, tc := range []struct{ arg, network, user string }{
		{"192.0.2.7/24", "192.0.2.0/24", ""},
		{"203.0.113.5", "203.0.113.5/32", ""},
		{"[2001:db8::1]", "2001:db8::1/128", ""},
		{"2001:db8::/32", "2001:db8::/32", ""},
		{"fe80::1%lo", "fe80::1%lo/128", ""},
		{"mallor?", "", "mallor?"},
		{"123", "", "123"}, // all digits: a user mask, as in doveadm
	} {
		j, err := NewBlock(tc.arg, now, "")
		if err != nil {
			t.Errorf("%q: %v", tc.arg, err)
			continue
		}
		if strings.Join(j.Rule.Networks, ",") != tc.network || strings.Join(j.Rule.Users, ",") != tc.user {
			t.Errorf("%q: networks %v users %v, want %q %q", tc.arg, j.Rule.Networks, j.Rule.Users, tc.network, tc.user)
		}
		if tc.network != "" && j.Target != tc.network {
			t.Errorf("%q: target %q, want the canonical network", tc.arg, j.Target)
		}
	}
	for _, arg := range []string{"127.2", "10/8", "::ffff:10.0.0.0/120", "192.0.2.1/33", ""} {
		_, err := NewBlock(arg, now, "")
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%q: %v, want ErrUsage", arg, err)
		}
		if _, _, perr := match.ClassifyArg(arg); arg != "" && (perr == nil || err == nil || err.Error() != perr.Error()) {
			t.Errorf("%q: message %v, want the parser's %v", arg, err, perr)
		}
	}
}

// TestUnblockAnyForm: any form of a blocked network removes its block,
// including files named after the form that was typed (written before
// targets were canonical); a user mask is removed by name.
func TestUnblockAnyForm(t *testing.T) {
	d := Dir{Path: t.TempDir()}
	ctx := context.Background()
	legacy := Job{Kind: Block, Target: "192.0.2.7/24", Rule: engine.RuleSpec{Name: RuleName(Block, "192.0.2.7/24"), Networks: []string{"192.0.2.0/24"}}}
	for _, j := range []Job{block(t, "192.0.2.0/24"), legacy, block(t, "2001:db8::1"), block(t, "mallor?")} {
		if _, err := d.Install(ctx, j, now); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		arg  string
		want int
	}{{"192.0.2.99/24", 2}, {"[2001:db8::1]/128", 1}, {"mallor?", 1}, {"mallor?", 0}} {
		removed, err := d.Unblock(tc.arg)
		if len(removed) != tc.want || (tc.want == 0) != errors.Is(err, os.ErrNotExist) {
			t.Errorf("unblock %q: removed %v (%v), want %d", tc.arg, removed, err, tc.want)
		}
	}
	if _, err := d.Unblock("127.2"); !errors.Is(err, ErrUsage) {
		t.Errorf("unblock 127.2: %v, want ErrUsage", err)
	}
	if e := entries(t, d.Path); len(e) != 0 {
		t.Errorf("left %v", e)
	}
}

func TestNewDrain(t *testing.T) {
	j := drain(t, "[fe80::2%lo]", "30/m")
	if j.Target != "fe80::2" || strings.Join(j.Rule.DestHosts, ",") != "fe80::2" || !j.Rule.Drain || j.Rule.Rate != "30/m" {
		t.Errorf("drain %+v", j)
	}
	if j := drain(t, DrainAll, "10/s"); strings.Join(j.Rule.Users, ",") != "*" || len(j.Rule.DestHosts) != 0 {
		t.Errorf("drain all %+v", j)
	}
	for _, tc := range [][2]string{{"backend.example", "1/s"}, {"10.0.0.2", "0/s"}, {"all", "5/h"}, {"all", "NaN/s"}, {"all", "Inf"}} {
		if _, err := NewDrain(tc[0], tc[1]); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: %v, want ErrUsage", tc, err)
		}
	}
}

func session(user string, pid int64, service string) anvil.Session {
	return anvil.Session{User: user, Service: service, PID: pid, IP: netip.MustParseAddr("192.0.2.1"),
		ConnGUID: strings.Repeat("0", 30) + string(rune('a'+pid%26)) + string(rune('a'+pid/26%26)), Connections: 1}
}

// TestDrainsFollowTheEngine: drain status is the engine's decision, so the
// allow list protects what it protects (defect 5: with allow.users [vip]
// and sessions vip, vip, bob, status said 3 while the agent kicks 1), and
// a session that an earlier rule kicks, or that is never kickable (lmtp),
// is not left to the drain.
func TestDrainsFollowTheEngine(t *testing.T) {
	cfg := t.TempDir()
	main := filepath.Join(cfg, "rules.yaml")
	if err := os.WriteFile(main, []byte("allow: {users: [vip]}\nrules:\n  - {name: block-carol, users: [carol]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := Dir{Path: filepath.Join(cfg, "rules.d"), Sources: engine.Sources{Rules: []string{main}}}
	ctx := context.Background()
	if _, err := d.Install(ctx, drain(t, DrainAll, "1/s"), now); err != nil {
		t.Fatal(err)
	}
	snap := &anvil.Snapshot{Sessions: []anvil.Session{
		session("vip", 1, "imap"), session("vip", 2, "imap"), session("bob", 3, "imap"),
		session("carol", 4, "imap"), session("dave", 5, "lmtp"),
	}}
	st, err := d.Drains(ctx, snap, now)
	if err != nil || len(st) != 1 {
		t.Fatalf("Drains: %+v %v", st, err)
	}
	if st[0].Left != 1 || st[0].ETA != time.Second {
		t.Errorf("left %d eta %v, want 1 (bob) in 1s", st[0].Left, st[0].ETA)
	}
	// The agent's count is the same function.
	rs, err := d.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := rs.Evaluate(ctx, engine.Input{Snapshot: snap, Now: now})
	if l := DrainsLeft(rs, ds); len(l) != 1 || l[0].Left != 1 {
		t.Errorf("DrainsLeft %+v", l)
	}
}
