package authpolicy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/statefile"
)

// The brute-force blocks are kept in the state directory (blocks.json),
// so that a restarted agent still refuses a blocked client until its block
// ends, instead of letting it in again. The file is written at most once a
// cycle (Expire), when blocks started or ended since: a crash loses at most
// the blocks of the last interval, whose clients fail again and are blocked
// again.

const blocksFile = "blocks.json"

type persistedBlocks struct {
	Version int              `json:"version"`
	Blocks  []persistedBlock `json:"blocks"`
}

type persistedBlock struct {
	Prefix string    `json:"prefix"`
	Until  time.Time `json:"until"`
	Rule   string    `json:"rule"`
	File   string    `json:"file,omitempty"`
	Reason string    `json:"reason"`
	DryRun bool      `json:"dry_run,omitempty"`
}

// restore loads the blocks still in force from dir; a missing file is
// none, an unreadable one an error (the blocks are then forgotten).
func (b *blocks) restore(dir string, now time.Time) (int, error) {
	data, err := os.ReadFile(filepath.Join(dir, blocksFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var p persistedBlocks
	if err := json.Unmarshal(data, &p); err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(dir, blocksFile), err)
	}
	if p.Version != 1 {
		return 0, fmt.Errorf("%s: version %d, want 1", filepath.Join(dir, blocksFile), p.Version)
	}
	n := 0
	for _, e := range p.Blocks {
		pfx, err := netip.ParsePrefix(e.Prefix)
		if err != nil || pfx != pfx.Masked() || !now.Before(e.Until) {
			continue
		}
		b.add(pfx, e.Until, engine.Block{Rule: e.Rule, File: e.File, Reason: e.Reason, DryRun: e.DryRun})
		n++
	}
	b.mu.Lock()
	b.dirty = false
	b.mu.Unlock()
	return n, nil
}

// save writes the blocks to dir when they changed since the last save.
func (b *blocks) save(dir string) error {
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	p := persistedBlocks{Version: 1, Blocks: make([]persistedBlock, 0, len(b.m))}
	for pfx, e := range b.m {
		p.Blocks = append(p.Blocks, persistedBlock{Prefix: pfx.String(), Until: e.until.UTC(), Rule: e.Rule,
			File: e.File, Reason: e.Reason, DryRun: e.DryRun})
	}
	b.dirty = false
	b.mu.Unlock()
	data, err := json.Marshal(&p)
	if err == nil {
		err = statefile.Write(dir, blocksFile, append(data, '\n'))
	}
	if err != nil {
		b.mu.Lock()
		b.dirty = true // tried again next cycle
		b.mu.Unlock()
		return fmt.Errorf("brute-force blocks: %w", err)
	}
	return nil
}
