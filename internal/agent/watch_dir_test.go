package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log destination the watcher writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startWatchLog is startWatch with the watcher's log kept.
func startWatchLog(t *testing.T, paths ...string) (<-chan struct{}, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan struct{}, 16)
	done := make(chan error, 1)
	log := &syncBuffer{}
	go func() {
		done <- Watch(ctx, paths, watchDebounce, time.Hour, out, slog.New(slog.NewTextHandler(log, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	time.Sleep(100 * time.Millisecond)
	return out, log
}

// drain empties out once the watcher has been quiet for a while.
func drain(out <-chan struct{}) {
	for {
		select {
		case <-out:
		case <-time.After(4 * watchDebounce):
			return
		}
	}
}

// dropInLayout makes dir/rules.yaml and dir/rules.d (or, with link, a
// rules.d symlink to dir/v1) and returns their paths.
func dropInLayout(t *testing.T, link bool) (dir, main, rulesD string) {
	t.Helper()
	dir = t.TempDir()
	main, rulesD = filepath.Join(dir, "rules.yaml"), filepath.Join(dir, "rules.d")
	writeFile(t, main, "rules: []\n")
	target := rulesD
	if link {
		target = filepath.Join(dir, "v1")
	}
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if link {
		if err := os.Symlink("v1", rulesD); err != nil {
			t.Fatal(err)
		}
	}
	return dir, main, rulesD
}

// TestWatchDropInDirRecreated: rules.d deleted and made again (rm -rf,
// a package reinstall, config management) is watched again: a drop-in
// written into the new directory asks for a reload at once, not at the
// next periodic check (off here). Its disappearance is a warning.
func TestWatchDropInDirRecreated(t *testing.T) {
	_, main, rulesD := dropInLayout(t, false)
	writeFile(t, filepath.Join(rulesD, "10-a.yaml"), "rules: []\n")
	out, log := startWatchLog(t, main, rulesD)
	if err := os.RemoveAll(rulesD); err != nil {
		t.Fatal(err)
	}
	expectFire(t, out, "rules.d removed")
	drain(out)
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), rulesD) {
		t.Errorf("no warning naming %s when it disappeared:\n%s", rulesD, log)
	}
	if err := os.Mkdir(rulesD, 0o755); err != nil {
		t.Fatal(err)
	}
	expectFire(t, out, "rules.d made again")
	drain(out)
	writeFile(t, filepath.Join(rulesD, "20-b.yaml"), "rules: []\n")
	expectFire(t, out, "a drop-in written into the new rules.d")
	// And once more: the new watch is itself re-established.
	if err := os.RemoveAll(rulesD); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(rulesD, 0o755); err != nil {
		t.Fatal(err)
	}
	drain(out)
	writeFile(t, filepath.Join(rulesD, "30-c.yaml"), "rules: []\n")
	expectFire(t, out, "a drop-in written into rules.d made a second time")
}

// TestWatchDropInDirSymlinkSwap: rules.d is a symlink swapped to another
// directory (ln -sfn v2 rules.d.new && mv -T rules.d.new rules.d): the new
// target is watched, the old one no more.
func TestWatchDropInDirSymlinkSwap(t *testing.T) {
	dir, main, rulesD := dropInLayout(t, true)
	out, _ := startWatchLog(t, main, rulesD)
	if err := os.Mkdir(filepath.Join(dir, "v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("v2", rulesD+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(rulesD+".new", rulesD); err != nil {
		t.Fatal(err)
	}
	expectFire(t, out, "the symlink swapped")
	drain(out)
	writeFile(t, filepath.Join(rulesD, "50-new.yaml"), "rules: []\n")
	expectFire(t, out, "a drop-in written into the new target")
	drain(out)
	writeFile(t, filepath.Join(dir, "v1", "50-old.yaml"), "rules: []\n")
	expectQuiet(t, out, 4*watchDebounce, "a file written into the old target")
}

// TestWatchIgnoresOtherFiles: the agent's own log in a watched directory
// (at debug level it logs each reload) asks for no reload, whether the
// logger keeps it open or opens it for each line; nor does any file that
// cannot be rules. A rules file there still does.
func TestWatchIgnoresOtherFiles(t *testing.T) {
	_, main, rulesD := dropInLayout(t, false)
	out := startWatch(t, main, rulesD)
	for _, dir := range []string{filepath.Dir(main), rulesD} {
		held, err := os.OpenFile(filepath.Join(dir, "kickagent.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			if _, err := held.WriteString("level=DEBUG msg=\"reload: rules unchanged\"\n"); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(filepath.Join(dir, "agent.out"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("line\n")
			f.Close()
			writeFile(t, filepath.Join(dir, "notes.txt"), string(rune('a'+i)))
			time.Sleep(watchDebounce / 2)
		}
		held.Close()
		if err := os.Rename(filepath.Join(dir, "kickagent.log"), filepath.Join(dir, "kickagent.log.1")); err != nil {
			t.Fatal(err)
		}
		expectQuiet(t, out, 4*watchDebounce, "log writes in "+dir)
	}
	writeFile(t, filepath.Join(rulesD, "10-a.yaml"), "rules: []\n")
	expectFire(t, out, "a drop-in after the log writes")
}
