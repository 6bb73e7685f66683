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
type pacedReader struct {
	r     io.Reader
	on    bool
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
)

func newPacedReader(r io.Reader) *pacedReader {
	return &pacedReader{r: r, now: time.Now, sleep: time.Sleep}
}

func (p *pacedReader) Read(b []byte) (int, error) {
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
