package kick

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTitleMatches(t *testing.T) {
	tests := []struct {
		title, service string
		want           bool
	}{
		{"dovecot/imap", "imap", true},
		{"ka-v23/imap", "imap", true},
		{"dovecot/imap-hibernate", "imap", true}, // 2.3 imap records may sit in imap-hibernate
		{"ka-v24proxy/imap-login", "imap-login", true},
		{"dovecot/pop3", "pop3", true},
		{"dovecot/imap-login", "imap", false},
		{"dovecot/imap", "imap-login", false},
		{"dovecot/pop3", "imap", false},
		{"dovecot/imap-hibernate", "pop3", false},
		{"imap", "imap", false},
		{"", "imap", false},
		{"/usr/bin/sleep", "imap", false},
		{"dovecot/imapx", "imap", false},
		{"dovecot/lmtp", "imap", false},
	}
	for _, tc := range tests {
		if got := titleMatches(tc.title, tc.service); got != tc.want {
			t.Errorf("titleMatches(%q, %q) = %v, want %v", tc.title, tc.service, got, tc.want)
		}
	}
}

// fakeProc builds a procfs tree: each process has cmdline and stat, and
// masters have an exe link.
type fakeProc struct {
	t   *testing.T
	dir string
}

func newFakeProc(t *testing.T) *fakeProc { return &fakeProc{t: t, dir: t.TempDir()} }

// proc adds pid with the raw cmdline and a stat naming comm and ppid.
func (f *fakeProc) proc(pid int, cmdline, comm string, ppid int) {
	d := filepath.Join(f.dir, strconv.Itoa(pid))
	if err := os.MkdirAll(d, 0o755); err != nil {
		f.t.Fatal(err)
	}
	stat := strconv.Itoa(pid) + " (" + comm + ") S " + strconv.Itoa(ppid) + " 1 1 0 -1 4194560 100 0 0 0\n"
	for name, data := range map[string]string{"cmdline": cmdline, "stat": stat} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(data), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

// master adds a process whose exe links to exe (the target need not
// exist) and whose cwd links to a new base_dir holding its master.pid,
// which it returns.
func (f *fakeProc) master(pid int, exe string) string {
	f.proc(pid, exe+"\x00-c\x00/etc/dovecot/dovecot.conf\x00", filepath.Base(exe), 1)
	base := f.t.TempDir()
	writeFile(f.t, filepath.Join(base, "master.pid"), strconv.Itoa(pid)+"\n")
	d := filepath.Join(f.dir, strconv.Itoa(pid))
	for name, target := range map[string]string{"exe": exe, "cwd": base} {
		if err := os.Symlink(target, filepath.Join(d, name)); err != nil {
			f.t.Fatal(err)
		}
	}
	return base
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	f := newFakeProc(t)
	base := f.master(900, "/usr/sbin/dovecot")
	base24 := f.master(901, "/work/.dovecot/trixie/usr/sbin/dovecot") // 2.4 in a chroot, seen from the host
	f.master(902, "/usr/bin/bash")
	f.master(904, "/usr/sbin/dovecot") // another Dovecot instance on the host
	f.proc(1000, "ka-v23/imap\x00", "imap", 900)
	f.proc(1001, "ka-v24proxy/imap-login [127.0.0.2 proxy]\x00", "imap-login", 901)
	// Dovecot overwrites argv in place: the title may be padded with NULs
	// and spaces.
	f.proc(1002, "dovecot/pop3 [alice 127.0.0.3]"+strings.Repeat("\x00", 20), "pop3", 900)
	f.proc(1003, "/usr/bin/sleep\x0060\x00", "sleep", 900) // pid reused by another program
	f.proc(1004, "ka-v23/imap\x00", "imap", 902)           // parent is not a dovecot master
	f.proc(1005, "ka-v23/imap\x00", "im) S 1 (ap", 900)    // comm with ')' and spaces
	f.proc(1006, "ka-v23/imap\x00", "imap", 903)           // parent gone
	f.proc(1007, "", "kworker", 2)                         // kernel thread or zombie: empty cmdline
	f.proc(1008, "ka-v23/imap-hibernate\x00", "imap-hibernate", 900)
	f.proc(1009, "ka-other/imap\x00", "imap", 904) // the other instance's imap
	f.proc(1010, "ka-v23/imap\x00", "imap", 1)     // orphaned: its master died

	// base_dir whose master.pid is stale: pid 904 now is another
	// Dovecot's master, which runs in its own base_dir.
	stale := t.TempDir()
	writeFile(t, filepath.Join(stale, "master.pid"), "904\n")
	// master.pid names pid 902, a bash in that directory.
	bashBase := t.TempDir()
	writeFile(t, filepath.Join(bashBase, "master.pid"), "902\n")
	if err := os.Remove(filepath.Join(f.dir, "902", "cwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bashBase, filepath.Join(f.dir, "902", "cwd")); err != nil {
		t.Fatal(err)
	}
	garbled := t.TempDir()
	writeFile(t, filepath.Join(garbled, "master.pid"), "dovecot\n")

	tests := []struct {
		base    string
		pid     int64
		service string
		ok      bool
		gone    bool
		msg     string
	}{
		{base, 1000, "imap", true, false, ""},
		{base24, 1001, "imap-login", true, false, ""},
		{base, 1002, "pop3", true, false, ""},
		{base, 1000, "pop3", false, false, "not a Dovecot pop3 process"},
		{base, 1003, "imap", false, false, "pid reused"},
		{base, 1004, "imap", false, false, "parent is pid 902, not this Dovecot's master 900"},
		{bashBase, 1004, "imap", false, false, "not a dovecot master"},
		{base, 1005, "imap", true, false, ""},
		{base, 1006, "imap", false, false, "parent is pid 903, not this Dovecot's master 900"},
		{base, 1007, "imap", false, false, "not a Dovecot imap process"},
		{base, 1008, "imap", true, false, ""},
		{base, 1999, "imap", false, true, ""},
		// Issue 12 item 18: a Dovecot process, but of another instance.
		{base, 1009, "imap", false, false, "parent is pid 904, not this Dovecot's master 900"},
		{base24, 1000, "imap", false, false, "not this Dovecot's master 901"},
		{stale, 1009, "imap", false, false, "not in base_dir " + stale},
		{base, 1010, "imap", false, false, "parent is pid 1, not this Dovecot's master 900"},
		{t.TempDir(), 1000, "imap", false, false, "cannot tell this Dovecot's master"},
		{garbled, 1000, "imap", false, false, `holds "dovecot", not a master pid`},
		{"", 1000, "imap", false, false, "no Dovecot base_dir"},
	}
	for _, tc := range tests {
		p := ProcSignaler{Proc: f.dir, BaseDir: tc.base}
		err := p.verify(tc.pid, tc.service)
		switch {
		case tc.ok && err != nil:
			t.Errorf("verify(%d, %s) in %s: %v", tc.pid, tc.service, tc.base, err)
		case !tc.ok && err == nil:
			t.Errorf("verify(%d, %s) in %s accepted", tc.pid, tc.service, tc.base)
		case !tc.ok && errors.Is(err, ErrGone) != tc.gone:
			t.Errorf("verify(%d, %s): %v; ErrGone %v, want %v", tc.pid, tc.service, err, !tc.gone, tc.gone)
		case !tc.ok && !strings.Contains(err.Error(), tc.msg):
			t.Errorf("verify(%d, %s): %v; want it to say %q", tc.pid, tc.service, err, tc.msg)
		case !tc.ok && !tc.gone && !strings.Contains(err.Error(), "not signalled"):
			t.Errorf("verify(%d, %s): %v; want it to say it did not signal", tc.pid, tc.service, err)
		}
	}
}

func TestForSocket(t *testing.T) {
	if got := ForSocket("").BaseDir; got != "/run/dovecot" {
		t.Errorf("ForSocket(\"\").BaseDir = %q, want /run/dovecot", got)
	}
	if got := ForSocket("/srv/dovecot/run/anvil").BaseDir; got != "/srv/dovecot/run" {
		t.Errorf("ForSocket.BaseDir = %q, want /srv/dovecot/run", got)
	}
}

// TestTerminate signals a real child process of this test, described by a
// fake procfs: as a Dovecot imap process it gets SIGTERM; as what it
// really is (sleep) it is left alone.
func TestTerminate(t *testing.T) {
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	f := newFakeProc(t)
	p := ProcSignaler{Proc: f.dir, BaseDir: f.master(900, "/usr/sbin/dovecot")}

	victim := start()
	f.proc(victim.Process.Pid, "ka-v23/imap\x00", "imap", 900)
	if err := p.Terminate(int64(victim.Process.Pid), "imap"); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- victim.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			t.Errorf("child ended with %v, want SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child still running after Terminate")
	}

	bystander := start()
	f.proc(bystander.Process.Pid, "sleep\x0060\x00", "sleep", os.Getpid())
	err := p.Terminate(int64(bystander.Process.Pid), "imap")
	if err == nil || errors.Is(err, ErrGone) {
		t.Fatalf("Terminate of a reused pid: %v, want a refusal", err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("bystander was signalled: %v", err)
	}

	for _, pid := range []int64{-1, 0, 1, maxPID + 1} {
		if err := p.Terminate(pid, "imap"); !errors.Is(err, ErrGone) {
			t.Errorf("Terminate(%d): %v, want ErrGone", pid, err)
		}
	}
}
