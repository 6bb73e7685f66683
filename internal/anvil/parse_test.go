package anvil_test

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
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

// TestParseDump23Malformed: a malformed line is skipped and recorded; the
// lines around it still parse.
func TestParseDump23Malformed(t *testing.T) {
	const good = "imap/192.0.2.1/alice\t100\t1\n"
	tests := []struct {
		name   string
		body   string
		line   int
		reason string
		kind   string
	}{
		{"too few fields", good + "imap/192.0.2.2/bob\t101\n", 2, "want 3 fields, got 2", anvil.BadFields},
		{"too many fields", "imap/192.0.2.2/bob\t101\t1\tx\n" + good, 1, "want 3 fields, got 4", anvil.BadFields},
		{"empty line inside", good + "\n" + good, 2, "want 3 fields, got 0", anvil.BadFields},
		{"pid 0", good + good + "imap/192.0.2.2/bob\t0\t1\n", 3, "bad pid", anvil.BadPID},
		{"pid -1", "imap/192.0.2.2/bob\t-1\t1\n" + good, 1, "bad pid", anvil.BadPID},
		{"pid not numeric", "imap/192.0.2.2/bob\tabc\t1\n" + good, 1, "bad pid", anvil.BadPID},
		{"pid empty", "imap/192.0.2.2/bob\t\t1\n" + good, 1, "bad pid", anvil.BadPID},
		{"pid overflows int64", "imap/192.0.2.2/bob\t99999999999999999999\t1\n" + good, 1, "bad pid", anvil.BadPID},
		{"refcount negative", "imap/192.0.2.2/bob\t101\t-1\n" + good, 1, "bad refcount", anvil.BadRefcount},
		{"refcount not numeric", "imap/192.0.2.2/bob\t101\tx\n" + good, 1, "bad refcount", anvil.BadRefcount},
		{"ident without slash", good + "imapbob\t101\t1\n", 2, "ident is not service/ip/user", anvil.BadIdent},
		{"empty service", "/192.0.2.2/bob\t101\t1\n" + good, 1, "ident is not service/ip/user", anvil.BadIdent},
		{"last line without LF", good + "imap/x/bob\t101", 2, "want 3 fields, got 2", anvil.BadFields},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, bad, err := anvil.ParseDump23(tc.body)
			if err != nil {
				t.Fatalf("a bad line failed the dump: %v", err)
			}
			checkBad(t, bad, tc.line, tc.reason, tc.kind)
			if len(s) == 0 || s[len(s)-1].User != "alice" {
				t.Errorf("the good sessions did not parse: %+v", s)
			}
		})
	}
}

// TestParseDump24Malformed: a malformed session line is skipped and
// recorded, the others parse; a malformed header fails the dump.
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
		kind   string
	}{
		{"too few fields", hdr + good + "101\tbob\timap\t192.0.2.2\t" + guidB + "\n", 3, "want at least 6 fields, got 5", anvil.BadFields},
		{"empty line inside", hdr + "\n" + good, 2, "want at least 6 fields, got 0", anvil.BadFields},
		{"pid 0", hdr + line("0", "bob", "imap", "", guidB, "") + good, 2, "bad pid", anvil.BadPID},
		{"pid -1", hdr + good + good + line("-1", "bob", "imap", "", guidB, ""), 4, "bad pid", anvil.BadPID},
		{"pid not numeric", hdr + line("12a", "bob", "imap", "", guidB, "") + good, 2, "bad pid", anvil.BadPID},
		{"guid 31 chars", hdr + line("101", "bob", "imap", "", guidB[:31], "") + good, 2, "bad connection guid", anvil.BadGUID},
		{"guid 33 chars", hdr + line("101", "bob", "imap", "", guidB+"0", "") + good, 2, "bad connection guid", anvil.BadGUID},
		{"guid not hex", hdr + line("101", "bob", "imap", "", "g"+guidB[1:], "") + good, 2, "bad connection guid", anvil.BadGUID},
		{"guid empty", hdr + line("101", "bob", "imap", "", "", "") + good, 2, "bad connection guid", anvil.BadGUID},
		{"bad client ip", hdr + line("101", "bob", "imap", "192.0.2.256", guidB, "") + good, 2, "bad client ip", anvil.BadClientIP},
		{"bracketed client ip", hdr + line("101", "bob", "imap", "[::1]", guidB, "") + good, 2, "bad client ip", anvil.BadClientIP},
		{"bad dest ip", hdr + line("101", "bob", "imap-login", "192.0.2.1", guidB, "backend") + good, 2, "bad dest ip", anvil.BadDestIP},
		// A zone must look like an interface name or a scope number.
		{"zone with escaped tab", hdr + line("101", "bob", "imap", "fe80::1%e\x01tx", guidB, "") + good, 2, "bad client ip", anvil.BadClientIP},
		{"zone with escaped LF", hdr + line("101", "bob", "imap", "fe80::1%e\x01nx", guidB, "") + good, 2, "bad client ip", anvil.BadClientIP},
		{"zone with space", hdr + line("101", "bob", "imap", "fe80::1%e x", guidB, "") + good, 2, "bad client ip", anvil.BadClientIP},
		{"zone with slash", hdr + line("101", "bob", "imap", "fe80::1%e/x", guidB, "") + good, 2, "bad client ip", anvil.BadClientIP},
		{"zone with percent", hdr + line("101", "bob", "imap", "fe80::1%e%x", guidB, "") + good, 2, "bad client ip", anvil.BadClientIP},
		{"empty zone", hdr + line("101", "bob", "imap", "fe80::1%", guidB, "") + good, 2, "bad client ip", anvil.BadClientIP},
		{"zone too long", hdr + line("101", "bob", "imap", "fe80::1%abcdefghijklmnop", guidB, "") + good, 2, "bad client ip", anvil.BadClientIP},
		{"ipv4 with zone", hdr + line("101", "bob", "imap", "192.0.2.1%lo", guidB, "") + good, 2, "bad client ip", anvil.BadClientIP},
		{"dest ip zone with space", hdr + line("101", "bob", "imap-login", "::1", guidB, "fe80::1%a b") + good, 2, "bad dest ip", anvil.BadDestIP},
		{"more alt columns than names", hdr + good + line("101", "bob", "imap", "", guidB, "", "a", "b"), 3, "2 alt columns but the header names 1", anvil.BadAltColumns},
		{"alt columns without header", "\n" + line("101", "bob", "imap", "", guidB, "", "a") + good, 2, "1 alt columns but the header names 0", anvil.BadAltColumns},
		{"empty service", hdr + line("101", "bob", "", "", guidB, "") + good, 2, "empty service", anvil.BadService},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, s, bad, err := anvil.ParseDump24(tc.body)
			if err != nil {
				t.Fatalf("a bad line failed the dump: %v", err)
			}
			checkBad(t, bad, tc.line, tc.reason, tc.kind)
			if len(s) == 0 || s[len(s)-1].User != "alice" {
				t.Errorf("the good sessions did not parse: %+v", s)
			}
		})
	}
}

// TestParseDump24BadHeader: the header sets every line's columns, so a
// malformed one fails the dump.
func TestParseDump24BadHeader(t *testing.T) {
	for _, tc := range []struct{ name, body, reason string }{
		{"empty alt name", "user_a\t\tuser_b\n", "empty alt field name in column 2"},
		{"header not terminated", "user_alias", "header line not terminated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names, s, _, err := anvil.ParseDump24(tc.body)
			checkProtoErr(t, err, 1, tc.reason)
			if names != nil || s != nil {
				t.Errorf("got a partial result with the error: names %q, %d sessions", names, len(s))
			}
		})
	}
}

// TestParseDumpBadLinesTally: one BadLine per kind, with the first
// example; Count totals every skipped line.
func TestParseDumpBadLinesTally(t *testing.T) {
	line := func(pid, ip, guid string) string {
		return pid + "\tu\timap\t" + ip + "\t" + guid + "\t\n"
	}
	body := "\n" + line("1", "::1", guidA) + line("x", "::1", guidA) + line("2", "bad", guidA) +
		line("y", "::1", guidA) + line("3", "::1", "nope") + line("4", "::1", guidB)
	_, ss, bad, err := anvil.ParseDump24(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 || ss[0].PID != 1 || ss[1].PID != 4 {
		t.Errorf("sessions %+v", ss)
	}
	want := anvil.BadLines{Count: 4, Problems: []anvil.BadLine{
		{Kind: anvil.BadPID, Reason: "bad pid", Line: 3, Text: "x\tu\timap\t::1\t" + guidA + "\t", Count: 2},
		{Kind: anvil.BadClientIP, Reason: "bad client ip", Line: 4, Text: "2\tu\timap\tbad\t" + guidA + "\t", Count: 1},
		{Kind: anvil.BadGUID, Reason: "bad connection guid", Line: 6, Text: "3\tu\timap\t::1\tnope\t", Count: 1},
	}}
	if !reflect.DeepEqual(bad, want) {
		t.Errorf("got %+v\nwant %+v", bad, want)
	}
	const msg = `skipped 4 malformed anvil line(s): line 3: bad pid "x\tu\timap\t::1\t` + guidA + `\t" (and 1 more like it); ` +
		`line 4: bad client ip "2\tu\timap\tbad\t` + guidA + `\t"; line 6: bad connection guid "3\tu\timap\t::1\tnope\t"`
	if got := bad.String(); got != msg {
		t.Errorf("String() = %s\nwant        %s", got, msg)
	}
	if s := (anvil.BadLines{}).String(); s != "" {
		t.Errorf("no bad lines: String() = %q", s)
	}
}

// TestParseDump24Zones: Dovecot 2.4.1 prints a client's scope id
// (getnameinfo NI_NUMERICHOST): the zone is kept, in ip and in dest_ip.
func TestParseDump24Zones(t *testing.T) {
	body := "user_alt\n" +
		"100\talice\timap\t192.0.2.1\t" + guidA + "\t\n" +
		"101\tbob\timap\tfe80::1%lo\t" + guidB + "\t\tbobby\n" +
		"102\tcarol\timap-login\tfe80::2%2\t" + guidA + "\tfe80::3%eth0.100\n" +
		"103\tda\x01ve\timap\tfe80::1%lo\t" + guidB + "\t\n" // an escape: the general parser
	_, ss, bad, err := anvil.ParseDump24(body)
	if err != nil || bad.Count != 0 {
		t.Fatal(err, bad)
	}
	want := []struct{ ip, dest string }{{"192.0.2.1", ""}, {"fe80::1%lo", ""}, {"fe80::2%2", "fe80::3%eth0.100"}, {"fe80::1%lo", "x"}}
	if len(ss) != len(want) {
		t.Fatalf("%d sessions", len(ss))
	}
	for i, w := range want[:3] {
		dest := ""
		if ss[i].DestIP.IsValid() {
			dest = ss[i].DestIP.String()
		}
		if ss[i].IP.String() != w.ip || dest != w.dest {
			t.Errorf("session %d: ip %s dest %q, want %s %q", i, ss[i].IP, dest, w.ip, w.dest)
		}
	}
	if ss[3].IP.String() != "fe80::1%lo" {
		t.Errorf("escaped line: ip %s", ss[3].IP)
	}
}

func checkBad(t *testing.T, bad anvil.BadLines, line int, reason, kind string) {
	t.Helper()
	if bad.Count != 1 || len(bad.Problems) != 1 {
		t.Fatalf("bad lines %+v, want one", bad)
	}
	p := bad.Problems[0]
	if p.Line != line || p.Reason != reason || p.Kind != kind || p.Count != 1 {
		t.Errorf("got line %d reason %q kind %q, want line %d reason %q kind %q", p.Line, p.Reason, p.Kind, line, reason, kind)
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
	_, _, _, err := anvil.ParseDump24(long)
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
	_, bad, _ := anvil.ParseDump23(long + "\t1\n")
	if len(bad.Problems) != 1 || len(bad.Problems[0].Text) > 130 || !strings.HasSuffix(bad.Problems[0].Text, "…") {
		t.Errorf("bad line's Text not shortened: %+v", bad)
	}
	if len(bad.String()) > 300 {
		t.Errorf("bad lines' message is %d bytes long", len(bad.String()))
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
		// doveadm 2.3 (inet_pton) reads no IP from a zoned address.
		{"ip with zone", "imap/fe80::1%eth0/bob\t1\t1", "imap", "", "bob"},
		{"ip with a bad zone ignored", "imap/fe80::1%e x/bob\t1\t1", "imap", "", "bob"},
		{"empty ip", "imap//bob\t1\t1", "imap", "", "bob"},
		{"no ip part", "pop3/bob\t1\t1", "pop3", "", "bob"},
		{"empty user", "imap/192.0.2.1/\t1\t1", "imap", "192.0.2.1", ""},
		{"escaped tab in user", "imap/192.0.2.1/a\x01tb\t1\t1", "imap", "192.0.2.1", "a\tb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, bad, err := anvil.ParseDump23(tc.line)
			if err != nil || bad.Count != 0 {
				t.Fatal(err, bad)
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

// TestSessionAlt: a column the line has is carried even when empty, as
// doveadm who -1 -f matches it; one past the line's last is not.
func TestSessionAlt(t *testing.T) {
	_, ss, _, err := anvil.ParseDump24("user_a\tuser_b\tuser_c\n" +
		"1\tu\timap\t\t" + guidA + "\t\t\tB\n" + // middle column empty, trailing absent
		"2\tv\timap\t\t" + guidB + "\t\n") // no alt columns
	if err != nil {
		t.Fatal(err)
	}
	s := &ss[0]
	for field, want := range map[string]struct {
		v  string
		ok bool
	}{"user_a": {"", true}, "user_b": {"B", true}, "user_c": {"", false}, "user_x": {"", false}} {
		v, ok := s.Alt(field)
		if v != want.v || ok != want.ok {
			t.Errorf("Alt(%q) = %q, %v; want %q, %v", field, v, ok, want.v, want.ok)
		}
	}
	var got []string
	s.AltFields(func(f, v string) { got = append(got, f+"="+v) })
	if !slices.Equal(got, []string{"user_a=", "user_b=B"}) {
		t.Errorf("AltFields: %q", got)
	}
	if !slices.Equal(s.AltValues(), []string{"", "B"}) {
		t.Errorf("AltValues: %q", s.AltValues())
	}
	// A trailing column sent empty is carried too.
	_, tr, _, err := anvil.ParseDump24("user_a\tuser_b\tuser_c\n3\tw\timap\t\t" + guidA + "\t\tA\t\n")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := tr[0].Alt("user_b"); !ok || v != "" {
		t.Errorf("trailing empty column: Alt = %q, %v; want \"\", true", v, ok)
	}
	if _, ok := tr[0].Alt("user_c"); ok {
		t.Error("a column past the line's last is carried")
	}
	if v, ok := ss[1].Alt("user_a"); ok || v != "" || len(ss[1].AltValues()) != 0 {
		t.Errorf("session without columns: Alt = %q, %v; AltValues %q", v, ok, ss[1].AltValues())
	}

	// The values of one session must not alias another's (append into the
	// shared backing array must not leak).
	_, ss, _, err = anvil.ParseDump24("user_a\tuser_b\n" +
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
