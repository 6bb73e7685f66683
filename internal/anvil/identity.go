package anvil

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"strconv"
)

// Session identity.
//
// A session's identity names it from one dump to the next: it is what the
// agent's first-seen times, the engines' caches, the audit log and the
// confirmation of a kick all key on. It depends on the protocol:
//
//   - On Dovecot 2.4 every connection has a GUID (ConnGUID) and the GUID
//     alone is the identity: the other fields describe the connection,
//     and two records with the same GUID are one session.
//   - On Dovecot 2.3 there is no GUID. anvil keys a record by its ident
//     (service, IP and user) and pid, so pid + service + IP + user is the
//     identity: two records of one pid that differ in user (an imap
//     process with client_limit > 1 serving two users) are two sessions.
//
// The IP is compared as a netip.Addr: an IPv6 zone is part of it
// (fe80::1%eth0 is not fe80::1%eth1), and 192.0.2.1 is not
// ::ffff:192.0.2.1. A session with a GUID never has the identity of one
// without.
//
// The methods below are the only implementation of these rules; code
// elsewhere asks them rather than looking at the fields:
//   - ID is the text form, for logs, audit records, Rego's input.id and
//     tables keyed by string; AppendID writes it without allocating;
//   - Key is the comparable value form, for map keys;
//   - SameID compares two sessions' identities without building either;
//   - IDHash hashes the identity, for tables that chain on SameID.
//
// ContentHash and SameContent are not identities: they cover every field
// of the record, so that a session whose fields changed under the same
// identity (a 2.3 refcount, 2.4 alt fields) can be told from its last
// version.

// ID returns the session's identity as text: the connection GUID on 2.4;
// on 2.3 "pid/service/ip/user", ip empty when the record has none (an
// IPv6 zone is included, as in fe80::1%eth0). Different identities have
// different IDs, given that no service name contains '/' (no Dovecot
// service's does). On 2.4 the ID shares memory with the session.
func (s *Session) ID() string {
	if s.ConnGUID != "" {
		return s.ConnGUID
	}
	var buf [80]byte
	return string(s.AppendID(buf[:0]))
}

// AppendID appends s.ID() to b.
func (s *Session) AppendID(b []byte) []byte {
	if s.ConnGUID != "" {
		return append(b, s.ConnGUID...)
	}
	b = strconv.AppendInt(b, s.PID, 10)
	b = append(b, '/')
	b = append(b, s.Service...)
	b = append(b, '/')
	if s.IP.IsValid() {
		b = s.IP.AppendTo(b)
	}
	b = append(b, '/')
	return append(b, s.User...)
}

// SessionKey is a session's identity as a comparable value, for map keys:
// s.Key() == o.Key() exactly when s.SameID(o). Like the session's own
// strings, its strings point into the dump the session was parsed from
// (see Detached): a key kept across dumps keeps that dump alive.
type SessionKey struct {
	guid          string
	pid           int64
	service, user string
	ip            netip.Addr
}

// Key returns the session's identity as a comparable value.
func (s *Session) Key() SessionKey {
	if s.ConnGUID != "" {
		return SessionKey{guid: s.ConnGUID}
	}
	return SessionKey{pid: s.PID, service: s.Service, user: s.User, ip: s.IP}
}

// SameID reports whether s and o have the same identity.
func (s *Session) SameID(o *Session) bool {
	if s.ConnGUID != "" || o.ConnGUID != "" {
		return s.ConnGUID == o.ConnGUID
	}
	return s.PID == o.PID && s.Service == o.Service && s.User == o.User && s.IP == o.IP
}

// IDHash returns a hash of the session's identity under seed: sessions
// with the same identity have the same hash. A table keyed by it must
// still compare with SameID: different identities may collide.
func (s *Session) IDHash(seed maphash.Seed) uint64 {
	if s.ConnGUID != "" {
		return maphash.String(seed, s.ConnGUID)
	}
	// Each string on its own (so field boundaries count), then the
	// fixed-size record of their hashes, the pid and the address: 3–4×
	// cheaper than streaming the fields through a maphash.Hash.
	var b [6 * 8]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(s.PID))
	binary.LittleEndian.PutUint64(b[8:], maphash.String(seed, s.Service))
	binary.LittleEndian.PutUint64(b[16:], maphash.String(seed, s.User))
	putAddr(seed, b[24:48], s.IP)
	return maphash.Bytes(seed, b[:])
}

// ContentHash returns a hash under seed of every field of the record: the
// identity's fields (pid, service, user, IP, GUID), the destination IP,
// Connections, and the alt fields as a set of (field, value) pairs, since
// a dump's column order is not stable. Sessions that are SameContent have
// the same hash; a session whose fields changed gets a new one (up to
// collisions). Two sessions with different identities differ in content.
func (s *Session) ContentHash(seed maphash.Seed) uint64 {
	// The fields, strings with their lengths (so that boundaries count),
	// in one buffer hashed once: two hashes per session per cycle made
	// the six hashes per session of a record of hashes (as IDHash) 10 ms
	// of a cycle at 100,000 sessions. A long user goes to the heap.
	var buf [192]byte
	b := binary.LittleEndian.AppendUint64(buf[:0], uint64(s.PID))
	b = appendLenString(b, s.User)
	b = appendLenString(b, s.Service)
	b = appendLenString(b, s.ConnGUID)
	b = appendAddr(b, s.IP)
	b = appendAddr(b, s.DestIP)
	// The alt fields are a set: a sum of one hash per pair ignores the
	// column order.
	var alt uint64
	s.AltFields(func(field, value string) {
		var pb [128]byte
		alt += maphash.Bytes(seed, appendLenString(appendLenString(pb[:0], field), value))
	})
	b = binary.LittleEndian.AppendUint64(b, alt)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.Connections))
	return maphash.Bytes(seed, b)
}

// appendLenString appends v's length and v.
func appendLenString(b []byte, v string) []byte {
	return append(binary.LittleEndian.AppendUint32(b, uint32(len(v))), v...)
}

// appendAddr appends a's kind (none, IPv4, IPv6), 16 bytes and zone.
func appendAddr(b []byte, a netip.Addr) []byte {
	switch {
	case !a.IsValid():
		return append(b, 0)
	case a.Is4():
		b = append(b, 4)
	default:
		b = append(b, 6)
	}
	ip := a.As16()
	return appendLenString(append(b, ip[:]...), a.Zone())
}

// SameContent reports whether s and o have the same fields, what
// ContentHash hashes: alt fields are compared as sets.
func (s *Session) SameContent(o *Session) bool {
	if s.Service != o.Service || s.User != o.User || s.IP != o.IP || s.PID != o.PID ||
		s.ConnGUID != o.ConnGUID || s.DestIP != o.DestIP || s.Connections != o.Connections {
		return false
	}
	return sameAlt(s, o)
}

// sameAlt compares the alt fields as sets of pairs.
func sameAlt(a, b *Session) bool {
	if len(a.AltValues()) == 0 && len(b.AltValues()) == 0 {
		return true
	}
	na, nb, eq := 0, 0, true
	a.AltFields(func(field, value string) {
		na++
		if v, ok := b.Alt(field); !ok || v != value {
			eq = false
		}
	})
	if !eq {
		return false
	}
	b.AltFields(func(string, string) { nb++ })
	return na == nb
}

// putAddr writes a's 16 bytes and its kind and zone into b (24 bytes).
func putAddr(seed maphash.Seed, b []byte, a netip.Addr) {
	var kind uint64
	switch {
	case !a.IsValid():
		clear(b[:24])
		return
	case a.Is4():
		kind = 4
	default:
		kind = 6
	}
	ip := a.As16()
	copy(b, ip[:])
	if z := a.Zone(); z != "" {
		kind |= maphash.String(seed, z) << 4
	}
	binary.LittleEndian.PutUint64(b[16:], kind)
}
