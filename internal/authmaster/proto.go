package authmaster

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kickagent/kickagent/internal/anvil"
)

// protocolMajor is the auth-master protocol's major version on Dovecot
// 2.3 and 2.4; the server hangs up on a client that sends another.
const protocolMajor = 1

// clientVersion is the handshake line sent after the server's greeting;
// the minor version is not checked by either server.
const clientVersion = "VERSION\t1\t0\n"

// maxCommand bounds the CACHE-FLUSH line, newline included: the auth
// process reads lines of at most 1024 bytes (MAX_INBUF_SIZE in
// auth-master-connection.c) and hangs up on a longer one, so a long list
// is refused here with a reason instead.
const maxCommand = 1000

// maxLine bounds a line read from the server, as lib-auth's 8192.
const maxLine = 8192

var (
	// ErrProtocol is an answer this client does not expect: a malformed
	// greeting or reply, or a reply to another request.
	ErrProtocol = errors.New("unexpected answer from the auth process")
	// ErrUnsupportedVersion is a greeting with another protocol major
	// version (a future Dovecot).
	ErrUnsupportedVersion = errors.New("unsupported auth-master protocol version")
	// ErrNotMaster is a socket that greets as Dovecot's auth client
	// sockets do (auth-client, login/...), which do not take CACHE-FLUSH.
	ErrNotMaster = errors.New("not an auth-master socket")
	// ErrClosed is the auth process hanging up mid-exchange: it reports
	// refused commands only in Dovecot's log, then closes.
	ErrClosed = errors.New("the auth process closed the connection")
	// ErrBadUser is a user name that cannot be sent, or an empty list
	// (which the server would take as "flush the whole cache").
	ErrBadUser = errors.New("bad user name for CACHE-FLUSH")
)

// formatFlush is the CACHE-FLUSH command line for users with request id.
// An empty list is refused: on the wire it means the whole cache.
func formatFlush(id uint32, users []string) (string, error) {
	if len(users) == 0 {
		return "", fmt.Errorf("%w: no user given (an empty list would flush the whole cache)", ErrBadUser)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CACHE-FLUSH\t%d", id)
	for _, u := range users {
		switch {
		case u == "":
			return "", fmt.Errorf("%w: an empty name", ErrBadUser)
		case strings.IndexByte(u, 0) >= 0:
			// Dovecot's strings end at NUL: the server would flush a
			// shorter name than the one given.
			return "", fmt.Errorf("%w: %q holds a NUL byte", ErrBadUser, u)
		}
		b.WriteString("\t" + anvil.Escape(u)) // Dovecot's tab-escaping, as anvil's
	}
	b.WriteByte('\n')
	if b.Len() > maxCommand {
		return "", fmt.Errorf("%w: the command would be %d bytes; the auth process takes lines of at most %d",
			ErrBadUser, b.Len(), maxCommand)
	}
	return b.String(), nil
}

// greeting accumulates the server's greeting lines.
type greeting struct {
	minor   int
	version bool // VERSION seen
}

// add takes one greeting line (without its newline); done is true after
// SPID, the greeting's last line on an auth-master socket.
func (g *greeting) add(line string) (done bool, err error) {
	f := strings.Split(line, "\t")
	switch f[0] {
	case "VERSION":
		if g.version || len(f) < 3 {
			return false, protoErr("greeting", line, "a bad VERSION line")
		}
		major, err1 := strconv.ParseUint(f[1], 10, 32)
		minor, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil {
			return false, protoErr("greeting", line, "a bad version number")
		}
		if major != protocolMajor {
			return false, fmt.Errorf("%w: the server speaks %d.%d; this kickagent knows %d (Dovecot 2.3 and 2.4)",
				ErrUnsupportedVersion, major, minor, protocolMajor)
		}
		g.version, g.minor = true, int(minor)
		return false, nil
	case "SPID":
		if !g.version {
			return false, protoErr("greeting", line, "SPID before VERSION")
		}
		return true, nil
	case "MECH", "CUID", "COOKIE", "DONE":
		// The greeting of auth-client and the login sockets.
		return false, fmt.Errorf("%w: it greets as an auth client socket (%q): give the auth-master socket, BASE_DIR/auth-master",
			ErrNotMaster, shorten(line))
	}
	return false, protoErr("greeting", line, "not an auth-master greeting")
}

// parseFlushReply reads the answer to CACHE-FLUSH with request id:
// "OK\t<id>\t<count>". Fields after the count are ignored, as doveadm
// ignores them.
func parseFlushReply(line string, id uint32) (int, error) {
	f := strings.Split(line, "\t")
	want := strconv.FormatUint(uint64(id), 10)
	switch {
	case len(f) < 2 || f[1] != want:
		return 0, protoErr("reply to CACHE-FLUSH", line, "not a reply to request "+want)
	case f[0] != "OK":
		return 0, protoErr("reply to CACHE-FLUSH", line, "the request failed")
	case len(f) < 3:
		return 0, protoErr("reply to CACHE-FLUSH", line, "no count")
	}
	n, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return 0, protoErr("reply to CACHE-FLUSH", line, "a bad count")
	}
	return int(n), nil
}

func protoErr(during, line, reason string) error {
	return fmt.Errorf("%w in the %s: %s: %q", ErrProtocol, during, reason, shorten(line))
}

// shorten keeps quoted server text readable in an error.
func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
