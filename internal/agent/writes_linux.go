package agent

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// newWriteWatcher reports writes and closes-after-write (IN_MODIFY,
// IN_CLOSE_WRITE) of the files in dirs. fsnotify v1.10 reads
// IN_CLOSE_WRITE but does not export it (its UnportableCloseWrite op and
// WithOps option are unexported), so this is a second, minimal inotify
// instance for just those two events; fsnotify still reports creation,
// removal and renames. Both come from one inotify queue here, so a file's
// write and its close arrive in order.
func newWriteWatcher(dirs []string) (*writeWatcher, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	// Non-blocking: os.File uses the poller, so Close ends a pending Read.
	f := os.NewFile(uintptr(fd), "inotify")
	wds := &inotifyDirs{fd: fd, dirs: map[int32]string{}, wds: map[string]int32{}}
	for _, d := range dirs {
		wds.add(d)
	}
	w := &writeWatcher{events: make(chan writeEvent), done: make(chan struct{}), closer: f, add: wds.add}
	go w.read(f, wds)
	return w, nil
}

// inotifyDirs are the watched directories by watch descriptor; add runs
// on Watch's goroutine while read looks names up.
type inotifyDirs struct {
	mu   sync.Mutex
	fd   int
	dirs map[int32]string
	wds  map[string]int32
}

// add watches dir, dropping its previous watch: after a directory is made
// again or its symlink swapped, the old watch is on an inode that is no
// longer dir (or gone, and then already dropped by the kernel).
func (d *inotifyDirs) add(dir string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.wds[dir]; ok {
		_, _ = syscall.InotifyRmWatch(d.fd, uint32(old))
		delete(d.dirs, old)
		delete(d.wds, dir)
	}
	wd, err := syscall.InotifyAddWatch(d.fd, dir, syscall.IN_MODIFY|syscall.IN_CLOSE_WRITE|syscall.IN_ONLYDIR)
	if err != nil {
		return // fsnotify's Add fails too and says so
	}
	d.dirs[int32(wd)] = dir
	d.wds[dir] = int32(wd)
}

func (d *inotifyDirs) lookup(wd int32) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, ok := d.dirs[wd]
	return dir, ok
}

func (w *writeWatcher) read(f *os.File, wds *inotifyDirs) {
	defer close(w.events)
	var buf [syscall.SizeofInotifyEvent * 1024]byte
	for {
		n, err := f.Read(buf[:])
		if err != nil {
			return // closed
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+nameLen]
			off += syscall.SizeofInotifyEvent + nameLen
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
			var ev writeEvent
			switch dir, ok := wds.lookup(wd); {
			case mask&syscall.IN_Q_OVERFLOW != 0:
				ev.overflow = true
			case !ok || mask&(syscall.IN_MODIFY|syscall.IN_CLOSE_WRITE) == 0 || len(name) == 0:
				continue // IN_IGNORED, or an event of the directory itself
			default:
				ev.name = filepath.Join(dir, string(name))
				ev.closed = mask&syscall.IN_CLOSE_WRITE != 0
			}
			select {
			case w.events <- ev:
			case <-w.done:
				return
			}
		}
	}
}
