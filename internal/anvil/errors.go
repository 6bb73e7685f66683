package anvil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

var (
	// ErrUnsupportedVersion is returned for an anvil protocol major version
	// this client does not know (a future Dovecot).
	ErrUnsupportedVersion = errors.New("unsupported anvil protocol version")
	// ErrClosed is returned when anvil closed the connection mid-exchange.
	// Anvil never answers errors on the wire: it logs them and hangs up.
	ErrClosed = errors.New("anvil closed the connection")
)

// logHint tells the operator where anvil's side of a failure is written.
const logHint = "anvil reports protocol errors only in Dovecot's log " +
	"(log_path, or the journal of dovecot.service): look for \"Anvil client input error\" " +
	"or \"not compatible with this server\""

// dialError turns a failed connect into an error a person can act on.
// connect(2) answers ECONNREFUSED for a directory or a regular file at the
// path as for a stale socket, so what is at the path is looked at first.
func dialError(path string, err error) error {
	if st, serr := os.Stat(path); serr == nil && st.Mode().Type() != fs.ModeSocket {
		what := "is not a socket but a " + fileKind(st.Mode())
		if st.IsDir() {
			what = "is a directory, not a socket"
		}
		return fmt.Errorf("anvil socket %s %s: pass the anvil socket, BASE_DIR/anvil: %w", path, what, err)
	}
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("anvil socket %s does not exist: is Dovecot running? "+
			"If it runs with another base_dir, pass -a BASE_DIR/anvil: %w", path, err)
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("no permission to connect to anvil socket %s: run as root, "+
			"or (Dovecot 2.4.2 and later) as a member of group dovecot: %w", path, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("anvil socket %s refuses connections: Dovecot is not running "+
			"(stale socket) or is restarting: %w", path, err)
	case errors.Is(err, syscall.ENOTSOCK):
		return fmt.Errorf("%s is not a UNIX socket: pass the anvil socket, BASE_DIR/anvil: %w", path, err)
	}
	return fmt.Errorf("connect to anvil socket %s: %w", path, err)
}

// fileKind names a file type that is not a socket.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "file of mode " + m.Type().String()
}

// timeoutError explains a deadline that passed after the connection was
// made: anvil accepted (or the kernel did, for a stopped anvil) but did not
// answer in time. waited is how long the phase had; what is what was
// awaited ("greeting", "dump", "reply to KICK-USER"); phase is the step.
func timeoutError(path, what, phase string, waited time.Duration, err error) error {
	return fmt.Errorf("anvil %s: connected, but anvil sent no %s within %v (%s): "+
		"anvil is stopped, hung or overloaded, or the timeout is too short: %w",
		path, what, waited.Round(time.Millisecond), phase, err)
}

// closedError explains an EOF in the middle of an exchange.
func closedError(path, during string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w (%s) during %s; %s", ErrClosed, path, during, logHint)
	}
	return fmt.Errorf("anvil %s: %s: %w", path, during, err)
}
