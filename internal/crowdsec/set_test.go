package crowdsec

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crowdsecurity/crowdsec/pkg/models"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is a settable time source.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// mustSource makes a Source that is never Run: tests feed it responses.
func mustSource(tb testing.TB, c *clock, reg prometheus.Registerer, changes *int) *Source {
	tb.Helper()
	key := filepath.Join(tb.TempDir(), "key")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	cfg := Config{URL: "http://127.0.0.1:1/", KeyFile: key, Now: c.Now}
	if changes != nil {
		cfg.OnChange = func() { *changes++ }
	}
	s, err := New(cfg, reg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func resp(news, deleted []*models.Decision) *models.DecisionsStreamResponse {
	return &models.DecisionsStreamResponse{New: news, Deleted: deleted}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestBlocksFollowDecisions(t *testing.T) {
	c := &clock{t0}
	changes := 0
	s := mustSource(t, c, nil, &changes)
	if _, ok := s.Blocked(addr("198.51.100.7")); ok || s.Revision() != 0 || !s.LastPull().IsZero() {
		t.Fatal("a new Source blocks something")
	}
	s.pulled(resp([]*models.Decision{
		dec(1, "ban", "Ip", "198.51.100.7", "4h"),
		dec(2, "ban", "Range", "203.0.113.5/24", "1m"),
		dec(3, "ban", "username", "Mallory@Example.com", "30m"),
		dec(4, "ban", "Ip", "2001:db8::7", "1h"),
		dec(5, "ban", "Range", "2001:db8:1::/48", "1h"),
		dec(6, "captcha", "Ip", "192.0.2.66", "1h"),
	}, nil))
	if s.Revision() != 1 || changes != 1 || !s.LastPull().Equal(t0) {
		t.Fatalf("rev %d changes %d lastPull %v", s.Revision(), changes, s.LastPull())
	}
	for _, tc := range []struct {
		ip   string
		want int64 // decision id, 0: not blocked
	}{
		{"198.51.100.7", 1}, {"::ffff:198.51.100.7", 1}, {"198.51.100.8", 0},
		{"203.0.113.0", 2}, {"203.0.113.255", 2}, {"203.0.114.1", 0},
		{"2001:db8::7", 4}, {"2001:db8::7%eth0", 4}, {"2001:db8::8", 0},
		{"2001:db8:1:ffff::1", 5}, {"2001:db8:2::1", 0},
		{"192.0.2.66", 0}, // captcha is not a ban
	} {
		d, ok := s.Blocked(addr(tc.ip))
		if ok != (tc.want != 0) || d.ID != tc.want {
			t.Errorf("Blocked(%s) = %d %v, want %d", tc.ip, d.ID, ok, tc.want)
		}
	}
	if _, ok := s.Blocked(netip.Addr{}); ok {
		t.Error("the zero Addr is blocked")
	}
	for _, u := range []string{"mallory@example.com", "MALLORY@EXAMPLE.COM", "Mallory@Example.com"} {
		if d, ok := s.UserBlocked(u); !ok || d.ID != 3 || d.Value != "Mallory@Example.com" || d.Origin != "cscli" || d.Scenario != "test" {
			t.Errorf("UserBlocked(%q) = %+v %v", u, d, ok)
		}
	}
	for _, u := range []string{"mallory", "", "mallory@example.com "} {
		if _, ok := s.UserBlocked(u); ok {
			t.Errorf("UserBlocked(%q)", u)
		}
	}

	// The range's minute passes: lookups stop at once, Expire drops it.
	c.now = t0.Add(time.Minute)
	if _, ok := s.Blocked(addr("203.0.113.9")); ok {
		t.Error("expired range still blocks")
	}
	if n := s.Expire(c.now); n != 1 || s.Revision() != 2 || changes != 2 {
		t.Errorf("Expire = %d, rev %d, changes %d", n, s.Revision(), changes)
	}
	if n := s.Expire(c.now); n != 0 || s.Revision() != 2 {
		t.Errorf("second Expire = %d, rev %d", n, s.Revision())
	}

	// Deletion lifts; the same deletion again, and deletions of unknown
	// decisions, change nothing.
	del := []*models.Decision{dec(1, "ban", "Ip", "198.51.100.7", "-1s")}
	s.pulled(resp(nil, del))
	if _, ok := s.Blocked(addr("198.51.100.7")); ok || s.Revision() != 3 {
		t.Fatalf("deleted ip still blocked (rev %d)", s.Revision())
	}
	for i := 0; i < 3; i++ {
		s.pulled(resp(nil, append(del, dec(99, "ban", "Ip", "192.0.2.99", "-1s"), nil, dec(98, "ban", "Ip", "not an ip", "-1s"))))
	}
	if s.Revision() != 3 || changes != 3 {
		t.Errorf("repeated deletions changed rev to %d (changes %d)", s.Revision(), changes)
	}
	// A repeated add (a minute on, a minute less left) changes nothing either.
	s.pulled(resp([]*models.Decision{dec(3, "ban", "username", "Mallory@Example.com", "29m0.5s")}, nil))
	if s.Revision() != 3 {
		t.Errorf("repeated add bumped rev to %d", s.Revision())
	}
	if v := s.View(); v.Len() != 3 || v.Count(ScopeIP) != 1 || v.Count(ScopeRange) != 1 || v.Count(ScopeUsername) != 1 {
		t.Errorf("held %d: %d %d %d", v.Len(), v.Count(ScopeIP), v.Count(ScopeRange), v.Count(ScopeUsername))
	}
}

// The LAPI streams one decision per (type, scope, value): the one that
// ends last, and a deletion once none is left. Observed with 1.4.6: ban
// 192.0.2.50 for 1h (id 16) and 2h (id 17): only 17 is sent; deleting 17
// sends nothing (16 still holds); 16's end sends 16's deletion, which must
// lift the block although 17 was the one held.
func TestOneEntryPerTypeScopeValue(t *testing.T) {
	c := &clock{t0}
	s := mustSource(t, c, nil, nil)
	s.pulled(resp([]*models.Decision{dec(17, "ban", "Ip", "192.0.2.50", "2h")}, nil))
	c.now = t0.Add(time.Hour)
	s.pulled(resp(nil, []*models.Decision{dec(16, "ban", "Ip", "192.0.2.50", "-0.5s")}))
	if d, ok := s.Blocked(addr("192.0.2.50")); ok {
		t.Errorf("still blocked by %d after the LAPI deleted the last decision", d.ID)
	}
	// A newer, longer decision for the key replaces the held one.
	s.pulled(resp([]*models.Decision{dec(20, "ban", "Ip", "192.0.2.51", "1h")}, nil))
	s.pulled(resp([]*models.Decision{dec(21, "ban", "Ip", "192.0.2.51", "3h")}, nil))
	if d, _ := s.Blocked(addr("192.0.2.51")); d.ID != 21 || s.View().Len() != 1 {
		t.Errorf("held %d (%d entries), want 21 alone", d.ID, s.View().Len())
	}
	// Keys are the LAPI's exact strings: another type, or another spelling
	// of the value, is another decision; the View still merges them.
	s.pulled(resp([]*models.Decision{dec(30, "ban", "username", "Bob", "1h"), dec(31, "ban", "username", "BOB", "2h"),
		dec(32, "kickagent-reset", "username", "Bob", "2h")}, nil))
	if d, ok := s.UserBlocked("bob"); !ok || d.ID != 31 {
		t.Errorf("UserBlocked(bob) = %d %v, want the longer 31", d.ID, ok)
	}
	s.pulled(resp(nil, []*models.Decision{dec(31, "ban", "username", "BOB", "-1s")}))
	if d, ok := s.UserBlocked("BoB"); !ok || d.ID != 30 {
		t.Errorf("after deleting BOB: %d %v, want Bob's 30", d.ID, ok)
	}
}

// Overlapping networks: the longest prefix in force answers.
func TestOverlappingRanges(t *testing.T) {
	c := &clock{t0}
	s := mustSource(t, c, nil, nil)
	s.pulled(resp([]*models.Decision{
		dec(10, "ban", "Ip", "192.0.2.1", "1h"),
		dec(12, "ban", "Range", "192.0.2.0/24", "3h"),
		dec(13, "ban", "Range", "192.0.0.0/16", "4h"),
		dec(14, "ban", "Range", "192.0.2.1/24", "2h"), // same network, spelt otherwise
	}, nil))
	for _, step := range []struct {
		at   time.Duration
		want int64
	}{{0, 10}, {90 * time.Minute, 12}, {150 * time.Minute, 12}, {210 * time.Minute, 13}, {5 * time.Hour, 0}} {
		c.now = t0.Add(step.at)
		if d, ok := s.Blocked(addr("192.0.2.1")); d.ID != step.want || ok != (step.want != 0) {
			t.Errorf("at +%v: %d %v, want %d", step.at, d.ID, ok, step.want)
		}
	}
}

// A deletion naming another value lifts nothing, and deletions come before
// additions within one response.
func TestDeletionsMatchTheirKey(t *testing.T) {
	s := mustSource(t, &clock{t0}, nil, nil)
	s.pulled(resp([]*models.Decision{dec(7, "ban", "Ip", "192.0.2.7", "1h")}, nil))
	s.pulled(resp(nil, []*models.Decision{dec(7, "ban", "Ip", "192.0.2.8", "-1s"), dec(7, "captcha", "Ip", "192.0.2.7", "-1s")}))
	if _, ok := s.Blocked(addr("192.0.2.7")); !ok {
		t.Error("a deletion of another value or type lifted the block")
	}
	s.pulled(resp([]*models.Decision{dec(8, "ban", "Ip", "192.0.2.9", "1h")}, []*models.Decision{dec(5, "ban", "Ip", "192.0.2.9", "-1s")}))
	if _, ok := s.Blocked(addr("192.0.2.9")); !ok {
		t.Error("a deletion in the same response undid a new decision")
	}
}

// Decisions without an id work the same way.
func TestDecisionsWithoutID(t *testing.T) {
	s := mustSource(t, &clock{t0}, nil, nil)
	s.pulled(resp([]*models.Decision{dec(0, "ban", "Ip", "192.0.2.1", "1h"), dec(0, "ban", "username", "Bob", "1h")}, nil))
	if s.View().Len() != 2 {
		t.Fatalf("held %d, want 2", s.View().Len())
	}
	s.pulled(resp(nil, []*models.Decision{dec(0, "ban", "username", "Bob", "-1s")}))
	if _, ok := s.UserBlocked("bob"); ok {
		t.Error("username deletion did not lift")
	}
	if _, ok := s.Blocked(addr("192.0.2.1")); !ok {
		t.Error("ip lifted")
	}
}

func TestTypesFilter(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	os.WriteFile(key, []byte("k"), 0o600)
	s, err := New(Config{URL: "http://127.0.0.1:1", KeyFile: key, Types: []string{"ban", "kickagent-reset"}, Now: (&clock{t0}).Now}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.pulled(resp([]*models.Decision{dec(1, "kickagent-reset", "username", "alice", "24h")}, nil))
	if d, ok := s.UserBlocked("alice"); !ok || d.Type != "kickagent-reset" {
		t.Errorf("got %+v %v", d, ok)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := &clock{t0}
	s := mustSource(t, c, reg, nil)
	s.pulled(resp([]*models.Decision{
		dec(1, "ban", "Ip", "192.0.2.1", "1h"),
		dec(2, "ban", "Range", "192.0.2.0/24", "1m"),
		dec(3, "ban", "username", "eve", "1h"),
		dec(4, "captcha", "Ip", "192.0.2.4", "1h"),
		dec(5, "ban", "Ip", "bogus", "1h"),
		dec(6, "ban", "AS", "64496", "1h"),
	}, nil))
	s.pulled(resp([]*models.Decision{dec(1, "ban", "Ip", "192.0.2.1", "1h")}, []*models.Decision{dec(3, "ban", "username", "eve", "-1s")}))
	s.pulled(resp(nil, []*models.Decision{dec(3, "ban", "username", "eve", "-2s")}))
	c.now = t0.Add(2 * time.Minute)
	s.Expire(c.now)
	want := `
# HELP kickagent_crowdsec_decisions CrowdSec decisions held, by scope (ip, range, username).
# TYPE kickagent_crowdsec_decisions gauge
kickagent_crowdsec_decisions{scope="ip"} 1
kickagent_crowdsec_decisions{scope="range"} 0
kickagent_crowdsec_decisions{scope="username"} 0
# HELP kickagent_crowdsec_decisions_applied_total CrowdSec decisions applied, by action (add, delete, expire).
# TYPE kickagent_crowdsec_decisions_applied_total counter
kickagent_crowdsec_decisions_applied_total{action="add"} 3
kickagent_crowdsec_decisions_applied_total{action="delete"} 1
kickagent_crowdsec_decisions_applied_total{action="expire"} 1
# HELP kickagent_crowdsec_decisions_ignored_total CrowdSec decisions received and not applied, by reason (type, scope, simulated, expired, duplicate, noop_delete).
# TYPE kickagent_crowdsec_decisions_ignored_total counter
kickagent_crowdsec_decisions_ignored_total{reason="duplicate"} 1
kickagent_crowdsec_decisions_ignored_total{reason="noop_delete"} 1
kickagent_crowdsec_decisions_ignored_total{reason="scope"} 1
kickagent_crowdsec_decisions_ignored_total{reason="type"} 1
# HELP kickagent_crowdsec_decisions_invalid_total CrowdSec decisions refused because their value or duration could not be read.
# TYPE kickagent_crowdsec_decisions_invalid_total counter
kickagent_crowdsec_decisions_invalid_total 1
# HELP kickagent_crowdsec_last_pull_timestamp_seconds When the CrowdSec decision stream was last pulled successfully (0: never).
# TYPE kickagent_crowdsec_last_pull_timestamp_seconds gauge
kickagent_crowdsec_last_pull_timestamp_seconds 1.7965584e+09
# HELP kickagent_crowdsec_pulls_total Successful pulls of the CrowdSec decision stream.
# TYPE kickagent_crowdsec_pulls_total counter
kickagent_crowdsec_pulls_total 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"kickagent_crowdsec_decisions", "kickagent_crowdsec_decisions_applied_total", "kickagent_crowdsec_decisions_ignored_total",
		"kickagent_crowdsec_decisions_invalid_total", "kickagent_crowdsec_last_pull_timestamp_seconds", "kickagent_crowdsec_pulls_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "kickagent_crowdsec_pull_errors_total"); err != nil || n != 1 {
		t.Errorf("pull_errors_total: %d %v", n, err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("abc\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	two := filepath.Join(dir, "two")
	os.WriteFile(two, []byte("abc\ndef\n"), 0o600)
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"no url":        {Config{KeyFile: key}, "no LAPI URL"},
		"no auth":       {Config{URL: "http://x/"}, "API key file or a client certificate"},
		"both auths":    {Config{URL: "http://x/", KeyFile: key, CertPath: "c", KeyPath: "k"}, "not both"},
		"half cert":     {Config{URL: "http://x/", CertPath: "c"}, "both CertPath and KeyPath"},
		"missing key":   {Config{URL: "http://x/", KeyFile: filepath.Join(dir, "none")}, "no such file"},
		"empty key":     {Config{URL: "http://x/", KeyFile: empty}, "one key on one line"},
		"two lines":     {Config{URL: "http://x/", KeyFile: two}, "one key on one line"},
		"bad scope":     {Config{URL: "http://x/", KeyFile: key, Scopes: []string{"ip", "country"}}, `scope "country"`},
		"too frequent":  {Config{URL: "http://x/", KeyFile: key, UpdateFrequency: time.Millisecond}, "below 100ms"},
		"bad cert path": {Config{URL: "https://x/", CertPath: filepath.Join(dir, "c"), KeyPath: filepath.Join(dir, "k")}, "unable to load certificate"},
	} {
		_, err := New(tc.cfg, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// Readers may ask while pulls apply (run with -race).
func TestConcurrentReaders(t *testing.T) {
	c := &clock{t0}
	s := mustSource(t, c, nil, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			s.pulled(resp([]*models.Decision{dec(int64(i), "ban", "Ip", "192.0.2.1", "1h")}, nil))
			s.pulled(resp(nil, []*models.Decision{dec(int64(i), "ban", "Ip", "192.0.2.1", "-1s")}))
		}
	}()
	for {
		select {
		case <-done:
			if _, ok := s.Blocked(addr("192.0.2.1")); ok || s.Revision() != 400 {
				t.Errorf("end: blocked %v, rev %d", ok, s.Revision())
			}
			return
		default:
			v := s.View()
			d, ok := v.Blocked(addr("192.0.2.1"), t0)
			if ok != (v.Len() == 1) || (ok && d.Value != "192.0.2.1") {
				t.Fatalf("view rev %d: %v %+v with %d held", v.Revision(), ok, d, v.Len())
			}
		}
	}
}
