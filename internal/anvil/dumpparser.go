package anvil

import "fmt"

// dumpParser parses a CONNECT-DUMP one line at a time, so that a dump can
// be parsed while anvil is still sending it. The strings of its sessions
// point into the lines passed in, which must stay unchanged.
type dumpParser struct {
	proto    Protocol
	n        int // lines seen, the 2.4 header included
	altNames []string
	sessions []Session
	alts     []string // backing array of the sessions' alt values
	fields   []string
}

// newDumpParser expects about sessions lines (0: unknown).
func newDumpParser(p Protocol, sessions int) *dumpParser {
	return &dumpParser{proto: p, sessions: make([]Session, 0, max(sessions, 0))}
}

// expect grows the room for sessions to about n, once the dump's size is
// guessed better than at the start.
func (p *dumpParser) expect(n int) {
	if n > cap(p.sessions) {
		s := make([]Session, len(p.sessions), n)
		copy(s, p.sessions)
		p.sessions = s
	}
}

// line parses one line, without its LF; the terminating empty line is
// not passed.
func (p *dumpParser) line(line string) error {
	p.n++
	if p.proto == Proto24 && p.n == 1 {
		p.altNames = splitTab(nil, line)
		for i, n := range p.altNames {
			if n == "" {
				return protoErr(1, line, fmt.Sprintf("empty alt field name in column %d", i+1))
			}
		}
		if len(p.altNames) > 0 {
			p.alts = make([]string, 0, cap(p.sessions)*len(p.altNames))
		}
		return nil
	}
	p.fields = splitTab(p.fields, line)
	if p.proto != Proto24 {
		s, reason := parseSession23(p.fields)
		if reason != "" {
			return protoErr(p.n, line, reason)
		}
		p.sessions = append(p.sessions, s)
		return nil
	}
	s, reason := parseSession24(p.fields)
	if reason == "" && len(p.fields)-6 > len(p.altNames) {
		reason = fmt.Sprintf("%d alt columns but the header names %d", len(p.fields)-6, len(p.altNames))
	}
	if reason != "" {
		return protoErr(p.n, line, reason)
	}
	s.altNames = p.altNames
	if len(p.fields) > 6 {
		if len(p.alts)+len(p.fields)-6 > cap(p.alts) {
			// A new block: values already handed out keep theirs.
			p.alts = make([]string, 0, max(1024, cap(p.alts)/4)*max(len(p.altNames), 1))
		}
		start := len(p.alts)
		p.alts = append(p.alts, p.fields[6:]...)
		s.altValues = p.alts[start:len(p.alts):len(p.alts)]
	}
	p.sessions = append(p.sessions, s)
	return nil
}
