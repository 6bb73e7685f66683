package crowdsec

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/crowdsecurity/crowdsec/pkg/models"
)

// held builds a response with n IPv4 bans, n/100 ranges over 16 prefix
// lengths and n/100 usernames: the shape of a LAPI fed a blocklist.
func held(n int) *models.DecisionsStreamResponse {
	r := &models.DecisionsStreamResponse{}
	for i := 0; i < n; i++ {
		r.New = append(r.New, dec(int64(i+1), "ban", "Ip", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), "4h"))
	}
	for i := 0; i < n/100; i++ {
		r.New = append(r.New, dec(int64(n+i+1), "ban", "Range", fmt.Sprintf("172.%d.%d.0/%d", 16+i%16, i&255, 16+i%16), "4h"))
		r.New = append(r.New, dec(int64(2*n+i+1), "ban", "username", fmt.Sprintf("user%d@example.com", i), "4h"))
	}
	return r
}

// BenchmarkPull is the cost of one pull that brings one new decision to a
// Source already holding n: applying it and rebuilding the View.
func BenchmarkPull(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c := &clock{t0}
			s := mustSource(b, c, nil, nil)
			s.pulled(held(n))
			one := []*models.Decision{nil}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				one[0] = dec(int64(10*n+i), "ban", "Ip", "192.0.2.1", "1h")
				s.pulled(resp(one, one[:0]))
				s.pulled(resp(nil, one)) // and its deletion, so the size stays n
			}
		})
	}
}

// BenchmarkBlocked is the cost of one lookup (the agent's per-session,
// per-login question) in a View holding 100k bans, 1k ranges and 1k users.
func BenchmarkBlocked(b *testing.B) {
	c := &clock{t0}
	s := mustSource(b, c, nil, nil)
	s.pulled(held(100000))
	v, now := s.View(), c.now.Add(time.Minute)
	hit, miss := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.1")
	b.Run("ip-hit", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			v.Blocked(hit, now)
		}
	})
	b.Run("ip-miss", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			v.Blocked(miss, now)
		}
	})
	b.Run("user-miss", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			v.UserBlocked("Alice@Example.com", now)
		}
	})
}
