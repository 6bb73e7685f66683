package anvil_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
)

const (
	guidA = "3f1c0a9e5b7d4c2a8e6f1b3d5c7a9e0f"
	guidB = "9a8b7c6d5e4f30211203f4e5d6c7b8a9"
)

func TestEscape(t *testing.T) {
	tests := []struct{ plain, escaped string }{
		{"", ""},
		{"alice@example.com", "alice@example.com"},
		{"a\tb", "a\x01tb"},
		{"a\nb\rc", "a\x01nb\x01rc"},
		{"\x01", "\x011"},
		{"nul\x00", "nul\x010"},
		{"a/b c", "a/b c"}, // '/' and space are not escaped
		{"ü\t", "ü\x01t"},
	}
	for _, tc := range tests {
		if got := anvil.Escape(tc.plain); got != tc.escaped {
			t.Errorf("Escape(%q) = %q, want %q", tc.plain, got, tc.escaped)
		}
		if got := anvil.Unescape(tc.escaped); got != tc.plain {
			t.Errorf("Unescape(%q) = %q, want %q", tc.escaped, got, tc.plain)
		}
	}
}

// TestUnescapeDovecot covers the decoding rules of str_tabunescape that
// Escape never produces.
func TestUnescapeDovecot(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\x01xb", "axb"},     // escape + other byte X gives X
		{"a\x01", "a"},         // a lone escape at the end is dropped
		{"\x01", ""},           // only a lone escape
		{"\x01\x01", "\x01"},   // escape of the escape byte itself (not '1'): X
		{"\x01\x011", "\x011"}, // then "1" is literal
		{"\x01T", "T"},         // upper case is not an escape letter
		{"a\x01/b", "a/b"},
	}
	for _, tc := range tests {
		if got := anvil.Unescape(tc.in); got != tc.want {
			t.Errorf("Unescape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUnescapeNoEscapeDoesNotAllocate(t *testing.T) {
	s := strings.Repeat("alice@example.com", 4)
	if n := testing.AllocsPerRun(100, func() { _ = anvil.Unescape(s) }); n != 0 {
		t.Errorf("Unescape without escapes: %v allocs, want 0", n)
	}
}

func TestParseDump23Malformed(t *testing.T) {
	const good = "imap/192.0.2.1/alice\t100\t1\n"
	tests := []struct {
		name   string
		body   string
		line   int
		reason string
	}{
		{"too few fields", good + "imap/192.0.2.2/bob\t101\n", 2, "want 3 fields, got 2"},
		{"too many fields", "imap/192.0.2.2/bob\t101\t1\tx\n", 1, "want 3 fields, got 4"},
		{"empty line inside", good + "\n" + good, 2, "want 3 fields, got 0"},
		{"pid 0", good + good + "imap/192.0.2.2/bob\t0\t1\n", 3, "bad pid"},
		{"pid -1", "imap/192.0.2.2/bob\t-1\t1\n", 1, "bad pid"},
		{"pid not numeric", "imap/192.0.2.2/bob\tabc\t1\n", 1, "bad pid"},
		{"pid empty", "imap/192.0.2.2/bob\t\t1\n", 1, "bad pid"},
		{"pid overflows int64", "imap/192.0.2.2/bob\t99999999999999999999\t1\n", 1, "bad pid"},
		{"refcount negative", "imap/192.0.2.2/bob\t101\t-1\n", 1, "bad refcount"},
		{"refcount not numeric", "imap/192.0.2.2/bob\t101\tx\n", 1, "bad refcount"},
		{"ident without slash", good + "imapbob\t101\t1\n", 2, "ident is not service/ip/user"},
		{"empty service", "/192.0.2.2/bob\t101\t1\n", 1, "ident is not service/ip/user"},
		{"last line without LF", good + "imap/x/bob\t101", 2, "want 3 fields, got 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := anvil.ParseDump23(tc.body)
			checkProtoErr(t, err, tc.line, tc.reason)
			if s != nil && err != nil {
				// Callers must not get a partial snapshot; ParseDump23
				// returns what it parsed so far, which Conn.Dump discards.
				t.Logf("partial sessions returned alongside the error: %d", len(s))
			}
		})
	}
}

func TestParseDump24Malformed(t *testing.T) {
	const hdr = "user_alias\n"
	good := "100\talice\timap\t192.0.2.1\t" + guidA + "\t\n"
	line := func(pid, user, service, ip, guid, dest string, alt ...string) string {
		return strings.Join(append([]string{pid, user, service, ip, guid, dest}, alt...), "\t") + "\n"
	}
	tests := []struct {
		name   string
		body   string
		line   int
		reason string
	}{
		{"too few fields", hdr + good + "101\tbob\timap\t192.0.2.2\t" + guidB + "\n", 3, "want at least 6 fields, got 5"},
		{"empty line inside", hdr + "\n" + good, 2, "want at least 6 fields, got 0"},
		{"pid 0", hdr + line("0", "bob", "imap", "", guidB, ""), 2, "bad pid"},
		{"pid -1", hdr + good + good + line("-1", "bob", "imap", "", guidB, ""), 4, "bad pid"},
		{"pid not numeric", hdr + line("12a", "bob", "imap", "", guidB, ""), 2, "bad pid"},
		{"guid 31 chars", hdr + line("101", "bob", "imap", "", guidB[:31], ""), 2, "bad connection guid"},
		{"guid 33 chars", hdr + line("101", "bob", "imap", "", guidB+"0", ""), 2, "bad connection guid"},
		{"guid not hex", hdr + line("101", "bob", "imap", "", "g"+guidB[1:], ""), 2, "bad connection guid"},
		{"guid empty", hdr + line("101", "bob", "imap", "", "", ""), 2, "bad connection guid"},
		{"bad client ip", hdr + line("101", "bob", "imap", "192.0.2.256", guidB, ""), 2, "bad client ip"},
		{"bracketed client ip", hdr + line("101", "bob", "imap", "[::1]", guidB, ""), 2, "bad client ip"},
		{"bad dest ip", hdr + line("101", "bob", "imap-login", "192.0.2.1", guidB, "backend"), 2, "bad dest ip"},
		// Dovecot's net_addr2ip (inet_pton) rejects zones; after unescaping
		// a zone could even hold a TAB.
		{"client ip with zone", hdr + line("101", "bob", "imap", "fe80::1%eth0", guidB, ""), 2, "bad client ip"},
		{"client ip with escaped tab in zone", hdr + line("101", "bob", "imap", "fe80::1%e\x01tx", guidB, ""), 2, "bad client ip"},
		{"dest ip with zone", hdr + line("101", "bob", "imap-login", "::1", guidB, "fe80::1%eth0"), 2, "bad dest ip"},
		{"more alt columns than names", hdr + good + line("101", "bob", "imap", "", guidB, "", "a", "b"), 3, "2 alt columns but the header names 1"},
		{"alt columns without header", "\n" + line("101", "bob", "imap", "", guidB, "", "a"), 2, "1 alt columns but the header names 0"},
		{"empty service", hdr + line("101", "bob", "", "", guidB, ""), 2, "empty service"},
		{"empty alt name", "user_a\t\tuser_b\n", 1, "empty alt field name in column 2"},
		{"header not terminated", "user_alias", 1, "header line not terminated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names, s, err := anvil.ParseDump24(tc.body)
			checkProtoErr(t, err, tc.line, tc.reason)
			if names != nil || s != nil {
				t.Errorf("got a partial result with the error: names %q, %d sessions", names, len(s))
			}
		})
	}
}

func checkProtoErr(t *testing.T, err error, line int, reason string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, anvil.ErrProtocol) {
		t.Errorf("error %q does not wrap anvil.ErrProtocol", err)
	}
	var pe *anvil.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("error %q is not a *anvil.ProtocolError", err)
	}
	if pe.Line != line || pe.Reason != reason {
		t.Errorf("got line %d reason %q, want line %d reason %q", pe.Line, pe.Reason, line, reason)
	}
	if want := fmt.Sprintf("dump line %d ", line); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %q", err, want)
	}
}

func TestProtocolErrorTruncatesLongLines(t *testing.T) {
	long := strings.Repeat("x", 5000)
	_, err := anvil.ParseDump23(long + "\t1\n")
	var pe *anvil.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v", err)
	}
	if len(pe.Text) > 130 || !strings.HasSuffix(pe.Text, "…") {
		t.Errorf("Text not shortened: %d bytes", len(pe.Text))
	}
	if len(err.Error()) > 300 {
		t.Errorf("error message is %d bytes long", len(err.Error()))
	}
}

func TestParseDump23Idents(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		service string
		ip      string
		user    string
	}{
		{"imap", "imap/192.0.2.1/alice\t1\t1", "imap", "192.0.2.1", "alice"},
		{"lmtp without ip", "lmtp/carol@example.com\t1\t1", "lmtp", "", "carol@example.com"},
		{"lmtp user with slash", "lmtp/a/b\t1\t1", "lmtp", "", "a/b"},
		{"user with slash", "imap/192.0.2.1/a/b\t1\t1", "imap", "192.0.2.1", "a/b"},
		{"ipv6", "imap/2001:db8::1/dave\t1\t1", "imap", "2001:db8::1", "dave"},
		{"unparsable ip ignored", "imap/not-an-ip/bob\t1\t1", "imap", "", "bob"},
		{"ip with zone ignored", "imap/fe80::1%eth0/bob\t1\t1", "imap", "", "bob"},
		{"empty ip", "imap//bob\t1\t1", "imap", "", "bob"},
		{"no ip part", "pop3/bob\t1\t1", "pop3", "", "bob"},
		{"empty user", "imap/192.0.2.1/\t1\t1", "imap", "192.0.2.1", ""},
		{"escaped tab in user", "imap/192.0.2.1/a\x01tb\t1\t1", "imap", "192.0.2.1", "a\tb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := anvil.ParseDump23(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if len(s) != 1 {
				t.Fatalf("%d sessions", len(s))
			}
			ip := ""
			if s[0].IP.IsValid() {
				ip = s[0].IP.String()
			}
			if s[0].Service != tc.service || ip != tc.ip || s[0].User != tc.user {
				t.Errorf("got service %q ip %q user %q, want %q %q %q", s[0].Service, ip, s[0].User, tc.service, tc.ip, tc.user)
			}
		})
	}
}

func TestSessionAlt(t *testing.T) {
	_, ss, err := anvil.ParseDump24("user_a\tuser_b\tuser_c\n" +
		"1\tu\timap\t\t" + guidA + "\t\t\tB\n" + // middle column empty, trailing absent
		"2\tv\timap\t\t" + guidB + "\t\n") // no alt columns
	if err != nil {
		t.Fatal(err)
	}
	s := &ss[0]
	for field, want := range map[string]struct {
		v  string
		ok bool
	}{"user_a": {"", false}, "user_b": {"B", true}, "user_c": {"", false}, "user_x": {"", false}} {
		v, ok := s.Alt(field)
		if v != want.v || ok != want.ok {
			t.Errorf("Alt(%q) = %q, %v; want %q, %v", field, v, ok, want.v, want.ok)
		}
	}
	var got []string
	s.AltFields(func(f, v string) { got = append(got, f+"="+v) })
	if !slices.Equal(got, []string{"user_b=B"}) {
		t.Errorf("AltFields: %q", got)
	}
	if !slices.Equal(s.AltValues(), []string{"", "B"}) {
		t.Errorf("AltValues: %q", s.AltValues())
	}
	if v, ok := ss[1].Alt("user_a"); ok || v != "" || len(ss[1].AltValues()) != 0 {
		t.Errorf("session without columns: Alt = %q, %v; AltValues %q", v, ok, ss[1].AltValues())
	}

	// The values of one session must not alias another's (append into the
	// shared backing array must not leak).
	_, ss, err = anvil.ParseDump24("user_a\tuser_b\n" +
		"1\tu\timap\t\t" + guidA + "\t\tA1\n" +
		"2\tv\timap\t\t" + guidB + "\t\tA2\tB2\n")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := ss[0].Alt("user_a"); v != "A1" {
		t.Errorf("first session's user_a = %q", v)
	}
	if _, ok := ss[0].Alt("user_b"); ok {
		t.Error("first session got the second one's user_b")
	}

	var syn anvil.Session
	syn.SetAlt([]string{"user_x"}, []string{"x1"})
	if v, ok := syn.Alt("user_x"); !ok || v != "x1" {
		t.Errorf("SetAlt: Alt = %q, %v", v, ok)
	}
}

func TestProtocolNames(t *testing.T) {
	for p, want := range map[anvil.Protocol]string{anvil.Proto23: "2.3", anvil.Proto24: "2.4", 3: "unknown"} {
		if got := p.Dovecot(); got != want {
			t.Errorf("%d.Dovecot() = %q, want %q", p, got, want)
		}
		if got := p.String(); got != "dovecot-"+want {
			t.Errorf("%d.String() = %q", p, got)
		}
	}
}

func TestFormatDump(t *testing.T) {
	ss := []anvil.Session{
		{Service: "imap", User: "a\tb", IP: netip.MustParseAddr("192.0.2.1"), PID: 5, Connections: 2},
		{Service: "lmtp", User: "c/d", PID: 6, Connections: 1},
		{Service: "pop3", User: "e", PID: 7, Connections: 1},
	}
	if got, want := anvil.FormatDump23(ss), "imap/192.0.2.1/a\x01tb\t5\t2\nlmtp/c/d\t6\t1\npop3//e\t7\t1\n\n"; got != want {
		t.Errorf("FormatDump23 = %q, want %q", got, want)
	}
	if got := anvil.FormatDump23(nil); got != "\n" {
		t.Errorf("FormatDump23(nil) = %q", got)
	}
	if got := anvil.FormatDump24(nil, nil); got != "\n\n" {
		t.Errorf("FormatDump24(nil, nil) = %q", got)
	}
	s := anvil.Session{Service: "imap-login", User: "u", IP: netip.MustParseAddr("::1"), PID: 9,
		ConnGUID: guidA, DestIP: netip.MustParseAddr("10.0.0.5")}
	names := []string{"user_a", "user_\tb"}
	s.SetAlt(names, []string{"", "x\ny"})
	want := "user_a\tuser_\x01tb\n9\tu\timap-login\t::1\t" + guidA + "\t10.0.0.5\t\tx\x01ny\n\n"
	if got := anvil.FormatDump24(names, []anvil.Session{s}); got != want {
		t.Errorf("FormatDump24 = %q, want %q", got, want)
	}
}
