package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// TestRunDumpLimits: the agent reads its dump bounds from the config's
// limits; a dump over them fails the cycle (--once: the anvil status) and
// says which setting to raise.
func TestRunDumpLimits(t *testing.T) {
	srv := anviltest.New(t, anvil.Proto23, anviltest.WithDump(
		"imap/192.0.2.1/a\t4194401\t1\nimap/192.0.2.2/b\t4194402\t1\nimap/192.0.2.3/c\t4194403\t1\n\n"))
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte("rules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sessions int
		code     int
		want     string
	}{
		{2, exitTempFail, "dump exceeds 2 sessions (limits.dump_max_sessions)"},
		{3, exitOK, ""},
	} {
		cfg := filepath.Join(dir, "kickagent.yaml")
		text := fmt.Sprintf("anvil_socket: %s\nrules: [rules.yaml]\nlimits:\n  dump_max_sessions: %d\n", srv.Path, tc.sessions)
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCmd(t, "run", "--once", "--metrics", "off", "-c", cfg)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("dump_max_sessions %d: exit %d, stdout %q, stderr %q; want %d and %q", tc.sessions, code, out, errs, tc.code, tc.want)
		}
	}
}
