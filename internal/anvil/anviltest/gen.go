package anviltest

import (
	"fmt"
	"net/netip"

	"github.com/kickagent/kickagent/internal/anvil"
)

// AltNames24 is the dump header Sessions24 uses.
var AltNames24 = []string{"user_alias", "user_ext"}

// Sessions23 generates n deterministic 2.3 session records: imap, pop3 and
// submission sessions over IPv4 and IPv6 clients, every 10th an lmtp
// delivery without IP, every 7th with refcount 2.
func Sessions23(n int) []anvil.Session {
	out := make([]anvil.Session, n)
	services := [...]string{"imap", "pop3", "submission"}
	for i := range out {
		s := &out[i]
		s.PID = int64(10000 + i)
		s.User = fmt.Sprintf("user%06d@example.com", i%50000)
		s.Connections = 1
		if i%7 == 0 {
			s.Connections = 2
		}
		if i%10 == 9 {
			s.Service = "lmtp"
			continue
		}
		s.Service = services[i%len(services)]
		s.IP = genIP(i)
	}
	return out
}

// Sessions24 generates n deterministic 2.4 sessions with the header
// AltNames24: mail sessions with a user_alias column, every 5th a login
// proxy session with a dest_ip and both columns, every 10th an lmtp
// delivery without IP and without alt columns.
func Sessions24(n int) []anvil.Session {
	out := make([]anvil.Session, n)
	for i := range out {
		s := &out[i]
		s.PID = int64(10000 + i)
		s.User = fmt.Sprintf("user%06d@example.com", i%50000)
		s.ConnGUID = fmt.Sprintf("%016x%016x", uint64(i)*0x9e3779b97f4a7c15, uint64(i)+0xeed7046b)
		s.Connections = 1
		switch {
		case i%10 == 9:
			s.Service = "lmtp"
		case i%5 == 0:
			s.Service = "imap-login"
			s.IP = genIP(i)
			s.DestIP = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			s.SetAlt(AltNames24, []string{fmt.Sprintf("alias%d", i), fmt.Sprintf("ext%d@ext.example", i)})
		default:
			s.Service = "imap"
			s.IP = genIP(i)
			s.SetAlt(AltNames24, []string{fmt.Sprintf("alias%d", i)})
		}
	}
	return out
}

func genIP(i int) netip.Addr {
	if i%4 == 3 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i), 14: byte(i >> 8), 13: byte(i >> 16)})
	}
	return netip.AddrFrom4([4]byte{192, byte(i >> 16), byte(i >> 8), byte(i)})
}
