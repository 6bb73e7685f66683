package engine

import (
	"fmt"
	"time"
)

// Brute-force rules count the failed logins Dovecot reports to the auth
// policy listener (internal/authpolicy) and block a client IP or network
// that reaches the threshold:
//
//	- name: brute-force
//	  failed_logins: 20   # at least this many failed logins …
//	  within: 10m         # … within this window (default 10m)
//	  per: ip             # counted per client IP, or per network (/24, /64)
//	  block_for: 1h       # then block it this long (default 1h)
//
// A block is enforced as a "kickagent block" of that IP is: new logins
// from it are refused and its established sessions kicked, unless the
// allow list covers them. There is no per-login-name block: it would let
// anyone lock an account's owner out by failing its password; Rego
// policies see the per-login counts (input.attempt.failures.login) and may
// refuse with them.

// Scopes of a brute-force rule's counts.
const (
	PerIP      = "ip"
	PerNetwork = "network"
)

// Brute-force rule bounds.
const (
	DefaultBruteForceWindow = 10 * time.Minute
	DefaultBlockFor         = time.Hour
	MaxBruteForceWindow     = 24 * time.Hour
	MaxBlockFor             = 30 * 24 * time.Hour
)

// BruteForceRule is a compiled brute-force rule.
type BruteForceRule struct {
	Name, File string
	Line       int
	DryRun     bool
	Threshold  int
	Window     time.Duration
	Per        string // PerIP or PerNetwork
	BlockFor   time.Duration
}

func (s *RuleSpec) isBruteForce() bool {
	return s.FailedLogins != 0 || s.Within != "" || s.Per != "" || s.BlockFor != ""
}

// compileBruteForce checks a brute-force rule: the counting keys only,
// no session selectors or job options (a selector would read as a
// restriction it does not have).
func compileBruteForce(s *RuleSpec, fail func(key, format string, a ...any)) *BruteForceRule {
	b := &BruteForceRule{Threshold: s.FailedLogins, Window: DefaultBruteForceWindow, Per: PerIP, BlockFor: DefaultBlockFor}
	if s.FailedLogins < 1 {
		fail("failed_logins", "failed_logins must be 1 or more (a brute-force rule counts failed logins)")
	}
	dur := func(key, v string, max time.Duration, into *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > max {
			fail(key, "%s: %q: want a duration such as 10m, more than 0 and at most %s", key, v, max)
			return
		}
		*into = d
	}
	dur("within", s.Within, MaxBruteForceWindow, &b.Window)
	dur("block_for", s.BlockFor, MaxBlockFor, &b.BlockFor)
	switch s.Per {
	case "", PerIP:
	case PerNetwork:
		b.Per = PerNetwork
	case "login", "user":
		fail("per", "per: %q: blocking a login name would let anyone lock its owner out; count per ip or network (Rego policies see input.attempt.failures.login)", s.Per)
	default:
		fail("per", "per: %q: want ip or network", s.Per)
	}
	for _, k := range []struct {
		key string
		set bool
	}{
		{"users", len(s.Users) > 0}, {"networks", len(s.Networks) > 0}, {"services", len(s.Services) > 0},
		{"dest_hosts", len(s.DestHosts) > 0}, {"passdb_field", s.PassdbField != ""}, {"values", len(s.Values) > 0},
		{"except_users", len(s.ExceptUsers) > 0}, {"except_networks", len(s.ExceptNetworks) > 0},
		{"max_kicks_per_cycle", s.MaxKicks != 0}, {"logged_in_before", s.LoggedInBefore != ""},
		{"rate", s.Rate != ""}, {"drain", s.Drain}, {"auth_cache_flush", s.AuthCacheFlush != ""},
	} {
		if k.set {
			fail(k.key, "%s: not allowed in a brute-force rule (it counts failed logins from any client; the allow list exempts clients)", k.key)
		}
	}
	return b
}

// String describes the rule for logs.
func (b *BruteForceRule) String() string {
	return fmt.Sprintf("%d failed logins per %s within %s, block for %s", b.Threshold, b.Per, b.Window, b.BlockFor)
}
