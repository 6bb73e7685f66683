package authpolicy

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/snapshot"
)

// Defaults.
const (
	// DefaultRefuseMessage is what a refused client is told ([ALERT] on
	// IMAP): nothing about the rule that refused it.
	DefaultRefuseMessage = "Login not allowed from here at this time. Contact your administrator."
	// DefaultFailureWindow is the window of input.attempt.failures.
	DefaultFailureWindow = 10 * time.Minute
	// DefaultTableSize bounds each failure counter's keys and the blocks.
	DefaultTableSize = 100000
	// Network prefixes a "per: network" rule counts and blocks.
	NetworkBits4 = 24
	NetworkBits6 = 64
)

// FailureCounter counts failed logins per key (an IP, a network or a login
// name, as it was made for) within its window (internal/bruteforce).
type FailureCounter interface {
	Add(ip netip.Addr, login string, now time.Time) int
	Count(ip netip.Addr, login string, now time.Time) int
}

// CounterFactory makes a counter for a scope ("ip", "network", "login")
// and window.
type CounterFactory func(scope string, window time.Duration) FailureCounter

// Settings configure a Server.
type Settings struct {
	// APIHeader is Dovecot's auth_policy_server_api_header value: "Name:
	// value", or a bare value sent as X-API-Key. Empty: no check.
	APIHeader     string
	RefuseMessage string
	// DryRun: refuse nothing and block nothing, log what would be
	// (the agent's dry_run).
	DryRun        bool
	FailureWindow time.Duration
	TableSize     int
	// StateDir keeps the brute-force blocks across restarts (blocks.json;
	// "": in memory only).
	StateDir string
}

// AuditLog is where refusals and blocks are recorded.
type AuditLog interface {
	Write(r *audit.Record) error
	Flush() error
}

// Server answers policy requests. Create it with New.
type Server struct {
	set      Settings
	hdrName  string
	hdrValue []byte
	rules    func() *engine.Ruleset
	proto    func() anvil.Protocol
	audit    AuditLog
	log      *slog.Logger
	m        *Metrics
	now      func() time.Time
	newCount CounterFactory
	blocks   *blocks
	external atomic.Pointer[External] // SetExternal
	// breaker reports the agent's circuit breaker open: refuse nothing.
	breaker func() bool
	// onBlock is called when a block starts, so that the agent kicks the
	// client's established sessions at once instead of at its next cycle.
	onBlock func()

	mu       sync.Mutex
	counters map[counterKey]FailureCounter

	lastRules    atomic.Pointer[engine.Ruleset] // the rule set noteRules saw last
	policyWarned atomic.Int64                   // unix nanos of the last policy-failure warning
}

type counterKey struct {
	scope  string
	window time.Duration
}

// Deps wire a Server.
type Deps struct {
	Rules    func() *engine.Ruleset // the rule set in force; nil: allow all
	Protocol func() anvil.Protocol  // the Dovecot generation last seen (nil: 2.4)
	Audit    AuditLog
	Logger   *slog.Logger
	Metrics  *Metrics
	Now      func() time.Time
	Counters CounterFactory
	OnBlock  func()
	// Breaker, if set, reports the agent's circuit breaker open: the
	// rules would kick too many sessions and are presumed wrong, so no
	// login is refused either until they change.
	Breaker func() bool
}

// New returns a server.
func New(set Settings, d Deps) *Server {
	if set.RefuseMessage == "" {
		set.RefuseMessage = DefaultRefuseMessage
	}
	if set.FailureWindow <= 0 {
		set.FailureWindow = DefaultFailureWindow
	}
	if set.TableSize <= 0 {
		set.TableSize = DefaultTableSize
	}
	s := &Server{set: set, rules: d.Rules, proto: d.Protocol, audit: d.Audit, log: d.Logger, m: d.Metrics,
		now: d.Now, newCount: d.Counters, onBlock: d.OnBlock, breaker: d.Breaker, blocks: newBlocks(set.TableSize),
		counters: map[counterKey]FailureCounter{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.m == nil {
		s.m = NewMetrics(nil)
	}
	if set.StateDir != "" {
		n, err := s.blocks.restore(set.StateDir, s.now())
		switch {
		case err != nil:
			s.log.Error("brute-force blocks not restored; they start empty", "err", err)
		case n > 0:
			s.log.Info("brute-force blocks restored", "blocks", n, "dir", set.StateDir)
		}
	}
	if name, value, ok := strings.Cut(set.APIHeader, ":"); ok {
		s.hdrName, s.hdrValue = strings.TrimSpace(name), []byte(strings.TrimSpace(value))
	} else if set.APIHeader != "" {
		s.hdrName, s.hdrValue = "X-API-Key", []byte(set.APIHeader)
	}
	return s
}

// External is a source of blocks besides the server's own brute-force
// blocks (CrowdSec's decisions), consulted for every login.
type External interface {
	Blocked() func(ip netip.Addr) (engine.Block, bool)
	BlockedUser() func(user string) (engine.Block, bool)
}

// SetExternal makes logins that ext blocks refused too.
func (s *Server) SetExternal(ext External) { s.external.Store(&ext) }

// Blocked reports a block in force covering ip (engine.Input.Blocked), or
// nil when no block is held, so that a cycle skips the lookups.
func (s *Server) Blocked() func(ip netip.Addr) (engine.Block, bool) {
	if s.blocks.len() == 0 {
		return nil
	}
	now := s.now()
	return func(ip netip.Addr) (engine.Block, bool) { return s.blocks.lookup(ip, now) }
}

// Expire ends the blocks that are over and saves the blocks when they
// changed; the agent calls it every cycle.
func (s *Server) Expire() {
	left, ended := s.blocks.expire(s.now())
	for _, p := range ended {
		s.log.Info("brute-force block ended", "client", p.String())
	}
	s.m.blocks.Set(float64(left))
	if s.set.StateDir != "" {
		if err := s.blocks.save(s.set.StateDir); err != nil {
			s.log.Error("cannot save the brute-force blocks; a restart would forget them", "err", err)
		}
	}
}

type answer struct {
	Status int    `json:"status"`
	Msg    string `json:"msg,omitempty"`
}

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cmd := r.URL.Query().Get("command")
	verdict := "error"
	defer func() {
		s.m.requests.WithLabelValues(cmdLabel(cmd), verdict).Inc()
		s.m.latency.Observe(time.Since(start).Seconds())
	}()
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if s.hdrName != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get(s.hdrName)), s.hdrValue) != 1 {
		verdict = "unauthorized"
		http.Error(w, "missing or wrong "+s.hdrName, http.StatusUnauthorized)
		return
	}
	req, err := parseRequest(r.Body)
	if err != nil {
		s.log.Warn("auth policy: bad request", "command", cmd, "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var a answer
	switch cmd {
	case "allow":
		a, verdict = s.allow(r.Context(), req)
	case "report":
		verdict = "report"
		if req.failed() {
			verdict = "report-failure"
			s.failure(req)
		}
	default:
		http.Error(w, fmt.Sprintf("unknown command %q (want allow or report)", cmd), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(a)
}

func cmdLabel(cmd string) string {
	switch cmd {
	case "allow", "report":
		return cmd
	}
	return "other"
}

// attempt builds the engine's view of the request, judged by rs.
func (s *Server) attempt(rs *engine.Ruleset, req *request, now time.Time) *engine.Attempt {
	a := &engine.Attempt{User: req.name(), IP: req.remote, Service: req.protocol, Alt: req.alt, Now: now,
		Login: req.login, Protocol: anvil.Proto24}
	if s.proto != nil {
		a.Protocol = s.proto()
	}
	if s.blocks.len() > 0 {
		a.Blocked = func(ip netip.Addr) (engine.Block, bool) { return s.blocks.lookup(ip, now) }
	}
	if ext := s.external.Load(); ext != nil {
		if f := (*ext).Blocked(); f != nil {
			own := a.Blocked
			a.Blocked = func(ip netip.Addr) (engine.Block, bool) {
				if own != nil {
					if b, ok := own(ip); ok {
						return b, true
					}
				}
				return f(ip)
			}
		}
		a.BlockedUser = (*ext).BlockedUser()
	}
	if rs.HasPolicy() && rs.DoorSkip() == "" {
		a.Failures = s.failureCounts(req, now)
	}
	return a
}

// allow judges a login: refuse (status -1) when a rule would kick its
// session; everything else (no rule, a dry-run rule, the allow list, a
// failing policy's own part) allows.
func (s *Server) allow(ctx context.Context, req *request) (answer, string) {
	rs := s.rules()
	if rs == nil {
		return answer{}, "allow"
	}
	now := s.now()
	a := s.attempt(rs, req, now)
	s.noteRules(rs)
	d, err := rs.Judge(ctx, a)
	if perr := (*engine.PolicyError)(nil); errors.As(err, &perr) {
		// The YAML rules' verdict stands; the cycle reports the policy
		// (ERROR, metrics, /healthz). Here: counted, and logged at most
		// once a minute, not once per login.
		s.m.policyErrors.Inc()
		if last := s.policyWarned.Load(); now.UnixNano()-last >= int64(time.Minute) && s.policyWarned.CompareAndSwap(last, now.UnixNano()) {
			s.log.Warn("auth policy: the Rego policy failed on a login; judged by the YAML rules alone (logged at most once a minute)", "err", err)
		}
	}
	if d.Rule == "" {
		return answer{}, "allow"
	}
	result, verdict := "", ""
	switch {
	case d.Action == engine.ActionAllowed:
		result, verdict = audit.LoginAllowed, "allow-listed"
	case d.Action == engine.ActionDryRun || s.set.DryRun:
		result, verdict = audit.LoginDryRun, "dry-run"
	case s.breaker != nil && s.breaker():
		result, verdict = audit.LoginBreaker, "breaker"
	default:
		result, verdict = audit.LoginRefused, "refuse"
		s.m.refusals.WithLabelValues(d.Rule).Inc()
	}
	s.record(rs, &d, result, req, now, "")
	if verdict == "refuse" {
		return answer{Status: -1, Msg: s.set.RefuseMessage}, verdict
	}
	return answer{}, verdict
}

// noteRules logs, once per rule set, that its Rego policy does not judge
// logins (a lock-free check per request).
func (s *Server) noteRules(rs *engine.Ruleset) {
	if s.lastRules.Swap(rs) == rs {
		return
	}
	if why := rs.DoorSkip(); why != "" {
		s.log.Warn("auth policy: the Rego policy does not judge logins; only the agent's cycles enforce it", "why", why)
	}
}

func (s *Server) record(rs *engine.Ruleset, d *engine.Decision, result string, req *request, now time.Time, note string) {
	if s.audit == nil {
		return
	}
	rec := &audit.Record{Time: now.UTC(), Result: result, Rule: d.Rule, Engine: string(d.Engine), Reason: d.Reason,
		Rev: rs.Rev(), Login: req.login, SessionID: req.sessionID, Note: note}
	if d.Session != nil {
		rec.Record = snapshot.RecordOf(d.Session)
	}
	if s.proto != nil {
		rec.Dovecot = s.proto().Dovecot()
	}
	// A failed write stays queued in the log, which the agent reports
	// (kickagent_audit_write_errors_total, /healthz).
	_ = s.audit.Write(rec)
	_ = s.audit.Flush()
}
