package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
	"github.com/kickagent/kickagent/internal/match"
)

// TestDrainStatusAllowList (defect 5): the status counts what the agent
// will kick, the allow list applied: with allow.users [vip], drain --all
// and sessions vip, vip, bob, one session is left, not three.
func TestDrainStatusAllowList(t *testing.T) {
	d := t.TempDir()
	main := filepath.Join(d, "rules.yaml")
	cfg := filepath.Join(d, "kickagent.yaml")
	for path, content := range map[string]string{
		main: "allow: {users: [vip]}\nrules: []\n",
		cfg:  "rules: [" + main + "]\nrules_dir: rules.d\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var sessions []anvil.Session
	for i, u := range []string{"vip", "vip", "bob"} {
		sessions = append(sessions, anvil.Session{User: u, Service: "imap", PID: int64(10 + i), IP: netip.MustParseAddr("192.0.2.1"),
			ConnGUID: strings.Repeat("0", 31) + string(rune('a'+i)), Connections: 1})
	}
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump(anvil.FormatDump24(nil, sessions)))
	if code, _, errs := runCmd(t, "drain", "--all", "--rate", "1/s", "-c", cfg); code != exitOK {
		t.Fatalf("drain: %d %s", code, errs)
	}
	code, out, errs := runCmd(t, "drain", "--status", "-a", srv.Path, "-c", cfg)
	if code != exitOK {
		t.Fatalf("status: %d %s", code, errs)
	}
	var row []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "all" {
			row = f
		}
	}
	if len(row) < 4 || strings.Join(row[1:4], " ") != "1 1/s 1s" {
		t.Errorf("status row %q, want remaining 1 (bob; vip is allowed)\n%s", row, out)
	}
}

// TestJobsExplicitConfig (defect 6): a -c that was given and cannot be
// read is a config error, even with --rules-dir; only the default config
// path may be missing.
func TestJobsExplicitConfig(t *testing.T) {
	dir, rd := jobDir(t)
	missing := filepath.Join(t.TempDir(), "nonexistent", "kickagent.yaml")
	for _, args := range [][]string{
		{"block", "192.0.2.1"},
		{"unblock", "192.0.2.1"},
		{"blocks"},
		{"reset", "alice"},
		{"drain", "--all"},
	} {
		code, _, errs := runCmd(t, append(append(args, "-c", missing), rd...)...)
		if code != exitConfig || !strings.Contains(errs, missing) {
			t.Errorf("%q -c missing --rules-dir: exit %d %q, want %d naming the file", args, code, errs, exitConfig)
		}
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("left %v", f)
	}
}

// TestBlockClassifies: a target is a network exactly when who and kick
// read it as one: a bracketed IPv6 address blocks that address (it was a
// user mask matching nobody), and network-like text the parser refuses is
// a usage error with the parser's message.
func TestBlockClassifies(t *testing.T) {
	dir, rd := jobDir(t)
	if code, _, errs := runCmd(t, append([]string{"block", "[2001:db8::1]"}, rd...)...); code != exitOK {
		t.Fatalf("block [2001:db8::1]: %d %s", code, errs)
	}
	if r := only(t, dir).Rule; strings.Join(r.Networks, ",") != "2001:db8::1/128" || len(r.Users) != 0 {
		t.Errorf("rule %+v, want the network 2001:db8::1/128", r)
	}
	if code, _, errs := runCmd(t, append([]string{"unblock", "2001:db8::1"}, rd...)...); code != exitOK {
		t.Errorf("unblock: %d %s", code, errs)
	}
	// A zone is kept (anvil on 2.4 records it): the block is that interface's.
	if code, _, errs := runCmd(t, append([]string{"block", "fe80::1%lo"}, rd...)...); code != exitOK {
		t.Fatalf("block fe80::1%%lo: %d %s", code, errs)
	}
	if r := only(t, dir).Rule; strings.Join(r.Networks, ",") != "fe80::1%lo/128" {
		t.Errorf("rule %+v, want the network fe80::1%%lo/128", r)
	}
	if code, _, errs := runCmd(t, append([]string{"unblock", "fe80::1%lo/128"}, rd...)...); code != exitOK {
		t.Errorf("unblock: %d %s", code, errs)
	}
	for _, arg := range []string{"127.2", "10/8", "::ffff:10.0.0.0/120"} {
		_, _, perr := match.ClassifyArg(arg)
		code, _, errs := runCmd(t, append([]string{"block", arg}, rd...)...)
		if code != exitUsage || perr == nil || !strings.Contains(errs, perr.Error()) {
			t.Errorf("block %q: exit %d %q, want %d and %v", arg, code, errs, exitUsage, perr)
		}
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("left %v", f)
	}
}
