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
		{args: []string{"10.1.2.3/8"}, network: "10.1.2.3/8", hasNet: true}, // host bits kept; matching masks them
		{args: []string{"::1"}, network: "::1/128", hasNet: true},
		{args: []string{"2001:db8::/32"}, network: "2001:db8::/32", hasNet: true},
		{args: []string{"[::1]"}, network: "::1/128", hasNet: true},
		{args: []string{"[::1]/64"}, network: "::1/64", hasNet: true},
		{args: []string{"[127.0.0.1]"}, masks: []string{"[127.0.0.1]"}}, // brackets only around IPv6
		{args: []string{"12345"}, masks: []string{"12345"}},             // all digits: a user
		{args: []string{"1.2.3.4/33"}, masks: []string{"1.2.3.4/33"}},   // bits out of range: a user
		{args: []string{"::1/129"}, masks: []string{"::1/129"}},
		{args: []string{"1.2.3.4/x"}, masks: []string{"1.2.3.4/x"}},
		{args: []string{"1.2.3.4/+8"}, masks: []string{"1.2.3.4/+8"}},
		{args: []string{"1.2.3.4/"}, masks: []string{"1.2.3.4/"}},
		{args: []string{"fe80::1%eth0"}, masks: []string{"fe80::1%eth0"}},
		{args: []string{"0.0.0.0/0"}, network: "0.0.0.0/0", hasNet: false},
		{args: []string{"::/0"}, network: "::/0", hasNet: false},
		{args: []string{"alice*", "192.0.2.0/24", "bob"}, masks: []string{"alice*", "bob"}, network: "192.0.2.0/24", hasNet: true},
		{args: []string{"10.0.0.0/8", "192.0.2.1"}, err: true}, // two networks
		{args: []string{"0.0.0.0/0", "::/0"}, err: true},       // even if both are /0
		{args: []string{""}, err: true},
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

func TestInNetwork(t *testing.T) {
	tests := []struct {
		ip, network string
		want        bool
	}{
		{"127.0.0.2", "127.0.0.0/8", true},
		{"::ffff:127.0.0.2", "127.0.0.0/8", true}, // IPv4-mapped is IPv4
		{"::ffff:127.0.0.2", "::ffff:0:0/96", false},
		{"128.0.0.1", "127.0.0.0/8", false},
		{"10.1.2.3", "10.9.9.9/8", true}, // host bits of the network ignored
		{"192.0.2.1", "192.0.2.1/32", true},
		{"192.0.2.2", "192.0.2.1/32", false},
		{"192.0.2.1", "::/0", false},        // IPv4 never in an IPv6 network
		{"2001:db8::1", "0.0.0.0/0", false}, // nor the reverse
		{"2001:db8::1", "2001:db8::/32", true},
		{"2001:db9::1", "2001:db8::/32", false},
		{"fe80::1%lo", "fe80::/10", true}, // a zone: net_is_in_network allows a network without one
		{"fe80::1%2", "fe80::1/128", true},
		{"", "0.0.0.0/0", false}, // no IP matches nothing
		{"", "::/0", false},
	}
	for _, tc := range tests {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		if got := InNetwork(ip, netip.MustParsePrefix(tc.network)); got != tc.want {
			t.Errorf("InNetwork(%s, %s) = %v, want %v", tc.ip, tc.network, got, tc.want)
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
	for s, want := range map[*anvil.Session]bool{backend: false, proxied: true, mapped: true, other: false, zoned: false} {
		if got := f.Match(s); got != want {
			t.Errorf("DestIP 10.0.0.5 vs %s %s: %v, want %v", s.User, s.DestIP, got, want)
		}
	}
	if f.IsZero() {
		t.Error("IsZero with DestIP")
	}
	f.Masks = []string{"bob"}
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
