package anvil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"unsafe"
)

// Stream runs CONNECT-DUMP and calls each for every session as its line
// arrives, without building a Snapshot: listing 100,000 sessions then
// needs memory for one line, not for the dump. begin is called once
// before the first session (also when there is none) with the protocol
// and the 2.4 alt-field header. The Session and its strings are valid only
// during the call; each copies what it keeps. A malformed session line is
// skipped and recorded in the BadLines returned (also with an error); a
// malformed 2.4 header ends the stream with an error.
func (c *Conn) Stream(ctx context.Context, begin func(p Protocol, altNames []string) error, each func(s *Session) error) (BadLines, error) {
	p := &dumpParser{proto: c.proto, streaming: true}
	err := c.stream(ctx, p, begin, each)
	return p.bad, err
}

func (c *Conn) stream(ctx context.Context, p *dumpParser, begin func(p Protocol, altNames []string) error, each func(s *Session) error) error {
	c.begin()
	stop := bindContext(ctx, c.nc)
	defer stop()
	if err := c.write("CONNECT-DUMP\n"); err != nil {
		return err
	}
	maxLine := c.lim.MaxLineBytes
	total := 0         // bytes of the reply read so far
	var scratch []byte // holds a line longer than bufio's buffer
	// readLine returns the next line without its LF; a line longer than
	// maxLine is read past and only its start returned, with long set.
	readLine := func() (line []byte, long bool, err error) {
		line, err = c.r.ReadSlice('\n')
		total += len(line)
		if errors.Is(err, bufio.ErrBufferFull) {
			scratch = append(scratch[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) && total <= c.lim.MaxDumpBytes {
				line, err = c.r.ReadSlice('\n')
				total += len(line)
				if long = long || len(scratch)+len(line) > maxLine+1; !long {
					scratch = append(scratch, line...)
				}
			}
			line = scratch
		}
		if total > c.lim.MaxDumpBytes {
			return nil, false, c.dumpTooLarge(total)
		}
		if err != nil {
			return nil, false, c.ioError(ctx, "CONNECT-DUMP", err)
		}
		if long {
			return line[:min(len(line), maxBadText+1)], true, nil
		}
		line = line[:len(line)-1]
		if len(line) > maxLine {
			return line[:min(len(line), maxBadText+1)], true, nil
		}
		return line, false, nil
	}
	n := 0
	if c.proto == Proto24 {
		h, long, err := readLine()
		if err != nil {
			return err
		}
		n++
		if long {
			return fmt.Errorf("anvil %s: %w", c.path, headerTooLong(maxLine))
		}
		// The header outlives its line: copy it.
		if err := p.line(string(h)); err != nil {
			return fmt.Errorf("anvil %s: %w", c.path, err)
		}
	}
	// One Session for the whole stream: each gets its address, and a
	// Session per line would be 100,000 heap allocations per listing.
	var s Session
	sessions := 0
	for {
		line, long, err := readLine()
		if err != nil {
			// A 2.4 anvil that hung up on the 2.3 handshake is retried
			// as 2.4; a deadline that passed is not one (a stopped anvil):
			// the retry could only fail to connect, and hide the step.
			if c.guessed && n == 0 && ctxErr(ctx) == nil {
				return errLateGreeting
			}
			return err
		}
		n++
		if n == 1 && c.guessed && bytes.HasPrefix(line, []byte("VERSION\tanvil-server\t")) {
			return errLateGreeting
		}
		if begin != nil && (n == 1 || (n == 2 && c.proto == Proto24)) {
			if err := begin(c.proto, p.altNames); err != nil {
				return err
			}
			begin = nil
		}
		if long {
			p.bad.add(n, string(line), lineTooLong(maxLine))
			continue
		}
		if len(line) == 0 {
			return nil
		}
		// Valid until the next read; fn is told so.
		text := unsafe.String(unsafe.SliceData(line), len(line))
		s = Session{}
		if reason := p.session(text, &s); reason != "" {
			p.bad.add(n, text, reason)
			continue
		}
		if sessions++; sessions > c.lim.MaxSessions {
			return c.tooManySessions()
		}
		if err := each(&s); err != nil {
			return err
		}
	}
}

// Stream opens a connection and streams one dump (see Conn.Stream). A 2.4
// anvil that greeted after 2.3 was assumed is retried as 2.4, which is
// safe because begin and each have not been called then.
func (cl *Client) Stream(ctx context.Context, begin func(p Protocol, altNames []string) error, each func(s *Session) error) (BadLines, error) {
	c, err := cl.Open(ctx)
	if err != nil {
		return BadLines{}, err
	}
	bad, err := c.Stream(ctx, begin, each)
	c.Close()
	if !errors.Is(err, errLateGreeting) {
		return bad, err
	}
	if c, err = cl.open(ctx, Proto24); err != nil {
		return BadLines{}, err
	}
	defer c.Close()
	return c.Stream(ctx, begin, each)
}
