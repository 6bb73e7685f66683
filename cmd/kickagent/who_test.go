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
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump("\n1\tu\timap\t\tnot-a-guid\t\n\n"))
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
		{[]string{"who", "-a", srv.Path}, exitTempFail, "anvil protocol error"}, // malformed reply
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
