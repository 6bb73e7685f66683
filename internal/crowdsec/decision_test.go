package crowdsec

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/crowdsecurity/crowdsec/pkg/models"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// dec is a stream decision as the LAPI sends it.
func dec(id int64, typ, scope, value, duration string) *models.Decision {
	return &models.Decision{ID: id, Type: ptr(typ), Scope: ptr(scope), Value: ptr(value), Duration: ptr(duration),
		Origin: ptr("cscli"), Scenario: ptr("test")}
}

var banOnly = filter{types: []string{"ban"}}

func TestParseNew(t *testing.T) {
	tests := []struct {
		name      string
		in        *models.Decision
		wantScope Scope
		wantValue string
		wantUntil time.Duration
		wantSkip  skip
		wantErr   bool
	}{
		{"ipv4", dec(1, "ban", "Ip", "198.51.100.7", "4h"), ScopeIP, "198.51.100.7", 4 * time.Hour, "", false},
		{"scope case", dec(1, "ban", "IP", "198.51.100.7", "1m"), ScopeIP, "198.51.100.7", time.Minute, "", false},
		{"ipv6 canonical", dec(1, "ban", "Ip", "2001:DB8:0:0::1", "1m"), ScopeIP, "2001:db8::1", time.Minute, "", false},
		{"v4-mapped", dec(1, "ban", "Ip", "::ffff:192.0.2.9", "1m"), ScopeIP, "192.0.2.9", time.Minute, "", false},
		{"range masked", dec(1, "ban", "Range", "203.0.113.5/24", "1m"), ScopeRange, "203.0.113.0/24", time.Minute, "", false},
		{"range v6", dec(1, "ban", "range", "2001:db8:1:2::/48", "1m"), ScopeRange, "2001:db8:1::/48", time.Minute, "", false},
		{"range v4-mapped", dec(1, "ban", "Range", "::ffff:10.1.2.3/104", "1m"), ScopeRange, "10.0.0.0/8", time.Minute, "", false},
		{"username as sent", dec(1, "ban", "username", "Mallory@Example.com", "29m58.9s"), ScopeUsername, "Mallory@Example.com", 29*time.Minute + 58900*time.Millisecond, "", false},
		{"type case", dec(1, "BAN", "Ip", "192.0.2.1", "1m"), ScopeIP, "192.0.2.1", time.Minute, "", false},
		{"captcha ignored", dec(1, "captcha", "Ip", "192.0.2.1", "1m"), 0, "", 0, skipType, false},
		{"reset type not taken by default", dec(1, "kickagent-reset", "username", "alice", "24h"), 0, "", 0, skipType, false},
		{"country ignored", dec(1, "ban", "Country", "FR", "1m"), 0, "", 0, skipScope, false},
		{"expired", dec(1, "ban", "Ip", "192.0.2.1", "-3.5s"), 0, "", 0, skipExpired, false},
		{"zero left", dec(1, "ban", "Ip", "192.0.2.1", "0s"), 0, "", 0, skipExpired, false},
		{"bad ip", dec(1, "ban", "Ip", "192.0.2.300", "1m"), 0, "", 0, "", true},
		{"ip with zone", dec(1, "ban", "Ip", "fe80::1%eth0", "1m"), 0, "", 0, "", true},
		{"ip given as range", dec(1, "ban", "Ip", "192.0.2.0/24", "1m"), 0, "", 0, "", true},
		{"bad range", dec(1, "ban", "Range", "192.0.2.0/33", "1m"), 0, "", 0, "", true},
		{"range without bits", dec(1, "ban", "Range", "192.0.2.0", "1m"), 0, "", 0, "", true},
		{"empty user", dec(1, "ban", "username", "", "1m"), 0, "", 0, "", true},
		{"bad duration", dec(1, "ban", "Ip", "192.0.2.1", "4 hours"), 0, "", 0, "", true},
		{"no duration", &models.Decision{ID: 1, Type: ptr("ban"), Scope: ptr("Ip"), Value: ptr("192.0.2.1")}, 0, "", 0, "", true},
		{"until instead", &models.Decision{ID: 1, Type: ptr("ban"), Scope: ptr("Ip"), Value: ptr("192.0.2.1"),
			Until: t0.Add(time.Hour).Format(time.RFC3339)}, ScopeIP, "192.0.2.1", time.Hour, "", false},
		{"nil fields", &models.Decision{}, 0, "", 0, skipType, false},
		{"simulated", func() *models.Decision {
			d := dec(1, "ban", "Ip", "192.0.2.1", "1m")
			d.Simulated = ptr(true)
			return d
		}(),
			0, "", 0, skipSimulated, false},
		{"null", nil, 0, "", 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, sk, err := banOnly.parseNew(tt.in, t0)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errInvalid) {
				t.Errorf("err = %v, want errInvalid", err)
			}
			if sk != tt.wantSkip {
				t.Errorf("skip = %q, want %q", sk, tt.wantSkip)
			}
			if tt.wantErr || tt.wantSkip != "" {
				return
			}
			if d.Scope != tt.wantScope || d.Value != tt.wantValue || !d.Until.Equal(t0.Add(tt.wantUntil)) {
				t.Errorf("got %v %q until %v, want %v %q until %v", d.Scope, d.Value, d.Until, tt.wantScope, tt.wantValue, t0.Add(tt.wantUntil))
			}
		})
	}
}

func TestFoldASCII(t *testing.T) {
	for in, want := range map[string]string{"": "", "alice": "alice", "Mallory@Example.COM": "mallory@example.com",
		"ÄRGER": "Ärger", "straße": "straße"} {
		if got := foldASCII(in); got != want {
			t.Errorf("foldASCII(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScopeString(t *testing.T) {
	if ScopeIP.String() != "ip" || ScopeRange.String() != "range" || ScopeUsername.String() != "username" || Scope(9).String() != "scope(9)" {
		t.Error("scope names")
	}
}

// FuzzParse: no input panics; anything accepted round-trips to a valid,
// canonical target.
func FuzzParse(f *testing.F) {
	f.Add("Ip", "192.0.2.1", "1m")         // plain
	f.Add("Range", "203.0.113.5/24", "1h") // not masked as sent
	f.Add("Ip", "::ffff:1.2.3.4", "1s")    // mapped
	f.Add("Range", "::ffff:0:0/95", "1s")  // mapped, wider than IPv4
	f.Add("username", "\x00", "-1s")       // odd login, expired
	f.Add("", "", "")                      // empty
	f.Fuzz(func(t *testing.T, scope, value, duration string) {
		d, sk, err := banOnly.parseNew(dec(1, "ban", scope, value, duration), t0)
		if err != nil || sk != skipNone {
			return
		}
		switch d.Scope {
		case ScopeIP, ScopeRange:
			if !d.prefix.IsValid() || d.prefix != d.prefix.Masked() || d.prefix.Addr().Is4In6() {
				t.Fatalf("%q -> prefix %v not canonical", value, d.prefix)
			}
			if d.Scope == ScopeIP {
				if _, err := netip.ParseAddr(d.Value); err != nil {
					t.Fatalf("%q -> value %q", value, d.Value)
				}
			}
		case ScopeUsername:
			if d.user != foldASCII(value) {
				t.Fatalf("user key %q", d.user)
			}
		default:
			t.Fatalf("scope %v", d.Scope)
		}
		if !d.Until.After(t0) {
			t.Fatalf("until %v not after now", d.Until)
		}
	})
}
