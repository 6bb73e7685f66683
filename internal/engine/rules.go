package engine

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/match"
)

// rule is a compiled YAML rule. A session matches when every selector the
// rule has matches (a list means any of) and no except_* entry does.
type rule struct {
	name, description string
	file              string
	line              int
	order             int // position in load order

	users, exceptUsers match.MaskSet
	userMasks          []string
	nets, exceptNets   match.NetworkSet
	netList            []match.Network
	services           map[string]struct{}
	dests              map[netip.Addr]struct{}
	altField           string
	altValues          match.MaskSet
	altMasks           []string

	dryRun   bool
	expires  time.Time // zero: never
	maxKicks int

	// Job options (kickagent block/reset/drain write them).
	loggedInBefore time.Time // zero: any session
	rate           float64   // kicks per second; 0: not paced
	drain          bool

	bf *BruteForceRule // a brute-force rule: never matches a session

	cacheFlush string // a reset rule's auth_cache_flush
}

// What kickagent reset did with the auth cache (RuleSpec.AuthCacheFlush).
const (
	CacheFlushed      = "flushed"
	CacheFlushFailed  = "failed"
	CacheFlushSkipped = "skipped"
)

func (r *rule) active(now time.Time) bool { return r.expires.IsZero() || now.Before(r.expires) }

// compileRule checks a rule's invariants and builds its matchers.
func compileRule(file string, s *RuleSpec) (*rule, Errors) {
	var errs Errors
	failAt := func(line int, format string, a ...any) {
		errs = append(errs, &Error{File: file, Line: line, Rule: s.Name, Msg: fmt.Sprintf(format, a...)})
	}
	keyLine := func(key string) int {
		if l, ok := s.lines[key]; ok {
			return l
		}
		return s.line
	}
	fail := func(key, format string, a ...any) { failAt(keyLine(key), format, a...) }
	// failItem locates a problem with entry i of a list at its own line.
	failItem := func(key string, i int, format string, a ...any) {
		failAt(itemLine(s.itemLines[key], i, keyLine(key)), format, a...)
	}
	r := &rule{name: s.Name, description: s.Description, file: file, line: s.line,
		dryRun: s.DryRun, maxKicks: s.MaxKicks, altField: s.PassdbField}
	if strings.TrimSpace(s.Name) == "" {
		fail("name", "a rule needs a name")
	}
	if s.isBruteForce() {
		r.bf = compileBruteForce(s, fail)
		r.expires = ruleExpiry(s, fail)
		return r, errs
	}
	masks := func(key string, list []string) []string {
		for i, m := range list {
			if m == "" {
				failItem(key, i, "%s: empty mask (use '*' to mean every user)", key)
			}
		}
		return list
	}
	nets := func(key string, list []string) []match.Network {
		var out []match.Network
		for i, n := range list {
			p, err := parseNetwork(n)
			if err != nil {
				failItem(key, i, "%s: %v", key, err)
				continue
			}
			out = append(out, p)
		}
		return out
	}
	r.userMasks = masks("users", s.Users)
	r.users = match.NewMaskSet(r.userMasks)
	r.exceptUsers = match.NewMaskSet(masks("except_users", s.ExceptUsers))
	r.netList = nets("networks", s.Networks)
	r.nets = match.NewNetworkSet(r.netList)
	r.exceptNets = match.NewNetworkSet(nets("except_networks", s.ExceptNetworks))
	if len(s.Services) > 0 {
		r.services = make(map[string]struct{})
		for i, svc := range s.Services {
			if svc == "" || strings.ContainsAny(svc, " /\t") {
				failItem("services", i, "services: bad service name %q", svc)
			}
			r.services[strings.ToLower(svc)] = struct{}{}
		}
	}
	if len(s.DestHosts) > 0 {
		r.dests = make(map[netip.Addr]struct{})
		for i, d := range s.DestHosts {
			a, err := match.ParseAddr(d)
			if err != nil {
				failItem("dest_hosts", i, "dest_hosts: %v (anvil records the backend's address; host names are not resolved)", err)
				continue
			}
			r.dests[match.DestKey(a)] = struct{}{}
		}
	}
	switch {
	case s.PassdbField != "" && len(s.Values) == 0:
		fail("passdb_field", "passdb_field %q needs values (masks of the alt username)", s.PassdbField)
	case s.PassdbField == "" && len(s.Values) > 0:
		fail("values", "values need passdb_field (the user_* field they match)")
	}
	r.altMasks = masks("values", s.Values)
	r.altValues = match.NewMaskSet(r.altMasks)
	if len(s.Users) == 0 && len(s.Networks) == 0 && len(s.Services) == 0 && len(s.DestHosts) == 0 && s.PassdbField == "" {
		fail("name", "no selector: give at least one of users, networks, services, dest_hosts, passdb_field+values")
	}
	r.expires = ruleExpiry(s, fail)
	if s.MaxKicks < 0 {
		fail("max_kicks_per_cycle", "max_kicks_per_cycle must be 0 (no limit) or more")
	}
	if s.LoggedInBefore != "" {
		t, err := parseTime(s.LoggedInBefore)
		if err != nil {
			fail("logged_in_before", "logged_in_before: %q is not an RFC 3339 time", s.LoggedInBefore)
		}
		r.loggedInBefore = t
	}
	if s.Rate != "" {
		v, err := ParseRate(s.Rate)
		if err != nil {
			fail("rate", "rate: %v", err)
		}
		r.rate = v
	}
	r.drain = s.Drain
	switch s.AuthCacheFlush {
	case "":
	case CacheFlushed, CacheFlushFailed, CacheFlushSkipped:
		if s.LoggedInBefore == "" {
			fail("auth_cache_flush", "auth_cache_flush: only on a reset rule (logged_in_before)")
		}
		r.cacheFlush = s.AuthCacheFlush
	default:
		fail("auth_cache_flush", "auth_cache_flush: %q: want %s, %s or %s", s.AuthCacheFlush, CacheFlushed, CacheFlushFailed, CacheFlushSkipped)
	}
	return r, errs
}

// ruleExpiry reads the rule's expires (zero: never).
func ruleExpiry(s *RuleSpec, fail func(key, format string, a ...any)) time.Time {
	if s.Expires == "" {
		return time.Time{}
	}
	t, err := parseTime(s.Expires)
	if err != nil {
		fail("expires", "expires: %q is not an RFC 3339 time (e.g. 2026-12-31T23:00:00Z)", s.Expires)
	}
	return t
}

// ParseRate reads a kick rate: "N/s", "N/m", or N (per second), N > 0.
func ParseRate(s string) (float64, error) {
	n, unit, per := strings.Cut(s, "/")
	v, err := strconv.ParseFloat(n, 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) { // !(v > 0) also refuses NaN
		return 0, fmt.Errorf("%q: want N/s or N/m with N > 0", s)
	}
	if !per {
		unit = "s"
	}
	switch unit {
	case "s":
		return v, nil
	case "m":
		return v / 60, nil
	}
	return 0, fmt.Errorf("%q: want N/s or N/m", s)
}

// oldEnough says whether s was already logged in when the rule's reset
// took effect: first seen no later than the first snapshot taken at or
// after logged_in_before. False while that time is in the future.
func (r *rule) oldEnough(s *anvil.Session, i int, in *Input) bool {
	if r.loggedInBefore.IsZero() {
		return true
	}
	cutoff, ok := in.Now, !in.Now.Before(r.loggedInBefore)
	if in.SnapshotAfter != nil {
		cutoff, ok = in.SnapshotAfter(r.loggedInBefore)
	}
	if !ok {
		return false
	}
	seen, id := in.Now, ""
	if in.FirstSeen != nil || in.Old != nil {
		id = s.ID()
	}
	if in.FirstSeen != nil {
		if t := in.FirstSeen(i, id); !t.IsZero() {
			seen = t
		}
	}
	if seen.After(cutoff) {
		return false
	}
	if in.Old != nil {
		in.Old(i, id, seen)
	}
	return true
}

// matches reports whether s is selected by the rule.
func (r *rule) matches(s *anvil.Session) bool {
	if r.services != nil {
		if _, ok := r.services[strings.ToLower(s.Service)]; !ok {
			return false
		}
	}
	if r.dests != nil {
		if _, ok := r.dests[match.DestKey(s.DestIP)]; !s.DestIP.IsValid() || !ok {
			return false
		}
	}
	if !r.nets.Empty() && (!s.IP.IsValid() || !r.nets.Contains(s.IP)) {
		return false
	}
	if !r.users.Empty() && !r.users.Match(s.User) {
		return false
	}
	if r.altField != "" {
		v, ok := s.Alt(r.altField)
		if !ok || !r.altValues.Match(v) {
			return false
		}
	}
	if r.exceptUsers.Match(s.User) || (s.IP.IsValid() && r.exceptNets.Contains(s.IP)) {
		return false
	}
	return true
}

// explain says which selectors selected s, for the audit trail.
func (r *rule) explain(s *anvil.Session) string {
	var parts []string
	if r.description != "" {
		parts = append(parts, r.description)
	}
	if !r.nets.Empty() {
		if n, ok := r.nets.Lookup(s.IP); ok {
			parts = append(parts, fmt.Sprintf("client %s in %s", s.IP, n))
		}
	}
	if len(r.userMasks) > 0 {
		for _, m := range r.userMasks {
			if match.Wildcard(s.User, m) {
				parts = append(parts, fmt.Sprintf("user %q matches %q", s.User, m))
				break
			}
		}
	}
	if r.services != nil {
		parts = append(parts, "service "+s.Service)
	}
	if r.dests != nil {
		parts = append(parts, "proxied to "+s.DestIP.String())
	}
	if r.altField != "" {
		v, _ := s.Alt(r.altField)
		for _, m := range r.altMasks {
			if match.Wildcard(v, m) {
				parts = append(parts, fmt.Sprintf("%s %q matches %q", r.altField, v, m))
				break
			}
		}
	}
	return strings.Join(parts, "; ")
}
