package anvil

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// greetWait reads base_dir hints; this checks each one without a server.
func TestGreetWait(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string) error
		cl    Client
		force Protocol
		want  time.Duration
	}{
		{"no hint", nil, Client{}, 0, DefaultGreetTimeout},
		{"no hint, GreetTimeout set", nil, Client{GreetTimeout: time.Second}, 0, time.Second},
		{"srv.imap dir (2.4)", mkdir("srv.imap"), Client{}, 0, maxGreetWait},
		{"srv.* beats GreetTimeout", mkdir("srv.pop3-login"), Client{GreetTimeout: time.Millisecond}, 0, maxGreetWait},
		{"anvil-connect-limit (2.4.4)", touch("anvil-connect-limit"), Client{}, 0, maxGreetWait},
		{"ipc (2.3)", touch("ipc"), Client{}, 0, hinted23GreetWait},
		{"ipc, GreetTimeout set", touch("ipc"), Client{GreetTimeout: time.Second}, 0, time.Second},
		{"forced 2.3", mkdir("srv.imap"), Client{}, Proto23, 0},
		{"forced 2.4", touch("ipc"), Client{}, Proto24, maxGreetWait},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				if err := tc.setup(dir); err != nil {
					t.Fatal(err)
				}
			}
			if got := tc.cl.greetWait(filepath.Join(dir, "anvil"), tc.force); got != tc.want {
				t.Errorf("greetWait = %v, want %v", got, tc.want)
			}
		})
	}
}

func mkdir(name string) func(string) error {
	return func(dir string) error { return os.Mkdir(filepath.Join(dir, name), 0o700) }
}

func touch(name string) func(string) error {
	return func(dir string) error { return os.WriteFile(filepath.Join(dir, name), nil, 0o600) }
}

// dialError's texts, with synthetic errnos: as root a mode-0000 socket
// cannot produce EACCES.
func TestDialError(t *testing.T) {
	const path = "/run/dovecot/anvil"
	tests := []struct {
		errno syscall.Errno
		want  string
	}{
		{syscall.ENOENT, "is Dovecot running?"},
		{syscall.EACCES, "run as root, or (Dovecot 2.4.2 and later) as a member of group dovecot"},
		{syscall.EPERM, "no permission"},
		{syscall.ECONNREFUSED, "refuses connections"},
		{syscall.ENOTSOCK, "is not a UNIX socket"},
		{syscall.EINVAL, "connect to anvil socket"},
	}
	for _, tc := range tests {
		err := dialError(path, &os.SyscallError{Syscall: "connect", Err: tc.errno})
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%v: %q lacks %q or the path", tc.errno, err, tc.want)
		}
		if !errors.Is(err, tc.errno) {
			t.Errorf("%v: %q does not wrap the errno", tc.errno, err)
		}
	}
}

func TestClosedError(t *testing.T) {
	for _, e := range []error{syscall.ECONNRESET, syscall.EPIPE} {
		err := closedError("/x/anvil", "CONNECT-DUMP", &os.SyscallError{Syscall: "read", Err: e})
		if !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "Dovecot's log") {
			t.Errorf("%v: got %q, want ErrClosed with the log hint", e, err)
		}
	}
	err := closedError("/x/anvil", "CONNECT-DUMP", os.ErrDeadlineExceeded)
	if errors.Is(err, ErrClosed) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("timeout: got %q", err)
	}
}

func TestSplitTab(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{"", []string{}}, // Dovecot: an empty line is zero fields
		{"a", []string{"a"}},
		{"\t", []string{"", ""}},
		{"a\x01tb\tc", []string{"a\tb", "c"}},
		{"a\t\tb\t", []string{"a", "", "b", ""}},
	}
	for _, tc := range tests {
		got := splitTab(make([]string, 0, 1), tc.line)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("splitTab(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}
