package authmaster

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// dialError turns a failed connect into an error a person can act on.
// connect(2) answers ECONNREFUSED for a regular file at the path as for a
// stale socket, so what is at the path is looked at first.
func dialError(path string, err error) error {
	if st, serr := os.Stat(path); serr == nil && st.Mode().Type() != fs.ModeSocket {
		what := "is not a socket"
		if st.IsDir() {
			what = "is a directory, not a socket"
		}
		return fmt.Errorf("auth-master socket %s %s: give BASE_DIR/auth-master: %w", path, what, err)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("auth-master socket %s does not exist: is Dovecot running, with that base_dir? %w", path, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("no permission to connect to auth-master socket %s: Dovecot makes it mode 0600, owned by root "+
			"(unix_listener auth-master), as for doveadm auth cache flush: run as root: %w", path, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("auth-master socket %s refuses connections: Dovecot is not running (a stale socket) or is restarting: %w", path, err)
	case errors.Is(err, syscall.ENOTSOCK):
		return fmt.Errorf("%s is not a UNIX socket: give BASE_DIR/auth-master: %w", path, err)
	}
	return fmt.Errorf("connect to auth-master socket %s: %w", path, err)
}

// isHangup is the peer closing the connection.
func isHangup(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
