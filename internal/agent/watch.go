package agent

import (
	"context"
	"log/slog"
	"maps"
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
//
// Only events that can change what the load reads count (watchSet.relevant):
// the agent's own log in a watched directory would otherwise reload it in
// a loop. A rules directory that disappears is a warning; one made again
// or swapped through a symlink is watched again at once (watchSet.resync).
func Watch(ctx context.Context, paths []string, debounce, poll time.Duration, out chan<- struct{}, log *slog.Logger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	ws := newWatchSet(w, paths, log)
	ww, err := newWriteWatcher(ws.contentDirs())
	if err != nil {
		log.Debug("no close-after-write events; debouncing writes instead", "err", err)
	}
	defer ww.Close()
	ws.ww = ww
	ws.start()
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
			if ev.Op == fsnotify.Chmod || !ws.relevant(ev.Name) {
				continue
			}
			if ws.isAnchor(ev.Name) || !ws.isRules(ev.Name) {
				// A directory made, removed or swapped: its watch
				// follows the inode it was added on.
				ws.resync()
			}
			switch {
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
				ws.ww = nil
				clear(open)
				continue
			}
			switch {
			case ev.overflow:
				log.Warn("file watch queue overflowed; reloading")
				clear(open)
				ws.resync()
			case !ws.isRules(ev.name):
				continue // a log or any other file: not read by the load
			case !ev.closed:
				open[filepath.Clean(ev.name)] = true
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
			ws.resync()
			send()
		}
	}
}
