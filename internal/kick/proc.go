package kick

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrGone means the process had already exited: not a failure of a kick.
var ErrGone = errors.New("process is gone")

// maxPID is the largest pid Linux can hand out (pid_max limit). Anvil
// records above it are synthetic and have no process to signal.
const maxPID = 4194304

// ProcSignaler sends SIGTERM to Dovecot processes after checking, through
// /proc, that the pid still is the Dovecot process anvil named: pids are
// reused, and a wrong SIGTERM would hit an unrelated program.
type ProcSignaler struct {
	// Proc is the procfs mount, "/proc" when empty.
	Proc string
}

// Terminate signals pid if it is a Dovecot process of service.
func (p ProcSignaler) Terminate(pid int64, service string) error {
	if pid <= 1 || pid > maxPID {
		return fmt.Errorf("pid %d: %w (no such process can exist)", pid, ErrGone)
	}
	// On Linux, FindProcess holds a pidfd from here on: if the pid is
	// reused after the check below, Signal reaches nobody.
	proc, err := os.FindProcess(int(pid))
	if err != nil {
		return fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	defer proc.Release()
	if err := p.verify(pid, service); err != nil {
		return err
	}
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		if errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pid %d: %w", pid, ErrGone)
		}
		return fmt.Errorf("SIGTERM pid %d: %w", pid, err)
	}
	return nil
}

func (p ProcSignaler) root() string {
	if p.Proc == "" {
		return "/proc"
	}
	return p.Proc
}

// verify checks the process title ("<instance>/<service>", Dovecot's
// process title, possibly followed by " [user ip]") and that the parent is
// a dovecot master.
func (p ProcSignaler) verify(pid int64, service string) error {
	dir := filepath.Join(p.root(), strconv.FormatInt(pid, 10))
	cmd, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pid %d: %w", pid, ErrGone)
		}
		return fmt.Errorf("pid %d: read cmdline: %w", pid, err)
	}
	title, _, _ := strings.Cut(string(bytes.TrimRight(cmd, "\x00")), "\x00")
	title, _, _ = strings.Cut(title, " ")
	if !titleMatches(title, service) {
		return fmt.Errorf("pid %d is %q, not a Dovecot %s process (pid reused?); not signalled", pid, title, service)
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	// stat: "pid (comm) state ppid …"; comm may hold spaces and ')'.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 2 {
		return fmt.Errorf("pid %d: unreadable stat", pid)
	}
	exe, err := os.Readlink(filepath.Join(p.root(), f[1], "exe"))
	if err != nil || filepath.Base(exe) != "dovecot" {
		return fmt.Errorf("pid %d: parent %s is not a dovecot master (%q); not signalled", pid, f[1], exe)
	}
	return nil
}

// titleMatches accepts "<instance_name>/<service>"; a 2.3 "imap" record may
// be held by the imap-hibernate process.
func titleMatches(title, service string) bool {
	_, svc, ok := strings.Cut(title, "/")
	return ok && (svc == service || svc == service+"-hibernate")
}
