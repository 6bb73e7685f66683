package bundle

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kickagent/kickagent/internal/statefile"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// Persisted files under STATE_DIR/bundle/. pendingFile holds a verified
// bundle while the agent decides on it; only one it accepted becomes
// currentFile, so a restart never starts from a bundle the agent refused.
const (
	persistDir  = "bundle"
	currentFile = "bundle.tar.gz"
	pendingFile = "pending.tar.gz"
)

// ErrNoPersisted is returned by LoadPersisted when no bundle was ever
// persisted (a first start).
var ErrNoPersisted = errors.New("bundle: no persisted bundle")

// store keeps the raw bundle tarballs under a state directory.
type store struct{ dir string }

func newStore(stateDir string) (store, error) {
	if stateDir == "" {
		return store{}, errors.New("bundle: no state directory")
	}
	dir := filepath.Join(stateDir, persistDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return store{}, fmt.Errorf("bundle: state directory: %w", err)
	}
	return store{dir: dir}, nil
}

// stage writes raw as the pending bundle, durably.
func (s store) stage(raw []byte) error {
	if err := statefile.Write(s.dir, pendingFile, raw); err != nil {
		return fmt.Errorf("bundle: persist: %w", err)
	}
	return nil
}

// commit makes the pending bundle the current one: a rename, so a crash
// leaves the old or the new one whole.
func (s store) commit() error {
	if err := os.Rename(filepath.Join(s.dir, pendingFile), filepath.Join(s.dir, currentFile)); err != nil {
		return fmt.Errorf("bundle: persist: %w", err)
	}
	if err := statefile.SyncDir(s.dir); err != nil {
		return fmt.Errorf("bundle: persist: %w", err)
	}
	return nil
}

// drop removes a pending bundle the agent refused.
func (s store) drop() error { return statefile.Remove(s.dir, pendingFile) }

// load reads and verifies the current bundle again: the state directory is
// not trusted more than the network.
func (s store) load(vc *opabundle.VerificationConfig) (*opabundle.Bundle, error) {
	p := filepath.Join(s.dir, currentFile)
	raw, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoPersisted
	}
	if err != nil {
		return nil, fmt.Errorf("bundle: persisted copy: %w", err)
	}
	b, err := read(bytes.NewReader(raw), vc, maxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("bundle: persisted copy %s refused: %w", p, err)
	}
	return b, nil
}
