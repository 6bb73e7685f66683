package agent

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
//
// A partial write must never become the rule set. On Linux a file written
// in place counts as changed when its writer closes it (IN_CLOSE_WRITE),
// not at each write: a writer that rewrites rules.yaml line by line, however
// slowly, gets one reload of the final content. While a rules file (one of
// paths, or a *.yaml, *.yml or *.rego file in one of the directories of
// paths) has been written to and not yet closed, no reload is asked for,
// neither by other events nor by the poll; SIGHUP, which does not come
// through here, still forces one. Elsewhere, and if the second inotify
// instance cannot be had, write events are debounced as before.
func Watch(ctx context.Context, paths []string, debounce, poll time.Duration, out chan<- struct{}, log *slog.Logger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	var dirs []string
	files := map[string]bool{}    // rule files named in paths
	ruleDirs := map[string]bool{} // directories named in paths
	for _, p := range paths {
		p = filepath.Clean(p)
		dir := p
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			dir = filepath.Dir(p)
			files[p] = true
		} else {
			ruleDirs[p] = true
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
	ww, err := newWriteWatcher(dirs)
	if err != nil {
		log.Debug("no close-after-write events; debouncing writes instead", "err", err)
	}
	defer ww.Close()
	// A rules file is one the load reads; a write to anything else in
	// these directories (an editor's swap file) holds nothing back.
	isRules := func(name string) bool {
		name = filepath.Clean(name)
		if files[name] {
			return true
		}
		base := filepath.Base(name)
		return ruleDirs[filepath.Dir(name)] && !strings.HasPrefix(base, ".") &&
			(strings.HasSuffix(base, ".yaml") || strings.HasSuffix(base, ".yml") || strings.HasSuffix(base, ".rego"))
	}
	// open: rules files written to and not closed since.
	open := map[string]bool{}
	held := false
	var fire <-chan time.Time
	var timer *time.Timer
	arm := func() {
		if timer == nil {
			timer = time.NewTimer(debounce)
		} else {
			timer.Reset(debounce)
		}
		fire = timer.C
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	send := func() {
		if len(open) > 0 {
			if !held {
				held = true
				log.Info("reload held until the writer closes the file", "files", slices.Sorted(maps.Keys(open)))
			}
			return
		}
		held = false
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
			switch {
			case ev.Op == fsnotify.Chmod:
				continue
			case ev.Op == fsnotify.Write && ww != nil:
				continue // the close after it counts (ww)
			case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
				// Gone from the path: its writer's close will not
				// be reported under this name.
				delete(open, filepath.Clean(ev.Name))
			}
			arm()
		case ev, ok := <-ww.Events():
			if !ok {
				ww = nil // closed under us: fall back to write events
				clear(open)
				continue
			}
			switch {
			case ev.overflow:
				log.Warn("file watch queue overflowed; reloading")
				clear(open)
			case !ev.closed:
				if isRules(ev.name) {
					open[filepath.Clean(ev.name)] = true
				}
				continue
			default:
				delete(open, filepath.Clean(ev.name))
			}
			arm()
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
