package anvil

import (
	"strings"
	"testing"
	"unsafe"
)

// TestDetached: a detached session has the same values and shares no string
// memory with the dump it was parsed from.
func TestDetached(t *testing.T) {
	buf := strings.Repeat("x", 1) + "imap\talice\t0123456789abcdef0123456789abcdef\tuser_alt\talice-alt"
	f := strings.Split(buf, "\t")
	s := Session{Service: f[0], User: f[1], ConnGUID: f[2], PID: 7}
	s.SetAlt([]string{f[3]}, []string{f[4]})
	d := s.Detached()
	if d.Service != s.Service || d.User != s.User || d.ConnGUID != s.ConnGUID || d.PID != 7 {
		t.Fatalf("values differ: %+v vs %+v", d, s)
	}
	if v, ok := d.Alt("user_alt"); !ok || v != "alice-alt" {
		t.Fatalf("alt %q %v", v, ok)
	}
	lo, hi := uintptr(unsafe.Pointer(unsafe.StringData(buf))), uintptr(unsafe.Pointer(unsafe.StringData(buf)))+uintptr(len(buf))
	strs := append([]string{d.Service, d.User, d.ConnGUID}, d.altNames()...)
	strs = append(strs, d.altValues()...)
	for _, x := range strs {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(x))); p >= lo && p < hi {
			t.Errorf("%q still points into the dump", x)
		}
	}
}
