package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// watchDebounce is longer than the agent's (25ms, cmd/kickagent/run.go) so
// that a loaded CI machine does not split a burst.
const watchDebounce = 50 * time.Millisecond

// startWatch runs Watch on paths until the test ends and returns its
// output channel. The periodic check is off (an hour), so every value
// comes from a file event.
func startWatch(t *testing.T, paths ...string) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, paths, watchDebounce, time.Hour, out, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	// fsnotify has no "ready" signal: give the goroutine time to add its
	// watches before the test changes anything.
	time.Sleep(100 * time.Millisecond)
	return out
}

// expectFire waits for one reload request.
func expectFire(t *testing.T, out <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-out:
	case <-time.After(2 * time.Second):
		t.Fatalf("%s: no reload requested", what)
	}
}

// expectQuiet asserts that no reload request comes within d.
func expectQuiet(t *testing.T, out <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-out:
		t.Fatalf("%s: unexpected reload request", what)
	case <-time.After(d):
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatchRenameIntoDir: an editor or config management writes a
// temporary file and renames it over (or next to) the watched file.
func TestWatchRenameIntoDir(t *testing.T) {
	dir := t.TempDir()
	rulesD := filepath.Join(dir, "rules.d")
	if err := os.Mkdir(rulesD, 0o755); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "rules.yaml")
	writeFile(t, main, "rules: []\n")
	tmp := t.TempDir() // another directory: the rename brings a new inode in
	out := startWatch(t, main, rulesD)

	// A new file renamed into the drop-in directory.
	src := filepath.Join(tmp, "new.yaml")
	writeFile(t, src, "rules: []\n")
	expectQuiet(t, out, 200*time.Millisecond, "write outside the watched directories")
	if err := os.Rename(src, filepath.Join(rulesD, "50-new.yaml")); err != nil {
		t.Fatal(err)
	}
	expectFire(t, out, "rename into rules.d")

	// The main file replaced by rename: the old inode is gone, the
	// directory watch still sees it.
	src = filepath.Join(dir, ".rules.yaml.swp")
	writeFile(t, src, "rules: []\n# edited\n")
	if err := os.Rename(src, main); err != nil {
		t.Fatal(err)
	}
	expectFire(t, out, "rename over the main file")

	// And again: a watch on the replaced file itself would be dead now.
	src = filepath.Join(tmp, "again.yaml")
	writeFile(t, src, "rules: []\n# again\n")
	if err := os.Rename(src, main); err != nil {
		t.Fatal(err)
	}
	expectFire(t, out, "second rename over the main file")

	// Removal of a drop-in.
	if err := os.Remove(filepath.Join(rulesD, "50-new.yaml")); err != nil {
		t.Fatal(err)
	}
	expectFire(t, out, "removal from rules.d")
}

// TestWatchConfigMapSymlinkSwap: Kubernetes mounts a ConfigMap as
// name -> ..data/name, ..data -> ..<timestamp>; an update writes a new
// timestamped directory and renames a new ..data symlink over the old one.
// The file name the agent was given never changes.
func TestWatchConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name, "rules.yaml"), content)
	}
	version("..2024_01_01_00_00_00.1", "rules: []\n")
	if err := os.Symlink("..2024_01_01_00_00_00.1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.Symlink(filepath.Join("..data", "rules.yaml"), rules); err != nil {
		t.Fatal(err)
	}
	out := startWatch(t, rules)

	version("..2024_01_01_00_01_00.2", "rules: []\n# v2\n")
	if err := os.Symlink("..2024_01_01_00_01_00.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2024_01_01_00_00_00.1")); err != nil {
		t.Fatal(err)
	}
	expectFire(t, out, "..data symlink swap")
	expectQuiet(t, out, 3*watchDebounce, "after the swap (one reload for the whole swap)")
	got, err := os.ReadFile(rules)
	if err != nil || string(got) != "rules: []\n# v2\n" {
		t.Fatalf("the swap did not take: %q %v", got, err)
	}
}

// TestWatchDebounce: a burst of changes closer together than the debounce
// asks for one reload, after the burst.
func TestWatchDebounce(t *testing.T) {
	dir := t.TempDir()
	out := startWatch(t, dir)
	start := time.Now()
	for i := range 10 {
		writeFile(t, filepath.Join(dir, "burst.yaml"), "rules: []\n"+string(rune('a'+i))+": x\n")
		time.Sleep(watchDebounce / 5)
	}
	burst := time.Since(start)
	expectFire(t, out, "burst")
	if got := time.Since(start); got < burst+watchDebounce/2 {
		t.Errorf("reload requested %v after the burst began, before the burst (%v) settled", got, burst)
	}
	expectQuiet(t, out, 4*watchDebounce, "after the burst")
	// The watcher is still alive after the burst.
	writeFile(t, filepath.Join(dir, "later.yaml"), "rules: []\n")
	expectFire(t, out, "a later change")
	expectQuiet(t, out, 3*watchDebounce, "after the later change")
}

// TestWatchIgnoresChmod: a chmod changes no content; it asks for nothing.
func TestWatchIgnoresChmod(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "rules.yaml")
	writeFile(t, f, "rules: []\n")
	out := startWatch(t, f)
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}
	expectQuiet(t, out, 4*watchDebounce, "chmod")
}

// writeSlowly writes chunks to path through one open file, pausing longer
// than the debounce after each write, and closes it at the end: a writer
// that rewrites a file line by line. step, if not nil, runs after each
// chunk's pause (the file still open).
func writeSlowly(path string, chunks []string, step func(i int)) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	for i, c := range chunks {
		if _, err := f.WriteString(c); err != nil {
			f.Close()
			return err
		}
		time.Sleep(3 * watchDebounce)
		if step != nil {
			step(i)
		}
	}
	return f.Close()
}

// readAtReloads runs writer and reads path at every reload request until
// the writer has returned and the watcher has been quiet for a while; it
// returns what each reload would have loaded.
func readAtReloads(t *testing.T, out <-chan struct{}, path string, writer func() error) []string {
	t.Helper()
	werr := make(chan error, 1)
	go func() { werr <- writer() }()
	var loaded []string
	var quiet <-chan time.Time
	for {
		select {
		case <-out:
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			loaded = append(loaded, string(data))
		case err := <-werr:
			if err != nil {
				t.Fatal(err)
			}
			quiet = time.After(6 * watchDebounce)
		case <-quiet:
			return loaded
		}
	}
}

// TestWatchLineByLineWriter: a writer that truncates rules.yaml and writes
// it back line by line, slower than the debounce, gets exactly one reload,
// after it closed the file: no prefix (an empty file, an allow list
// without alice) is ever read at a reload.
func TestWatchLineByLineWriter(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "rules.yaml")
	final := "allow:\n  users: [monitoring]\n  # ops\n  networks: [192.0.2.0/24]\nrules:\n  - {name: block, users: [\"*\"]}\n"
	writeFile(t, main, final)
	out := startWatch(t, main)
	lines := strings.SplitAfter(final, "\n")
	loaded := readAtReloads(t, out, main, func() error { return writeSlowly(main, lines[:len(lines)-1], nil) })
	if len(loaded) != 1 || loaded[0] != final {
		t.Fatalf("reloads read %q; want exactly one, of the final content", loaded)
	}
}

// TestWatchHoldsOtherEventsDuringWrite: while a rules file is open and
// half-written, a change elsewhere (a drop-in arriving) does not reload the
// half-written file either; the one reload comes after the close. An
// editor's hidden swap file held open holds nothing back.
func TestWatchHoldsOtherEventsDuringWrite(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "rules.yaml")
	rulesD := filepath.Join(dir, "rules.d")
	if err := os.Mkdir(rulesD, 0o755); err != nil {
		t.Fatal(err)
	}
	final := "allow:\n  users: [monitoring, alice]\nrules: []\n"
	writeFile(t, main, final)
	swap, err := os.Create(filepath.Join(rulesD, ".50-x.yaml.swp"))
	if err != nil {
		t.Fatal(err)
	}
	defer swap.Close()
	out := startWatch(t, main, rulesD)
	if _, err := swap.WriteString("vim state"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(rulesD, "10-a.yaml"), "rules: []\n")
	expectFire(t, out, "a drop-in written while a swap file is open")

	lines := strings.SplitAfter(final, "\n")
	loaded := readAtReloads(t, out, main, func() error {
		return writeSlowly(main, lines[:len(lines)-1], func(i int) {
			if i == 0 { // in the writer's goroutine: no t.Fatal
				if err := os.WriteFile(filepath.Join(rulesD, "20-b.yaml"), []byte("rules: []\n"), 0o644); err != nil {
					t.Error(err)
				}
			}
		})
	})
	if len(loaded) != 1 || loaded[0] != final {
		t.Fatalf("reloads read %q; want exactly one, of the final content", loaded)
	}
}
