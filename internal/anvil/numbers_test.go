package anvil

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// The fast paths must accept only what the general parsers accept and
// give the same value; parseIPv4 must accept every dotted quad
// netip.ParseAddr accepts. Checked exhaustively over quads built from
// tricky fields, and by fuzzing.

func checkIPv4(t *testing.T, s string) {
	t.Helper()
	a, ok := parseIPv4(s)
	want, err := netip.ParseAddr(s)
	if ok != (err == nil && want.Is4()) || ok && a != want {
		t.Fatalf("parseIPv4(%q) = %v, %v; netip.ParseAddr = %v, %v", s, a, ok, want, err)
	}
	// parseAddr as a whole is netip.ParseAddr, with zones limited to
	// what can be an interface name or scope number.
	got, gerr := parseAddr(s)
	if (gerr == nil) != (err == nil && (want.Zone() == "" || validZone(want.Zone()))) || gerr == nil && got != want {
		t.Fatalf("parseAddr(%q) = %v, %v; netip.ParseAddr = %v, %v", s, got, gerr, want, err)
	}
}

func TestParseIPv4MatchesNetip(t *testing.T) {
	parts := []string{"", "0", "00", "01", "1", "9", "10", "99", "100", "199", "249",
		"255", "256", "260", "300", "999", "0255", "1000", "a", "-1", "+1", " 1", "1 ", "0x1", "١"}
	for _, a := range parts {
		for _, b := range parts {
			for _, c := range parts {
				for _, d := range parts {
					checkIPv4(t, a+"."+b+"."+c+"."+d)
				}
			}
			checkIPv4(t, a+"."+b)
			checkIPv4(t, "1.2."+a+"."+b+".5")
		}
	}
	for _, s := range []string{"", ".", "...", "1.2.3.4.", ".1.2.3.4", "1..2.3", "1.2.3.4\x00",
		"::ffff:1.2.3.4", "::1", "1.2.3.4%eth0", "fe80::1%eth0", "255.255.255.255", "0.0.0.0"} {
		checkIPv4(t, s)
	}
}

func FuzzParseIPv4(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4",
		"1.2.3", "1.2.3.4.5", "1..2.3", "1.2.3.4%x", "::ffff:192.0.2.1", "2001:db8::1", ""} {
		f.Add(s)
	}
	f.Fuzz(checkIPv4)
}

func checkNumbers(t *testing.T, s string) {
	t.Helper()
	if v, ok := smallUint(s); ok {
		w, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v != w {
			t.Fatalf("smallUint(%q) = %d; strconv: %d, %v", s, v, w, err)
		}
	}
	pid, err := parsePID(s)
	want, werr := strconv.ParseInt(s, 10, 64)
	if ok := werr == nil && want > 0; (err == nil) != ok || ok && pid != want {
		t.Fatalf("parsePID(%q) = %d, %v; strconv: %d, %v", s, pid, err, want, werr)
	}
	// The refcount column as parseSession23 reads it.
	sess, reason := parseSession23([]string{"imap/192.0.2.1/u", "1", s})
	ref, rerr := strconv.ParseUint(s, 10, 31)
	if (reason == "") != (rerr == nil) || rerr == nil && sess.Connections != int(ref) {
		t.Fatalf("refcount %q: %d %q; strconv: %d, %v", s, sess.Connections, reason, ref, rerr)
	}
}

func TestNumbersMatchStrconv(t *testing.T) {
	for _, s := range []string{"", "0", "1", "01", "007", "+1", "-1", " 1", "1 ", "1_0", "0x10",
		"2147483647", "2147483648", "4294967295", "999999999999999999", "1000000000000000000",
		"9223372036854775807", "9223372036854775808", "18446744073709551615",
		"18446744073709551616", strings.Repeat("0", 40) + "7", "１"} {
		checkNumbers(t, s)
	}
}

func FuzzNumbers(f *testing.F) {
	for _, s := range []string{"1", "0", "01", "+5", "-5", "2147483648", "999999999999999999", "9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(checkNumbers)
}
