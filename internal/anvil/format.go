package anvil

import (
	"net/netip"
	"strconv"
	"strings"
)

// FormatDump23 writes sessions as a Dovecot 2.3 anvil would send them in
// reply to CONNECT-DUMP, terminator included. It exists for tests, fakes
// and round-trip checks of the parser.
func FormatDump23(sessions []Session) string {
	var b strings.Builder
	for i := range sessions {
		s := &sessions[i]
		ident := s.Service + "/" + s.User
		if s.Service != "lmtp" {
			ip := ""
			if s.IP.IsValid() {
				ip = s.IP.String()
			}
			ident = s.Service + "/" + ip + "/" + s.User
		}
		b.WriteString(Escape(ident))
		b.WriteByte('\t')
		b.WriteString(strconv.FormatInt(s.PID, 10))
		b.WriteByte('\t')
		b.WriteString(strconv.Itoa(s.Connections))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.String()
}

// FormatDump24 writes a Dovecot 2.4 CONNECT-DUMP reply: header, sessions,
// terminator. For tests, fakes and round-trip checks of the parser.
func FormatDump24(altNames []string, sessions []Session) string {
	var b strings.Builder
	for i, n := range altNames {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(Escape(n))
	}
	b.WriteByte('\n')
	for i := range sessions {
		s := &sessions[i]
		b.WriteString(strconv.FormatInt(s.PID, 10))
		for _, f := range []string{Escape(s.User), Escape(s.Service), addrString(s.IP), Escape(s.ConnGUID), addrString(s.DestIP)} {
			b.WriteByte('\t')
			b.WriteString(f)
		}
		for _, v := range s.altValues() {
			b.WriteByte('\t')
			b.WriteString(Escape(v))
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.String()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
