// Command rawdump is the floor for listing sessions: it connects to anvil, does the
// handshake, sends CONNECT-DUMP and reads the reply up to its terminating empty line,
// without parsing it. It prints the reply's size and line count.
//
//	rawdump -v 24 /path/to/anvil
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
	flag.Parse()
	if flag.NArg() != 1 || (*ver != "23" && *ver != "24") {
		fmt.Fprintln(os.Stderr, "usage: rawdump [-q] -v 23|24 ANVIL_SOCKET")
		os.Exit(64)
	}
	n, lines, err := dump(flag.Arg(0), *ver == "24")
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawdump:", err)
		os.Exit(1)
	}
	if !*quiet {
		fmt.Printf("%d bytes, %d lines\n", n, lines)
	}
}

func dump(path string, v24 bool) (int, int, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReaderSize(c, 1<<20)
	req := "VERSION\tanvil\t1\t0\nCONNECT-DUMP\n"
	if v24 {
		greet, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(greet, "VERSION\tanvil-server\t2\t") {
			return 0, 0, fmt.Errorf("greeting %q: %v", greet, err)
		}
		req = "VERSION\tanvil-client\t2\t0\n\nCONNECT-DUMP\n"
	}
	if _, err := io.WriteString(c, req); err != nil {
		return 0, 0, err
	}
	total, lines := 0, 0
	if v24 { // the 2.4 reply starts with a header line (possibly empty)
		h, err := r.ReadSlice('\n')
		if err != nil {
			return 0, 0, err
		}
		total, lines = len(h), 1
	}
	atLineStart := true
	for {
		buf, _ := r.Peek(r.Buffered())
		if len(buf) == 0 {
			if _, err := r.Peek(1); err != nil {
				return total, lines, errors.Join(errors.New("no terminator"), err)
			}
			continue
		}
		if atLineStart && buf[0] == '\n' {
			return total + 1, lines, nil
		}
		if i := bytes.Index(buf, []byte("\n\n")); i >= 0 {
			lines += bytes.Count(buf[:i+1], []byte{'\n'})
			return total + i + 2, lines, nil
		}
		lines += bytes.Count(buf, []byte{'\n'})
		atLineStart = buf[len(buf)-1] == '\n'
		total += len(buf)
		r.Discard(len(buf))
	}
}
