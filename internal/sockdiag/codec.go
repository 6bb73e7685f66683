package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// State is a TCP state in Linux's numbering (include/net/tcp_states.h).
type State uint8

// TCP states as the kernel numbers them.
const (
	Established State = 1 + iota
	SynSent
	SynRecv
	FinWait1
	FinWait2
	TimeWait
	Close
	CloseWait
	LastAck
	Listen
	Closing
)

var stateNames = [...]string{
	Established: "ESTABLISHED", SynSent: "SYN-SENT", SynRecv: "SYN-RECV",
	FinWait1: "FIN-WAIT-1", FinWait2: "FIN-WAIT-2", TimeWait: "TIME-WAIT",
	Close: "CLOSE", CloseWait: "CLOSE-WAIT", LastAck: "LAST-ACK",
	Listen: "LISTEN", Closing: "CLOSING",
}

func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// StateMask selects states in a dump: bit 1<<State.
type StateMask uint32

// States returns the mask selecting ss.
func States(ss ...State) StateMask {
	var m StateMask
	for _, s := range ss {
		m |= 1 << (s & 31)
	}
	return m
}

// Socket is one TCP socket as the kernel's inet_diag reports it.
type Socket struct {
	Family uint8 // unix.AF_INET or unix.AF_INET6
	State  State
	// Local and Remote hold 4-byte addresses for AF_INET sockets and
	// 16-byte ones (v4-mapped kept as the kernel gives it) for AF_INET6,
	// never a zone: IfIndex carries the bound device.
	Local   netip.AddrPort
	Remote  netip.AddrPort
	IfIndex uint32 // idiag_if
	// Cookie is idiag_cookie: it identifies this socket, so a destroy
	// cannot hit a later socket with the same 4-tuple.
	Cookie uint64
	Inode  uint32 // 0 for orphaned sockets
	UID    uint32
}

// Netlink message types and sizes (linux/sock_diag.h, linux/inet_diag.h).
const (
	sockDiagByFamily = 20
	sockDestroy      = 21
	sockIDLen        = 48 // inet_diag_sockid
	reqLen           = 8 + sockIDLen
	msgLen           = 4 + sockIDLen + 20 // inet_diag_msg
	noCookie         = ^uint64(0)         // INET_DIAG_NOCOOKIE twice: the kernel skips the check
)

// errMessage: a reply the decoder cannot read.
var errMessage = errors.New("sockdiag: malformed inet_diag_msg")

// encodeDump builds the inet_diag_req_v2 of a dump of family's TCP
// sockets in states, with no extensions asked for.
func encodeDump(family uint8, states StateMask) []byte {
	b := make([]byte, reqLen)
	b[0], b[1] = family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:], uint32(states))
	return b
}

// encodeDestroy builds the inet_diag_req_v2 naming exactly s. The kernel's
// exact lookup ignores the state mask.
func encodeDestroy(s Socket) ([]byte, error) {
	if s.Cookie == noCookie {
		// It would switch the kernel's cookie check off.
		return nil, fmt.Errorf("sockdiag: socket %v-%v has no cookie", s.Local, s.Remote)
	}
	b := make([]byte, reqLen)
	b[0], b[1] = s.Family, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:], ^uint32(0))
	if err := putSockID(b[8:], s); err != nil {
		return nil, err
	}
	return b, nil
}

// putSockID writes s's inet_diag_sockid into b: ports and addresses in
// network order, interface and cookie in host order.
func putSockID(b []byte, s Socket) error {
	binary.BigEndian.PutUint16(b[0:], s.Local.Port())
	binary.BigEndian.PutUint16(b[2:], s.Remote.Port())
	for i, a := range []netip.Addr{s.Local.Addr(), s.Remote.Addr()} {
		dst := b[4+16*i : 4+16*(i+1)]
		switch {
		case s.Family == unix.AF_INET && a.Is4():
			a4 := a.As4()
			copy(dst, a4[:])
		case s.Family == unix.AF_INET6 && a.Is6():
			a16 := a.As16()
			copy(dst, a16[:])
		default:
			return fmt.Errorf("sockdiag: address %v does not fit family %d", a, s.Family)
		}
	}
	binary.NativeEndian.PutUint32(b[36:], s.IfIndex)
	binary.NativeEndian.PutUint32(b[40:], uint32(s.Cookie))
	binary.NativeEndian.PutUint32(b[44:], uint32(s.Cookie>>32))
	return nil
}

// decodeMsg reads an inet_diag_msg; attributes after it are ignored.
func decodeMsg(b []byte) (Socket, error) {
	if len(b) < msgLen {
		return Socket{}, fmt.Errorf("%w: %d bytes, want %d", errMessage, len(b), msgLen)
	}
	s := Socket{Family: b[0], State: State(b[1])}
	id := b[4 : 4+sockIDLen]
	lport, rport := binary.BigEndian.Uint16(id[0:]), binary.BigEndian.Uint16(id[2:])
	var local, remote netip.Addr
	switch s.Family {
	case unix.AF_INET:
		local, remote = netip.AddrFrom4([4]byte(id[4:8])), netip.AddrFrom4([4]byte(id[20:24]))
	case unix.AF_INET6:
		local, remote = netip.AddrFrom16([16]byte(id[4:20])), netip.AddrFrom16([16]byte(id[20:36]))
	default:
		return Socket{}, fmt.Errorf("%w: family %d", errMessage, s.Family)
	}
	s.Local, s.Remote = netip.AddrPortFrom(local, lport), netip.AddrPortFrom(remote, rport)
	s.IfIndex = binary.NativeEndian.Uint32(id[36:])
	s.Cookie = uint64(binary.NativeEndian.Uint32(id[44:]))<<32 | uint64(binary.NativeEndian.Uint32(id[40:]))
	tail := b[4+sockIDLen:]
	s.UID = binary.NativeEndian.Uint32(tail[12:])
	s.Inode = binary.NativeEndian.Uint32(tail[16:])
	return s, nil
}
