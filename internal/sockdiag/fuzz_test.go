package sockdiag

import (
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzDecode: decodeMsg never panics, and what it decodes encodes back to
// the same sockid bytes and decodes to the same Socket.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{})               // empty
	f.Add(make([]byte, msgLen-1)) // one byte short
	f.Add(make([]byte, msgLen))   // family 0: refused
	// AF_INET, established, 127.0.0.1 both ends, an attribute after it.
	v4 := make([]byte, msgLen+8)
	v4[0], v4[1], v4[8], v4[24] = unix.AF_INET, 1, 127, 127
	f.Add(v4)
	// AF_INET6 listener whose cookie has a high half.
	v6 := make([]byte, msgLen)
	v6[0], v6[1], v6[48] = unix.AF_INET6, 10, 1
	f.Add(v6)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeMsg(b)
		if err != nil {
			if len(b) >= msgLen && (b[0] == unix.AF_INET || b[0] == unix.AF_INET6) {
				t.Fatalf("decodeMsg refused a well-sized message: %v", err)
			}
			return
		}
		enc := encodeMsg(s)
		if s2, err := decodeMsg(enc); err != nil || s2 != s {
			t.Fatalf("round trip: %+v → %+v, %v", s, s2, err)
		}
		// The sockid goes back to the kernel in a destroy: it must be the
		// bytes the kernel sent, except the unused tails of IPv4 addresses.
		id, want := enc[4:4+sockIDLen], b[4:4+sockIDLen]
		for i := range id {
			unused := s.Family == unix.AF_INET && ((i >= 8 && i < 20) || (i >= 24 && i < 36))
			if !unused && id[i] != want[i] {
				t.Fatalf("sockid byte %d: %#x, want %#x", i, id[i], want[i])
			}
		}
	})
}
