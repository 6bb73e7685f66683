package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch asks for a reload (a value on out) when anything changes in the
// directories holding the rule and policy paths. Directories, not files,
// are watched: editors and config management replace files by rename, and
// Kubernetes swaps a ..data symlink, which a watch on the old inode never
// sees. Bursts are debounced; the reload itself skips unchanged content. A
// slow poll covers paths that could not be watched. Watch returns when ctx
// ends.
func Watch(ctx context.Context, paths []string, debounce, poll time.Duration, out chan<- struct{}, log *slog.Logger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	var dirs []string
	for _, p := range paths {
		dir := p
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			dir = filepath.Dir(p)
		}
		if !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	for _, d := range dirs {
		if err := w.Add(d); err != nil {
			log.Warn("cannot watch directory; relying on the periodic check", "dir", d, "err", err, "poll", poll)
		}
	}
	var fire <-chan time.Time
	var timer *time.Timer
	tick := time.NewTicker(poll)
	defer tick.Stop()
	send := func() {
		select {
		case out <- struct{}{}:
		default: // a reload is already pending
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("file watch error", "err", err)
		case <-fire:
			fire = nil
			send()
		case <-tick.C:
			send()
		}
	}
}
