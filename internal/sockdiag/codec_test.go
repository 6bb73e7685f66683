package sockdiag

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// encodeMsg is decodeMsg's inverse for the fields Socket keeps, for tests.
func encodeMsg(s Socket) []byte {
	b := make([]byte, msgLen)
	b[0], b[1] = s.Family, uint8(s.State)
	if err := putSockID(b[4:], s); err != nil {
		panic(err)
	}
	binary.NativeEndian.PutUint32(b[4+sockIDLen+12:], s.UID)
	binary.NativeEndian.PutUint32(b[4+sockIDLen+16:], s.Inode)
	return b
}

func TestDecodeMsg(t *testing.T) {
	b := make([]byte, msgLen+8) // an attribute after the message is ignored
	b[0], b[1] = unix.AF_INET, 1
	copy(b[4:], []byte{0, 143, 0xc3, 0x50})   // sport 143, dport 50000
	copy(b[8:], []byte{127, 0, 0, 1})         // src
	copy(b[24:], []byte{192, 0, 2, 7})        // dst
	binary.NativeEndian.PutUint32(b[40:], 3)  // if
	binary.NativeEndian.PutUint32(b[44:], 2)  // cookie[0]: low half
	binary.NativeEndian.PutUint32(b[48:], 1)  // cookie[1]: high half
	binary.NativeEndian.PutUint32(b[64:], 8)  // uid
	binary.NativeEndian.PutUint32(b[68:], 99) // inode
	want := Socket{
		Family: unix.AF_INET, State: Established,
		Local:   netip.MustParseAddrPort("127.0.0.1:143"),
		Remote:  netip.MustParseAddrPort("192.0.2.7:50000"),
		IfIndex: 3, Cookie: 1<<32 | 2, UID: 8, Inode: 99,
	}
	got, err := decodeMsg(b)
	if err != nil || got != want {
		t.Fatalf("decodeMsg = %+v, %v; want %+v", got, err, want)
	}
	// The destroy request carries the same sockid, byte for byte.
	req, err := encodeDestroy(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(req[8:], b[4:4+sockIDLen]) {
		t.Errorf("destroy sockid\n% x\nwant\n% x", req[8:], b[4:4+sockIDLen])
	}
	if req[0] != unix.AF_INET || req[1] != unix.IPPROTO_TCP {
		t.Errorf("destroy header % x", req[:8])
	}
	for _, bad := range [][]byte{nil, b[:msgLen-1], append([]byte{unix.AF_UNIX}, b[1:]...)} {
		if s, err := decodeMsg(bad); err == nil {
			t.Errorf("decodeMsg(% x) = %+v, want an error", bad, s)
		}
	}
}

func TestDecodeV6(t *testing.T) {
	for _, s := range []Socket{
		{Family: unix.AF_INET6, State: Listen, Local: netip.MustParseAddrPort("[::1]:993"), Remote: netip.MustParseAddrPort("[::]:0"), Cookie: 7},
		// A dual-stack socket's IPv4 peer stays v4-mapped, as the kernel gives it.
		{Family: unix.AF_INET6, State: Established, Local: netip.MustParseAddrPort("[::ffff:127.0.0.1]:143"), Remote: netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000"), Cookie: 1<<40 | 5, Inode: 1, UID: 2},
		{Family: unix.AF_INET6, State: Established, Local: netip.MustParseAddrPort("[fe80::1]:143"), Remote: netip.MustParseAddrPort("[fe80::2]:40000"), IfIndex: 2, Cookie: 9},
	} {
		got, err := decodeMsg(encodeMsg(s))
		if err != nil || got != s {
			t.Errorf("round trip of %+v: %+v, %v", s, got, err)
		}
	}
}

func TestEncodeDestroyRefuses(t *testing.T) {
	ok := Socket{Family: unix.AF_INET, Local: netip.MustParseAddrPort("127.0.0.1:1"), Remote: netip.MustParseAddrPort("127.0.0.1:2"), Cookie: 1}
	if _, err := encodeDestroy(ok); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Socket{
		"no cookie check": func() Socket { s := ok; s.Cookie = noCookie; return s }(),
		"v6 in AF_INET":   func() Socket { s := ok; s.Remote = netip.MustParseAddrPort("[::1]:2"); return s }(),
		"v4 in AF_INET6":  func() Socket { s := ok; s.Family = unix.AF_INET6; return s }(),
		"zero value":      {},
		"no local":        func() Socket { s := ok; s.Local = netip.AddrPort{}; return s }(),
	} {
		if _, err := encodeDestroy(s); err == nil {
			t.Errorf("%s: encodeDestroy(%+v) succeeded", name, s)
		}
	}
}

func TestEncodeDump(t *testing.T) {
	b := encodeDump(unix.AF_INET6, States(Established, Listen))
	want := make([]byte, reqLen)
	want[0], want[1] = unix.AF_INET6, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(want[4:], 1<<1|1<<10)
	if !bytes.Equal(b, want) {
		t.Errorf("encodeDump = % x, want % x", b, want)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Established: "ESTABLISHED", Listen: "LISTEN", Closing: "CLOSING", 0: "State(0)", 12: "State(12)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", uint8(s), got, want)
		}
	}
}
