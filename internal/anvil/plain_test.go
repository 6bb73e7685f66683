package anvil

import (
	"reflect"
	"slices"
	"testing"
)

// FuzzPlainLines: a dump line parsed with the fast paths (plain24,
// plain23) gives exactly what the general parser gives, error reasons
// included.
func FuzzPlainLines(f *testing.F) {
	const g = "0123456789abcdef0123456789abcdef"
	for _, l := range []string{
		"1\tu\timap\t192.0.2.1\t" + g + "\t",
		"1\tu\timap-login\t2001:db8::1\t" + g + "\t10.0.0.5\ta\tb",
		"1\tu\timap\t\t" + g + "\t\t",
		"1\tu\timap\t\t" + g + "\t\t\tB",
		"1\tu\timap\t\t" + g + "\t\ta\tb\tc",
		"007\tu\timap\t01.2.3.4\t" + g + "\t",
		"1\tu\timap\t1.2.3.256\t" + g + "\t",
		"1\tu\timap\t1.2.3\t" + g + "\t",
		"1\tu\timap\tfe80::1%eth0\t" + g + "\t",
		"1\tu\timap-login\tfe80::1%lo\t" + g + "\tfe80::2%2\ta",
		"1\tu\timap\tfe80::1%e x\t" + g + "\t",
		"1\tu\timap\t::ffff:1.2.3.4%lo\t" + g + "\t",
		"1\tu\t\t\t" + g + "\t",
		"0\tu\timap\t\t" + g + "\t",
		"-1\tu\timap\t\t" + g + "\t",
		"+1\tu\timap\t\t" + g + "\t",
		"99999999999999999999\tu\timap\t\t" + g + "\t",
		"1\tu\timap\t\t" + g[:31] + "\t",
		"1\tu\timap\t\t" + g + "x\t",
		"1\tu\timap\t\t" + g,
		"1\tu\x01t\timap\t\t" + g + "\t\tv\x01n",
		"imap/192.0.2.1/alice\t100\t1",
		"imap/192.0.2.1/alice\t100\t2147483648",
		"imap/::1/bob\t007\t01",
		"lmtp/a/b\t1\t1",
		"imap/alice\t1\t1",
		"/x/y\t1\t1",
		"imap/999.1.1.1/x\t1\t1",
		"imap/1.2.3.4/x\t1\t1\t",
		"imap/1.2.3.4/x\t1\t+1",
		"",
	} {
		f.Add("user_a\tuser_b", l)
	}
	f.Fuzz(func(t *testing.T, header, line string) {
		for _, proto := range []Protocol{Proto23, Proto24} {
			fast, slow := newDumpParser(proto, 0), newDumpParser(proto, 0)
			if proto == Proto24 {
				if fast.line(header) != nil {
					continue
				}
				_ = slow.line(header)
			}
			if err := fast.line(line); err != nil {
				t.Fatalf("%v %q: a session line failed the dump: %v", proto, line, err)
			}
			s := slow.next()
			reason := slow.general(line, s)
			if (fast.bad.Count == 0) != (reason == "") || reason != "" && fast.bad.Problems[0].Reason != reason {
				t.Fatalf("%v %q: fast path bad lines %+v, general %q", proto, line, fast.bad, reason)
			}
			if reason != "" {
				if n := len(fast.result()); n != 0 {
					t.Fatalf("%v %q: a bad line left %d sessions", proto, line, n)
				}
				continue
			}
			a, b := fast.result()[0], *s
			if !reflect.DeepEqual(a, b) || !slices.Equal(a.AltValues(), b.AltValues()) {
				t.Fatalf("%v %q: fast %+v %q, general %+v %q", proto, line, a, a.AltValues(), b, b.AltValues())
			}
		}
	})
}
