package procfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// SocketInodes returns the inodes of the sockets among pid's open file
// descriptors: the N whose /proc/PID/fd/N links to "socket:[INODE]".
// root is the procfs mount ("/proc" when empty). A process that is gone
// gives an error wrapping os.ErrNotExist; one whose descriptors we may not
// read, an error wrapping ErrUnreadable (and fs.ErrPermission), so that a
// caller does not take it for gone.
func SocketInodes(root string, pid int64) (map[uint32]struct{}, error) {
	dir := filepath.Join(procRoot(root), strconv.FormatInt(pid, 10), "fd")
	f, err := os.Open(dir)
	if err != nil {
		return nil, fdError(err)
	}
	names, err := f.Readdirnames(-1) // unsorted: a hibernate process may hold thousands
	f.Close()
	if err != nil {
		return nil, fdError(err)
	}
	inodes := make(map[uint32]struct{})
	for _, n := range names {
		link, err := os.Readlink(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue // closed since the listing; if the process is gone, the listing saw it
		}
		if err != nil {
			return nil, fdError(err)
		}
		if ino, ok := parseSocketLink(link); ok {
			inodes[ino] = struct{}{}
		}
	}
	return inodes, nil
}

// parseSocketLink reads "socket:[INODE]". Socket inodes are 32 bits wide
// (sockfs), as inet_diag reports them.
func parseSocketLink(link string) (uint32, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 32)
	return uint32(ino), err == nil
}

func fdError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnreadable, err)
}

// SameNetNS reports whether pid lives in this process's network namespace:
// /proc/PID/ns/net and /proc/self/ns/net name the same namespace (device and
// inode) under root ("/proc" when empty). A socket dump only sees the
// caller's namespace, so a process elsewhere has no sockets in it.
func SameNetNS(root string, pid int64) (bool, error) {
	root = procRoot(root)
	self, err := statNS(filepath.Join(root, "self", "ns", "net"))
	if err != nil {
		return false, err
	}
	other, err := statNS(filepath.Join(root, strconv.FormatInt(pid, 10), "ns", "net"))
	if err != nil {
		return false, err
	}
	return self.Dev == other.Dev && self.Ino == other.Ino, nil
}

func statNS(path string) (*syscall.Stat_t, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fdError(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("%w: %s: no device and inode", ErrUnreadable, path)
	}
	return st, nil
}

func procRoot(root string) string {
	if root == "" {
		return "/proc"
	}
	return root
}
