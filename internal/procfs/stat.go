// Package procfs reads what kickagent needs of Linux's /proc: a process's
// name, parent and CPU time.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Stat is the part of /proc/PID/stat kickagent reads.
type Stat struct {
	Comm  string // the process name (at most 15 bytes)
	PPid  int64
	Ticks int64 // utime + stime, in clock ticks; -1: the line stops before them
}

// ErrUnreadable: the stat file is not in the kernel's format.
var ErrUnreadable = errors.New("unreadable stat")

// ReadStat reads /proc/PID/stat under root ("/proc" when empty). A
// process that is gone gives an error wrapping os.ErrNotExist.
func ReadStat(root string, pid int64) (Stat, error) {
	if root == "" {
		root = "/proc"
	}
	b, err := os.ReadFile(filepath.Join(root, strconv.FormatInt(pid, 10), "stat"))
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// ParseStat parses the content of a stat file: "pid (comm) state ppid …
// utime(14) stime(15) …". comm may hold spaces and parentheses, so it
// ends at the last ")".
func ParseStat(b []byte) (Stat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, ErrUnreadable
	}
	f := bytes.Fields(b[end+1:])
	if len(f) < 2 {
		return Stat{}, ErrUnreadable
	}
	ppid, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
	}
	st := Stat{Comm: string(b[open+1 : end]), PPid: ppid, Ticks: -1}
	if len(f) >= 13 {
		ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
		sy, err2 := strconv.ParseInt(string(f[12]), 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return Stat{}, fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
		st.Ticks = ut + sy
	}
	return st, nil
}
