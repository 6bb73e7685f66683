package kick

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/procfs"
)

// ErrGone means the process had already exited: not a failure of a kick.
var ErrGone = errors.New("process is gone")

// maxPID is the largest pid Linux can hand out (pid_max limit). Anvil
// records above it are synthetic and have no process to signal.
const maxPID = 4194304

// ProcSignaler sends SIGTERM to Dovecot processes after checking, through
// /proc, that the pid still is a Dovecot process of the service anvil
// named, and a child of the master of the Dovecot whose anvil named it:
// pids are reused, an anvil entry may be stale, and a wrong SIGTERM would
// hit an unrelated program or another Dovecot instance on the host.
type ProcSignaler struct {
	// Proc is the procfs mount, "/proc" when empty.
	Proc string
	// BaseDir is the Dovecot base_dir (the anvil socket's directory), seen
	// from this process: its master.pid names the only master whose
	// children may be signalled. Empty refuses every signal.
	BaseDir string
}

// ForSocket is the ProcSignaler for the Dovecot whose anvil socket is
// path ("" means anvil.DefaultSocket).
func ForSocket(path string) ProcSignaler {
	return ProcSignaler{BaseDir: filepath.Dir(cmp.Or(path, anvil.DefaultSocket))}
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
// this Dovecot's master (checkMaster).
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
	st, err := procfs.ReadStat(p.root(), pid)
	switch {
	case errors.Is(err, procfs.ErrUnreadable):
		return fmt.Errorf("pid %d: %w", pid, err)
	case err != nil:
		return fmt.Errorf("pid %d: %w", pid, ErrGone)
	}
	return p.checkMaster(pid, strconv.FormatInt(st.PPid, 10))
}

// checkMaster checks that ppid, pid's parent, is this Dovecot's master:
// the pid in BaseDir/master.pid, a dovecot binary whose working directory
// is BaseDir (the master changes into base_dir at start, so a stale
// master.pid whose pid now belongs to another program or another Dovecot
// does not pass). Every Dovecot 2.3 and 2.4 service process is a child of
// its master.
func (p ProcSignaler) checkMaster(pid int64, ppid string) error {
	m, err := p.masterPID()
	if err != nil {
		return fmt.Errorf("pid %d: %w; not signalled", pid, err)
	}
	master, pidFile := strconv.FormatInt(m, 10), filepath.Join(p.BaseDir, "master.pid")
	if ppid != master {
		return fmt.Errorf("pid %d: its parent is pid %s, not this Dovecot's master %s (%s): "+
			"another Dovecot's process, or a stale anvil entry; not signalled", pid, ppid, master, pidFile)
	}
	mdir := filepath.Join(p.root(), master)
	exe, err := os.Readlink(filepath.Join(mdir, "exe"))
	if err != nil || filepath.Base(exe) != "dovecot" {
		return fmt.Errorf("pid %d: parent %s (from %s) is not a dovecot master (%q); not signalled", pid, master, pidFile, exe)
	}
	cwd, err1 := os.Stat(filepath.Join(mdir, "cwd"))
	base, err2 := os.Stat(p.BaseDir)
	if err := cmp.Or(err1, err2); err != nil {
		return fmt.Errorf("pid %d: cannot compare master %s's directory with base_dir %s: %w; not signalled", pid, master, p.BaseDir, err)
	}
	if !os.SameFile(cwd, base) {
		wd, _ := os.Readlink(filepath.Join(mdir, "cwd"))
		return fmt.Errorf("pid %d: master %s runs in %q, not in base_dir %s (stale %s?), so it is not this Dovecot's master; not signalled",
			pid, master, wd, p.BaseDir, pidFile)
	}
	return nil
}

// titleMatches accepts "<instance_name>/<service>"; a 2.3 "imap" record may
// be held by the imap-hibernate process.
func titleMatches(title, service string) bool {
	_, svc, ok := strings.Cut(title, "/")
	return ok && (svc == service || svc == service+"-hibernate")
}

// masterPID reads BaseDir/master.pid (checkMaster verifies the process).
func (p ProcSignaler) masterPID() (int64, error) {
	if p.BaseDir == "" {
		return 0, errors.New("no Dovecot base_dir to find its master in")
	}
	pidFile := filepath.Join(p.BaseDir, "master.pid")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("cannot tell this Dovecot's master: %w", err)
	}
	master := strings.TrimSpace(string(data))
	n, err := strconv.ParseInt(master, 10, 64)
	if err != nil || n <= 1 {
		return 0, fmt.Errorf("%s holds %q, not a master pid", pidFile, master)
	}
	return n, nil
}
