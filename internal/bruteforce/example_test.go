package bruteforce_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/kickagent/kickagent/internal/bruteforce"
)

// A rule "at least 3 failures from one /24 within 10 minutes", checked on
// each failure an auth policy report brings.
func ExampleCounter() {
	perNetwork := bruteforce.New(bruteforce.ScopeNetwork, 10*time.Minute, 100_000)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for i, remote := range []string{"192.0.2.10", "192.0.2.11", "198.51.100.1", "::ffff:192.0.2.12"} {
		ip := netip.MustParseAddr(remote)
		n := perNetwork.Add(ip, "alice", now.Add(time.Duration(i)*time.Minute))
		fmt.Println(perNetwork.KeyString(ip, ""), n, n >= 3)
	}
	// Output:
	// 192.0.2.0/24 1 false
	// 192.0.2.0/24 2 false
	// 198.51.100.0/24 1 false
	// 192.0.2.0/24 3 true
}
