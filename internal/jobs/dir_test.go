package jobs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallDespiteBrokenDropIn: another drop-in with errors does not
// refuse a job; its problems come back as warnings with file and line.
func TestInstallDespiteBrokenDropIn(t *testing.T) {
	d := Dir{Path: filepath.Join(t.TempDir(), "rules.d")}
	if err := os.MkdirAll(d.Path, 0o755); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(d.Path, "60-typo.yaml")
	if err := os.WriteFile(broken, []byte("rules: [{name: b}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path, warns, err := d.InstallChecked(context.Background(), block(t, "198.51.100.3"), now)
	if err != nil {
		t.Fatalf("install with a broken unrelated drop-in: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("job file: %v", err)
	}
	if len(warns) != 1 || !strings.HasPrefix(warns[0].Error(), broken+":1: ") {
		t.Errorf("warnings %v, want one naming %s:1", warns, broken)
	}
}
