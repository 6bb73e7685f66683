// Package integration runs kickagent against real Dovecot 2.3 and 2.4
// instances started by test/dovecot/instance.sh, with real IMAP and POP3
// client connections.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// bin is the kickagent binary built for this test run.
var bin string

func TestMain(m *testing.M) {
	if os.Getenv("KICKAGENT_IT") == "" && os.Getenv("CI") == "" {
		fmt.Println("integration tests skipped: set KICKAGENT_IT=1 (test/run.sh does) to run them against real Dovecot")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "kickagent-it")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "kickagent")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/kickagent").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build kickagent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance loads a running instance; a missing one fails the test (never a
// skip: a suite that cannot reach Dovecot has not passed).
func instance(t *testing.T, name string) *testrig.Instance {
	t.Helper()
	inst, err := testrig.Load(name)
	if err != nil {
		t.Fatalf("Dovecot instance %s is not available (run test/dovecot/instance.sh start %s): %v", name, name, err)
	}
	return inst
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// kickagent runs the binary and returns stdout, stderr and the exit code.
func kickagent(t *testing.T, ctx context.Context, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run kickagent %v: %v", args, err)
	}
	return so.String(), se.String(), code
}
