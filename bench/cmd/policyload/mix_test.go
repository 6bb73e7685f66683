package main

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

func TestRandomInStaysInPrefix(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []string{"127.0.0.0/8", "198.51.100.0/24", "10.1.2.3/32", "2001:db8::/32", "::1/128"} {
		p := netip.MustParsePrefix(s).Masked()
		seen := map[netip.Addr]bool{}
		for range 200 {
			a := randomIn(r, p)
			if !p.Contains(a) {
				t.Fatalf("%s: %s is outside", s, a)
			}
			seen[a] = true
		}
		if want := p.Bits() < p.Addr().BitLen(); want != (len(seen) > 1) {
			t.Errorf("%s: %d distinct addresses in 200 draws", s, len(seen))
		}
	}
}

func TestParseNets(t *testing.T) {
	ns, err := parseNets("127.0.0.0/8=3, 192.0.2.7/24")
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || ns[0].weight != 3 || ns[1].weight != 1 || ns[1].prefix.String() != "192.0.2.0/24" {
		t.Errorf("got %+v", ns)
	}
	for _, bad := range []string{"", "127.0.0.0/8=0", "127.0.0.0/8=x", "nonsense"} {
		if _, err := parseNets(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// The mix follows logins: a good one sends allow (passdb_user empty), allow (passdb_user
// set), report success; a failed one allow, report failure; all of one login share its
// session_id, and every body is what test/dovecot/README.md shows Dovecot sending.
func TestMixerLogins(t *testing.T) {
	m := &mixer{r: rand.New(rand.NewPCG(3, 4)), users: []string{"bob", "john doe"},
		nets: []weightedNet{{netip.MustParsePrefix("192.0.2.0/24"), 1}}, total: 1, fail: 0.3, dovecot: 24}
	var reqs []policyRequest
	for range 300 {
		reqs = m.login(reqs)
	}
	kinds := map[string]int{}
	for i := 0; i < len(reqs); {
		var first map[string]any
		if err := json.Unmarshal(reqs[i].body, &first); err != nil {
			t.Fatal(err)
		}
		if reqs[i].kind != kindAllowBefore || reqs[i].command != "allow" || first["passdb_user"] != "" {
			t.Fatalf("request %d: a login starts with %s %s", i, reqs[i].kind, reqs[i].body)
		}
		if _, ok := first["fail_type"]; !ok {
			t.Fatalf("2.4 body without fail_type: %s", reqs[i].body)
		}
		n := 3
		if reqs[i+1].kind == kindReportFail {
			n = 2
		}
		for j := i; j < i+n; j++ {
			var b map[string]any
			if err := json.Unmarshal(reqs[j].body, &b); err != nil {
				t.Fatal(err)
			}
			kinds[reqs[j].kind]++
			if b["session_id"] != first["session_id"] || b["remote"] != first["remote"] {
				t.Fatalf("request %d: not the same login as %d", j, i)
			}
			if !netip.MustParsePrefix("192.0.2.0/24").Contains(netip.MustParseAddr(b["remote"].(string))) {
				t.Fatalf("remote %v outside -nets", b["remote"])
			}
			switch reqs[j].kind {
			case kindAllowAfter:
				if b["passdb_user"] != b["user"] || reqs[j].command != "allow" {
					t.Fatalf("allow after: %s", reqs[j].body)
				}
			case kindReportOK:
				if b["success"] != true || reqs[j].command != "report" {
					t.Fatalf("report ok: %s", reqs[j].body)
				}
			case kindReportFail:
				if b["success"] != false || b["fail_type"] != "credentials" || reqs[j].command != "report" {
					t.Fatalf("report failure: %s", reqs[j].body)
				}
			}
		}
		i += n
	}
	if kinds[kindReportFail] < 60 || kinds[kindReportFail] > 120 || kinds[kindAllowAfter] != kinds[kindReportOK] {
		t.Errorf("kinds %v: want about 90 failed logins of 300, and one report per good login", kinds)
	}
}

func TestSummariseNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := summarise(ds)
	if d.N != 100 || d.P50 != 50 || d.P90 != 90 || d.P99 != 99 || d.Max != 100 || d.Mean != 50.5 {
		t.Errorf("got %+v", d)
	}
	if d := summarise([]time.Duration{7 * time.Millisecond}); d.P50 != 7 || d.P99 != 7 {
		t.Errorf("one sample: %+v", d)
	}
}
