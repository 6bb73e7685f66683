package authmaster

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseFlushReply: any line the server sends either fails or is an OK
// reply to request 1 whose count is the third field.
func FuzzParseFlushReply(f *testing.F) {
	f.Add("OK\t1\t3")          // the usual reply
	f.Add("OK\t1\t0\textra")   // a future field, ignored
	f.Add("OK\t2\t3")          // another request's reply
	f.Add("FAIL\t1")           // a failure
	f.Add("OK\t1\t-1")         // a sign
	f.Add("OK\t1\t4294967296") // over 32 bits
	f.Add("")                  // an empty line
	f.Add("OK\t1\t\x01t")      // an escape where the count goes
	f.Fuzz(func(t *testing.T, line string) {
		n, err := parseFlushReply(line, 1)
		if err != nil {
			return
		}
		fields := strings.Split(line, "\t")
		if fields[0] != "OK" || fields[1] != "1" || n < 0 {
			t.Fatalf("%q accepted as %d", line, n)
		}
		if m, perr := strconv.ParseUint(fields[2], 10, 32); perr != nil || int(m) != n {
			t.Fatalf("%q: count %d, field %q", line, n, fields[2])
		}
	})
}

// FuzzEscape: an escaped name holds no tab, CR or LF (the line stays one
// line of fields) and unescapes, as Dovecot does, to the name.
func FuzzEscape(f *testing.F) {
	f.Add("alice")      // nothing to escape
	f.Add("a\tb\r\nc")  // every separator
	f.Add("\x01")       // the escape byte itself
	f.Add("\x01t\x011") // text that looks escaped
	f.Fuzz(func(t *testing.T, s string) {
		e := escape(s)
		if strings.ContainsAny(e, "\t\r\n") {
			t.Fatalf("escape(%q) = %q holds a separator", s, e)
		}
		if u := unescapeForTest(e); u != s {
			t.Fatalf("escape(%q) = %q unescapes to %q", s, e, u)
		}
	})
}

// unescapeForTest is Dovecot's tab-unescaping (str_tabunescape): \x01
// followed by 0, 1, t, r, n; any other byte after \x01 stands for itself;
// a \x01 at the end is dropped.
func unescapeForTest(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\x01' {
			b.WriteByte(s[i])
			continue
		}
		if i++; i == len(s) {
			break
		}
		switch s[i] {
		case '0':
			b.WriteByte(0)
		case '1':
			b.WriteByte('\x01')
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
