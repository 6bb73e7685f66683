// Command rawdump is the floor for listing sessions: it connects to anvil, does the
// handshake, sends CONNECT-DUMP and reads the reply up to its terminating empty line,
// without parsing it. It prints the reply's size and line count.
//
//	rawdump -v 24 /path/to/anvil
//
// With -pace (2.3) a read that follows a small one waits 2 ms since it, as
// kickagent's reads of a 2.3 anvil do (internal/anvil/pace.go): the floor
// for a reader that lets anvil fill the socket.
//
// With -wait D it sends CONNECT-DUMP and reads nothing for D, then reads the
// whole reply as fast as it can ("fill then wait": anvil fills the socket and
// buffers the rest before the first read). -time prints the wall time from
// sending CONNECT-DUMP to the reply's last byte (bench/cmd/anvilprof).
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	ver := flag.String("v", "24", "anvil protocol: 23 (Dovecot 2.3) or 24 (Dovecot 2.4)")
	quiet := flag.Bool("q", false, "print nothing")
	pace := flag.Bool("pace", false, "wait 2 ms after a small read (as kickagent does on 2.3)")
	wait := flag.Duration("wait", 0, "after sending CONNECT-DUMP, read nothing for this long")
	timing := flag.Bool("time", false, "also print the seconds from CONNECT-DUMP sent to the last byte read")
	flag.Parse()
	if flag.NArg() != 1 || (*ver != "23" && *ver != "24") || (*pace && *wait > 0) {
		fmt.Fprintln(os.Stderr, "usage: rawdump [-q] [-time] [-pace | -wait D] -v 23|24 ANVIL_SOCKET")
		os.Exit(64)
	}
	n, lines, took, err := dump(flag.Arg(0), *ver == "24", *pace, *wait)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawdump:", err)
		os.Exit(1)
	}
	if !*quiet {
		fmt.Printf("%d bytes, %d lines\n", n, lines)
	}
	if *timing {
		fmt.Printf("%.6f s\n", took.Seconds())
	}
}

func dump(path string, v24, pace bool, wait time.Duration) (int, int, time.Duration, error) {
	n, lines, sent, err := read(path, v24, pace, wait)
	return n, lines, time.Since(sent), err
}

// read returns the reply's size and lines and when CONNECT-DUMP was sent.
func read(path string, v24, pace bool, wait time.Duration) (int, int, time.Time, error) {
	var sent time.Time
	c, err := net.Dial("unix", path)
	if err != nil {
		return 0, 0, sent, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	var src io.Reader = c
	if pace {
		src = &pacer{r: c}
	}
	r := bufio.NewReaderSize(src, 1<<20)
	req := "VERSION\tanvil\t1\t0\nCONNECT-DUMP\n"
	if v24 {
		greet, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(greet, "VERSION\tanvil-server\t2\t") {
			return 0, 0, sent, fmt.Errorf("greeting %q: %v", greet, err)
		}
		req = "VERSION\tanvil-client\t2\t0\n\nCONNECT-DUMP\n"
	}
	sent = time.Now()
	if _, err := io.WriteString(c, req); err != nil {
		return 0, 0, sent, err
	}
	time.Sleep(wait)
	total, lines := 0, 0
	if v24 { // the 2.4 reply starts with a header line (possibly empty)
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, 0, sent, err
		}
		total, lines = len(h), 1
	}
	atLineStart := true
	for {
		buf, _ := r.Peek(r.Buffered())
		if len(buf) == 0 {
			if _, err := r.Peek(1); err != nil {
				return total, lines, sent, errors.Join(errors.New("no terminator"), err)
			}
			continue
		}
		if atLineStart && buf[0] == '\n' {
			return total + 1, lines, sent, nil
		}
		if i := bytes.Index(buf, []byte("\n\n")); i >= 0 {
			lines += bytes.Count(buf[:i+1], []byte{'\n'})
			return total + i + 2, lines, sent, nil
		}
		lines += bytes.Count(buf, []byte{'\n'})
		atLineStart = buf[len(buf)-1] == '\n'
		total += len(buf)
		r.Discard(len(buf))
	}
}

// pacer makes a read that follows one of less than 32 KB wait until 2 ms
// have passed since it.
type pacer struct {
	r     io.Reader
	small time.Time
}

func (p *pacer) Read(b []byte) (int, error) {
	if !p.small.IsZero() {
		time.Sleep(2*time.Millisecond - time.Since(p.small))
		p.small = time.Time{}
	}
	n, err := p.r.Read(b)
	if err == nil && n < len(b) && n < 32<<10 {
		p.small = time.Now()
	}
	return n, err
}
