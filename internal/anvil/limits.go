package anvil

import (
	"errors"
	"fmt"
)

// ErrTooLarge is returned when anvil's reply exceeds a bound of Limits:
// a runaway anvil (or something else on its socket) must not take the
// reader's memory. The connection is closed with it.
var ErrTooLarge = errors.New("anvil reply exceeds a size limit")

// Default bounds of a dump (Limits).
const (
	// DefaultMaxLineBytes: anvil registers a session from a CONNECT line
	// read into a buffer of about 1 KiB, so no real dump line comes near
	// 64 KiB, escapes and 2.4 alt values included.
	DefaultMaxLineBytes = 64 << 10
	// DefaultMaxDumpBytes: a dump of 100,000 sessions is about 5 MB; 128
	// MiB is over 2 million sessions of real length.
	DefaultMaxDumpBytes = 128 << 20
	// DefaultMaxSessions: far above what one Dovecot host serves; each
	// session costs about 190 bytes once parsed.
	DefaultMaxSessions = 1_000_000
)

// Limits bound what one dump may make the reader hold. Zero fields take
// the defaults.
type Limits struct {
	// MaxLineBytes bounds one dump line, LF excluded. A longer session
	// line is read past without being kept, and skipped as a bad line of
	// kind BadLineTooLong; a longer 2.4 header fails the dump.
	MaxLineBytes int
	// MaxDumpBytes bounds one dump reply; a longer one fails with
	// ErrTooLarge (never a partial snapshot).
	MaxDumpBytes int
	// MaxSessions bounds the sessions of one dump; one more fails it with
	// ErrTooLarge.
	MaxSessions int
}

func (l Limits) withDefaults() Limits {
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = DefaultMaxLineBytes
	}
	if l.MaxDumpBytes <= 0 {
		l.MaxDumpBytes = DefaultMaxDumpBytes
	}
	if l.MaxSessions <= 0 {
		l.MaxSessions = DefaultMaxSessions
	}
	return l
}

// Errors of the bounds. They name the agent's setting, the way to raise
// a bound.
func (c *Conn) dumpTooLarge(got int) error {
	c.nc.Close() // the rest of the reply would be read as the next one's
	return fmt.Errorf("anvil %s: %w: dump exceeds %d bytes (limits.dump_max_bytes; %d received): "+
		"a runaway anvil, or a server larger than the bound (then raise it)", c.path, ErrTooLarge, c.lim.MaxDumpBytes, got)
}

func (c *Conn) tooManySessions() error {
	c.nc.Close()
	return fmt.Errorf("anvil %s: %w: dump exceeds %d sessions (limits.dump_max_sessions): "+
		"a runaway anvil, or a server larger than the bound (then raise it)", c.path, ErrTooLarge, c.lim.MaxSessions)
}

// headerTooLong is the error of a 2.4 header longer than max bytes.
func headerTooLong(max int) error {
	return fmt.Errorf("%w: the 2.4 dump header (alt field names) is longer than %d bytes (limits.dump_max_line_bytes)",
		ErrTooLarge, max)
}

// lineTooLong is the BadLine reason of a skipped over-long line.
func lineTooLong(max int) string {
	return fmt.Sprintf("line longer than %d bytes (limits.dump_max_line_bytes)", max)
}
