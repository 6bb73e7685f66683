package testrig

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	in := `# comment
KA_NAME='v24'
KA_VERSION=2.4
export KA_DIR="/x/y \"q\" \$z"
KA_BACKEND=''
KA_IMAP_PORT='31343'
KA_POP3_PORT='31310'
KA_ANVIL='/x/run/anvil'
KA_DOVEADM='chroot /x/trixie doveadm -c /ka/v24/dovecot.conf'

`
	env, err := ParseEnv(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if env["KA_NAME"] != "v24" || env["KA_VERSION"] != "2.4" || env["KA_BACKEND"] != "" {
		t.Errorf("env = %q", env)
	}
	if got := env["KA_DIR"]; got != `/x/y "q" $z` {
		t.Errorf("KA_DIR = %q", got)
	}
	inst, err := instanceFromEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	if !inst.Is24() || inst.IMAPPort != 31343 || len(inst.DoveadmCmd) != 5 || inst.DoveadmCmd[0] != "chroot" {
		t.Errorf("instance = %+v", inst)
	}
	for _, bad := range []string{"NOEQUALS", "K='unterminated", "K=a b", `K="x"y"`, "=v"} {
		if _, err := ParseEnv(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseEnv(%q): no error", bad)
		}
	}
}

func TestIMAPQuote(t *testing.T) {
	for in, want := range map[string]string{
		"alice":    `"alice"`,
		"john doe": `"john doe"`,
		`a"b\c`:    `"a\"b\\c"`,
		"":         `""`,
	} {
		if got, err := IMAPQuote(in); err != nil || got != want {
			t.Errorf("IMAPQuote(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := IMAPQuote("a\r\nb"); err == nil {
		t.Error("IMAPQuote accepted CRLF")
	}
}

func TestTabEscape(t *testing.T) {
	if got := TabEscape("a\tb\x01c\nd\re\x00"); got != "a\x01tb\x011c\x01nd\x01re\x010" {
		t.Errorf("TabEscape = %q", got)
	}
	if got := TabEscape("plain user"); got != "plain user" {
		t.Errorf("TabEscape = %q", got)
	}
}

func TestConnectLine(t *testing.T) {
	s := SyntheticSession{User: "a\tb", Service: "imap", IP: netip.MustParseAddr("2001:db8::1"), PID: MinSyntheticPID,
		GUID: "0123456789abcdef0123456789abcdef", DestIP: netip.MustParseAddr("10.0.0.1"),
		Alt: []AltField{{"user_alt", "x\ty"}, {"user_ext", "e"}}}
	got, err := connectLine(true, &s)
	want := "CONNECT\t0123456789abcdef0123456789abcdef\t4194305\ta\x01tb\timap\t2001:db8::1\tN\t10.0.0.1\t" +
		"user_alt\x01tx\x011ty\x01tuser_ext\x01te\n"
	if err != nil || got != want {
		t.Errorf("2.4 line = %q, %v\nwant %q", got, err, want)
	}
	if _, err := connectLine(false, &s); err == nil {
		t.Error("2.3 accepted dest_ip/alt")
	}
	s23 := StripFor23([]SyntheticSession{s})[0]
	if got, err := connectLine(false, &s23); err != nil || got != "CONNECT\t1000000000\timap/2001:db8::1/a\x01tb\n" {
		t.Errorf("2.3 line = %q, %v", got, err)
	}
	s.PID = 4194304
	if _, err := connectLine(true, &s); err == nil {
		t.Error("accepted pid 4194304")
	}
	s.PID, s.GUID = MinSyntheticPID, strings.Repeat("0", 32)
	if _, err := connectLine(true, &s); err == nil {
		t.Error("accepted all-zero GUID")
	}
}

func TestSyntheticMix(t *testing.T) {
	a, b := SyntheticMix(20000, 7), SyntheticMix(20000, 7)
	users, services := map[string]int{}, map[string]int{}
	var v6, dest, alt int
	for i, s := range a {
		if s.User != b[i].User || s.GUID != b[i].GUID || s.PID != b[i].PID {
			t.Fatal("SyntheticMix is not deterministic")
		}
		if _, err := connectLine(true, &s); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		users[s.User]++
		services[s.Service]++
		if s.IP.Is6() {
			v6++
		}
		if s.DestIP.IsValid() {
			dest++
			if s.Service != "imap-login" {
				t.Errorf("dest_ip on %s", s.Service)
			}
		}
		if len(s.Alt) > 0 {
			alt++
		}
	}
	for _, s := range StripFor23(a) {
		if _, err := connectLine(false, &s); err != nil {
			t.Fatalf("2.3: %v", err)
		}
	}
	t.Logf("users=%d services=%v v6=%d dest=%d alt=%d", len(users), services, v6, dest, alt)
	if len(users) < 1000 || v6 < 1000 || dest < 500 || dest > 1500 || alt < 2000 || services["submission"] == 0 {
		t.Errorf("unrealistic mix: users=%d services=%v v6=%d dest=%d alt=%d", len(users), services, v6, dest, alt)
	}
}
