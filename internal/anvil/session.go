package anvil

import (
	"net/netip"
	"strings"
	"time"
	"unsafe"
)

// Protocol is the anvil protocol major version a server speaks.
type Protocol int

const (
	// Proto23 is anvil protocol 1, spoken by Dovecot 2.3.
	Proto23 Protocol = 1
	// Proto24 is anvil protocol 2, spoken by Dovecot 2.4.
	Proto24 Protocol = 2
)

// Dovecot names the Dovecot generation that speaks p.
func (p Protocol) Dovecot() string {
	switch p {
	case Proto23:
		return "2.3"
	case Proto24:
		return "2.4"
	}
	return "unknown"
}

func (p Protocol) String() string { return "dovecot-" + p.Dovecot() }

// Session is one record of anvil's session table, normalized across both
// protocol generations.
//
// On 2.4 a record is one connection. On 2.3 a record is one (ident, pid)
// pair and Connections holds anvil's refcount: an imap process with
// client_limit > 1, or imap-hibernate, serves several connections of the same
// user and IP under one record.
type Session struct {
	Service string     // imap, pop3, submission, lmtp, imap-login (2.4 proxy) …
	User    string     // login name as anvil has it (unescaped)
	IP      netip.Addr // client IP; invalid (zero) when anvil has none
	PID     int64      // process holding the session
	// ConnGUID is the 32-hex connection GUID (2.4 only).
	ConnGUID string
	// DestIP is the proxy destination (2.4 login proxies only).
	DestIP netip.Addr
	// Connections is 2.3's refcount; always 1 on 2.4.
	Connections int

	// alt is the dump's header (shared by all sessions of a snapshot)
	// with the number of alt columns this session carries, which start at
	// altV; column i belongs to header name i. Columns a session does not
	// carry are absent, not empty. A pointer to a count-specific header
	// plus one to the values take 16 bytes where two slices took 48: a
	// quarter less memory per session at 100,000 sessions.
	alt  *altCols
	altV *string
}

// altCols is a dump header with a column count; a dump has one per count.
type altCols struct {
	names []string
	n     int
}

func (s *Session) altNames() []string {
	if s.alt == nil {
		return nil
	}
	return s.alt.names
}

func (s *Session) altValues() []string {
	if s.alt == nil || s.alt.n == 0 {
		return nil
	}
	return unsafe.Slice(s.altV, s.alt.n)
}

// Detached returns a copy of s that shares no memory with the dump it was
// parsed from. Parsed strings point into the dump's buffer (several MB at
// 100,000 sessions), so whatever keeps a session, or one of its strings,
// across dumps should keep a detached copy: otherwise each such session
// keeps its whole dump alive.
func (s Session) Detached() Session {
	s.Service = strings.Clone(s.Service)
	s.User = strings.Clone(s.User)
	s.ConnGUID = strings.Clone(s.ConnGUID)
	if s.alt != nil {
		s.SetAlt(cloneStrings(s.altNames()), cloneStrings(s.altValues()))
	}
	return s
}

func cloneStrings(v []string) []string {
	if v == nil {
		return nil
	}
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = strings.Clone(x)
	}
	return out
}

// Alt returns the session's value of the alt-username field (a passdb or
// userdb user_* field, 2.4 only) and whether the session carries it. A
// column the session's line has is carried even when it is empty (anvil
// sends unset columns before the last set one empty): ("", true). A column
// past the session's last one is not carried: ("", false).
//
// This is what doveadm who -1 -f and kick -f match (2.4.1 doveadm-who.c
// who_line_filter_match): doveadm walks the session's alt list up to the
// field's index; if the list ends before that index the session does not
// match; otherwise the value, empty included, is matched with
// wildcard_match_icase, so '*' selects an empty column. (A list that ends
// exactly at the index makes doveadm dereference NULL and crash, a doveadm
// bug; a session without the column just does not match here.)
func (s *Session) Alt(field string) (string, bool) {
	vals := s.altValues()
	for i, n := range s.altNames() {
		if n == field {
			if i < len(vals) {
				return vals[i], true
			}
			return "", false
		}
	}
	return "", false
}

// AltFields calls fn for each alt-username field the session carries, in
// header order: every column of its line, empty ones included (see Alt).
func (s *Session) AltFields(fn func(field, value string)) {
	names := s.altNames()
	for i, v := range s.altValues() {
		if i < len(names) {
			fn(names[i], v)
		}
	}
}

// AltValues returns the raw alt columns, aligned with Snapshot.AltNames.
// Trailing columns the session lacks are absent. Do not modify.
func (s *Session) AltValues() []string { return s.altValues() }

// SetAlt attaches alt-username columns to s; names is shared, values[i]
// belongs to names[i]. For tests and synthetic sessions.
func (s *Session) SetAlt(names, values []string) {
	s.alt, s.altV = nil, nil
	if names == nil && len(values) == 0 {
		return
	}
	s.alt = &altCols{names: names, n: len(values)}
	if len(values) > 0 {
		s.altV = &values[0]
	}
}

// Snapshot is one CONNECT-DUMP of anvil.
type Snapshot struct {
	Protocol Protocol
	// ServerMinor is the minor version of the 2.4 greeting (0 on 2.3).
	ServerMinor int
	// AltNames is the 2.4 dump header: the alt-username field names in the
	// order of the session columns. The order is not stable between dumps.
	AltNames []string
	Sessions []Session
	// Taken is when the dump finished.
	Taken time.Time
	// Bytes is the size of the dump on the wire.
	Bytes int
	// BadLines records the malformed session lines that were skipped:
	// they are not in Sessions.
	BadLines BadLines
}
