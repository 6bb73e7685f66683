package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kickagent/kickagent/internal/statefile"
)

// The reset state file: what a restarted agent needs to judge the
// sessions of an active reset (logged_in_before) as the agent that took
// its cutoff snapshot did. Without it a restart takes a new cutoff, and
// every session then present, including those logged in with the new
// password, counts as old and is kicked again.
//
// It holds each reset's cutoff (the first snapshot at or after its time)
// and the first-seen time of the sessions the rules judged old against a
// cutoff. After a restart a session is old iff its id is in the file: any
// other session was not there at the cutoff. Both sets are small: the
// cutoffs of active resets, the sessions those resets select.
const (
	stateFileName = "resets.json"
	stateVersion  = 1
	// maxStateSessions bounds the file (about 100 bytes a session). A
	// reset that selects more sessions is not persisted: a restart then
	// judges them as a fresh reset would (conservative: re-kick).
	maxStateSessions = 200_000
	maxStateBytes    = 64 << 20
	// cutoffGrace keeps a reset's cutoff this long after no active rule
	// used it, so that a rule briefly gone in a reload (a file rewritten
	// in two steps) keeps its cutoff.
	cutoffGrace = time.Hour
)

// persisted is the state file's content.
type persisted struct {
	Version int `json:"version"`
	// Anvil is the socket the sessions are from: the state of another
	// Dovecot is not this one's.
	Anvil    string         `json:"anvil"`
	Resets   []persistReset `json:"resets"`
	Sessions []persistSeen  `json:"sessions"`
}

type persistReset struct {
	LoggedInBefore time.Time `json:"logged_in_before"`
	Cutoff         time.Time `json:"cutoff"`
}

type persistSeen struct {
	ID        string    `json:"id"`
	FirstSeen time.Time `json:"first_seen"`
}

// parseState reads a state file's content; any defect is an error.
func parseState(data []byte) (*persisted, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p persisted
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the state object")
	}
	if p.Version != stateVersion {
		return nil, fmt.Errorf("version %d, want %d", p.Version, stateVersion)
	}
	for _, r := range p.Resets {
		if r.LoggedInBefore.IsZero() || r.Cutoff.Before(r.LoggedInBefore) {
			return nil, fmt.Errorf("reset %s: bad cutoff %s", r.LoggedInBefore, r.Cutoff)
		}
	}
	for _, s := range p.Sessions {
		if s.ID == "" || s.FirstSeen.IsZero() {
			return nil, errors.New("session without id or first_seen")
		}
	}
	return &p, nil
}

// formatState is the file content of p, sessions sorted so that equal
// states are equal bytes.
func formatState(p *persisted) ([]byte, error) {
	slices.SortFunc(p.Resets, func(x, y persistReset) int { return x.LoggedInBefore.Compare(y.LoggedInBefore) })
	slices.SortFunc(p.Sessions, func(x, y persistSeen) int { return compareStrings(x.ID, y.ID) })
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func compareStrings(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// stateStore is the state directory: one agent at a time (a lock file),
// one state file written whole (temp file, fsync, rename, fsync of the
// directory), so that a crash or a full disk leaves the old file or the
// new one, never a mix.
type stateStore struct {
	dir     string
	anvil   string
	lock    io.Closer
	log     *slog.Logger
	failing bool // the last write failed (logged once per streak)
}

// openStateStore locks dir and reads its state. A store that cannot be
// used is nil (the agent keeps its state in memory only); a state that
// cannot be read is nil (the conservative behaviour: resets take their
// cutoff at the first snapshot after the start). Both are logged.
func openStateStore(dir, anvilSocket string, log *slog.Logger) (*stateStore, *persisted) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Warn("state directory unusable; reset state is kept in memory only: a restart kicks again the sessions active resets select", "dir", dir, "err", err)
		return nil, nil
	}
	lock, err := lockDir(dir)
	if err != nil {
		log.Warn("state directory unusable; reset state is kept in memory only: a restart kicks again the sessions active resets select", "dir", dir, "err", err)
		return nil, nil
	}
	st := &stateStore{dir: dir, anvil: anvilSocket, lock: lock, log: log}
	p, err := st.read()
	switch {
	case errors.Is(err, os.ErrNotExist):
		return st, nil
	case err != nil:
		log.Error("STATE FILE UNREADABLE: active resets take a new cutoff, so sessions they select are kicked again even if they logged in after the reset",
			"file", st.path(), "err", err)
		return st, nil
	case p.Anvil != anvilSocket:
		log.Warn("state file is about another anvil socket; ignored", "file", st.path(), "anvil", p.Anvil, "want", anvilSocket)
		return st, nil
	}
	log.Info("reset state restored", "file", st.path(), "resets", len(p.Resets), "sessions", len(p.Sessions))
	return st, p
}

func (st *stateStore) path() string { return filepath.Join(st.dir, stateFileName) }

func (st *stateStore) read() (*persisted, error) {
	f, err := os.Open(st.path())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("state: read %s: %w", st.path(), err)
	}
	if len(data) > maxStateBytes {
		return nil, fmt.Errorf("state: %s is larger than %d bytes", st.path(), maxStateBytes)
	}
	p, err := parseState(data)
	if err != nil {
		return nil, fmt.Errorf("state: %s: %w", st.path(), err)
	}
	return p, nil
}

// save replaces the state file with p; nil (no resets) removes it.
func (st *stateStore) save(p *persisted) error {
	err := st.write(p)
	switch {
	case err != nil && !st.failing:
		st.log.Error("state file write failed; retrying each cycle: a restart now would kick again sessions logged in after a reset",
			"file", st.path(), "err", err)
	case err == nil && st.failing:
		st.log.Info("state file written again", "file", st.path())
	}
	st.failing = err != nil
	return err
}

func (st *stateStore) write(p *persisted) error {
	if p == nil {
		if err := statefile.Remove(st.dir, stateFileName); err != nil {
			return fmt.Errorf("state: %w", err)
		}
		return nil
	}
	p.Version, p.Anvil = stateVersion, st.anvil
	data, err := formatState(p)
	if err != nil {
		return fmt.Errorf("state: encode: %w", err)
	}
	if err := statefile.Write(st.dir, stateFileName, data); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// Close releases the lock; a nil store is a no-op.
func (st *stateStore) Close() error {
	if st == nil {
		return nil
	}
	return st.lock.Close()
}
