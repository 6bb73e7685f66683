package main

import (
	"bufio"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
)

// bufferedRows is how many rows set the column widths before the rest is
// streamed, as doveadm's table formatter does (its MAX_BUFFER_LINES): a
// 100,000-row listing then needs memory for 100 rows. A later, wider value
// pushes its line out instead of re-aligning everything.
const bufferedRows = 100

// connTable prints who -1: one row per connection.
type connTable struct {
	bw     *bufio.Writer
	titles []string
	width  []int
	rows   [][]string // buffered until bufferedRows
	stream bool
	line   []byte
	err    error
}

func newConnTable(w io.Writer, proto anvil.Protocol, altNames []string) *connTable {
	titles := []string{"username", "proto", "pid", "ip"}
	if proto == anvil.Proto24 {
		titles[1] = "service"
		titles = append(titles, "dest_ip")
		titles = append(titles, altNames...)
	}
	t := &connTable{bw: bufio.NewWriterSize(w, 256<<10), titles: titles, width: make([]int, len(titles))}
	for i, s := range titles {
		t.width[i] = textWidth(s)
	}
	return t
}

// add prints (or buffers) the rows of one session; 2.3 records stand for
// refcount connections and are repeated, as doveadm does.
func (t *connTable) add(s *anvil.Session) {
	if t.err != nil {
		return
	}
	if t.stream {
		t.writeSession(s)
		return
	}
	cells := t.cellsInto(make([]string, 0, len(t.titles)), s)
	for i, c := range cells {
		// The strings of a streamed session die with its line: copy.
		cells[i] = strings.Clone(c)
		t.width[i] = max(t.width[i], textWidth(c))
	}
	for n := 0; n < max(s.Connections, 1); n++ {
		t.rows = append(t.rows, cells)
	}
	if len(t.rows) >= bufferedRows {
		t.flushBuffered()
	}
}

func (t *connTable) cellsInto(cells []string, s *anvil.Session) []string {
	cells = append(cells, s.User, s.Service, strconv.FormatInt(s.PID, 10), addrText(s.IP))
	if len(t.titles) > 4 {
		cells = append(cells, addrText(s.DestIP))
		alt := s.AltValues()
		for i := range t.titles[5:] {
			v := ""
			if i < len(alt) {
				v = alt[i]
			}
			cells = append(cells, v)
		}
	}
	return cells
}

func (t *connTable) flushBuffered() {
	t.stream = true
	t.writeRow(t.titles, 1)
	for _, r := range t.rows {
		t.writeRow(r, 1)
	}
	t.rows = nil
}

func (t *connTable) writeRow(cells []string, times int) {
	if t.err != nil {
		return
	}
	t.line = t.line[:0]
	for i, c := range cells {
		if i > 0 {
			t.line = append(t.line, ' ')
		}
		t.line = append(t.line, c...)
		for n := textWidth(c); n < t.width[i]; n++ {
			t.line = append(t.line, ' ')
		}
	}
	// Empty trailing cells (absent alt fields) leave no trailing blanks.
	for len(t.line) > 0 && t.line[len(t.line)-1] == ' ' {
		t.line = t.line[:len(t.line)-1]
	}
	t.line = append(t.line, '\n')
	for ; times > 0 && t.err == nil; times-- {
		_, t.err = t.bw.Write(t.line)
	}
}

// writeSession is writeRow for a session, with its cells formatted
// straight into bufio's free space: no strings and no copy per row at
// 100,000 rows.
func (t *connTable) writeSession(s *anvil.Session) {
	if t.err != nil {
		return
	}
	b := t.bw.AvailableBuffer()
	aside := cap(b) < 512 // a full buffer (or a long line): format in t.line
	if aside {
		b = t.line[:0]
	}
	b = pad(append(b, s.User...), textWidth(s.User), t.width[0])
	b = pad(append(b, s.Service...), textWidth(s.Service), t.width[1])
	n := len(b)
	b = strconv.AppendInt(b, s.PID, 10)
	b = pad(b, len(b)-n, t.width[2])
	n = len(b)
	if s.IP.IsValid() {
		b = s.IP.AppendTo(b)
	}
	if len(t.titles) > 4 {
		b = pad(b, len(b)-n, t.width[3]) // an address is ASCII
		n = len(b)
		if s.DestIP.IsValid() {
			b = s.DestIP.AppendTo(b)
		}
		alt := s.AltValues()
		for i := range len(t.titles) - 5 {
			b = pad(b, bytesWidth(b[n:]), t.width[4+i])
			n = len(b)
			if i < len(alt) {
				b = append(b, alt[i]...)
			}
		}
	}
	// Empty trailing cells (absent alt fields) leave no trailing blanks.
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	b = append(b, '\n')
	if aside {
		t.line = b
	}
	// Writing the free space into itself copies nothing.
	for times := max(s.Connections, 1); times > 0 && t.err == nil; times-- {
		_, t.err = t.bw.Write(b)
	}
}

// blanks pads cells; wider columns are padded in several appends.
const blanks = "                                                                "

// pad ends a cell of display width n in a column of width w: blanks up
// to w, then the one separating it from the next column.
func pad(b []byte, n, w int) []byte {
	for n < w {
		k := min(w-n, len(blanks))
		b = append(b, blanks[:k]...)
		n += k
	}
	return append(b, ' ')
}

// close prints what is still buffered and flushes.
func (t *connTable) close() error {
	if !t.stream {
		t.flushBuffered()
	}
	if t.err != nil {
		return t.err
	}
	return t.bw.Flush()
}

// writeWhoConns prints who -1 for a snapshot already in memory.
func writeWhoConns(w io.Writer, snap *anvil.Snapshot, f *match.Filter) error {
	t := newConnTable(w, snap.Protocol, snap.AltNames)
	for i := range snap.Sessions {
		if s := &snap.Sessions[i]; f.Match(s) {
			t.add(s)
		}
	}
	return t.close()
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

// bytesWidth is textWidth of b.
func bytesWidth(b []byte) int {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.RuneCount(b)
		}
	}
	return len(b)
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
