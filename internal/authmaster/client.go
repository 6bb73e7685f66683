package authmaster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// SocketName is the auth-master socket's name in base_dir on Dovecot 2.3
// and 2.4 (unix_listener auth-master; doveadm uses BASE_DIR/auth-master).
const SocketName = "auth-master"

// SocketNextTo is the auth-master socket in the base_dir of the anvil
// socket at anvilPath.
func SocketNextTo(anvilPath string) string {
	return filepath.Join(filepath.Dir(anvilPath), SocketName)
}

// Client flushes entries from the auth cache through one auth-master socket.
type Client struct {
	// Path is the auth-master socket, BASE_DIR/auth-master.
	Path string
}

// requestID is the id of the one request on each connection (doveadm's
// first request on a connection has id 1 too).
const requestID = 1

// FlushUsers removes the auth cache entries of users (passdb and userdb
// entries whose key begins with the name, as Dovecot matches them) and
// returns how many were removed. The names are matched exactly: Dovecot
// keys the cache by the name after auth_username_format. An auth process
// without a cache answers 0. ctx bounds the whole exchange.
func (c *Client) FlushUsers(ctx context.Context, users []string) (int, error) {
	cmd, err := formatFlush(requestID, users)
	if err != nil {
		return 0, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		if cerr := ctxErr(ctx); cerr != nil {
			return 0, fmt.Errorf("connect to auth-master socket %s: %w", c.Path, cerr)
		}
		return 0, dialError(c.Path, err)
	}
	defer nc.Close()
	stop := bindContext(ctx, nc)
	defer stop()
	x := exchange{path: c.Path, r: bufio.NewReaderSize(nc, maxLine), since: time.Now()}

	// The handshake goes out at once, as lib-auth sends it: auth-master
	// greets unasked, but Dovecot 2.4's auth client sockets greet only
	// after it, and would otherwise leave the read below to time out.
	// A server that already hung up is explained by what it sent first,
	// so the greeting is read even then.
	if _, err := io.WriteString(nc, clientVersion); err != nil && !isHangup(err) {
		return 0, x.ioError(ctx, "sending the handshake", err)
	}
	var g greeting
	for done := false; !done; {
		line, err := x.readLine(ctx, "greeting")
		if err != nil {
			return 0, err
		}
		if done, err = g.add(line); err != nil {
			return 0, fmt.Errorf("auth-master %s: %w", c.Path, err)
		}
	}
	if _, err := io.WriteString(nc, cmd); err != nil {
		return 0, x.ioError(ctx, "sending CACHE-FLUSH", err)
	}
	line, err := x.readLine(ctx, "reply to CACHE-FLUSH")
	if err != nil {
		return 0, err
	}
	n, err := parseFlushReply(line, requestID)
	if err != nil {
		return 0, fmt.Errorf("auth-master %s: %w", c.Path, err)
	}
	return n, nil
}

// exchange reads one connection's lines and explains its failures.
type exchange struct {
	path  string
	r     *bufio.Reader
	since time.Time
}

// readLine reads one line without its newline; what names the awaited
// line ("greeting", "reply to CACHE-FLUSH") for errors.
func (x *exchange) readLine(ctx context.Context, what string) (string, error) {
	b, err := x.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", fmt.Errorf("auth-master %s: %w in the %s: a line longer than %d bytes", x.path, ErrProtocol, what, maxLine)
	case err != nil:
		return "", x.ioError(ctx, "waiting for the "+what, err)
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

// ioError explains a failed read or write: the deadline, a cancel, or the
// server hanging up.
func (x *exchange) ioError(ctx context.Context, during string, err error) error {
	if cerr := ctxErr(ctx); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("auth-master %s: connected, but no answer within %v (%s): "+
				"the auth process is hung, overloaded or still starting, or the timeout is too short "+
				"(or this is no Dovecot auth socket: auth-master greets at once): %w",
				x.path, time.Since(x.since).Round(time.Millisecond), during, cerr)
		}
		return fmt.Errorf("auth-master %s: %s: %w", x.path, during, cerr)
	}
	if isHangup(err) {
		hint := ""
		if strings.Contains(during, "CACHE-FLUSH") {
			// The auth-userdb socket greets like auth-master but refuses
			// CACHE-FLUSH ("BUG: Unknown command in userdb socket").
			hint = " without answering: it refuses CACHE-FLUSH on a socket that is not auth-master (auth-userdb), and says why in Dovecot's log"
		}
		return fmt.Errorf("auth-master %s: %w while %s%s", x.path, ErrClosed, during, hint)
	}
	return fmt.Errorf("auth-master %s: %s: %w", x.path, during, err)
}

// bindContext applies ctx's deadline to nc and interrupts blocked I/O when
// ctx is cancelled. The returned func undoes both.
func bindContext(ctx context.Context, nc net.Conn) (stop func()) {
	d, _ := ctx.Deadline()
	_ = nc.SetDeadline(d)
	cancel := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	return func() {
		cancel()
		_ = nc.SetDeadline(time.Time{})
	}
}

// ctxErr is ctx.Err(), except that a deadline already passed counts even
// before ctx's timer has fired: the socket deadline is set to the same
// instant and often expires first.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
