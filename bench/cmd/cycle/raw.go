package main

// A copy of bench/cmd/rawdump's reader (Dovecot 2.4 only): the floor of a dump.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

func rawDump(ctx context.Context, path string) (int, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReaderSize(c, 1<<20)
	greet, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(greet, "VERSION\tanvil-server\t2\t") {
		return 0, fmt.Errorf("greeting %q: %v", greet, err)
	}
	if _, err := io.WriteString(c, "VERSION\tanvil-client\t2\t0\n\nCONNECT-DUMP\n"); err != nil {
		return 0, err
	}
	h, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	total := len(h)
	atLineStart := true
	for {
		buf, _ := r.Peek(r.Buffered())
		if len(buf) == 0 {
			if _, err := r.Peek(1); err != nil {
				return total, errors.Join(errors.New("no terminator"), err)
			}
			continue
		}
		if atLineStart && buf[0] == '\n' {
			return total + 1, nil
		}
		if i := bytes.Index(buf, []byte("\n\n")); i >= 0 {
			return total + i + 2, nil
		}
		atLineStart = buf[len(buf)-1] == '\n'
		total += len(buf)
		r.Discard(len(buf))
	}
}
