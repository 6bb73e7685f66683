package testrig

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
)

var (
	mixDomains = []string{"example.com", "example.net", "example.org", "mail.test"}
	mixNames   = []string{"anna", "ben", "chris", "dana", "erik", "fay", "gus", "hana", "ivan", "jo", "kim", "lea"}
)

// SyntheticMix returns n deterministic sessions (for a given seed) resembling a busy server:
// about n/3 users over a few domains with a skewed number of sessions per user (a few users
// hold very many), each user on 1-3 client IPs (about 20% IPv6, 2001:db8::/32), services imap
// (~70%), pop3, submission, and ~5% imap-login sessions with a dest_ip (2.4 proxy style, several
// per login pid). About half the users carry a user_alt field, some also user_ext; a few
// usernames contain a space or a non-ASCII letter. Pids are >= MinSyntheticPID and distinct
// except for the login sessions. Use StripFor23 before registering on 2.3.
func SyntheticMix(n int, seed int64) []SyntheticSession {
	r := rand.New(rand.NewPCG(uint64(seed), 0x6b69636b))
	nUsers := max(n/3, 1)
	zipf := rand.NewZipf(r, 1.2, 8, uint64(nUsers-1))
	type user struct {
		name string
		ips  []netip.Addr
		alt  []AltField
	}
	users := make(map[uint64]*user)
	getUser := func(k uint64) *user {
		if u := users[k]; u != nil {
			return u
		}
		u := &user{name: fmt.Sprintf("%s%d@%s", mixNames[k%uint64(len(mixNames))], k, mixDomains[k%uint64(len(mixDomains))])}
		switch k % 97 {
		case 13:
			u.name = fmt.Sprintf("user %d%s", k, u.name[strings.IndexByte(u.name, '@'):])
		case 29:
			u.name = "jürgen" + u.name
		}
		for range 1 + r.IntN(3) {
			u.ips = append(u.ips, randIP(r))
		}
		if r.IntN(2) == 0 {
			u.alt = append(u.alt, AltField{"user_alt", fmt.Sprintf("alt-%d", k)})
			if r.IntN(4) == 0 {
				u.alt = append(u.alt, AltField{"user_ext", fmt.Sprintf("ext%d@ext.example", k)})
			}
		}
		users[k] = u
		return u
	}
	sessions := make([]SyntheticSession, n)
	pid := MinSyntheticPID + r.IntN(1000)
	loginPID := 0
	for i := range sessions {
		k := zipf.Uint64() // half the sessions from a skewed, half from a uniform user choice
		if r.IntN(2) == 0 {
			k = r.Uint64N(uint64(nUsers))
		}
		u := getUser(k)
		s := SyntheticSession{User: u.name, IP: u.ips[r.IntN(len(u.ips))], Alt: u.alt, GUID: randGUID(r)}
		switch p := r.IntN(100); {
		case p < 5:
			if loginPID == 0 || r.IntN(8) == 0 {
				pid += 1 + r.IntN(50)
				loginPID = pid
			}
			s.Service, s.PID = "imap-login", loginPID
			s.DestIP = netip.AddrFrom4([4]byte{10, 1, 0, byte(1 + r.IntN(4))})
		case p < 75:
			s.Service = "imap"
		case p < 90:
			s.Service = "pop3"
		default:
			s.Service = "submission"
		}
		if s.PID == 0 {
			pid += 1 + r.IntN(50)
			s.PID = pid
		}
		sessions[i] = s
	}
	return sessions
}

func randIP(r *rand.Rand) netip.Addr {
	if r.IntN(5) == 0 {
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		for i := 4; i < 16; i++ {
			if i < 8 || r.IntN(3) == 0 { // some zero groups, so "::" compression appears
				b[i] = byte(r.IntN(256))
			}
		}
		return netip.AddrFrom16(b)
	}
	switch r.IntN(3) {
	case 0:
		return netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
	case 1:
		return netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + r.IntN(254))})
	}
	return netip.AddrFrom4([4]byte{byte(1 + r.IntN(223)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
}

func randGUID(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	b[0] |= 1
	return hex.EncodeToString(b[:])
}

// StripFor23 returns a copy of sessions fit for 2.3's anvil: alt fields and GUIDs dropped, and
// proxied sessions (with a dest_ip) turned into plain sessions of the service without "-login",
// each with its own pid (1e9+index), so every session stays one row in `doveadm who -1`.
func StripFor23(sessions []SyntheticSession) []SyntheticSession {
	out := make([]SyntheticSession, len(sessions))
	for i, s := range sessions {
		s.Alt, s.GUID = nil, ""
		if s.DestIP.IsValid() {
			s.DestIP = netip.Addr{}
			s.Service = strings.TrimSuffix(s.Service, "-login")
			s.PID = 1_000_000_000 + i // login pids are shared; keep one 2.3 record per session
		}
		out[i] = s
	}
	return out
}
