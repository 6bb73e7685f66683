//go:build unix

package agent

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes dir's lock file, held until the returned closer closes: a
// second agent on the same state directory would overwrite the first's
// state with its own.
func lockDir(dir string) (io.Closer, error) {
	name := filepath.Join(dir, "lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("state: lock %s (another kickagent uses this state directory?): %w", name, err)
	}
	return f, nil
}
