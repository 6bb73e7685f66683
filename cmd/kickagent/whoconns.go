package main

import (
	"bufio"
	"io"
	"net/netip"
	"strconv"
	"unicode/utf8"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
)

// writeWhoConns prints who -1: one row per connection. It is the hot path
// of a 100,000-session listing, so it makes one pass for the column widths
// and then writes the cells straight into the buffered writer, with no
// per-row strings.
func writeWhoConns(w io.Writer, snap *anvil.Snapshot, f *match.Filter) error {
	titles := []string{"username", serviceTitle(snap), "pid", "ip"}
	is24 := snap.Protocol == anvil.Proto24
	if is24 {
		titles = append(titles, "dest_ip")
		titles = append(titles, snap.AltNames...)
	}
	width := make([]int, len(titles))
	for i, t := range titles {
		width[i] = len(t)
	}
	sel := matching(snap, f)
	buf := make([]byte, 0, 64)
	for _, s := range sel {
		width[0] = max(width[0], textWidth(s.User))
		width[1] = max(width[1], textWidth(s.Service))
		width[2] = max(width[2], len(strconv.AppendInt(buf[:0], s.PID, 10)))
		width[3] = max(width[3], addrLen(&buf, s.IP))
		if is24 {
			width[4] = max(width[4], addrLen(&buf, s.DestIP))
			for i, v := range s.AltValues() {
				if 5+i < len(width) {
					width[5+i] = max(width[5+i], textWidth(v))
				}
			}
		}
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	line := make([]byte, 0, 256)
	pad := func(n, col int) {
		for ; n < width[col]; n++ {
			line = append(line, ' ')
		}
	}
	cellStr := func(v string, col int) {
		if col > 0 {
			line = append(line, ' ')
		}
		line = append(line, v...)
		pad(textWidth(v), col)
	}
	cellBytes := func(v []byte, col int) {
		if col > 0 {
			line = append(line, ' ')
		}
		line = append(line, v...)
		pad(len(v), col)
	}
	// end finishes the line: no trailing blanks (empty alt cells).
	end := func() {
		for len(line) > 0 && line[len(line)-1] == ' ' {
			line = line[:len(line)-1]
		}
		line = append(line, '\n')
	}
	for i, t := range titles {
		cellStr(t, i)
	}
	end()
	if _, err := bw.Write(line); err != nil {
		return err
	}
	for _, s := range sel {
		line = line[:0]
		cellStr(s.User, 0)
		cellStr(s.Service, 1)
		cellBytes(strconv.AppendInt(buf[:0], s.PID, 10), 2)
		cellBytes(appendAddr(buf[:0], s.IP), 3)
		if is24 {
			cellBytes(appendAddr(buf[:0], s.DestIP), 4)
			alt := s.AltValues()
			for i := range snap.AltNames {
				v := ""
				if i < len(alt) {
					v = alt[i]
				}
				cellStr(v, 5+i)
			}
		}
		end()
		// 2.3 records stand for refcount connections; doveadm repeats them.
		for n := 0; n < max(s.Connections, 1); n++ {
			if _, err := bw.Write(line); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// textWidth is the display width doveadm uses: UTF-8 characters.
func textWidth(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.RuneCountInString(s)
		}
	}
	return len(s)
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return b[:0]
	}
	return a.AppendTo(b)
}

func addrLen(buf *[]byte, a netip.Addr) int {
	if !a.IsValid() {
		return 0
	}
	*buf = a.AppendTo((*buf)[:0])
	return len(*buf)
}
