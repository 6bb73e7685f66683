package agent

import (
	"log/slog"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"

	"github.com/kickagent/kickagent/internal/engine"
)

// watchSet keeps the watches of Watch pointed at the paths it was given.
// A rules directory (rules.d, a policy directory) can be deleted and made
// again or swapped through a symlink; a watch follows the inode it was
// added on, so the directory's parent (and its symlink target's parent)
// is watched too, and each event naming the directory, and each periodic
// check, compares the directory's identity and re-adds its watch.
type watchSet struct {
	w        *fsnotify.Watcher
	ww       *writeWatcher
	log      *slog.Logger
	files    map[string]bool        // rule files named in paths
	ruleDirs map[string]bool        // directories named in paths
	ids      map[string]os.FileInfo // ruleDirs when last watched; nil: missing
	targets  map[string]string      // ruleDirs' symlink-resolved paths
	parents  map[string]bool        // directories added to w
	names    map[string]struct{}    // ruleDirs and their targets: events on these resync
}

func newWatchSet(w *fsnotify.Watcher, paths []string, log *slog.Logger) *watchSet {
	s := &watchSet{w: w, log: log, files: map[string]bool{}, ruleDirs: map[string]bool{}, ids: map[string]os.FileInfo{},
		targets: map[string]string{}, parents: map[string]bool{}, names: map[string]struct{}{}}
	for _, p := range paths {
		p = filepath.Clean(p)
		if st, err := os.Stat(p); err != nil || !st.IsDir() {
			s.files[p] = true
		} else {
			s.ruleDirs[p] = true
		}
	}
	return s
}

// contentDirs are the directories whose entries are rules files.
func (s *watchSet) contentDirs() []string {
	var dirs []string
	seen := map[string]bool{}
	for f := range s.files {
		if d := filepath.Dir(f); !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	for d := range s.ruleDirs {
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// addParent watches dir once, for creation, removal and renames of the
// rules files and directories in it.
func (s *watchSet) addParent(dir string) {
	if s.parents[dir] {
		return
	}
	if err := s.w.Add(dir); err != nil {
		s.log.Warn("cannot watch directory; relying on the periodic check", "dir", dir, "err", err)
		return
	}
	s.parents[dir] = true
}

// start adds the first watches.
func (s *watchSet) start() {
	for f := range s.files {
		s.addParent(filepath.Dir(f))
	}
	s.resync()
}

// resync re-adds the watch of each rules directory whose identity changed
// (made again, or its symlink now pointing elsewhere) and warns about
// each that disappeared. It reports whether any changed.
func (s *watchSet) resync() bool {
	changed := false
	for d := range s.ruleDirs {
		s.addParent(filepath.Dir(d))
		if t, err := filepath.EvalSymlinks(d); err == nil {
			t = filepath.Clean(t)
			s.targets[d] = t
			s.names[t] = struct{}{}
			s.addParent(filepath.Dir(t))
		}
		s.names[d] = struct{}{}
		id, err := os.Stat(d)
		ok := err == nil && id.IsDir()
		prev, known := s.ids[d]
		switch {
		case !ok:
			if !known || prev != nil {
				// Keeping the last good rules is the reload's job (a
				// missing rules directory fails it); this says why.
				s.log.Warn("rules directory disappeared: its rules stay as last loaded and reloads fail until it is back", "dir", d)
				changed = changed || known
			}
			s.ids[d] = nil
		case prev == nil || !os.SameFile(id, prev):
			// Remove first: the old watch may still be on the old inode.
			_ = s.w.Remove(d)
			if err := s.w.Add(d); err != nil {
				s.log.Warn("cannot watch directory; relying on the periodic check", "dir", d, "err", err)
			}
			s.ww.Add(d)
			if known {
				s.log.Warn("rules directory replaced (made again or its symlink swapped); watching the new one", "dir", d, "target", s.targets[d])
				changed = true
			}
			s.ids[d] = id
		}
	}
	return changed
}

// isRules reports whether name is a file the load reads: one named in
// paths, or a rules or policy file (engine.IsSourceName) in a rules
// directory.
func (s *watchSet) isRules(name string) bool {
	name = filepath.Clean(name)
	if s.files[name] {
		return true
	}
	return s.ruleDirs[filepath.Dir(name)] && engine.IsSourceName(filepath.Base(name))
}

// isAnchor reports whether name is a rules directory or its target, whose
// events call for a resync.
func (s *watchSet) isAnchor(name string) bool {
	_, ok := s.names[filepath.Clean(name)]
	return ok
}

// relevant reports whether an event on name can change what the load
// reads. The agent's own log, an editor's notes or any other regular file
// that cannot be rules is ignored: written to at every reload, it would
// reload the agent in a loop. A directory or symlink may be a path the
// rules resolve through (Kubernetes' ..data), so it counts.
func (s *watchSet) relevant(name string) bool {
	if s.isRules(name) || s.isAnchor(name) {
		return true
	}
	st, err := os.Lstat(name)
	if err != nil {
		return false // gone, and none of ours
	}
	return st.Mode()&(os.ModeDir|os.ModeSymlink) != 0
}
