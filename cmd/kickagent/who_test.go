package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunWhoEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		snap func() *anvil.Snapshot
		dump func(*anvil.Snapshot) string
		want []string
	}{
		{snap23, func(s *anvil.Snapshot) string { return anvil.FormatDump23(s.Sessions) }, []string{
			"alice|imap|100|192.0.2.10",
			"alice|imap|100|192.0.2.10",
			"alice|imap|100|192.0.2.11",
			"alice|imap|300|192.0.2.10",
			"alice|pop3|400|192.0.2.10",
			"bob|imap|200|::1",
			"carol|lmtp|500|",
		}},
		{snap24, func(s *anvil.Snapshot) string { return anvil.FormatDump24(s.AltNames, s.Sessions) }, []string{
			"alice|imap|100|192.0.2.10||ally|a@ext",
			"alice|imap-login|200|198.51.100.7|10.0.0.5||a@ext",
			"bob|imap|300|::1||bobby|",
			"carol|lmtp|400||||",
		}},
	} {
		snap := tc.snap()
		t.Run(snap.Protocol.Dovecot(), func(t *testing.T) {
			srv := anviltest.New(t, snap.Protocol, anviltest.WithDump(tc.dump(snap)))
			code, out, errs := runCmd(t, "who", "-a", srv.Path, "-1")
			if code != exitOK || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			_, rows := cells(t, out)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if got := sortedRows(rows); !slices.Equal(got, want) {
				t.Errorf("rows:\n%s\nwant:\n%s\noutput:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), out)
			}
			if srv.Conns() != 1 {
				t.Errorf("%d connections to anvil", srv.Conns())
			}

			// Flags after the masks, as doveadm's getopt allows.
			code, out, errs = runCmd(t, "who", "bob", "-a", srv.Path, "--json")
			if code != exitOK {
				t.Fatalf("--json: exit %d, stderr %q", code, errs)
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(out), &rec); err != nil || rec["user"] != "bob" {
				t.Errorf("--json bob: %q (%v)", out, err)
			}

			code, out, _ = runCmd(t, "who", "-a", srv.Path, "A*", "192.0.2.0/24")
			_, rows = cells(t, out)
			if code != exitOK || len(rows) == 0 || rows[0][0] != "alice" {
				t.Errorf("aggregated alice: exit %d\n%s", code, out)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "anvil")
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump("user_a\t\n1\tu\timap\t\t0123456789abcdef0123456789abcdef\t\n\n"))
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"who", "-a", missing, "10.0.0.0/8", "192.0.2.1"}, exitUsage, "multiple network masks"},
		// doveadm who ignores -f without a mask and lists every session.
		{[]string{"who", "-a", missing, "-f", "user_alias"}, exitTempFail, "is Dovecot running"},
		// Old-style IPv4 text is refused, not taken for a user mask.
		{[]string{"who", "-a", missing, "alice", "127.2"}, exitUsage, "old-style IPv4"},
		{[]string{"kick", "-a", missing, "alice", "0x7f.0.0.2"}, exitUsage, "old-style IPv4"},
		{[]string{"kick", "-a", missing, "-h", "10.1", "alice"}, exitUsage, "old-style IPv4"},
		{[]string{"who", "-nope"}, exitUsage, ""},
		{[]string{"who", "-a", missing}, exitTempFail, "is Dovecot running"},
		{[]string{"who", "-a", srv.Path}, exitTempFail, "anvil protocol error"}, // malformed header
		{[]string{"who", "-h"}, exitOK, "Usage: kickagent who"},
		{[]string{}, exitUsage, "Usage:"},
		{[]string{"bogus"}, exitUsage, `unknown command "bogus"`},
	} {
		code, _, errs := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.stderr)
		}
	}
	if code, out, _ := runCmd(t, "version"); code != exitOK || !strings.HasPrefix(out, "kickagent ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestRunWhoTimeout(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto23, anviltest.WithStallDump())
	start := time.Now()
	code, _, errs := runCmd(t, "who", "-a", srv.Path, "--timeout", "300ms")
	if code != exitTempFail || !strings.Contains(errs, "deadline exceeded") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestOneShotBadLines: a malformed dump line (or an IPv6 zone, which
// Dovecot 2.4.1 prints) does not blind the one-shot commands: the other
// sessions are listed, kicked or planned, one warning per kind of bad
// line goes to stderr, and the exit code is the one without the bad line.
func TestOneShotBadLines(t *testing.T) {
	const g = "0123456789abcdef0123456789abcdef"
	dump := "user_alt\n" +
		"101\talice\timap\t192.0.2.10\t" + g + "\t\talice-alt\n" +
		"102\tzoe\timap\tfe80::1%lo\t" + g + "\t\n" +
		"103\tbob\timap\tnot-an-ip\t" + g + "\t\n" + // bad client ip
		"nope\tcarol\timap\t192.0.2.12\t" + g + "\t\n" + // bad pid
		"105\tdave\timap\t192.0.2.13\tnot-a-guid\t\n" + // bad guid
		"106\ttoo-few\timap\n" + // too few fields
		"107\teve\timap-login\t192.0.2.14\t" + g + "\tfe80::2%eth0\n\n"
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump(dump))
	warnings := []string{
		`skipped 1 malformed anvil line(s): line 4: bad client ip "103\tbob\timap\tnot-an-ip\t` + g + `\t"`,
		`skipped 1 malformed anvil line(s): line 5: bad pid "nope\tcarol`,
		`skipped 1 malformed anvil line(s): line 6: bad connection guid "105\tdave`,
		`skipped 1 malformed anvil line(s): line 7: want at least 6 fields, got 3 "106\ttoo-few\timap"`,
	}
	for _, tc := range []struct {
		args []string
		code int
		out  []string
	}{
		{[]string{"who", "-1"}, exitOK, []string{"alice", "zoe", "fe80::1%lo", "eve", "fe80::2%eth0"}},
		{[]string{"who"}, exitOK, []string{"alice", "zoe", "fe80::1%lo", "eve"}},
		{[]string{"who", "--json"}, exitOK, []string{`"alice"`, `"fe80::1%lo"`, `"fe80::2%eth0"`}},
		{[]string{"who", "-1", "fe80::/10"}, exitOK, []string{"zoe"}},
		{[]string{"kick", "--dry-run", "zoe"}, exitOK, []string{"zoe"}},
		{[]string{"snapshot"}, exitOK, []string{`"alice"`, `"fe80::1%lo"`}},
		{[]string{"plan", "--rules", "../../rules.example.yaml", "--now", planNow}, exitOK, nil},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errs := runCmd(t, append(tc.args, "-a", srv.Path)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, errs)
			}
			for _, w := range tc.out {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "bob") || strings.Contains(out, "carol") {
				t.Errorf("a bad line was listed:\n%s", out)
			}
			lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
			if len(lines) != len(warnings) {
				t.Fatalf("stderr has %d lines, want %d warnings:\n%s", len(lines), len(warnings), errs)
			}
			cmd := tc.args[0]
			for i, w := range warnings {
				if want := "kickagent " + cmd + ": warning: " + w; !strings.HasPrefix(lines[i], want) {
					t.Errorf("warning %d: %q\nwant prefix %q", i, lines[i], want)
				}
			}
		})
	}
}
