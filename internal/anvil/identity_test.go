package anvil_test

import (
	"hash/maphash"
	"net/netip"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

const guid = "0123456789abcdef0123456789abcdef"

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestIdentity(t *testing.T) {
	base23 := anvil.Session{PID: 42, Service: "imap", User: "alice", IP: ip("192.0.2.1"), Connections: 1}
	with := func(s anvil.Session, f func(*anvil.Session)) anvil.Session { f(&s); return s }
	base24 := with(base23, func(s *anvil.Session) { s.ConnGUID = guid })

	for _, c := range []struct {
		name string
		a, b anvil.Session
		same bool
	}{
		{"2.3 same record", base23, with(base23, func(s *anvil.Session) { s.Connections = 3 }), true},
		{"2.3 same pid, other user", base23, with(base23, func(s *anvil.Session) { s.User = "bob" }), false},
		{"2.3 same pid, other service", base23, with(base23, func(s *anvil.Session) { s.Service = "pop3" }), false},
		{"2.3 same pid, other IP", base23, with(base23, func(s *anvil.Session) { s.IP = ip("192.0.2.2") }), false},
		{"2.3 same pid, no IP", base23, with(base23, func(s *anvil.Session) { s.IP = netip.Addr{} }), false},
		{"2.3 other pid", base23, with(base23, func(s *anvil.Session) { s.PID = 43 }), false},
		{"2.3 IPv4 and IPv4-mapped IPv6", base23, with(base23, func(s *anvil.Session) { s.IP = ip("::ffff:192.0.2.1") }), false},
		{"2.3 zone matters",
			with(base23, func(s *anvil.Session) { s.IP = ip("fe80::1%eth0") }),
			with(base23, func(s *anvil.Session) { s.IP = ip("fe80::1%eth1") }), false},
		{"2.3 zone or none",
			with(base23, func(s *anvil.Session) { s.IP = ip("fe80::1%eth0") }),
			with(base23, func(s *anvil.Session) { s.IP = ip("fe80::1") }), false},
		{"2.4 GUID decides, not the fields", base24, anvil.Session{ConnGUID: guid, PID: 7, Service: "pop3", User: "bob"}, true},
		{"2.4 other GUID, same fields", base24, with(base24, func(s *anvil.Session) { s.ConnGUID = strings.Repeat("f", 32) }), false},
		{"2.4 GUID case matters", base24, with(base24, func(s *anvil.Session) { s.ConnGUID = strings.ToUpper(guid) }), false},
		{"GUID or none", base23, base24, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := &c.a, &c.b
			if got := a.SameID(b); got != c.same {
				t.Errorf("SameID = %v, want %v", got, c.same)
			}
			if got := b.SameID(a); got != c.same {
				t.Errorf("SameID (swapped) = %v, want %v", got, c.same)
			}
			if got := a.Key() == b.Key(); got != c.same {
				t.Errorf("Key equal = %v, want %v", got, c.same)
			}
			if got := a.ID() == b.ID(); got != c.same {
				t.Errorf("ID equal = %v (%q, %q), want %v", got, a.ID(), b.ID(), c.same)
			}
			seed := maphash.MakeSeed()
			if got := a.IDHash(seed) == b.IDHash(seed); got != c.same {
				t.Errorf("IDHash equal = %v, want %v", got, c.same)
			}
		})
	}
}

func TestIDText(t *testing.T) {
	for _, c := range []struct {
		s    anvil.Session
		want string
	}{
		{anvil.Session{PID: 42, Service: "imap", IP: ip("192.0.2.1"), User: "a@example.com"}, "42/imap/192.0.2.1/a@example.com"},
		{anvil.Session{PID: 7, Service: "lmtp", User: "b/c d"}, "7/lmtp//b/c d"},
		{anvil.Session{PID: 3, Service: "imap", IP: ip("fe80::1%eth0"), User: "x"}, "3/imap/fe80::1%eth0/x"},
		{anvil.Session{PID: 3, Service: "imap", IP: ip("::ffff:192.0.2.9"), User: "ü"}, "3/imap/::ffff:192.0.2.9/ü"},
		{anvil.Session{PID: 9, ConnGUID: guid, Service: "imap", User: "u"}, guid},
	} {
		if got := c.s.ID(); got != c.want {
			t.Errorf("ID = %q, want %q", got, c.want)
		}
		if got := string(c.s.AppendID([]byte("junk"))); got != "junk"+c.want {
			t.Errorf("AppendID = %q, want %q", got, "junk"+c.want)
		}
	}
}

func TestContent(t *testing.T) {
	names := []string{"user_alias", "user_ext"}
	a := anvil.Session{PID: 1, Service: "imap", User: "u", ConnGUID: guid, IP: ip("2001:db8::1"), Connections: 1}
	a.SetAlt(names, []string{"x", "y"})
	seed := maphash.MakeSeed()

	// The same alt fields in another header order: the same content.
	b := a
	b.SetAlt([]string{"user_ext", "user_alias"}, []string{"y", "x"})
	if !a.SameContent(&b) || a.ContentHash(seed) != b.ContentHash(seed) {
		t.Errorf("alt order changed the content")
	}
	for name, f := range map[string]func(*anvil.Session){
		"alt value":   func(s *anvil.Session) { s.SetAlt(names, []string{"x", "z"}) },
		"alt dropped": func(s *anvil.Session) { s.SetAlt(names, []string{"x"}) },
		"dest IP":     func(s *anvil.Session) { s.DestIP = ip("10.0.0.1") },
		"refcount":    func(s *anvil.Session) { s.Connections = 2 },
		"zone":        func(s *anvil.Session) { s.IP = ip("2001:db8::1%eth0") },
		"user":        func(s *anvil.Session) { s.User = "v" },
	} {
		c := a
		f(&c)
		if a.SameContent(&c) || a.ContentHash(seed) == c.ContentHash(seed) {
			t.Errorf("%s: a changed session has the same content", name)
		}
		if !a.SameID(&c) {
			t.Errorf("%s: a content change changed the 2.4 identity", name)
		}
	}
}

// Over generated snapshots of both generations, the forms of identity agree
// pairwise, and every session is its own identity and content.
func TestIdentityFormsAgree(t *testing.T) {
	ss := append(anviltest.Sessions23(300), anviltest.Sessions24(300)...)
	// Records that differ from a neighbour only in what identity ignores,
	// or only in what it includes.
	for i := range 50 {
		s := ss[i]
		s.Connections++
		ss = append(ss, s)
		s = ss[300+i]
		s.User += "x"
		ss = append(ss, s)
		s = ss[i]
		s.User += "x"
		ss = append(ss, s)
	}
	seed := maphash.MakeSeed()
	for i := range ss {
		a := &ss[i]
		if !a.SameID(a) || !a.SameContent(a) {
			t.Fatalf("session %d is not itself", i)
		}
		for j := range ss {
			b := &ss[j]
			same := a.SameID(b)
			if (a.Key() == b.Key()) != same || (a.ID() == b.ID()) != same {
				t.Fatalf("sessions %d, %d: SameID %v, Key %v, ID %v", i, j, same, a.Key() == b.Key(), a.ID() == b.ID())
			}
			if same && a.IDHash(seed) != b.IDHash(seed) {
				t.Fatalf("sessions %d, %d: same identity, different IDHash", i, j)
			}
			if a.SameContent(b) && (!same || a.ContentHash(seed) != b.ContentHash(seed)) {
				t.Fatalf("sessions %d, %d: same content, different identity or ContentHash", i, j)
			}
		}
	}
}

func TestIDAllocs(t *testing.T) {
	s23 := anviltest.Sessions23(1)[0]
	s24 := anviltest.Sessions24(1)[0]
	if n := testing.AllocsPerRun(100, func() { _ = s24.ID() }); n != 0 {
		t.Errorf("ID on 2.4 allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = s23.ID() }); n > 1 {
		t.Errorf("ID on 2.3 allocates %v times, want 1", n)
	}
	buf := make([]byte, 0, 128)
	seed := maphash.MakeSeed()
	if n := testing.AllocsPerRun(100, func() {
		_ = s23.AppendID(buf[:0])
		_, _ = s23.IDHash(seed), s24.IDHash(seed)
		_, _ = s23.ContentHash(seed), s24.ContentHash(seed)
	}); n != 0 {
		t.Errorf("AppendID, IDHash, ContentHash allocate %v times", n)
	}
}
