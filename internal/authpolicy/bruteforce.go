package authpolicy

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
)

// Counting failed logins and blocking (engine/bruteforce_rule.go).

// counter returns the counter for scope and window, made on first use and
// kept across reloads, so that a reload does not forget the counts.
func (s *Server) counter(scope string, window time.Duration) FailureCounter {
	if s.newCount == nil {
		return nil
	}
	k := counterKey{scope, window}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.counters[k]
	if !ok {
		c = s.newCount(scope, window)
		s.counters[k] = c
	}
	return c
}

// failureScopes are what input.attempt.failures holds.
var failureScopes = []string{"ip", "network", "login"}

// failureCounts are the attempt's counts over the failure window.
func (s *Server) failureCounts(req *request, now time.Time) map[string]int {
	out := make(map[string]int, len(failureScopes))
	for _, scope := range failureScopes {
		if c := s.counter(scope, s.set.FailureWindow); c != nil {
			out[scope] = c.Count(req.remote, req.login, now)
		}
	}
	return out
}

// failure counts one failed login, and blocks its client where a
// brute-force rule's threshold is reached. Each counter counts the failure
// once, however many rules and scopes share it.
func (s *Server) failure(req *request) {
	now := s.now()
	s.m.failures.Inc()
	counted := map[FailureCounter]int{}
	add := func(c FailureCounter) int {
		if n, ok := counted[c]; ok {
			return n
		}
		n := c.Add(req.remote, req.login, now)
		counted[c] = n
		return n
	}
	rs := s.rules()
	if rs == nil {
		return
	}
	// The counts Rego policies see cost memory (up to table_size keys
	// each): kept only while a policy may read them.
	if rs.HasPolicy() {
		for _, scope := range failureScopes {
			if c := s.counter(scope, s.set.FailureWindow); c != nil {
				add(c)
			}
		}
	}
	if !req.remote.IsValid() {
		return
	}
	for _, r := range rs.BruteForceRules(now) {
		c := s.counter(r.Per, r.Window)
		if c == nil {
			continue
		}
		if n := add(c); n >= r.Threshold {
			s.block(rs, &r, req, n, now)
		}
	}
}

// block starts (or extends) the block of the client's IP or network.
func (s *Server) block(rs *engine.Ruleset, r *engine.BruteForceRule, req *request, n int, now time.Time) {
	ip := req.remote.Unmap().WithZone("")
	bits := ip.BitLen()
	if r.Per == engine.PerNetwork {
		bits = NetworkBits6
		if ip.Is4() {
			bits = NetworkBits4
		}
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return
	}
	ses := (&engine.Attempt{User: req.name(), IP: req.remote, Service: req.protocol, Alt: req.alt}).Session()
	if rs.Allow.Protects(&ses) {
		return // the allow list: never blocked (its failures still count)
	}
	until := now.Add(r.BlockFor)
	reason := fmt.Sprintf("brute force: %d failed logins from %s within %s (%s)", n, p.Masked(), r.Window, r.Name)
	dry := r.DryRun || s.set.DryRun
	if !s.blocks.add(p.Masked(), until, engine.Block{Rule: r.Name, File: r.File, Reason: reason, DryRun: dry}) {
		return // already blocked: extended
	}
	s.m.blocks.Set(float64(s.blocks.len()))
	result := audit.Blocked
	if dry {
		result = audit.BlockDryRun
	} else {
		s.m.blocksStarted.WithLabelValues(r.Name).Inc()
	}
	s.log.Warn("brute-force block", "rule", r.Name, "client", p.Masked().String(), "failures", n,
		"within", r.Window.String(), "until", until.UTC().Format(time.RFC3339), "dry_run", dry)
	d := engine.Decision{Session: &ses, Rule: r.Name, Engine: engine.EngineYAML, Reason: reason}
	s.record(rs, &d, result, req, now, "until "+until.UTC().Format(time.RFC3339))
	if !dry && s.onBlock != nil {
		s.onBlock()
	}
}

// Blocks lists the blocks in force (for logs and tests).
func (s *Server) Blocks() map[netip.Prefix]time.Time {
	s.blocks.mu.RLock()
	defer s.blocks.mu.RUnlock()
	out := make(map[netip.Prefix]time.Time, len(s.blocks.m))
	for p, e := range s.blocks.m {
		out[p] = e.until
	}
	return out
}
