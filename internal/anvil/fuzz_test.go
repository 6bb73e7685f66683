package anvil_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
)

func FuzzUnescape(f *testing.F) {
	f.Add("")                     // empty field
	f.Add("alice@example.com")    // nothing to escape
	f.Add("\x01")                 // a lone escape byte
	f.Add("a\x01")                // a lone escape byte at the end
	f.Add("a\x01tb\x01nc\x01rd")  // every escape letter
	f.Add("\x010\x011")           // NUL and 0x01 escapes
	f.Add("\x01x\x01\x01")        // escape + other byte, escape + escape
	f.Add("a\tb\nc\rd\x00e\x01f") // raw bytes Escape must encode
	f.Add("ü\xff\xfe")            // non-ASCII and invalid UTF-8
	f.Fuzz(func(t *testing.T, s string) {
		_ = anvil.Unescape(s) // any input: no panic
		e := anvil.Escape(s)
		if strings.ContainsAny(e, "\t\n\r\x00") {
			t.Fatalf("Escape(%q) = %q holds a TAB, LF, CR or NUL", s, e)
		}
		if got := anvil.Unescape(e); got != s {
			t.Fatalf("Unescape(Escape(%q)) = %q", s, got)
		}
		if !strings.ContainsAny(s, "\t\n\r\x00\x01") && e != s {
			t.Fatalf("Escape(%q) = %q changed a field that needs no escaping", s, e)
		}
	})
}

func FuzzParseDump23(f *testing.F) {
	f.Add("")                                                      // empty dump
	f.Add("imap/192.0.2.10/alice@example.com\t12345\t1\n")         // one session
	f.Add("lmtp/carol@example.com\t12500\t1\n")                    // lmtp: no IP
	f.Add("imap/198.51.100.3/bob\t12400\t2\nimap/::1/bob\t1\t1\n") // refcount 2, IPv6
	f.Add("imap/192.0.2.7/we\x01tird\x011us/er\t12700\t1\n")       // escapes and a '/' in the user
	f.Add("imap/not-an-ip/bob\t1\t1\n")                            // a bad IP is ignored
	f.Add("imap/fe80::1%eth0/bob\t1\t1\n")                         // an IP with a zone
	f.Add("imap/fe80::1%e x/bob\t1\t1\n")                          // an IP with a bad zone
	f.Add("imap/192.0.2.1/a\t1\t1\tx\n")                           // too many fields
	f.Add("imapbob\t1\t1\n")                                       // ident without '/'
	f.Add("imap/192.0.2.1/a\t0\t1\n")                              // pid 0
	f.Add("imap/192.0.2.1/a\t+7\t01\n")                            // non-canonical numbers
	f.Add("\x01")                                                  // a lone escape byte
	f.Add("a\x01/b/c\t1\t1")                                       // escaped '/' in the service, no final LF
	f.Fuzz(func(t *testing.T, body string) {
		ss, bad, err := anvil.ParseDump23(body)
		if err != nil {
			t.Fatalf("a 2.3 dump body never fails as a whole: %v", err)
		}
		if got, want := len(ss)+bad.Count, countLines(body); got != want {
			t.Fatalf("%d sessions + %d bad lines, want %d lines", len(ss), bad.Count, want)
		}
		out := anvil.FormatDump23(ss)
		if !strings.HasSuffix(out, "\n\n") && out != "\n" {
			t.Fatalf("FormatDump23 output %q does not end with the terminator", out)
		}
		ss2, bad2, err := anvil.ParseDump23(out[:len(out)-1])
		if err != nil || bad2.Count != 0 {
			t.Fatalf("parse(format(parse(%q))): %v %s\nformatted: %q", body, err, bad2, out)
		}
		if d := diffSessions(nil, ss, nil, ss2); d != "" {
			t.Fatalf("round trip of %q: %s\nformatted: %q", body, d, out)
		}
	})
}

func FuzzParseDump24(f *testing.F) {
	const g = "0123456789abcdef0123456789abcdef"
	f.Add("")                                                               // empty
	f.Add("\n")                                                             // empty header, no sessions
	f.Add("\n1\talice\timap\t192.0.2.1\t" + g + "\t\n")                     // one session, no alt fields
	f.Add("user_a\tuser_b\n1\tu\timap\t\t" + g + "\t\t\tB\n")               // middle alt column empty
	f.Add("user_a\tuser_b\n1\tu\timap\t\t" + g + "\t\tA\n")                 // trailing alt column absent
	f.Add("user_a\n1\tu\timap-login\t::1\t" + g + "\t10.0.0.5\tA\n")        // proxy with dest_ip
	f.Add("user_\x01t\n1\tu\x01n\timap\t\t" + g + "\t\tv\x01\n")            // escapes everywhere
	f.Add("\n1\tu\timap\t\t" + g + "\t\tx\n")                               // alt column without a name
	f.Add("\n1\tu\timap\tbad-ip\t" + g + "\t\n")                            // a bad IP
	f.Add("\n1\tu\timap\tfe80::1%e\x01tx\t" + g + "\t\n")                   // a zone holding an escaped TAB
	f.Add("\n1\tu\timap\tfe80::1%lo\t" + g + "\tfe80::2%2\n")               // zones in ip and dest_ip
	f.Add("\n1\tu\timap\t\t" + g + "\t\n2\tu\n3\tu\timap\t\t" + g + "\t\n") // a bad line between good ones
	f.Add("\n0\tu\timap\t\t" + g + "\t\n")                                  // pid 0
	f.Add("\n1\tu\t\t\t" + g + "\t\n")                                      // empty service
	f.Add("hdr")                                                            // header without LF
	f.Fuzz(func(t *testing.T, body string) {
		names, ss, bad, err := anvil.ParseDump24(body)
		if err != nil {
			return // a bad header
		}
		if got, want := len(ss)+bad.Count, max(countLines(body)-1, 0); got != want {
			t.Fatalf("%d sessions + %d bad lines, want %d lines", len(ss), bad.Count, want)
		}
		out := anvil.FormatDump24(names, ss)
		names2, ss2, bad2, err := anvil.ParseDump24(out[:len(out)-1])
		if err != nil || bad2.Count != 0 {
			t.Fatalf("parse(format(parse(%q))): %v %s\nformatted: %q", body, err, bad2, out)
		}
		if d := diffSessions(names, ss, names2, ss2); d != "" {
			t.Fatalf("round trip of %q: %s\nformatted: %q", body, d, out)
		}
	})
}

// countLines counts the lines of body as ParseDump does: a last line
// without LF counts too.
func countLines(body string) int {
	n := strings.Count(body, "\n")
	if body != "" && !strings.HasSuffix(body, "\n") {
		n++
	}
	return n
}

// diffSessions describes the first difference between two parsed dumps,
// alt values by header name included; "" means equal.
func diffSessions(n1 []string, s1 []anvil.Session, n2 []string, s2 []anvil.Session) string {
	if !slices.Equal(n1, n2) {
		return "alt names " + strings.Join(n1, ",") + " != " + strings.Join(n2, ",")
	}
	if len(s1) != len(s2) {
		return "session count differs"
	}
	for i := range s1 {
		a, b := &s1[i], &s2[i]
		if a.Service != b.Service || a.User != b.User || a.IP != b.IP || a.PID != b.PID ||
			a.ConnGUID != b.ConnGUID || a.DestIP != b.DestIP || a.Connections != b.Connections {
			return "session " + a.User + " differs from " + b.User
		}
		if !slices.Equal(a.AltValues(), b.AltValues()) {
			return "alt values of " + a.User + " differ"
		}
		for _, n := range n1 {
			v1, ok1 := a.Alt(n)
			v2, ok2 := b.Alt(n)
			if v1 != v2 || ok1 != ok2 {
				return "Alt(" + n + ") differs"
			}
		}
	}
	return ""
}
