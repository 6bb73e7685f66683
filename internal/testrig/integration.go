package testrig

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// RequireIntegration skips t unless integration tests are enabled (KICKAGENT_IT=1). When the
// CI environment variable is set they are always enabled, and missing Dovecot is a t.Fatal.
func RequireIntegration(t testing.TB) {
	t.Helper()
	if os.Getenv("KICKAGENT_IT") != "1" && os.Getenv("CI") == "" {
		t.Skip("integration test: set KICKAGENT_IT=1 (needs root and test/dovecot/install.sh)")
	}
	if err := Installed(); err != nil {
		t.Fatalf("Dovecot test rig missing: %v (run test/dovecot/install.sh)", err)
	}
}

// Installed reports whether both Dovecot versions are installed for the rig.
func Installed() error {
	if _, err := exec.LookPath("dovecot"); err != nil {
		return err
	}
	root, err := Root()
	if err != nil {
		return err
	}
	_, err = os.Stat(filepath.Join(root, "trixie", ".kickagent-ready"))
	return err
}

// StartT starts instance name for test t and fails t on error. The instance keeps running
// after the test (restart it to get a clean state; StopAll tears everything down).
func StartT(t testing.TB, name string) *Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	in, err := Start(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return in
}
