package agent

import "io"

// writeEvent is a write to a file or the close of a file opened for
// writing (writes_linux.go).
type writeEvent struct {
	name     string
	closed   bool // closed after writing; false: written to
	overflow bool // events were lost: nothing is known of open files
}

// writeWatcher reports writeEvents until closed.
type writeWatcher struct {
	events chan writeEvent
	done   chan struct{}
	closer io.Closer
	add    func(dir string) // (re)watches dir, replacing its previous watch
}

// Events returns the events, nil (never ready) for a nil watcher.
func (w *writeWatcher) Events() <-chan writeEvent {
	if w == nil {
		return nil
	}
	return w.events
}

// Add watches dir, or watches it again after it was made again or its
// symlink swapped; a nil watcher is a no-op.
func (w *writeWatcher) Add(dir string) {
	if w == nil || w.add == nil {
		return
	}
	w.add(dir)
}

// Close stops the watcher; a nil watcher is a no-op.
func (w *writeWatcher) Close() error {
	if w == nil {
		return nil
	}
	close(w.done)
	return w.closer.Close()
}
