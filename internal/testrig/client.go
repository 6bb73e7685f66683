package testrig

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Protocol is the mail protocol of a Conn.
type Protocol string

// Protocols a Conn speaks.
const (
	IMAP Protocol = "imap"
	POP3 Protocol = "pop3"
)

// IOTimeout bounds every single read or write of a Conn that has no earlier context deadline.
var IOTimeout = 10 * time.Second

// Conn is a logged-in IMAP or POP3 session from a chosen loopback source address.
// Its methods are not safe for concurrent use.
type Conn struct {
	Proto Protocol
	User  string
	Src   netip.Addr // the client (source) address Dovecot sees

	c      net.Conn
	r      *bufio.Reader
	idling bool
	closed bool   // EOF seen
	bye    string // last "* BYE" line seen
	once   sync.Once
}

// DialIMAP connects from src (127.x.y.z or ::1) to the instance's IMAP port on 127.0.0.1 or
// ::1 (same family as src) and logs user in with LOGIN.
func DialIMAP(ctx context.Context, src netip.Addr, port int, user, pass string) (*Conn, error) {
	c, err := dial(ctx, IMAP, src, port, user)
	if err != nil {
		return nil, err
	}
	if err := c.imapLogin(ctx, pass); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// DialPOP3 is DialIMAP for POP3 (USER/PASS).
func DialPOP3(ctx context.Context, src netip.Addr, port int, user, pass string) (*Conn, error) {
	c, err := dial(ctx, POP3, src, port, user)
	if err != nil {
		return nil, err
	}
	if err := c.pop3Login(ctx, pass); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func dial(ctx context.Context, p Protocol, src netip.Addr, port int, user string) (*Conn, error) {
	if !src.IsLoopback() {
		return nil, fmt.Errorf("testrig: source %v is not a loopback address", src)
	}
	dst := netip.MustParseAddr("127.0.0.1")
	if src.Is6() && !src.Is4In6() {
		dst = netip.IPv6Loopback()
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: IOTimeout}
	nc, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(dst, uint16(port)).String())
	if err != nil {
		return nil, fmt.Errorf("testrig: %s dial from %v: %w", p, src, err)
	}
	return &Conn{Proto: p, User: user, Src: src, c: nc, r: bufio.NewReader(nc)}, nil
}

// IMAPQuote returns s as an IMAP quoted string. Strings with CR, LF or NUL cannot be quoted.
func IMAPQuote(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", fmt.Errorf("testrig: %q cannot be an IMAP quoted string", s)
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`, nil
}

func (c *Conn) imapLogin(ctx context.Context, pass string) error {
	if l, err := c.readLine(ctx); err != nil || !strings.HasPrefix(l, "* OK") {
		return c.fail("greeting", l, err)
	}
	u, err := IMAPQuote(c.User)
	if err != nil {
		return err
	}
	p, err := IMAPQuote(pass)
	if err != nil {
		return err
	}
	l, err := c.command(ctx, "a", "LOGIN "+u+" "+p)
	if err != nil || !strings.HasPrefix(l, "a OK") {
		return c.fail("LOGIN", l, err)
	}
	return nil
}

func (c *Conn) pop3Login(ctx context.Context, pass string) error {
	if strings.ContainsAny(c.User+pass, "\r\n\x00") {
		return errors.New("testrig: POP3 user/pass with CR, LF or NUL")
	}
	steps := []string{"", "USER " + c.User, "PASS " + pass}
	for _, s := range steps {
		if s != "" {
			if err := c.write(ctx, s); err != nil {
				return err
			}
		}
		if l, err := c.readLine(ctx); err != nil || !strings.HasPrefix(l, "+OK") {
			return c.fail(strings.Fields(s + " greeting")[0], l, err)
		}
	}
	return nil
}

func (c *Conn) fail(step, line string, err error) error {
	if err != nil {
		return fmt.Errorf("testrig: %s %s as %q from %v: %w", c.Proto, step, c.User, c.Src, err)
	}
	return fmt.Errorf("testrig: %s %s as %q from %v: %s", c.Proto, step, c.User, c.Src, line)
}

// deadline is ctx's deadline or now+IOTimeout, whichever is earlier.
func deadline(ctx context.Context) time.Time {
	d := time.Now().Add(IOTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// watch makes blocked reads/writes on c return when ctx is cancelled.
func (c *Conn) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
}

func (c *Conn) write(ctx context.Context, line string) error {
	defer c.watch(ctx)()
	c.c.SetWriteDeadline(deadline(ctx))
	_, err := c.c.Write([]byte(line + "\r\n"))
	return err
}

// readLine returns one line without CRLF, waiting at most until deadline(ctx).
func (c *Conn) readLine(ctx context.Context) (string, error) { return c.readLineBy(ctx, deadline(ctx)) }

// readLineBy reads one line with read deadline d (zero: none). It records "* BYE" and EOF.
func (c *Conn) readLineBy(ctx context.Context, d time.Time) (string, error) {
	defer c.watch(ctx)()
	c.c.SetReadDeadline(d)
	l, err := c.r.ReadString('\n')
	if err != nil {
		if !isTimeout(err) {
			c.closed = true
		}
		return "", err
	}
	l = strings.TrimRight(l, "\r\n")
	if strings.HasPrefix(l, "* BYE") {
		c.bye = l
	}
	return l, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// command sends "tag cmd" and returns the tagged reply line, skipping untagged lines.
func (c *Conn) command(ctx context.Context, tag, cmd string) (string, error) {
	if err := c.write(ctx, tag+" "+cmd); err != nil {
		return "", err
	}
	for {
		l, err := c.readLine(ctx)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(l, tag+" ") {
			return l, nil
		}
	}
}

// Select selects mailbox (IMAP SELECT), as a real client does before IDLE: a hibernated
// client then keeps its mailbox's change notifications.
func (c *Conn) Select(ctx context.Context, mailbox string) error {
	if c.Proto != IMAP || c.idling {
		return errors.New("testrig: SELECT needs an IMAP connection not in IDLE")
	}
	m, err := IMAPQuote(mailbox)
	if err != nil {
		return err
	}
	l, err := c.command(ctx, "s", "SELECT "+m)
	if err != nil || !strings.HasPrefix(l, "s OK") {
		return c.fail("SELECT", l, err)
	}
	return nil
}

// Done leaves IMAP IDLE (DONE, then the IDLE's tagged reply): a hibernated client wakes
// into an imap process of its own and, out of IDLE, stays there.
func (c *Conn) Done(ctx context.Context) error {
	if !c.idling {
		return errors.New("testrig: DONE needs a connection in IDLE")
	}
	if err := c.write(ctx, "DONE"); err != nil {
		return c.fail("DONE", "", err)
	}
	for {
		l, err := c.readLine(ctx)
		if err != nil {
			return c.fail("DONE", "", err)
		}
		if strings.HasPrefix(l, "i ") {
			if !strings.HasPrefix(l, "i OK") {
				return c.fail("DONE", l, nil)
			}
			c.idling = false
			return nil
		}
	}
}

// Idle enters IMAP IDLE, so the server may push "* BYE" when it closes the session.
// StillOpen leaves IDLE and re-enters it.
func (c *Conn) Idle(ctx context.Context) error {
	if c.Proto != IMAP {
		return errors.New("testrig: IDLE is IMAP only")
	}
	if c.idling {
		return nil
	}
	if err := c.write(ctx, "i IDLE"); err != nil {
		return err
	}
	for {
		l, err := c.readLine(ctx)
		if err != nil {
			return c.fail("IDLE", "", err)
		}
		if strings.HasPrefix(l, "+") {
			c.idling = true
			return nil
		}
		if strings.HasPrefix(l, "i ") {
			return c.fail("IDLE", l, nil)
		}
	}
}

// StillOpen proves the session is alive: IMAP "x NOOP" must get "x OK", POP3 "NOOP" "+OK".
func (c *Conn) StillOpen(ctx context.Context) error {
	if c.closed {
		return c.fail("StillOpen", "connection closed by server", nil)
	}
	if c.Proto == POP3 {
		if err := c.write(ctx, "NOOP"); err != nil {
			return c.fail("NOOP", "", err)
		}
		l, err := c.readLine(ctx)
		if err != nil || !strings.HasPrefix(l, "+OK") {
			return c.fail("NOOP", l, err)
		}
		return nil
	}
	wasIdle := c.idling
	if wasIdle {
		if err := c.write(ctx, "DONE"); err != nil {
			return c.fail("DONE", "", err)
		}
		for {
			l, err := c.readLine(ctx)
			if err != nil {
				return c.fail("DONE", "", err)
			}
			if strings.HasPrefix(l, "i ") {
				break
			}
		}
		c.idling = false
	}
	l, err := c.command(ctx, "x", "NOOP")
	if err != nil || !strings.HasPrefix(l, "x OK") {
		return c.fail("NOOP", l, err)
	}
	if wasIdle {
		return c.Idle(ctx)
	}
	return nil
}

// Closed waits up to timeout for the server to close the connection, reading and discarding
// whatever it sends (an IMAP "* BYE" then EOF counts as closed). It returns false on timeout;
// the connection is still usable then.
func (c *Conn) Closed(timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.WaitClosed(ctx) == nil
}

// WaitClosed is Closed bounded by ctx: nil once the server has closed the connection,
// ctx's error otherwise.
func (c *Conn) WaitClosed(ctx context.Context) error {
	d, _ := ctx.Deadline()
	for !c.closed {
		if _, err := c.readLineBy(ctx, d); err != nil && !c.closed {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return context.DeadlineExceeded // the socket deadline fired just before ctx's timer
		}
	}
	return nil
}

// Bye returns the last "* BYE" line the server sent ("" if none).
func (c *Conn) Bye() string { return c.bye }

// LocalPort returns the client's source port.
func (c *Conn) LocalPort() int {
	_, p, _ := net.SplitHostPort(c.c.LocalAddr().String())
	n, _ := strconv.Atoi(p)
	return n
}

// Close closes the connection without logging out.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() { err = c.c.Close() })
	return err
}
