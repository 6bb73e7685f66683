package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBlockDespiteBrokenDropIn: a broken drop-in unrelated to the job does
// not stop block, reset or drain (fail2ban, a password-reset hook): the job
// is installed and exits 0 with a warning naming the broken file and line,
// since the agent leaves that file out and loads the job. A job whose own
// file would be rejected is still refused.
func TestBlockDespiteBrokenDropIn(t *testing.T) {
	dir, rd := jobDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "60-typo.yaml")
	if err := os.WriteFile(broken, []byte("rules:\n  - name: typo\n    userz: [eve]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"block", "198.51.100.7"}, {"reset", "alice", "--no-cache-flush"}, {"drain", "--all"}} {
		code, out, errs := runCmd(t, append(args, rd...)...)
		if code != exitOK {
			t.Errorf("%v with a broken unrelated drop-in: exit %d\n%s%s", args, code, out, errs)
			continue
		}
		if !strings.Contains(errs, "warning: "+broken+":3") || !strings.Contains(errs, `unknown key "userz"`) {
			t.Errorf("%v: no warning naming %s:3:\n%s", args, broken, errs)
		}
	}
	// The broken file is untouched; the jobs are there.
	if got := strings.Join(files(t, dir), " "); !strings.Contains(got, "60-typo.yaml") || strings.Count(got, "kickagent-") != 3 {
		t.Errorf("rules.d holds %s", got)
	}
}
