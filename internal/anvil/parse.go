package anvil

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrProtocol marks a reply that does not follow the anvil protocol.
var ErrProtocol = errors.New("anvil protocol error")

// ProtocolError says which dump line was malformed and why.
type ProtocolError struct {
	Line   int    // 1-based line of the dump (0: not a dump line)
	Text   string // the line, shortened
	Reason string
}

func (e *ProtocolError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("anvil protocol error: %s", e.Reason)
	}
	return fmt.Sprintf("anvil protocol error: dump line %d %q: %s", e.Line, e.Text, e.Reason)
}

func (e *ProtocolError) Unwrap() error { return ErrProtocol }

func protoErr(line int, text, reason string) error {
	const max = 120
	if len(text) > max {
		text = text[:max] + "…"
	} else {
		text = strings.Clone(text) // it may be in a reused read buffer
	}
	return &ProtocolError{Line: line, Text: text, Reason: reason}
}

// forEachLine calls fn for each LF-terminated line of body; a last line
// without LF is passed too.
func forEachLine(body string, fn func(n int, line string) error) error {
	n := 0
	for len(body) > 0 {
		n++
		i := strings.IndexByte(body, '\n')
		line := body
		if i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = ""
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	return nil
}

// ParseDump23 parses the session lines of a Dovecot 2.3 CONNECT-DUMP (the
// terminating empty line removed): "<escaped ident>\t<pid>\t<refcount>".
func ParseDump23(body string) ([]Session, error) {
	p := newDumpParser(Proto23, strings.Count(body, "\n")+1)
	if err := forEachLine(body, func(_ int, line string) error { return p.line(line) }); err != nil {
		return nil, err
	}
	return p.result(), nil
}

func parseSession23(f []string) (Session, string) {
	if len(f) != 3 {
		return Session{}, fmt.Sprintf("want 3 fields, got %d", len(f))
	}
	pid, err := parsePID(f[1])
	if err != nil {
		return Session{}, "bad pid"
	}
	ref, ok := smallUint(f[2])
	if !ok || ref >= 1<<31 {
		if ref, err = strconv.ParseUint(f[2], 10, 31); err != nil {
			return Session{}, "bad refcount"
		}
	}
	s := Session{PID: pid, Connections: int(ref)}
	if !parseIdent23(f[0], &s) {
		return Session{}, "ident is not service/ip/user"
	}
	return s, ""
}

// parseIdent23 sets the service, IP and user of s from a 2.3 ident
// (unescaped); false if it has no service.
func parseIdent23(ident string, s *Session) bool {
	service, rest, ok := strings.Cut(ident, "/")
	if !ok || service == "" {
		return false
	}
	s.Service = service
	// imap, pop3 and submission register service/ip/user; lmtp registers
	// service/user with no IP and an unescaped user that may hold '/'.
	if service == "lmtp" {
		s.User = rest
		return true
	}
	ip, user, ok := strings.Cut(rest, "/")
	if !ok {
		s.User = rest
		return true
	}
	s.User = user
	if ip != "" {
		// doveadm ignores an unparsable IP; a session without IP never
		// matches a network filter, so that is the safe reading too.
		if a, err := parseAddr(ip); err == nil {
			s.IP = a
		}
	}
	return true
}

// ParseDump24 parses a Dovecot 2.4 CONNECT-DUMP: the header line of alt
// field names (possibly empty) followed by session lines
// "<pid>\t<user>\t<service>\t<ip>\t<conn-guid>\t<dest-ip>[\t<alt>…]", the
// terminating empty line removed.
func ParseDump24(body string) (altNames []string, sessions []Session, err error) {
	header, _, ok := strings.Cut(body, "\n")
	if !ok && header != "" {
		return nil, nil, protoErr(1, header, "header line not terminated")
	}
	p := newDumpParser(Proto24, strings.Count(body, "\n"))
	if body == "" {
		err = p.line("")
	} else {
		err = forEachLine(body, func(_ int, line string) error { return p.line(line) })
	}
	if err != nil {
		return nil, nil, err
	}
	return p.altNames, p.result(), nil
}

func parseSession24(f []string) (Session, string) {
	if len(f) < 6 {
		return Session{}, fmt.Sprintf("want at least 6 fields, got %d", len(f))
	}
	pid, err := parsePID(f[0])
	if err != nil {
		return Session{}, "bad pid"
	}
	s := Session{PID: pid, User: f[1], Service: f[2], Connections: 1}
	if s.Service == "" {
		return Session{}, "empty service"
	}
	if f[3] != "" {
		if s.IP, err = parseAddr(f[3]); err != nil {
			return Session{}, "bad client ip"
		}
	}
	if !isGUID(f[4]) {
		return Session{}, "bad connection guid"
	}
	s.ConnGUID = f[4]
	if f[5] != "" {
		if s.DestIP, err = parseAddr(f[5]); err != nil {
			return Session{}, "bad dest ip"
		}
	}
	return s, ""
}

// parseAddr parses an IP as Dovecot's net_addr2ip (inet_pton) does: an
// IPv6 zone ("%eth0") is not an address. Anvil never sends one, and after
// unescaping a zone could hold any byte, TAB and LF included.
func parseAddr(s string) (netip.Addr, error) {
	if a, ok := parseIPv4(s); ok {
		return a, nil
	}
	a, err := netip.ParseAddr(s)
	if err == nil && a.Zone() != "" {
		return netip.Addr{}, errors.New("ip with zone")
	}
	return a, err
}

func parsePID(s string) (int64, error) {
	if v, ok := smallUint(s); ok && v > 0 {
		return int64(v), nil
	}
	pid, err := strconv.ParseInt(s, 10, 64)
	if err == nil && pid <= 0 {
		err = errors.New("pid must be positive")
	}
	return pid, err
}

// isGUID reports whether s is 32 hex digits, as Dovecot's
// guid_128_from_string requires.
func isGUID(s string) bool {
	if len(s) != 32 {
		return false
	}
	var bad byte
	for i := 0; i < 32; i++ {
		bad |= notHex[s[i]]
	}
	return bad == 0
}

// notHex is 1 for every byte that is not a hex digit: one load per byte,
// no branches, for 100,000 GUIDs a dump.
var notHex = func() (t [256]byte) {
	for c := range t {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			t[c] = 1
		}
	}
	return t
}()
