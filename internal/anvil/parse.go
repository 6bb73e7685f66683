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
	return &ProtocolError{Line: line, Text: shorten(text), Reason: reason}
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
// Malformed lines are skipped and recorded in bad.
func ParseDump23(body string) (sessions []Session, bad BadLines, err error) {
	p := newDumpParser(Proto23, strings.Count(body, "\n")+1)
	if err := forEachLine(body, func(_ int, line string) error { return p.line(line) }); err != nil {
		return nil, BadLines{}, err
	}
	return p.result(), p.bad, nil
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
		// doveadm 2.3 parses IPv6 with inet_pton, which refuses a zone
		// (2.3's anvil never prints one; a client could register one).
		if a, err := parseAddr(ip); err == nil && a.Zone() == "" {
			s.IP = a
		}
	}
	return true
}

// ParseDump24 parses a Dovecot 2.4 CONNECT-DUMP: the header line of alt
// field names (possibly empty) followed by session lines
// "<pid>\t<user>\t<service>\t<ip>\t<conn-guid>\t<dest-ip>[\t<alt>…]", the
// terminating empty line removed. Malformed session lines are skipped and
// recorded in bad; a malformed header is an error.
func ParseDump24(body string) (altNames []string, sessions []Session, bad BadLines, err error) {
	header, _, ok := strings.Cut(body, "\n")
	if !ok && header != "" {
		return nil, nil, BadLines{}, protoErr(1, header, "header line not terminated")
	}
	p := newDumpParser(Proto24, strings.Count(body, "\n"))
	if body == "" {
		err = p.line("")
	} else {
		err = forEachLine(body, func(_ int, line string) error { return p.line(line) })
	}
	if err != nil {
		return nil, nil, BadLines{}, err
	}
	return p.altNames, p.result(), p.bad, nil
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

// parseAddr parses an IP as anvil prints it (net_ip2addr) and keeps an
// IPv6 zone. Dovecot 2.4 keeps a client's scope id (struct ip_addr's
// scope_id) and prints it with getnameinfo(NI_NUMERICHOST): "fe80::1%lo"
// for a link-local address (the interface name), a number otherwise. Its
// net_addr2ip (getaddrinfo) accepts such an address back. After unescaping
// a zone could hold any byte, TAB and LF included, so only zones that can
// be an interface name or a scope number are accepted: 1 to 15 bytes
// (Linux's IFNAMSIZ-1; a uint32 has 10 digits) of ASCII letters, digits,
// '.', '-', '_' and '@'. Anything else — space, TAB, LF, '%', '/', ':',
// other bytes — makes the address bad. An IPv4 address has no zone.
func parseAddr(s string) (netip.Addr, error) {
	if a, ok := parseIPv4(s); ok {
		return a, nil
	}
	a, err := netip.ParseAddr(s)
	if err == nil && a.Zone() != "" && !validZone(a.Zone()) {
		return netip.Addr{}, errors.New("ip with a zone that is not an interface name")
	}
	return a, err
}

// ParseAddr parses an address as Dovecot prints one (anvil's dump, ipc's
// proxy list, a recorded snapshot, a session's ip in Rego input): the one
// reader of addresses that come from Dovecot. Addresses people write
// (arguments, rules) are read by match.ParseNetwork and match.ParseAddr.
func ParseAddr(s string) (netip.Addr, error) { return parseAddr(s) }

// validZone reports whether z can be an interface name or scope number
// (see parseAddr).
func validZone(z string) bool {
	if len(z) == 0 || len(z) > 15 {
		return false
	}
	for i := 0; i < len(z); i++ {
		c := z[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == '@') {
			return false
		}
	}
	return true
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
