package crowdsec

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/crowdsecurity/crowdsec/pkg/models"
)

// The indexed View must answer as a plain scan of the held decisions does:
// blocked if any decision in force names the address (or a network holding
// it) or the login. Random decisions over a small space, so that they
// overlap, expire and are deleted.
func TestViewMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ips := []string{"192.0.2.1", "192.0.2.77", "::ffff:192.0.2.1", "2001:db8::1", "2001:db8:0:1::5", "198.51.100.9"}
	nets := []string{"192.0.2.0/24", "192.0.2.64/26", "192.0.0.0/16", "2001:db8::/32", "2001:db8::/64", "::ffff:192.0.2.0/120", "198.51.100.9/32"}
	users := []string{"bob", "Bob", "BOB", "alice@example.com", "Alice@Example.COM"}
	pick := func(l []string) string { return l[rng.IntN(len(l))] }
	random := func() *models.Decision {
		id := int64(rng.IntN(40))
		dur := fmt.Sprintf("%dm", rng.IntN(120)-10)
		switch rng.IntN(3) {
		case 0:
			return dec(id, "ban", "Ip", pick(ips), dur)
		case 1:
			return dec(id, "ban", "Range", pick(nets), dur)
		}
		return dec(id, pick([]string{"ban", "captcha"}), "username", pick(users), dur)
	}
	c := &clock{t0}
	s := mustSource(t, c, nil, nil)
	for step := 0; step < 2000; step++ {
		var news, dels []*models.Decision
		for i := rng.IntN(4); i > 0; i-- {
			news = append(news, random())
		}
		for i := rng.IntN(3); i > 0; i-- {
			dels = append(dels, random())
		}
		c.now = c.now.Add(time.Duration(rng.IntN(5)) * time.Minute)
		s.pulled(resp(news, dels))
		if rng.IntN(10) == 0 {
			s.Expire(c.now)
		}
		now := c.now.Add(time.Duration(rng.IntN(3)) * time.Minute)
		v := s.View()
		for _, q := range append(ips, "192.0.2.200", "10.0.0.1", "2001:db8:ffff::1") {
			a := netip.MustParseAddr(q)
			want := false
			for _, d := range s.set.entries {
				if d.Active(now) && d.Scope != ScopeUsername && d.prefix.Contains(a.Unmap()) {
					want = true
				}
			}
			d, got := v.Blocked(a, now)
			if got != want || (got && (!d.Active(now) || !d.prefix.Contains(a.Unmap()))) {
				t.Fatalf("step %d: Blocked(%s) = %v %+v, scan says %v", step, q, got, d, want)
			}
		}
		for _, u := range append(users, "carol") {
			want := false
			for _, d := range s.set.entries {
				if d.Active(now) && d.Scope == ScopeUsername && d.user == foldASCII(u) {
					want = true
				}
			}
			if _, got := v.UserBlocked(u, now); got != want {
				t.Fatalf("step %d: UserBlocked(%s) = %v, scan says %v", step, u, got, want)
			}
		}
	}
}
