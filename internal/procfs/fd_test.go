package procfs

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

func TestParseSocketLink(t *testing.T) {
	for _, c := range []struct {
		link string
		ino  uint32
		ok   bool
	}{
		{"socket:[12345]", 12345, true},
		{"socket:[4294967295]", 4294967295, true},
		{"socket:[4294967296]", 0, false}, // wider than inet_diag's 32 bits
		{"socket:[]", 0, false},
		{"socket:[12", 0, false},
		{"pipe:[12]", 0, false},
		{"/dev/null", 0, false},
		{"anon_inode:[eventpoll]", 0, false},
	} {
		ino, ok := parseSocketLink(c.link)
		if ok != c.ok || (ok && ino != c.ino) {
			t.Errorf("parseSocketLink(%q) = %d, %v; want %d, %v", c.link, ino, ok, c.ino, c.ok)
		}
	}
}

// A fake procfs: only the links matter.
func TestSocketInodesFake(t *testing.T) {
	root := t.TempDir()
	fd := filepath.Join(root, "42", "fd")
	if err := os.MkdirAll(fd, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, target := range map[string]string{"0": "/dev/null", "3": "socket:[100]", "4": "socket:[200]", "5": "pipe:[300]"} {
		if err := os.Symlink(target, filepath.Join(fd, n)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := SocketInodes(root, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("got %v, want 100 and 200", got)
	}
	for _, ino := range []uint32{100, 200} {
		if _, ok := got[ino]; !ok {
			t.Errorf("inode %d missing from %v", ino, got)
		}
	}
	if _, err := SocketInodes(root, 43); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrUnreadable) {
		t.Errorf("gone process: %v, want ErrNotExist", err)
	}
	// A non-directory: unreadable, not gone.
	if err := os.WriteFile(filepath.Join(root, "44"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := SocketInodes(root, 44); !errors.Is(err, ErrUnreadable) {
		t.Errorf("unreadable fd dir: %v, want ErrUnreadable", err)
	}
}

func TestSocketInodesSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no /proc on", runtime.GOOS)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	got, err := SocketInodes("", int64(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[uint32(st.Ino)]; !ok {
		t.Errorf("listener inode %d not among %d socket inodes", st.Ino, len(got))
	}
}

func TestSameNetNSFake(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"self/ns", "42/ns", "43/ns"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self := filepath.Join(root, "self/ns/net")
	if err := os.WriteFile(self, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(self, filepath.Join(root, "42/ns/net")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "43/ns/net"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for pid, want := range map[int64]bool{42: true, 43: false} {
		if got, err := SameNetNS(root, pid); err != nil || got != want {
			t.Errorf("SameNetNS(%d) = %v, %v; want %v", pid, got, err, want)
		}
	}
	if _, err := SameNetNS(root, 44); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("gone process: %v, want ErrNotExist", err)
	}
}

// The real thing: this process, and a thread moved to a new namespace
// (needs CAP_SYS_ADMIN; CI runs as root, so a failure is not skipped).
func TestSameNetNSReal(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no /proc on", runtime.GOOS)
	}
	if same, err := SameNetNS("", int64(os.Getpid())); err != nil || !same {
		t.Fatalf("SameNetNS(self) = %v, %v; want true", same, err)
	}
	type result struct {
		same bool
		err  error
	}
	// The thread stays locked and dies with its goroutine, so no other
	// goroutine ever runs in the new namespace.
	moved := func(ch chan<- result) {
		runtime.LockOSThread()
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		same, err := SameNetNS("", int64(syscall.Gettid()))
		ch <- result{same, err}
	}
	ch := make(chan result)
	go func() {
		// /proc/self is the thread group leader's view: the leader must
		// not be the thread that moves. Holding it here makes another
		// goroutine run on another thread.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if syscall.Gettid() != os.Getpid() {
			moved(ch)
			return
		}
		inner := make(chan result)
		go moved(inner)
		ch <- <-inner
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("thread in a new network namespace: %v (the test needs root)", r.err)
	}
	if r.same {
		t.Error("SameNetNS = true for a thread in a new network namespace")
	}
}
