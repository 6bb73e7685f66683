package anvil

import (
	"io"
	"time"
)

// pacedReader sits under a 2.3 connection's bufio.Reader and makes the
// read that follows a small one wait until paceNap has passed since it.
//
// Dovecot 2.3's anvil sends a dump with one write(2) per line for as long
// as the socket has room. A reader that keeps up is woken for every line,
// and anvil then spends most of the dump in those wake-ups: 0.27–0.37 s
// for 100,000 sessions on the test rig, against 0.05–0.08 s when the
// socket fills once, after which anvil's output stream buffers the rest
// and writes it in large chunks (see BENCHMARKS.md). A short wait after a
// small read lets the socket fill. 2.4's anvil writes a dump in 8 KB
// chunks whatever the reader does; it is not paced.
//
// Before a large dump (the previous one on the connection was at least
// fillMin) the reader reads nothing for fillWait after sending the
// command: anvil fills the socket with its first few hundred lines and
// formats the rest into its buffer. Paced reads alone sometimes read the
// socket empty early and left anvil writing thousands of lines one by one
// (BENCHMARKS.md "anvil during a dump": 731–5,836 write(2) calls per
// 100,000-session dump paced, 311–331 after a 20 ms wait, in every run);
// the wait costs the reader nothing, since the dump cannot arrive before
// anvil has formatted it (34 ms against 36 ms paced).
type pacedReader struct {
	r     io.Reader
	on    bool
	hold  time.Time // no read before this (fill); zero: none
	small time.Time // when the last small read returned; zero: it was not small
	now   func() time.Time
	sleep func(time.Duration)
}

const (
	// paceNap: a shorter wait (1 ms) often read the socket empty before
	// anvil had filled it, and anvil stayed in its slow mode.
	paceNap = 2 * time.Millisecond
	// paceSmall: reads of a socket anvil has filled return 100–200 KB;
	// reads that keep up with its line-at-a-time writes, ~100 bytes.
	paceSmall = 32 << 10
	// fillMin: about 20,000 sessions; below, a dump is over in a few
	// milliseconds and the wait would only delay it.
	fillMin = 1 << 20
	// fillWait: 10 ms sufficed in every run measured; 20 ms leaves margin
	// on a loaded machine, 2 and 5 ms often did not.
	fillWait = 20 * time.Millisecond
)

// fill makes the next read wait fillWait from now when the previous dump
// was large (see pacedReader); call it right after sending CONNECT-DUMP.
func (p *pacedReader) fill(prev int) {
	if p.on && prev >= fillMin {
		p.hold = p.now().Add(fillWait)
	}
}

func newPacedReader(r io.Reader) *pacedReader {
	return &pacedReader{r: r, now: time.Now, sleep: time.Sleep}
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if !p.hold.IsZero() {
		if d := p.hold.Sub(p.now()); d > 0 {
			p.sleep(d)
		}
		p.hold = time.Time{}
	}
	if p.on && !p.small.IsZero() {
		if d := paceNap - p.now().Sub(p.small); d > 0 {
			p.sleep(d)
		}
		p.small = time.Time{}
	}
	n, err := p.r.Read(b)
	if p.on && err == nil && n < len(b) && n < paceSmall {
		p.small = p.now()
	}
	return n, err
}
