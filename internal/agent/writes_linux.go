package agent

import (
	"encoding/binary"
	"os"
	"path/filepath"
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
	wds := map[int32]string{}
	for _, d := range dirs {
		wd, err := syscall.InotifyAddWatch(fd, d, syscall.IN_MODIFY|syscall.IN_CLOSE_WRITE|syscall.IN_ONLYDIR)
		if err != nil {
			continue // fsnotify's Add fails too and says so
		}
		wds[int32(wd)] = d
	}
	w := &writeWatcher{events: make(chan writeEvent), done: make(chan struct{}), closer: f}
	go w.read(f, wds)
	return w, nil
}

func (w *writeWatcher) read(f *os.File, wds map[int32]string) {
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
			switch dir, ok := wds[wd]; {
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
