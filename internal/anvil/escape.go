package anvil

import "strings"

// Dovecot's tab-escaping (src/lib/strescape.c): 0x01 is the escape byte and
// 0x01 '0' '1' 't' 'r' 'n' stand for NUL, 0x01, TAB, CR and LF.
const escByte = 0x01

// Unescape reverses Dovecot's tab-escaping of one field. As in Dovecot, an
// escape followed by any other byte X yields X, and a lone escape byte at the
// end of the field is dropped. Fields without an escape byte are returned
// as they are, without allocating.
func Unescape(s string) string {
	i := strings.IndexByte(s, escByte)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c != escByte {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			break
		}
		switch s[i] {
		case '0':
			b.WriteByte(0)
		case '1':
			b.WriteByte(escByte)
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// needsEscape reports whether s has a byte that Escape would change.
func needsEscape(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return r == 0 || r == escByte || r == '\t' || r == '\r' || r == '\n'
	}) >= 0
}

// Escape tab-escapes one field so that it can never split a line or a field
// on the wire: TAB, CR, LF, NUL and 0x01 become two-byte escapes.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString("\x010")
		case escByte:
			b.WriteString("\x011")
		case '\t':
			b.WriteString("\x01t")
		case '\r':
			b.WriteString("\x01r")
		case '\n':
			b.WriteString("\x01n")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// splitTab splits a line on raw TABs into dst (reused to avoid allocating)
// and unescapes each field. An empty line gives zero fields, as in Dovecot.
func splitTab(dst []string, line string) []string {
	dst = dst[:0]
	if line == "" {
		return dst
	}
	// Escapes are rare: one scan of the line spares a scan of each field.
	if strings.IndexByte(line, escByte) >= 0 {
		return splitTabEscaped(dst, line)
	}
	for {
		i := strings.IndexByte(line, '\t')
		if i < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
}

func splitTabEscaped(dst []string, line string) []string {
	for {
		i := strings.IndexByte(line, '\t')
		if i < 0 {
			return append(dst, Unescape(line))
		}
		dst = append(dst, Unescape(line[:i]))
		line = line[i+1:]
	}
}
