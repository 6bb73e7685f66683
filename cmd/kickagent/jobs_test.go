package main

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/jobs"
)

// jobDir is an empty drop-in directory and the flag that names it.
func jobDir(t *testing.T) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rules.d")
	return dir, []string{"--rules-dir", dir}
}

// only returns the one managed file in dir.
func only(t *testing.T, dir string) jobs.Entry {
	t.Helper()
	es, err := jobs.Dir{Path: dir}.List("")
	if err != nil || len(es) != 1 {
		t.Fatalf("want one job file in %s, have %+v (%v)", dir, es, err)
	}
	return es[0]
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestBlockUnblock(t *testing.T) {
	dir, rd := jobDir(t)
	before := time.Now()
	code, out, errs := runCmd(t, append([]string{"block", "192.0.2.7/24", "--for", "90m", "--reason", "OPS-1"}, rd...)...)
	if code != exitOK || !strings.Contains(out, dir) {
		t.Fatalf("block: exit %d\n%s%s", code, out, errs)
	}
	e := only(t, dir)
	r := e.Rule
	if e.Kind != jobs.Block || strings.Join(r.Networks, ",") != "192.0.2.0/24" || len(r.Users) != 0 || r.Description != "OPS-1" ||
		r.Name != strings.TrimSuffix(filepath.Base(e.Path), ".yaml") {
		t.Errorf("block rule %+v in %s", r, e.Path)
	}
	exp, err := time.Parse(time.RFC3339, r.Expires)
	// Whole seconds, rounded up: a block never ends early.
	if err != nil || exp.Before(before.Add(90*time.Minute)) || exp.After(time.Now().Add(90*time.Minute+time.Second)) {
		t.Errorf("expires %q, want now+90m (rounded up to the second)", r.Expires)
	}
	data, _ := os.ReadFile(e.Path)
	// Named after the network it blocks, so that any form of it replaces it.
	if !strings.HasPrefix(string(data), "# Managed by kickagent block (\"192.0.2.0/24\")") || !strings.Contains(string(data), "kickagent unblock 192.0.2.0/24") {
		t.Errorf("header:\n%s", data)
	}
	if fi, _ := os.Stat(e.Path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}

	code, out, _ = runCmd(t, append([]string{"blocks"}, rd...)...)
	if code != exitOK || !strings.Contains(out, "192.0.2.0/24") || !strings.Contains(out, "active") || !strings.Contains(out, "OPS-1") {
		t.Errorf("blocks: exit %d\n%s", code, out)
	}

	// The normalized form shown by blocks unblocks it too.
	if code, out, errs = runCmd(t, append([]string{"unblock", "192.0.2.0/24"}, rd...)...); code != exitOK {
		t.Fatalf("unblock: exit %d %s%s", code, out, errs)
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("left %v", f)
	}
	if code, _, errs = runCmd(t, append([]string{"unblock", "192.0.2.0/24"}, rd...)...); code != exitNotFound || !strings.Contains(errs, "no block") {
		t.Errorf("unblock again: exit %d %s", code, errs)
	}

	// An address: as written, or as the /32 that blocks lists.
	for _, un := range []string{"203.0.113.5", "203.0.113.5/32"} {
		if code, _, errs := runCmd(t, append([]string{"block", "203.0.113.5"}, rd...)...); code != exitOK {
			t.Fatalf("block: %d %s", code, errs)
		}
		if r := only(t, dir).Rule; strings.Join(r.Networks, ",") != "203.0.113.5/32" {
			t.Errorf("networks %v", r.Networks)
		}
		if code, _, errs := runCmd(t, append([]string{"unblock", un}, rd...)...); code != exitOK {
			t.Errorf("unblock %s: %d %s", un, code, errs)
		}
	}

	// A user mask; running block again replaces the file.
	for _, d := range []string{"1h", "2h"} {
		if code, _, errs := runCmd(t, append([]string{"block", "mallor?", "--for", d}, rd...)...); code != exitOK {
			t.Fatalf("block mask: %d %s", code, errs)
		}
	}
	e = only(t, dir)
	if strings.Join(e.Rule.Users, ",") != "mallor?" || len(e.Rule.Networks) != 0 || e.Rule.Description != "blocked with kickagent block" {
		t.Errorf("mask rule %+v", e.Rule)
	}
	if exp, _ := time.Parse(time.RFC3339, e.Rule.Expires); exp.Before(time.Now().Add(time.Hour + 59*time.Minute)) {
		t.Errorf("second block did not replace the first: expires %s", e.Rule.Expires)
	}
	if code, _, _ := runCmd(t, append([]string{"unblock", "mallor?"}, rd...)...); code != exitOK {
		t.Errorf("unblock mask: %d", code)
	}
}

func TestBlockUsage(t *testing.T) {
	dir, rd := jobDir(t)
	for _, args := range [][]string{
		{"block"},
		{"block", ""},
		{"block", "a", "b"},
		{"block", "x", "--for", "0s"},
		{"block", "x", "--for", "-1h"},
		{"block", "x", "--for", "soon"},
		{"unblock"},
		{"blocks", "extra"},
		// Network-like text the parser refuses is not a user mask.
		{"block", "127.2"},
	} {
		if code, _, _ := runCmd(t, append(args, rd...)...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("usage errors left %v", f)
	}
	// Neither a config nor --rules-dir.
	if code, _, errs := runCmd(t, "block", "x", "-c", filepath.Join(t.TempDir(), "none.yaml")); code != exitConfig {
		t.Errorf("no config: exit %d %s", code, errs)
	}
	if code, _, _ := runCmd(t, "block", "-h"); code != exitOK {
		t.Errorf("-h: exit %d", code)
	}
}

// TestBlockRefusedLeavesNothing: a block that would break the agent's rule
// set is refused (exit 78) and leaves no file, or the previous one.
func TestBlockRefusedLeavesNothing(t *testing.T) {
	dir, _ := jobDir(t)
	// A rule name already taken elsewhere in the agent's rules.
	cfgDir := t.TempDir()
	main := filepath.Join(cfgDir, "rules.yaml")
	taken := jobs.RuleName(jobs.Block, "198.51.100.1/32")
	if err := os.WriteFile(main, []byte("rules:\n  - {name: "+taken+", users: [x]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(cfgDir, "kickagent.yaml")
	if err := os.WriteFile(cfg, []byte("rules: ["+main+"]\nrules_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(t, "block", "198.51.100.1", "-c", cfg); code != exitConfig || !strings.Contains(errs, "duplicate rule name") {
		t.Errorf("duplicate name: exit %d %s", code, errs)
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("refused block left %v", f)
	}

	// A block run again while another file broke the set: refused, and the
	// block in force stays as it was.
	if code, _, errs := runCmd(t, "block", "198.51.100.2", "--for", "1h", "-c", cfg); code != exitOK {
		t.Fatalf("block: %d %s", code, errs)
	}
	path := only(t, dir).Path
	old, _ := os.ReadFile(path)
	// A broken main file (a broken drop-in does not refuse the block:
	// TestBlockDespiteBrokenDropIn).
	if err := os.WriteFile(main, []byte("rules: [{name: b}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCmd(t, "block", "198.51.100.2", "--for", "5h", "-c", cfg); code != exitConfig {
		t.Errorf("block with a broken main file: exit %d", code)
	}
	if now, err := os.ReadFile(path); err != nil || string(now) != string(old) {
		t.Errorf("the block in force changed:\n%s\nwas:\n%s (%v)", now, old, err)
	}
	for _, f := range files(t, dir) {
		if strings.HasPrefix(f, ".") {
			t.Errorf("temporary file %s left", f)
		}
	}
}

func TestReset(t *testing.T) {
	dir, rd := jobDir(t)
	code, _, errs := runCmd(t, append([]string{"reset", "alice", "--at", "2026-11-24T10:00:00+01:00", "--expire", "2h", "--no-cache-flush"}, rd...)...)
	if code != exitOK {
		t.Fatalf("reset: %d %s", code, errs)
	}
	e := only(t, dir)
	if e.Kind != jobs.Reset || e.Rule.LoggedInBefore != "2026-11-24T09:00:00.000Z" || e.Rule.Expires != "2026-11-24T11:00:00Z" ||
		strings.Join(e.Rule.Users, ",") != "alice" || e.Rule.PassdbField != "" {
		t.Errorf("reset rule %+v", e.Rule)
	}
	data, _ := os.ReadFile(e.Path)
	if strings.Contains(string(data), "unblock") || strings.Contains(string(data), "--cancel") {
		t.Errorf("reset header names a command that does not undo it:\n%s", data)
	}
	os.Remove(e.Path)
	// The cutoff keeps milliseconds, rounded up: never before the reset,
	// and not a second after it, where a session that logged in with the
	// new password in that second counted as old (CI failed on that).
	for at, want := range map[string]string{
		"2026-11-24T10:00:00.2Z":       "2026-11-24T10:00:00.200Z",
		"2026-11-24T10:00:00.2000001Z": "2026-11-24T10:00:00.201Z",
		"2026-11-24T10:00:00.999999Z":  "2026-11-24T10:00:01.000Z",
	} {
		if code, _, _ := runCmd(t, append([]string{"reset", "alice", "--at", at, "--no-cache-flush"}, rd...)...); code != exitOK {
			t.Fatal(code)
		}
		if e = only(t, dir); e.Rule.LoggedInBefore != want {
			t.Errorf("--at %s: logged_in_before %s, want %s", at, e.Rule.LoggedInBefore, want)
		}
		os.Remove(e.Path)
	}

	// Default: now, 24h; an alt username.
	before := time.Now()
	if code, _, errs := runCmd(t, append([]string{"reset", "-f", "user_alt", "alice-alt", "--no-cache-flush"}, rd...)...); code != exitOK {
		t.Fatalf("reset -f: %d %s", code, errs)
	}
	e = only(t, dir)
	at, err := time.Parse(time.RFC3339, e.Rule.LoggedInBefore)
	exp, _ := time.Parse(time.RFC3339, e.Rule.Expires)
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Millisecond)) || exp.Sub(at) < 24*time.Hour || exp.Sub(at) >= 24*time.Hour+time.Second ||
		e.Rule.PassdbField != "user_alt" || strings.Join(e.Rule.Values, ",") != "alice-alt" || len(e.Rule.Users) != 0 {
		t.Errorf("reset -f rule %+v", e.Rule)
	}
	code, out, _ := runCmd(t, append([]string{"blocks"}, rd...)...)
	if code != exitOK || !strings.Contains(out, "reset") || !strings.Contains(out, "alice-alt") {
		t.Errorf("blocks:\n%s", out)
	}

	for _, args := range [][]string{{"reset"}, {"reset", "a", "b"}, {"reset", "a", "--at", "yesterday"}, {"reset", "a", "--expire", "0s"}} {
		if code, _, _ := runCmd(t, append(args, rd...)...); code != exitUsage {
			t.Errorf("%q: exit %d", args, code)
		}
	}
	// A usage error says what is wrong, not only the usage.
	if _, _, errs := runCmd(t, append([]string{"reset", "a", "--expire", "-1h"}, rd...)...); !strings.HasPrefix(errs, "kickagent reset: --expire -1h0m0s: the reset must last a positive duration") {
		t.Errorf("reset --expire -1h: %q", errs)
	}
}

func TestDrainFiles(t *testing.T) {
	dir, rd := jobDir(t)
	if code, _, errs := runCmd(t, append([]string{"drain", "--dest", "[2001:db8::2]", "--rate", "30/m"}, rd...)...); code != exitOK {
		t.Fatalf("drain: %d %s", code, errs)
	}
	e := only(t, dir)
	if e.Kind != jobs.Drain || !e.Rule.Drain || e.Rule.Rate != "30/m" || strings.Join(e.Rule.DestHosts, ",") != "2001:db8::2" || e.Rule.Expires != "" {
		t.Errorf("drain rule %+v", e.Rule)
	}
	if code, out, _ := runCmd(t, append([]string{"drain", "--dest", "2001:db8::2", "--cancel"}, rd...)...); code != exitOK || !strings.Contains(out, "cancelled") {
		t.Errorf("cancel: %d %s", code, out)
	}
	if code, _, _ := runCmd(t, append([]string{"drain", "--dest", "2001:db8::2", "--cancel"}, rd...)...); code != exitNotFound {
		t.Errorf("cancel again: %d", code)
	}

	if code, _, errs := runCmd(t, append([]string{"drain", "--all"}, rd...)...); code != exitOK {
		t.Fatalf("drain --all: %d %s", code, errs)
	}
	e = only(t, dir)
	if strings.Join(e.Rule.Users, ",") != "*" || e.Rule.Rate != "10/s" || len(e.Rule.DestHosts) != 0 {
		t.Errorf("drain --all rule %+v", e.Rule)
	}
	if code, _, _ := runCmd(t, append([]string{"drain", "--all", "--cancel"}, rd...)...); code != exitOK {
		t.Errorf("cancel --all: %d", code)
	}

	for _, args := range [][]string{
		{"drain"},
		{"drain", "--all", "--dest", "10.0.0.2"},
		{"drain", "--dest", "backend.example"},
		{"drain", "--all", "--rate", "0/s"},
		{"drain", "--all", "--rate", "-1"},
		{"drain", "--all", "--rate", "5/h"},
		{"drain", "--all", "--rate", "NaN/s"},
		{"drain", "--all", "--rate", "Inf"},
		{"drain", "--all", "extra"},
	} {
		if code, _, _ := runCmd(t, append(args, rd...)...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("left %v", f)
	}
}

func TestDrainStatus(t *testing.T) {
	dir, rd := jobDir(t)
	backend := netip.MustParseAddr("10.0.0.2")
	var sessions []anvil.Session
	for i := 0; i < 3; i++ {
		sessions = append(sessions, anvil.Session{User: "u", Service: "imap-login", PID: int64(10 + i), IP: netip.MustParseAddr("192.0.2.1"),
			DestIP: backend, ConnGUID: strings.Repeat("0", 31) + string(rune('a'+i)), Connections: 1})
	}
	sessions = append(sessions,
		anvil.Session{User: "v", Service: "imap-login", PID: 20, IP: netip.MustParseAddr("192.0.2.1"), DestIP: netip.MustParseAddr("10.0.0.3"),
			ConnGUID: strings.Repeat("1", 32), Connections: 1},
		anvil.Session{User: "w", Service: "lmtp", PID: 30, ConnGUID: strings.Repeat("2", 32), Connections: 1})
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump(anvil.FormatDump24(nil, sessions)))

	code, out, _ := runCmd(t, append([]string{"drain", "--status", "-a", srv.Path}, rd...)...)
	if code != exitOK || !strings.Contains(out, "no drain in progress") {
		t.Errorf("no drain: %d %q", code, out)
	}
	for _, args := range [][]string{{"--dest", "10.0.0.2", "--rate", "2/s"}, {"--all", "--rate", "1/m"}} {
		if code, _, errs := runCmd(t, append(append([]string{"drain"}, args...), rd...)...); code != exitOK {
			t.Fatalf("drain %v: %d %s", args, code, errs)
		}
	}
	code, out, errs := runCmd(t, append([]string{"drain", "--status", "-a", srv.Path}, rd...)...)
	if code != exitOK {
		t.Fatalf("status: %d %s", code, errs)
	}
	rows := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && f[0] == "dest" {
			rows["dest "+f[1]] = f[2:]
		} else if len(f) >= 4 && f[0] == "all" {
			rows["all"] = f[1:]
		}
	}
	// dest 10.0.0.2: 3 left at 2/s → 2s. all: 1 at 1/m → 1m, as the agent
	// counts it: each session is decided by the first rule in load order
	// that kicks it, so u's three are the dest drain's, and lmtp is never
	// kicked.
	if got := strings.Join(rows["dest 10.0.0.2"][:3], " "); got != "3 2/s 2s" {
		t.Errorf("dest row %q\n%s", got, out)
	}
	if got := strings.Join(rows["all"][:3], " "); got != "1 1/m 1m0s" {
		t.Errorf("all row %q\n%s", got, out)
	}

	// Anvil unreachable.
	if code, _, _ := runCmd(t, append([]string{"drain", "--status", "-a", filepath.Join(dir, "nosocket")}, rd...)...); code != exitTempFail {
		t.Errorf("unreachable anvil: exit %d, want %d", code, exitTempFail)
	}
}

// TestJobsFromConfig: without --rules-dir the commands use the config's
// rules_dir and check the new file with the config's rules.
func TestJobsFromConfig(t *testing.T) {
	d := t.TempDir()
	cfg := filepath.Join(d, "kickagent.yaml")
	if err := os.WriteFile(cfg, []byte("rules_dir: rules.d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(t, "block", "192.0.2.9", "-c", cfg); code != exitOK {
		t.Fatalf("block -c: %d %s", code, errs)
	}
	if e := only(t, filepath.Join(d, "rules.d")); e.Rule.Networks[0] != "192.0.2.9/32" {
		t.Errorf("rule %+v", e.Rule)
	}
	if code, _, _ := runCmd(t, "unblock", "192.0.2.9", "-c", cfg); code != exitOK {
		t.Errorf("unblock -c: %d", code)
	}
	// A config without rules_dir.
	if err := os.WriteFile(cfg, []byte("interval: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCmd(t, "block", "192.0.2.9", "-c", cfg); code != exitConfig || !strings.Contains(errs, "rules_dir") {
		t.Errorf("no rules_dir: %d %s", code, errs)
	}
}

// TestBlocksListsExpired: blocks shows what the agent has not removed yet
// as expired.
func TestBlocksListsExpired(t *testing.T) {
	dir, rd := jobDir(t)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	r := engine.RuleSpec{Name: jobs.RuleName(jobs.Block, "10.1.1.1/32"), Networks: []string{"10.1.1.1/32"}, Expires: "2020-01-01T00:00:00Z"}
	if _, err := (jobs.Dir{Path: dir}).Install(context.Background(), jobs.Job{Kind: jobs.Block, Target: "10.1.1.1/32", Rule: r}, time.Now()); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCmd(t, append([]string{"blocks"}, rd...)...)
	if code != exitOK || !strings.Contains(out, "expired") || strings.Contains(out, "active") {
		t.Errorf("blocks: %d\n%s", code, out)
	}
}
