package anvil

import (
	"fmt"
	"net/netip"
	"strings"
	"unsafe"
)

// dumpParser parses a CONNECT-DUMP one line at a time, so that a dump can
// be parsed while anvil is still sending it. The strings of its sessions
// point into the lines passed in, which must stay unchanged.
type dumpParser struct {
	proto    Protocol
	n        int // lines seen, the 2.4 header included
	altNames []string
	cols     []altCols // cols[k]: the header for sessions with k alt columns
	// Sessions are parsed in place into chunk. When the dump's size was not
	// known in time, full chunks go to done and result joins them: one
	// copy of the table instead of the ~4 of growing one slice.
	chunk  []Session
	done   [][]Session
	inDone int      // sessions in done
	alts   []string // block of the sessions' alt values; never moved
	altsN  int      // values in earlier blocks
	fields []string
	// streaming: sessions are passed on one at a time (Conn.Stream), so
	// the alt values of each line reuse one block.
	streaming bool
	// copyOut: the lines are in a buffer that is reused (Conn.Dump), so
	// the strings the sessions keep are copied into text, blocks that are
	// never moved. Pids, IPs and TABs are not kept, and service names are
	// shared constants, which leaves about 60 of a line's ~95 bytes.
	copyOut bool
	text    []byte
	textN   int // bytes in earlier text blocks
	// each, if set, is called with every session parsed (Conn.DumpEach).
	each func(i int, s *Session)
	// bad records the session lines skipped as malformed.
	bad BadLines
}

// newDumpParser expects about sessions lines (0: unknown).
func newDumpParser(p Protocol, sessions int) *dumpParser {
	return &dumpParser{proto: p, chunk: make([]Session, 0, max(sessions, 0))}
}

// Chunk sizes when the dump's size is unknown: doubling, so that a small
// dump stays small, up to maxChunk sessions (4 MB).
const (
	minChunk = 256
	maxChunk = 1 << 15
)

// expect grows the room for sessions to about n, once the dump's size is
// guessed better than at the start.
func (p *dumpParser) expect(n int) {
	if n > cap(p.chunk) && len(p.done) == 0 {
		s := make([]Session, len(p.chunk), n)
		copy(s, p.chunk)
		p.chunk = s
	}
}

// next returns a zeroed Session added to the dump.
func (p *dumpParser) next() *Session {
	if len(p.chunk) == cap(p.chunk) {
		if len(p.chunk) > 0 {
			p.done = append(p.done, p.chunk)
			p.inDone += len(p.chunk)
		}
		p.chunk = make([]Session, 0, min(max(p.inDone, minChunk), maxChunk))
	}
	p.chunk = p.chunk[:len(p.chunk)+1]
	return &p.chunk[len(p.chunk)-1]
}

// drop takes back the session next gave last (a bad line).
func (p *dumpParser) drop() {
	p.chunk[len(p.chunk)-1] = Session{}
	p.chunk = p.chunk[:len(p.chunk)-1]
}

// result is the dump's sessions in order.
func (p *dumpParser) result() []Session {
	if len(p.done) == 0 {
		return p.chunk
	}
	all := make([]Session, 0, p.inDone+len(p.chunk))
	for _, c := range p.done {
		all = append(all, c...)
	}
	all = append(all, p.chunk...)
	p.done, p.chunk = nil, all
	return all
}

// line parses one line, without its LF; the terminating empty line is
// not passed. A malformed session line is skipped and recorded in p.bad:
// the sessions keep consecutive indexes (each, result), as if the line had
// not been sent. Only a malformed 2.4 header is an error, since the
// columns of every line depend on it.
func (p *dumpParser) line(line string) error {
	p.n++
	if p.proto == Proto24 && p.n == 1 {
		names := splitTab(nil, line)
		for i, n := range names {
			if n == "" {
				return protoErr(1, line, fmt.Sprintf("empty alt field name in column %d", i+1))
			}
		}
		if p.copyOut {
			names = cloneStrings(names)
		}
		p.setHeader(names)
		return nil
	}
	s := p.next()
	if reason := p.session(line, s); reason != "" {
		p.drop()
		p.bad.add(p.n, line, reason)
		return nil
	}
	if p.copyOut {
		p.keep(s)
	}
	if p.each != nil {
		p.each(p.inDone+len(p.chunk)-1, s)
	}
	return nil
}

// tooLong records a line longer than max bytes, of which text is the
// start, as skipped; false when it is the 2.4 header, which cannot be.
func (p *dumpParser) tooLong(text string, max int) bool {
	p.n++
	if p.proto == Proto24 && p.n == 1 {
		return false
	}
	p.bad.add(p.n, text, lineTooLong(max))
	return true
}

// sessions is how many sessions the dump has so far.
func (p *dumpParser) sessions() int { return p.inDone + len(p.chunk) }

// keep copies the strings of s out of the line into text blocks.
func (p *dumpParser) keep(s *Session) {
	if svc := knownService(s.Service); svc != "" {
		s.Service = svc
	} else {
		s.Service = p.str(s.Service)
	}
	s.User = p.str(s.User)
	s.ConnGUID = p.str(s.ConnGUID)
	if s.alt != nil {
		vals := unsafe.Slice(s.altV, s.alt.n)
		for i, v := range vals {
			vals[i] = p.str(v)
		}
	}
}

// str copies x into the current text block.
func (p *dumpParser) str(x string) string {
	if x == "" {
		return ""
	}
	if len(p.text)+len(x) > cap(p.text) {
		p.textN += len(p.text)
		p.text = make([]byte, 0, p.blockSize(p.textN+len(x), 64<<10, len(x)))
	}
	start := len(p.text)
	p.text = append(p.text, x...)
	return unsafe.String(&p.text[start], len(x))
}

// knownService returns the constant for a service name Dovecot registers,
// or "".
func knownService(s string) string {
	switch s {
	case "imap":
		return "imap"
	case "pop3":
		return "pop3"
	case "submission":
		return "submission"
	case "lmtp":
		return "lmtp"
	case "imap-login":
		return "imap-login"
	case "pop3-login":
		return "pop3-login"
	case "submission-login":
		return "submission-login"
	case "imap-hibernate":
		return "imap-hibernate"
	case "indexer-worker":
		return "indexer-worker"
	case "managesieve":
		return "managesieve"
	case "managesieve-login":
		return "managesieve-login"
	}
	return ""
}

// blockSize sizes a new block for values of which used (the one to add
// included) went to the sessions so far: enough for the room left in the
// session chunk at the rate so far, 5% to spare; the first block covers at
// most the first 1024 sessions, which tell the rate. At least least and
// need.
func (p *dumpParser) blockSize(used, least, need int) int {
	sessions := max(p.inDone+len(p.chunk), 1)
	perSession := float64(used) / float64(sessions)
	left := cap(p.chunk) - len(p.chunk) + 1
	if used == need {
		left = min(left, 1024)
	}
	return max(int(perSession*float64(left)*1.05), least, need)
}

// setHeader sets the 2.4 alt field names.
func (p *dumpParser) setHeader(names []string) {
	p.altNames = names
	p.cols = make([]altCols, len(names)+1)
	for k := range p.cols {
		p.cols[k] = altCols{names: names, n: k}
	}
}

// session parses a session line into s, which must be zero; it returns
// why the line is bad, or "".
func (p *dumpParser) session(line string, s *Session) string {
	if p.proto == Proto24 && p.plain24(line, s) || p.proto != Proto24 && plain23(line, s) {
		return ""
	}
	// Escapes, odd forms and errors: the general parser, which says why a
	// line is bad.
	*s = Session{}
	return p.general(line, s)
}

// general parses a session line into s by splitting it into unescaped
// fields first; it returns why the line is bad, or "".
func (p *dumpParser) general(line string, s *Session) (reason string) {
	p.fields = splitTab(p.fields, line)
	if p.proto != Proto24 {
		*s, reason = parseSession23(p.fields)
		return reason
	}
	*s, reason = parseSession24(p.fields)
	if reason == "" && len(p.fields)-6 > len(p.altNames) {
		reason = fmt.Sprintf("%d alt columns but the header names %d", len(p.fields)-6, len(p.altNames))
	}
	if reason == "" && len(p.fields) > 6 {
		copy(p.altSlots(s, len(p.fields)-6), p.fields[6:])
	}
	return reason
}

// altSlots gives s k alt columns in the current block and returns them.
func (p *dumpParser) altSlots(s *Session, k int) []string {
	if p.streaming {
		// One line at a time: the values live until the next line.
		p.alts = p.alts[:0]
		if cap(p.alts) < k {
			p.alts = make([]string, 0, max(k, len(p.altNames)))
		}
	} else if len(p.alts)+k > cap(p.alts) {
		// A new block; values already handed out keep theirs.
		p.altsN += len(p.alts)
		p.alts = make([]string, 0, p.blockSize(p.altsN+k, 256, k))
	}
	start := len(p.alts)
	p.alts = p.alts[:start+k]
	s.alt, s.altV = &p.cols[k], &p.alts[start]
	return p.alts[start : start+k : start+k]
}

// plain24 parses a 2.4 session line as anvil writes it — no escapes, a
// plain pid, a valid IP or none — straight into s, without splitting it
// into fields first. It gives exactly what the general parser gives
// (FuzzPlainLines checks); on false, s may be half set and the general
// parser decides.
func (p *dumpParser) plain24(line string, s *Session) bool {
	if strings.IndexByte(line, escByte) >= 0 {
		return false
	}
	i := strings.IndexByte(line, '\t')
	if i < 0 {
		return false
	}
	pid, ok := smallUint(line[:i])
	if !ok || pid == 0 {
		return false
	}
	rest := line[i+1:]
	if i = strings.IndexByte(rest, '\t'); i < 0 {
		return false
	}
	s.User, rest = rest[:i], rest[i+1:]
	if i = strings.IndexByte(rest, '\t'); i <= 0 {
		return false // also an empty service
	}
	s.Service, rest = rest[:i], rest[i+1:]
	if i = strings.IndexByte(rest, '\t'); i < 0 {
		return false
	}
	if i > 0 && !plainAddr(rest[:i], &s.IP) {
		return false
	}
	rest = rest[i+1:]
	if len(rest) < 33 || rest[32] != '\t' || !isGUID(rest[:32]) {
		return false
	}
	s.ConnGUID, rest = rest[:32], rest[33:]
	dest := rest
	i = strings.IndexByte(rest, '\t')
	if i >= 0 {
		dest, rest = rest[:i], rest[i+1:]
	}
	if dest != "" && !plainAddr(dest, &s.DestIP) {
		return false
	}
	if i >= 0 {
		k := strings.Count(rest, "\t") + 1
		if k > len(p.altNames) {
			return false
		}
		vals := p.altSlots(s, k)
		for j := range vals[:k-1] {
			i = strings.IndexByte(rest, '\t')
			vals[j], rest = rest[:i], rest[i+1:]
		}
		vals[k-1] = rest
	}
	s.PID, s.Connections = int64(pid), 1
	return true
}

// plainAddr parses an IP as parseAddr does into a; false if it is not one.
func plainAddr(s string, a *netip.Addr) bool {
	var err error
	*a, err = parseAddr(s)
	return err == nil
}

// plain23 parses a 2.3 session line without escapes and with plain
// numbers into s, as parseSession23 does; on false the general parser
// decides.
func plain23(line string, s *Session) bool {
	if strings.IndexByte(line, escByte) >= 0 {
		return false
	}
	i := strings.IndexByte(line, '\t')
	if i < 0 {
		return false
	}
	ident, rest := line[:i], line[i+1:]
	if i = strings.IndexByte(rest, '\t'); i < 0 {
		return false
	}
	pid, ok := smallUint(rest[:i])
	if !ok || pid == 0 {
		return false
	}
	ref, ok := smallUint(rest[i+1:]) // a third TAB is not a digit
	if !ok || ref >= 1<<31 {
		return false
	}
	if !parseIdent23(ident, s) {
		return false
	}
	s.PID, s.Connections = int64(pid), int(ref)
	return true
}
