package anvil

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxCommandLine is anvil's input buffer (MAX_INBUF_SIZE): a longer line,
// LF included, is never parsed and gets the connection closed.
const maxCommandLine = 1024

// ErrNotSupported is returned for a command the server's protocol lacks.
var ErrNotSupported = errors.New("not supported by this anvil protocol")

// FormatCommand joins fields into one command line, tab-escaping each, so
// that no field can end the line or start a second command. It refuses
// lines anvil would not read.
func FormatCommand(fields ...string) (string, error) {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(Escape(f))
	}
	b.WriteByte('\n')
	if b.Len() > maxCommandLine {
		return "", fmt.Errorf("anvil command %s is %d bytes, over anvil's %d-byte line limit", fields[0], b.Len(), maxCommandLine)
	}
	return b.String(), nil
}

// KickUser asks a 2.4 anvil to kick user's session guid (all of user's
// sessions when guid is empty) and waits for the reply. The count anvil
// returns is advisory: imap, pop3 and submission answer 0 even when they
// kicked, and a per-connection login process is counted but not closed
// (Dovecot 2.4.0-2.4.4). Confirm with a fresh dump.
func (c *Conn) KickUser(ctx context.Context, user, guid string) (int, error) {
	fields := []string{"KICK-USER", user}
	if guid != "" {
		if !isGUID(guid) {
			return 0, fmt.Errorf("anvil: kick %q: bad connection guid %q", user, guid)
		}
		fields = append(fields, guid)
	}
	return c.kick(ctx, fields)
}

// KickAltUser asks a 2.4 anvil to kick every session whose alt-username
// field equals value exactly, except those from client IP exceptIP (if
// not empty).
func (c *Conn) KickAltUser(ctx context.Context, field, value, exceptIP string) (int, error) {
	fields := []string{"KICK-ALT-USER", field, value}
	if exceptIP != "" {
		fields = append(fields, exceptIP)
	}
	return c.kick(ctx, fields)
}

// kick sends one KICK-* command and reads its count. Replies to KICK-*
// come when all targeted processes answered, and may overtake replies to
// later commands, so only one command is ever in flight on a Conn.
func (c *Conn) kick(ctx context.Context, fields []string) (int, error) {
	if c.proto != Proto24 {
		return 0, fmt.Errorf("anvil: %s: %w (Dovecot %s)", fields[0], ErrNotSupported, c.proto.Dovecot())
	}
	line, err := FormatCommand(fields...)
	if err != nil {
		return 0, err
	}
	c.begin()
	stop := bindContext(ctx, c.nc)
	defer stop()
	if err := c.write(line); err != nil {
		return 0, err
	}
	reply, err := c.readShort()
	if errors.Is(err, ErrTooLarge) {
		return 0, err
	}
	if err != nil {
		return 0, c.ioError(ctx, fields[0], err)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(reply, "\n"))
	if err != nil || n < 0 {
		return 0, protoErr(0, reply, fields[0]+" reply is not a count")
	}
	return n, nil
}

// Kicker is one admin connection that sends KICK-* commands, one at a time.
type Kicker interface {
	KickUser(ctx context.Context, user, guid string) (int, error)
	Close() error
}

// OpenKicker opens another connection to the same anvil, speaking the same
// protocol without waiting to detect it, for kicks sent alongside this
// connection's: anvil may answer KICK-* out of order on one connection, so
// parallel kicks need a connection each.
func (c *Conn) OpenKicker(ctx context.Context) (Kicker, error) {
	k, err := (&Client{Path: c.path, Protocol: c.proto, Limits: c.lim}).Open(ctx)
	if err != nil {
		return nil, err
	}
	return k, nil
}
