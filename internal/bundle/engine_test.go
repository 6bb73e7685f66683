package bundle

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kickagent/kickagent/internal/engine"
)

// TestRulesLoadAsLocalFiles loads the rules files of a bundle through the
// engine, staged in place of files on disk, and the same files written to
// disk: the same ruleset revision, so the engine cannot tell a rules file
// that came in a bundle from a local one.
func TestRulesLoadAsLocalFiles(t *testing.T) {
	good, _ := testKeys(t)
	b, err := Read(bytes.NewReader(mustBundle(t, mustSrcDir(t, ""), "r1", good.priv)), verifyWith(good))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Extract(b)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	onDisk := t.TempDir()
	stage := map[string][]byte{}
	for _, f := range c.Rules {
		name := filepath.Base(f.Name)
		stage[filepath.Join(onDisk, name)] = f.Data
		if err := os.WriteFile(filepath.Join(onDisk, name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fromDisk, err := engine.Load(ctx, engine.Sources{Rules: []string{onDisk}})
	if err != nil {
		t.Fatal(err)
	}
	// Staged contents replace the disk's: remove the files to be sure.
	for p := range stage {
		os.Remove(p)
	}
	fromBundle, err := engine.Load(ctx, engine.Sources{Rules: []string{onDisk}, Staged: stage})
	if err != nil {
		t.Fatal(err)
	}
	if fromDisk.Rev() != fromBundle.Rev() {
		t.Errorf("ruleset rev %s from the bundle's bytes, %s from the files", fromBundle.Rev(), fromDisk.Rev())
	}
}
