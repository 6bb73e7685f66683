package match

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
)

func TestParse(t *testing.T) {
	tests := []struct {
		args    []string
		alt     string
		masks   []string
		network string // "" for none
		hasNet  bool
		err     bool
	}{
		{args: nil},
		{args: []string{"alice"}, masks: []string{"alice"}},
		{args: []string{"127.0.0.1"}, network: "127.0.0.1/32", hasNet: true},
		{args: []string{"10.0.0.0/8"}, network: "10.0.0.0/8", hasNet: true},
		{args: []string{"10.1.2.3/8"}, network: "10.0.0.0/8", hasNet: true}, // matching ignores host bits
		{args: []string{"::1"}, network: "::1/128", hasNet: true},
		{args: []string{"2001:db8::/32"}, network: "2001:db8::/32", hasNet: true},
		{args: []string{"[::1]"}, network: "::1/128", hasNet: true},
		{args: []string{"[::1]/64"}, network: "::/64", hasNet: true},
		{args: []string{"[127.0.0.1]"}, masks: []string{"[127.0.0.1]"}}, // brackets only around IPv6
		{args: []string{"12345"}, masks: []string{"12345"}},             // all digits: a user
		// Address-like text doveadm would take for a user mask is refused:
		// as a mask OR-ed with the others it would widen the selection.
		{args: []string{"1.2.3.4/33"}, err: true},
		{args: []string{"::1/129"}, err: true},
		{args: []string{"1.2.3.4/x"}, err: true},
		{args: []string{"1.2.3.4/+8"}, err: true},
		{args: []string{"1.2.3.4/"}, err: true},
		{args: []string{"fe80::1%nosuch0"}, err: true},
		// Old-style IPv4 text doveadm reads with inet_aton: refused.
		{args: []string{"alice", "127.2"}, err: true},
		{args: []string{"0x7f.0.0.2"}, err: true},
		{args: []string{"10/8"}, err: true},
		{args: []string{"::ffff:10.0.0.0/120"}, err: true}, // matches nothing in doveadm
		{args: []string{"alice", "127.000.000.002"}, masks: []string{"alice"}, network: "127.0.0.2/32", hasNet: true},
		{args: []string{"fe80::1%lo"}, network: "fe80::1%lo/128", hasNet: true},
		{args: []string{"fe80::/10"}, network: "fe80::/10", hasNet: true},
		{args: []string{"a/b"}, masks: []string{"a/b"}},
		{args: []string{"0.0.0.0/0"}, network: "0.0.0.0/0", hasNet: false},
		{args: []string{"::/0"}, network: "::/0", hasNet: false},
		{args: []string{"alice*", "192.0.2.0/24", "bob"}, masks: []string{"alice*", "bob"}, network: "192.0.2.0/24", hasNet: true},
		{args: []string{"10.0.0.0/8", "192.0.2.1"}, err: true}, // two networks
		// A network after a /0 replaces it, as in doveadm (net_bits 0).
		{args: []string{"0.0.0.0/0", "::/0"}, network: "::/0"},
		{args: []string{"0.0.0.0/0", "10.0.0.0/8"}, network: "10.0.0.0/8", hasNet: true},
		{args: []string{"10.0.0.0/8", "0.0.0.0/0"}, err: true},
		{args: []string{""}, masks: []string{""}}, // matches the empty username
		{args: []string{"alice"}, alt: "user_alias", masks: []string{"alice"}},
		{args: nil, alt: "user_alias", err: true},                    // -f without mask
		{args: []string{"10.0.0.0/8"}, alt: "user_alias", err: true}, // a network is no mask
	}
	for _, tc := range tests {
		f, err := Parse(tc.args, tc.alt)
		if tc.err {
			if !errors.Is(err, ErrUsage) {
				t.Errorf("Parse(%q, %q): err %v, want ErrUsage", tc.args, tc.alt, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q, %q): %v", tc.args, tc.alt, err)
			continue
		}
		if !slices.Equal(f.Masks, tc.masks) {
			t.Errorf("Parse(%q): masks %q, want %q", tc.args, f.Masks, tc.masks)
		}
		net := ""
		if f.Network.IsValid() {
			net = f.Network.String()
		}
		if net != tc.network || f.HasNetwork() != tc.hasNet {
			t.Errorf("Parse(%q): network %q (HasNetwork %v), want %q (%v)", tc.args, net, f.HasNetwork(), tc.network, tc.hasNet)
		}
		if f.AltField != tc.alt {
			t.Errorf("Parse(%q): AltField %q", tc.args, f.AltField)
		}
	}
}

func session(user, ip string) *anvil.Session {
	s := &anvil.Session{Service: "imap", User: user, PID: 1, Connections: 1}
	if ip != "" {
		s.IP = netip.MustParseAddr(ip)
	}
	return s
}

func mustParse(t *testing.T, alt string, args ...string) Filter {
	t.Helper()
	f, err := Parse(args, alt)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestMatch(t *testing.T) {
	names := []string{"user_alias", "user_ext"}
	withAlt := func(s *anvil.Session, values ...string) *anvil.Session {
		s.SetAlt(names, values)
		return s
	}
	alice := withAlt(session("alice", "192.0.2.10"), "ally", "a@ext")
	bob := withAlt(session("bob", "198.51.100.3"), "", "b@ext") // middle column empty
	carol := withAlt(session("carol", ""))                      // no alt columns, no IP
	dave := withAlt(session("dave", "::ffff:192.0.2.11"), "dd") // trailing column absent
	all := []*anvil.Session{alice, bob, carol, dave}

	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"zero filter", Filter{}, []string{"alice", "bob", "carol", "dave"}},
		{"mask", mustParse(t, "", "A*"), []string{"alice"}},
		{"masks are OR-ed", mustParse(t, "", "alice", "b?b"), []string{"alice", "bob"}},
		{"network", mustParse(t, "", "192.0.2.0/24"), []string{"alice", "dave"}},
		{"network and mask", mustParse(t, "", "d*", "192.0.2.0/24"), []string{"dave"}},
		{"/0 matches sessions without IP too", mustParse(t, "", "0.0.0.0/0"), []string{"alice", "bob", "carol", "dave"}},
		// doveadm who -1 -f: an empty column is a value, which '*' matches;
		// a column past the session's last one is not.
		{"alt field", mustParse(t, "user_alias", "*"), []string{"alice", "bob", "dave"}},
		{"empty alt column matches only all-star masks", mustParse(t, "user_alias", "?*"), []string{"alice", "dave"}},
		{"absent trailing alt column", mustParse(t, "user_ext", "*"), []string{"alice", "bob"}},
		{"alt field value", mustParse(t, "user_ext", "?@EXT"), []string{"alice", "bob"}},
		{"alt field exact", mustParse(t, "user_alias", "ally"), []string{"alice"}},
		{"alt field does not match login name", mustParse(t, "user_alias", "alice"), nil},
		{"unknown alt field", mustParse(t, "user_nope", "*"), nil},
	}
	for _, tc := range tests {
		var got []string
		for _, s := range all {
			if tc.f.Match(s) {
				got = append(got, s.User)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: matched %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMatchDestIP(t *testing.T) {
	backend := session("alice", "192.0.2.10")
	proxied := session("alice", "192.0.2.10")
	proxied.Service, proxied.DestIP = "imap-login", netip.MustParseAddr("10.0.0.5")
	mapped := session("bob", "192.0.2.11")
	mapped.Service, mapped.DestIP = "imap-login", netip.MustParseAddr("::ffff:10.0.0.5")
	other := session("carol", "192.0.2.12")
	other.Service, other.DestIP = "imap-login", netip.MustParseAddr("10.0.0.6")
	zoned := session("dave", "fe80::9%lo")
	zoned.Service, zoned.DestIP = "imap-login", netip.MustParseAddr("fe80::5%lo")

	// net_ip_compare ignores scope ids, on either side.
	for _, dest := range []string{"fe80::5", "fe80::5%eth0", "fe80::5%lo"} {
		if f := (Filter{DestIP: netip.MustParseAddr(dest)}); !f.Match(zoned) || f.Match(proxied) {
			t.Errorf("DestIP %s vs fe80::5%%lo: no match", dest)
		}
	}
	f := Filter{DestIP: netip.MustParseAddr("10.0.0.5")}
	// doveadm 2.4.1 kick -h compares exactly (net_ip_compare): the mapped
	// form of a destination is another address.
	for s, want := range map[*anvil.Session]bool{backend: false, proxied: true, mapped: false, other: false, zoned: false} {
		if got := f.Match(s); got != want {
			t.Errorf("DestIP 10.0.0.5 vs %s %s: %v, want %v", s.User, s.DestIP, got, want)
		}
	}
	if f.IsZero() {
		t.Error("IsZero with DestIP")
	}
	f.Masks = []string{"bob"}
	f.DestIP = netip.MustParseAddr("::ffff:10.0.0.5")
	if f.Match(proxied) || !f.Match(mapped) {
		t.Error("DestIP and mask are not AND-ed")
	}
}

func TestIsZero(t *testing.T) {
	for args, want := range map[string]bool{"": true, "alice": false, "0.0.0.0/0": true, "10.0.0.0/8": false} {
		var a []string
		if args != "" {
			a = []string{args}
		}
		f := mustParse(t, "", a...)
		if got := f.IsZero(); got != want {
			t.Errorf("IsZero(%q) = %v, want %v", args, got, want)
		}
	}
}

func TestMatchName(t *testing.T) {
	f := Filter{}
	if !f.MatchName("") || !f.MatchName("x") {
		t.Error("no masks must match every name")
	}
	f.Masks = []string{"a*", "b"}
	if !f.MatchName("A1") || !f.MatchName("B") || f.MatchName("c") || f.MatchName("") {
		t.Error("MatchName")
	}
}
