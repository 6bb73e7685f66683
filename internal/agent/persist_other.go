//go:build !unix

package agent

import (
	"io"
	"os"
	"path/filepath"
)

// lockDir only creates the lock file: no flock outside unix, where
// kickagent does not run in production.
func lockDir(dir string) (io.Closer, error) {
	return os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
}
