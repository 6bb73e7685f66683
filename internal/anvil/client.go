package anvil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// DefaultSocket is anvil's socket under Debian's base_dir.
const DefaultSocket = "/run/dovecot/anvil"

// DefaultGreetTimeout is how long Open waits for a 2.4 greeting when nothing
// in base_dir says the server is 2.4. A 2.3 anvil never speaks first, so the
// wait is the price of telling them apart; a late 2.4 greeting is still
// caught (see Client.Dump).
const DefaultGreetTimeout = 150 * time.Millisecond

// maxGreetWait bounds the wait for a greeting from a server known to be 2.4.
const maxGreetWait = 5 * time.Second

// hinted23GreetWait is the greeting wait when base_dir looks like 2.3: just
// enough to see a greeting already on its way. A 2.4 anvil that greets
// later still has its greeting read as the first dump line, and the dump is
// retried as 2.4 (Client.Dump).
const hinted23GreetWait = 2 * time.Millisecond

// Client opens connections to one anvil socket.
type Client struct {
	Path string
	// Protocol forces a protocol generation; zero detects it.
	Protocol Protocol
	// GreetTimeout overrides DefaultGreetTimeout.
	GreetTimeout time.Duration
	// Limits bound a dump; zero fields take the defaults.
	Limits Limits
}

// Conn is one handshaken connection to anvil. Commands on a Conn run one at
// a time; it is not safe for concurrent use.
type Conn struct {
	path    string
	nc      net.Conn
	r       *bufio.Reader
	pace    *pacedReader // under r
	proto   Protocol
	minor   int
	lim     Limits // with defaults
	guessed bool   // 2.3 was assumed because no greeting came in time
	// since is when the current exchange began, for a timeout to say how
	// long anvil had: the connect for the handshake and the first
	// command, else the command (fresh: no command was sent yet).
	since time.Time
	fresh bool
	// lastDump is the size of the previous dump on this connection (or
	// the hint given with SetDumpSizeHint): the next one is read into a
	// buffer of about that size, not grown to it by repeated copies.
	lastDump int
}

// SetDumpSizeHint tells the connection how large a dump to expect (in
// bytes; a previous snapshot's Bytes), so that the first dump read on it
// allocates its buffer once. The hint only sizes the buffer.
func (c *Conn) SetDumpSizeHint(n int) { c.lastDump = max(n, 0) }

// Protocol is the protocol generation the server speaks.
func (c *Conn) Protocol() Protocol { return c.proto }

// ServerMinor is the minor version in the 2.4 greeting.
func (c *Conn) ServerMinor() int { return c.minor }

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// Open dials anvil, detects the protocol and does the handshake.
func (cl *Client) Open(ctx context.Context) (*Conn, error) {
	return cl.open(ctx, cl.Protocol)
}

func (cl *Client) open(ctx context.Context, force Protocol) (*Conn, error) {
	path := cl.Path
	if path == "" {
		path = DefaultSocket
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if cerr := ctxErr(ctx); cerr != nil {
			return nil, fmt.Errorf("connect to anvil socket %s: %w", path, cerr)
		}
		return nil, dialError(path, err)
	}
	pace := newPacedReader(nc)
	c := &Conn{path: path, nc: nc, r: bufio.NewReaderSize(pace, 64<<10), pace: pace, lim: cl.Limits.withDefaults()}
	if err := c.handshake(ctx, force, cl.greetWait(path, force)); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// greetWait picks how long to wait for a greeting. base_dir tells 2.4 apart
// when it holds 2.4-only entries (per-process srv.* admin sockets,
// anvil-connect-limit); then the greeting is awaited as long as ctx allows.
func (cl *Client) greetWait(path string, force Protocol) time.Duration {
	switch force {
	case Proto23:
		return 0
	case Proto24:
		return maxGreetWait
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(filepath.Join(dir, "anvil-connect-limit")); err == nil {
		return maxGreetWait
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "srv.*")); len(m) > 0 {
		return maxGreetWait
	}
	if cl.GreetTimeout > 0 {
		return cl.GreetTimeout
	}
	// The ipc socket exists in 2.3's base_dir only (2.4 removed the ipc
	// service): a short wait is then enough to catch an unexpected greeting.
	if _, err := os.Stat(filepath.Join(dir, "ipc")); err == nil {
		return hinted23GreetWait
	}
	return DefaultGreetTimeout
}

func (c *Conn) handshake(ctx context.Context, force Protocol, wait time.Duration) error {
	c.since, c.fresh = time.Now(), true
	stop := bindContext(ctx, c.nc)
	defer stop()
	if force != Proto23 {
		line, err := c.readGreeting(ctx, wait)
		switch {
		case err != nil:
			return err
		case line == "" && force == Proto24:
			return closedError(c.path, "waiting for the 2.4 greeting", errors.New("no greeting"))
		case line != "":
			return c.greeted(line)
		}
		c.guessed = true
	}
	c.proto = Proto23
	c.pace.on = true
	return c.write("VERSION\tanvil\t1\t0\n")
}

// readGreeting returns the greeting line, or "" when none came within wait.
func (c *Conn) readGreeting(ctx context.Context, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.nc.SetReadDeadline(deadline)
	line, err := c.readShort()
	if errors.Is(err, ErrTooLarge) {
		return "", err
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctxErr(ctx) == nil && line == "" && c.r.Buffered() == 0 {
			_ = c.nc.SetReadDeadline(ctxDeadline(ctx))
			return "", nil
		}
		return "", c.ioError(ctx, "waiting for the greeting", err)
	}
	_ = c.nc.SetReadDeadline(ctxDeadline(ctx))
	return strings.TrimSuffix(line, "\n"), nil
}

// greeted checks the 2.4 greeting "VERSION\tanvil-server\t<major>\t<minor>"
// and answers with the client handshake and the empty handshake line that
// makes this a plain request/response connection.
func (c *Conn) greeted(line string) error {
	f := strings.Split(line, "\t")
	if len(f) != 4 || f[0] != "VERSION" || f[1] != "anvil-server" {
		return protoErr(0, line, "unexpected greeting (is this an anvil socket?)")
	}
	major, err1 := strconv.Atoi(f[2])
	minor, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return protoErr(0, line, "bad version in greeting")
	}
	if major != int(Proto24) {
		return fmt.Errorf("%w: anvil at %s speaks protocol %d.%d; this kickagent knows 1 (Dovecot 2.3) and 2 (Dovecot 2.4)",
			ErrUnsupportedVersion, c.path, major, minor)
	}
	c.proto, c.minor = Proto24, minor
	return c.write("VERSION\tanvil-client\t2\t0\n\n")
}

// readShort reads one line of a short reply (a greeting, a count), LF
// included. A line that does not fit the read buffer (64 KiB) closes the
// connection with ErrTooLarge: no such reply anvil sends comes near it.
func (c *Conn) readShort() (string, error) {
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		c.nc.Close()
		return "", fmt.Errorf("anvil %s: %w: a line over %d bytes where a short reply was due", c.path, ErrTooLarge, c.r.Size())
	}
	return string(line), err
}

func (c *Conn) write(s string) error {
	if _, err := c.nc.Write([]byte(s)); err != nil {
		return closedError(c.path, "write", err)
	}
	return nil
}

// errLateGreeting: a 2.4 anvil greeted after we had assumed 2.3.
var errLateGreeting = errors.New("late 2.4 greeting")

// Dump runs CONNECT-DUMP on c.
func (c *Conn) Dump(ctx context.Context) (*Snapshot, error) { return c.DumpEach(ctx, nil) }

// DumpEach is Dump, calling each (if not nil) with every session as soon
// as it is parsed, while the rest of the dump is still arriving: work done
// there fills time spent waiting for anvil. i is the session's index in
// the Snapshot's Sessions, counted from 0 in order; s is valid only during
// the call (it may move), its strings as long as the Snapshot. A malformed
// session line is skipped (Snapshot.BadLines) and takes no index, so the
// indexes stay consecutive. A dump that fails after some calls returns an
// error, and what each did is void.
func (c *Conn) DumpEach(ctx context.Context, each func(i int, s *Session)) (*Snapshot, error) {
	c.begin()
	stop := bindContext(ctx, c.nc)
	defer stop()
	if err := c.write("CONNECT-DUMP\n"); err != nil {
		return nil, err
	}
	c.pace.fill(c.lastDump)
	p, n, err := c.readDump(ctx, each)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Protocol: c.proto, ServerMinor: c.minor, Bytes: n,
		AltNames: p.altNames, Sessions: p.result(), BadLines: p.bad}
	snap.Taken = time.Now()
	return snap, nil
}

// readDump reads one dump reply up to its terminating empty line and
// parses each line as soon as it has arrived: parsing overlaps anvil's
// writing, and the dump is parsed shortly after its last byte. It
// returns the parser and the reply's size in bytes.
//
// Lines are parsed in one small read buffer, reused from read to read: the
// parser copies the strings the sessions keep into blocks of its own
// (dumpParser.copyOut), which hold a third less than the whole reply, and
// the reply is read into memory that stays in the CPU's cache. A line cut
// by the end of the buffer moves to its start.
func (c *Conn) readDump(ctx context.Context, each func(int, *Session)) (*dumpParser, int, error) {
	buf := make([]byte, 0, readBufSize)
	// Room for the first thousand lines; they tell how many the whole
	// dump holds (see expect below), which costs one copy of them.
	p := newDumpParser(c.proto, min(c.lastDump/dumpLineGuess, 1024))
	p.copyOut, p.each = true, each
	lineStart, scan, before := 0, 0, 0 // before: bytes moved out of buf
	maxLine := c.lim.MaxLineBytes
	// skipping: the rest of a line longer than maxLine is read and
	// dropped, up to its LF.
	skipping := false
	// A bad header is reported once the reply has ended, as when the reply
	// was read whole first: a reply cut short is a closed connection,
	// whatever came before, and the connection stays in step. (A bad
	// session line is not an error: the parser skips and records it.)
	var perr error
	tooLong := func(line []byte) {
		if !p.tooLong(unsafe.String(unsafe.SliceData(line), min(len(line), maxBadText+1)), maxLine) && perr == nil {
			perr = headerTooLong(maxLine)
		}
	}
	for {
		if skipping {
			if i := bytes.IndexByte(buf[scan:], '\n'); i >= 0 {
				scan += i + 1
				lineStart, skipping = scan, false
			} else {
				lineStart, scan = len(buf), len(buf)
			}
		}
		for !skipping {
			i := bytes.IndexByte(buf[scan:], '\n')
			if i < 0 {
				break
			}
			end := scan + i
			line := buf[lineStart:end]
			scan = end + 1
			if p.n == 0 && c.guessed && bytes.HasPrefix(line, []byte("VERSION\tanvil-server\t")) {
				return nil, 0, errLateGreeting
			}
			if len(line) == 0 && (p.n > 0 || c.proto != Proto24) {
				if scan != len(buf) {
					// Nothing was asked after CONNECT-DUMP.
					return nil, 0, protoErr(0, string(buf[scan:min(len(buf), scan+80)]), "unexpected data after the dump")
				}
				c.lastDump = before + len(buf)
				if c.lastDump > c.lim.MaxDumpBytes {
					return nil, 0, c.dumpTooLarge(c.lastDump)
				}
				if perr != nil {
					return nil, 0, fmt.Errorf("anvil %s: %w", c.path, perr)
				}
				return p, c.lastDump, nil
			}
			switch {
			case len(line) > maxLine:
				tooLong(line)
			case perr == nil:
				perr = p.line(unsafe.String(unsafe.SliceData(line), len(line)))
				if p.sessions() > c.lim.MaxSessions {
					return nil, 0, c.tooManySessions()
				}
			}
			lineStart = scan
			if p.n == 1000 && c.lastDump > 0 && perr == nil {
				// Lines are alike: the first thousand tell how many the
				// dump of about the last one's size holds.
				p.expect(int(float64(c.lastDump) * 1.02 / float64(before+lineStart) * float64(p.n)))
			}
		}
		if !skipping && len(buf)-lineStart > maxLine {
			// A line already too long and not ended: what follows of it
			// is read past, not kept.
			tooLong(buf[lineStart:])
			lineStart, scan, skipping = len(buf), len(buf), true
		}
		// The parsed lines are done with: the cut line moves to the start.
		if lineStart > 0 {
			n := copy(buf, buf[lineStart:])
			before += lineStart
			scan -= lineStart
			buf, lineStart = buf[:n], 0
		}
		if got := before + len(buf); got > c.lim.MaxDumpBytes {
			return nil, 0, c.dumpTooLarge(got)
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf)) // a line longer than the buffer
		}
		n, err := c.r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil && n == 0 {
			if got := before + len(buf); got > 0 {
				return nil, 0, c.ioError(ctx, fmt.Sprintf("CONNECT-DUMP, %d bytes of it received", got), err)
			}
			return nil, 0, c.ioError(ctx, "CONNECT-DUMP", err)
		}
	}
}

// readBufSize is the size of a dump's read buffer (a line longer than it
// grows it).
const readBufSize = 256 << 10

// dumpLineGuess is a short guess of a dump line's length, for the first
// allocation before the first lines tell.
const dumpLineGuess = 96

// begin marks the start of a command's exchange.
func (c *Conn) begin() {
	if !c.fresh {
		c.since = time.Now()
	}
	c.fresh = false
}

// ioError explains a failed read or write during a step: a closed
// connection, a cancelled context, or a deadline that passed while anvil,
// connected, stayed silent.
func (c *Conn) ioError(ctx context.Context, during string, err error) error {
	if cerr := ctxErr(ctx); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) && !c.since.IsZero() {
			what, phase := "reply to "+during, during
			switch during {
			case "waiting for the greeting":
				what, phase = "greeting", "handshake: waiting for the 2.4 greeting"
			case "CONNECT-DUMP":
				what, phase = "dump", "handshake done, CONNECT-DUMP sent"
			}
			if rest, ok := strings.CutPrefix(during, "CONNECT-DUMP, "); ok {
				what, phase = "complete dump", "handshake done, CONNECT-DUMP sent, "+rest
			}
			if c.guessed {
				phase = "no greeting, so Dovecot 2.3 assumed; " + phase
			}
			return timeoutError(c.path, what, phase, time.Since(c.since), cerr)
		}
		return fmt.Errorf("anvil %s: %s: %w", c.path, during, cerr)
	}
	return closedError(c.path, during, err)
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

// Dump opens a connection, takes one CONNECT-DUMP and closes it. When 2.3
// was assumed but a 2.4 anvil greeted late (a busy server), the dump is
// retried once on a new 2.4 connection.
func (cl *Client) Dump(ctx context.Context) (*Snapshot, error) {
	c, err := cl.Open(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := c.Dump(ctx)
	c.Close()
	if !errors.Is(err, errLateGreeting) {
		return snap, err
	}
	if c, err = cl.open(ctx, Proto24); err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Dump(ctx)
}

// bindContext applies ctx's deadline to nc and interrupts blocked I/O when
// ctx is cancelled. The returned func undoes both.
func bindContext(ctx context.Context, nc net.Conn) (stop func()) {
	_ = nc.SetDeadline(ctxDeadline(ctx))
	cancel := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	return func() {
		cancel()
		_ = nc.SetDeadline(time.Time{})
	}
}

func ctxDeadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
