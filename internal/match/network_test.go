package match

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/kickagent/kickagent/internal/match/dovecotref"
)

func TestParseNetwork(t *testing.T) {
	tests := []struct {
		in   string
		want string // canonical form; "" with refused/notAddr
		// refused: ErrNotCanonical; notAddr: no address at all.
		refused, notAddr bool
	}{
		{in: "127.0.0.1", want: "127.0.0.1/32"},
		{in: "10.1.2.3/8", want: "10.0.0.0/8"},
		{in: "127.000.000.002", want: "127.0.0.2/32"}, // decimal, as net_addr2ip_inet4_fast
		{in: "010.0.0.1", want: "10.0.0.1/32"},        // decimal too (inet_aton would say 8.0.0.1)
		{in: "10.0.0.0/08", want: "10.0.0.0/8"},       // str_to_uint allows leading zeros
		{in: "::1", want: "::1/128"},
		{in: "[::1]", want: "::1/128"},
		{in: "[2001:db8::1]/64", want: "2001:db8::/64"},
		{in: "2001:DB8::1", want: "2001:db8::1/128"},
		{in: "fe80::/10", want: "fe80::/10"},
		{in: "fe80::1%lo", want: "fe80::1%lo/128"},
		{in: "fe80::1%1", want: "fe80::1%1/128"},
		{in: "2001:db8::1%7/64", want: "2001:db8::%7/64"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "127.2", refused: true},
		{in: "0x7f.0.0.2", refused: true},
		{in: "0177.0.0.1", want: "177.0.0.1/32"}, // decimal in doveadm too
		{in: "10/8", refused: true},
		{in: "08/0", refused: true}, // 2.3: 0.0.0.8/0; 2.4: a user mask
		{in: "0x7f000001", refused: true},
		{in: "::ffff:10.0.0.0/120", refused: true},
		{in: "::ffff:127.0.0.1", refused: true},
		{in: "fe80::1%nosuch0", refused: true},
		{in: "2001:db8::1%lo", refused: true}, // a name only for link-local
		{in: "fe80::1%", refused: true},
		{in: "1.2.3.4/33", refused: true},
		{in: "1.2.3.4/", refused: true},
		{in: "1.2.3.4/+8", refused: true},
		{in: "::1/129", refused: true},
		{in: "1.2.3.4.5", refused: true},
		{in: "1.2.3.256", refused: true},
		{in: "2001:db8::g", notAddr: true},
		{in: "[127.0.0.1]", notAddr: true},
		{in: "alice", notAddr: true},
		{in: "alice/8", notAddr: true},
		{in: "", notAddr: true},
	}
	for _, tc := range tests {
		n, err := ParseNetwork(tc.in)
		switch {
		case tc.refused:
			if !errors.Is(err, ErrNotCanonical) {
				t.Errorf("ParseNetwork(%q) = %v, %v; want refused", tc.in, n, err)
			}
		case tc.notAddr:
			if err == nil || errors.Is(err, ErrNotCanonical) {
				t.Errorf("ParseNetwork(%q) = %v, %v; want not an address", tc.in, n, err)
			}
		case err != nil:
			t.Errorf("ParseNetwork(%q): %v", tc.in, err)
		case n.String() != tc.want:
			t.Errorf("ParseNetwork(%q) = %s, want %s", tc.in, n, tc.want)
		}
	}
}

func TestRefusalSaysWhatDoveadmReads(t *testing.T) {
	_, err := ParseNetwork("127.2")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.2") {
		t.Fatalf("127.2: %v", err)
	}
	_, err = ParseNetwork("::ffff:10.0.0.0/120")
	if err == nil || !strings.Contains(err.Error(), "10.0.0.0/24") {
		t.Fatalf("mapped: %v", err)
	}
}

func TestContains(t *testing.T) {
	tests := []struct {
		ip, network string
		want        bool
	}{
		{"127.0.0.2", "127.0.0.0/8", true},
		{"::ffff:127.0.0.2", "127.0.0.0/8", true}, // IPv4-mapped is IPv4
		{"128.0.0.1", "127.0.0.0/8", false},
		{"10.1.2.3", "10.9.9.9/8", true}, // host bits of the network ignored
		{"192.0.2.1", "192.0.2.1/32", true},
		{"192.0.2.2", "192.0.2.1/32", false},
		{"192.0.2.1", "::/0", false},        // IPv4 never in an IPv6 network
		{"2001:db8::1", "0.0.0.0/0", false}, // nor the reverse
		{"2001:db8::1", "2001:db8::/32", true},
		{"2001:db9::1", "2001:db8::/32", false},
		{"", "0.0.0.0/0", false}, // no IP matches nothing
		{"", "::/0", false},
		{"fe80::1%lo", "fe80::/10", true},  // a network without zone: every interface
		{"fe80::1%lo", "fe80::1%lo", true}, // same interface
		{"fe80::1%lo", "fe80::1%1", true},  // lo is index 1
		{"fe80::1", "fe80::1%lo", false},   // no zone is not lo
		{"fe80::1%2", "fe80::1%lo", false}, // another interface
		{"fe80::1%lo", "fe80::1%0", true},  // index 0 restricts nothing
		{"fe80::2%lo", "fe80::1%lo/127", false},
	}
	for _, tc := range tests {
		var ip netip.Addr
		if tc.ip != "" {
			ip = netip.MustParseAddr(tc.ip)
		}
		n, err := ParseNetwork(tc.network)
		if err != nil {
			t.Fatalf("%s: %v", tc.network, err)
		}
		if got := n.Contains(ip); got != tc.want {
			t.Errorf("%s in %s = %v, want %v", tc.ip, tc.network, got, tc.want)
		}
	}
	// A mapped network, which the parser refuses, would match nothing.
	mapped := Network{Prefix: netip.MustParsePrefix("::ffff:0:0/96")}
	if mapped.Contains(netip.MustParseAddr("::ffff:127.0.0.2")) || mapped.Contains(netip.MustParseAddr("127.0.0.2")) {
		t.Error("a mapped network matched")
	}
}

func TestSameDest(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	if !SameDest(a("10.0.0.2"), a("10.0.0.2")) || !SameDest(a("fe80::1%lo"), a("fe80::1")) {
		t.Error("equal destinations differ")
	}
	// doveadm's net_ip_compare: a mapped address is not its IPv4 form.
	if SameDest(a("::ffff:127.0.0.1"), a("127.0.0.1")) || SameDest(netip.Addr{}, a("127.0.0.1")) {
		t.Error("different destinations equal")
	}
}

// checkAgainstDovecot asserts the parser against Dovecot's own reading of
// s (2.4.1 on this host's C library; 2.3.19.1 for IPv4 text):
//   - accepted: Dovecot reads the same address, bits and interface;
//   - "not an address" (a user mask for who/kick): Dovecot does not read
//     an address either, so no argument is a mask here and a network there;
//   - refused: allowed either way (a refusal never widens a selection).
func checkAgainstDovecot(t *testing.T, s string) {
	n, isNet, err := ClassifyArg(s)
	if err == nil && !isNet {
		// A user mask here; doveadm must not read a network.
		if !isDigits(s) {
			_, err = ParseNetwork(s)
		}
	}
	ref, refOK := dovecotref.ParseRange24(s)
	ref23, ref23OK := dovecotref.ParseRange23(s)
	switch {
	case err == nil && !isNet:
		// all digits: a mask in doveadm too
	case err == nil:
		if !refOK {
			t.Fatalf("%q: accepted as %s, Dovecot 2.4 reads no address", s, n)
		}
		if ref.Addr != n.Prefix.Addr() || ref.Bits != n.Bits() {
			t.Fatalf("%q: %s, Dovecot 2.4 reads %s/%d", s, n, ref.Addr, ref.Bits)
		}
		if idx, _ := zoneIndex(n.Zone); idx != ref.Scope {
			t.Fatalf("%q: zone %q (index %d), Dovecot reads scope %d", s, n.Zone, idx, ref.Scope)
		}
		if n.Zone == "" && (!ref23OK || ref23 != ref) {
			t.Fatalf("%q: %s, Dovecot 2.3 reads %v %v", s, n, ref23, ref23OK)
		}
	case errors.Is(err, ErrNotCanonical):
	default:
		if refOK || ref23OK {
			t.Fatalf("%q: not an address (%v), Dovecot reads %v (2.4 %v, 2.3 %v)", s, err, ref, refOK, ref23OK)
		}
	}
	// The refusal message's reading of old-style IPv4 text is inet_aton's.
	// (C strings end at NUL; no argument holds one.)
	if !strings.ContainsAny(s, ":/\x00") {
		mine, ok := inetAton(s)
		ca, cok := dovecotref.InetAton(s)
		if ok != cok || ok && netip.AddrFrom4([4]byte{byte(mine >> 24), byte(mine >> 16), byte(mine >> 8), byte(mine)}) != ca {
			t.Fatalf("inet_aton(%q): mine %v %v, C %v %v", s, mine, ok, ca, cok)
		}
	}
}

var networkSeeds = []string{
	"127.0.0.1", "127.000.000.002", "127.2", "0x7f.0.0.2", "0177.0.0.1", "10/8", "1.2.3.4/33",
	"::1", "[::1]/64", "fe80::1%lo", "fe80::1%1", "fe80::1%nosuch0", "::ffff:10.0.0.0/120",
	"2001:db8::/32", "2001:DB8::1", "1.2.3.4 x", "0x", "0x.1", "4294967295", "1.16777215",
	"08.1.1.1", "[127.0.0.1]", "::ffff:1.2.3.4", "1::2::3", "fe80::1%", "ff02::1%lo",
	"::/0", "0.0.0.0/000", "1.2.3.4/", "alice", "", "08/0", "4294967296/8",
}

func TestParseNetworkAgainstDovecot(t *testing.T) {
	for _, s := range networkSeeds {
		checkAgainstDovecot(t, s)
	}
}

func FuzzParseNetwork(f *testing.F) {
	for _, s := range networkSeeds {
		f.Add(s)
	}
	f.Fuzz(checkAgainstDovecot)
}
