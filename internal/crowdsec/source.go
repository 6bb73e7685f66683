package crowdsec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crowdsecurity/crowdsec/pkg/models"
	csbouncer "github.com/crowdsecurity/go-cs-bouncer"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultUpdateFrequency is how often the LAPI is pulled unless Config says
// otherwise: a block reaches kickagent within this time of its decision.
const DefaultUpdateFrequency = 5 * time.Second

// DefaultPullTimeout bounds one pull of the decision stream.
const DefaultPullTimeout = 30 * time.Second

// Config says where the LAPI is and which decisions to take.
type Config struct {
	URL string // the LAPI, e.g. http://127.0.0.1:8080/
	// KeyFile holds the bouncer's API key (cscli bouncers add NAME); a key
	// is never taken from the command line. Or authenticate with a TLS
	// client certificate: CertPath and KeyPath, not both ways.
	KeyFile           string
	CertPath, KeyPath string
	CAPath            string        // CA bundle for an https URL (empty: the system's)
	Scopes            []string      // default ip, range, username (the LAPI's own default omits username)
	Types             []string      // decision types that block; default ban; others are counted and ignored
	UpdateFrequency   time.Duration // between pulls; default 5 s, at least 100 ms
	// PullTimeout bounds one pull (default 30 s): the library sets none, and
	// a LAPI that accepts and never answers would stall updates for good.
	PullTimeout time.Duration
	UserAgent   string           // TYPE/VERSION, as the LAPI wants; default kickagent/<module version or dev>
	Now         func() time.Time // default time.Now
	// OnChange is called (from Run's goroutine, or Expire's caller) after
	// each change of revision. It must not block: signal a channel.
	OnChange func()
}

// Source pulls the LAPI's decision stream and holds the decisions in force.
// Queries are safe from any goroutine while Run updates.
type Source struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	bouncer *csbouncer.StreamBouncer

	mu       sync.Mutex // serialises writers of set and rev
	set      *set
	rev      uint64
	view     atomic.Pointer[View]
	lastPull atomic.Int64 // unix nanoseconds of the last successful pull; 0: none yet
	started  atomic.Bool
}

// New checks cfg, reads the API key file and prepares the LAPI client; it
// does not connect. reg may be nil (no metrics registered).
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Source, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "crowdsec")
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	b := &csbouncer.StreamBouncer{
		APIUrl:              cfg.URL,
		CertPath:            cfg.CertPath,
		KeyPath:             cfg.KeyPath,
		CAPath:              cfg.CAPath,
		RetryInitialConnect: true, // the agent must outlive a LAPI that is down
		TickerInterval:      cfg.UpdateFrequency.String(),
		Scopes:              cfg.Scopes,
		UserAgent:           cfg.UserAgent,
	}
	if cfg.KeyFile != "" {
		if b.APIKey, err = readKey(cfg.KeyFile, logger); err != nil {
			return nil, err
		}
	}
	routeLogrus(logger)
	if err := b.Init(); err != nil {
		return nil, fmt.Errorf("crowdsec: %w", err)
	}
	b.APIClient.GetClient().Timeout = cfg.PullTimeout
	s := &Source{cfg: cfg, log: logger, m: newMetrics(reg), bouncer: b, set: newSet(filter{types: cfg.Types})}
	s.view.Store(emptyView)
	return s, nil
}

func withDefaults(cfg Config) (Config, error) {
	if cfg.URL == "" {
		return cfg, errors.New("crowdsec: no LAPI URL")
	}
	if (cfg.KeyFile == "") == (cfg.CertPath == "" && cfg.KeyPath == "") {
		return cfg, errors.New("crowdsec: give an API key file or a client certificate and key, not both")
	}
	if cfg.KeyFile == "" && (cfg.CertPath == "" || cfg.KeyPath == "") {
		return cfg, errors.New("crowdsec: a client certificate needs both CertPath and KeyPath")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"ip", "range", "username"}
	}
	for _, sc := range cfg.Scopes {
		if _, ok := parseScope(sc); !ok {
			return cfg, fmt.Errorf("crowdsec: scope %q: kickagent enforces only ip, range and username", sc)
		}
	}
	if len(cfg.Types) == 0 {
		cfg.Types = []string{"ban"}
	}
	switch {
	case cfg.UpdateFrequency == 0:
		cfg.UpdateFrequency = DefaultUpdateFrequency
	case cfg.UpdateFrequency < 100*time.Millisecond:
		return cfg, fmt.Errorf("crowdsec: update frequency %v is below 100ms", cfg.UpdateFrequency)
	}
	switch {
	case cfg.PullTimeout == 0:
		cfg.PullTimeout = DefaultPullTimeout
	case cfg.PullTimeout < 0:
		return cfg, fmt.Errorf("crowdsec: pull timeout %v is negative", cfg.PullTimeout)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = defaultUserAgent()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}

// defaultUserAgent is TYPE/VERSION: the LAPI shows both in cscli bouncers
// list and warns on every pull about anything else.
func defaultUserAgent() string {
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return "kickagent/" + v
}

// readKey reads the API key: the file's content without surrounding space.
func readKey(path string, logger *slog.Logger) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("crowdsec: API key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" || strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("crowdsec: API key file %s: want one key on one line", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		logger.Warn("API key file is readable by others", "path", path, "mode", fi.Mode().Perm().String())
	}
	return key, nil
}

// Run pulls decisions until ctx ends, then returns nil. A LAPI that is down
// or refuses is logged and retried (every 10 s until the first pull
// succeeds, then every UpdateFrequency); Run does not return because of it.
// Call Run once.
func (s *Source) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("crowdsec: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.bouncer.Run(ctx) }()
	t := time.NewTicker(s.cfg.UpdateFrequency)
	defer t.Stop()
	s.log.Info("pulling CrowdSec decisions", "url", s.cfg.URL, "scopes", strings.Join(s.cfg.Scopes, ","),
		"types", strings.Join(s.cfg.Types, ","), "every", s.cfg.UpdateFrequency)
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("crowdsec: decision stream stopped: %w", err)
		case r, ok := <-s.bouncer.Stream:
			if !ok {
				// Closed only when the first connect fails without retry.
				return fmt.Errorf("crowdsec: decision stream closed: %w", <-done)
			}
			s.pulled(r)
		case <-t.C:
			s.Expire(s.cfg.Now())
		}
	}
}

// pulled applies one stream response.
func (s *Source) pulled(r *models.DecisionsStreamResponse) {
	now := s.cfg.Now()
	first := s.lastPull.Swap(now.UnixNano()) == 0
	s.m.pulls.Inc()
	s.m.lastPull.Set(float64(now.UnixNano()) / 1e9)
	s.mu.Lock()
	o := s.set.apply(r, now)
	o.expired = s.set.expire(now)
	v := s.commit(o)
	s.mu.Unlock()
	for _, err := range o.errs {
		s.log.Warn("CrowdSec decision refused", "err", err)
	}
	if first {
		s.log.Info("connected to the CrowdSec LAPI", "url", s.cfg.URL, "decisions", v.Len(), "rev", v.rev)
	}
	s.report(o, v)
}

// Expire drops the decisions over at now. Lookups never answer with an
// expired decision anyway; this frees them and updates the metrics.
func (s *Source) Expire(now time.Time) int {
	s.mu.Lock()
	o := outcome{expired: s.set.expire(now)}
	v := s.commit(o)
	s.mu.Unlock()
	s.report(o, v)
	return o.expired
}

// commit publishes a new View if o changed anything; s.mu is held.
func (s *Source) commit(o outcome) *View {
	s.m.record(o)
	if !o.changed() {
		return s.view.Load()
	}
	s.rev++
	v := newView(s.rev, s.set.entries)
	s.view.Store(v)
	s.m.held(v)
	return v
}

func (s *Source) report(o outcome, v *View) {
	if !o.changed() {
		if o.duplicates+o.noopDeletes > 0 {
			s.log.Debug("CrowdSec decisions unchanged", "repeated", o.duplicates, "noop_deletes", o.noopDeletes)
		}
		return
	}
	s.log.Info("CrowdSec decisions changed", "added", o.added, "deleted", o.deleted, "expired", o.expired,
		"held", v.Len(), "rev", v.rev)
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
}

// View is the current snapshot of the decisions.
func (s *Source) View() *View { return s.view.Load() }

// Revision is the current snapshot's revision: it changes whenever the
// decisions do.
func (s *Source) Revision() uint64 { return s.view.Load().rev }

// Blocked returns a decision in force now that names ip or a network holding it.
func (s *Source) Blocked(ip netip.Addr) (Decision, bool) {
	return s.view.Load().Blocked(ip, s.cfg.Now())
}

// UserBlocked returns a decision in force now that names user.
func (s *Source) UserBlocked(user string) (Decision, bool) {
	return s.view.Load().UserBlocked(user, s.cfg.Now())
}

// LastPull is when the stream was last pulled successfully; zero before the
// first pull, when the Source knows of no decision at all.
func (s *Source) LastPull() time.Time {
	ns := s.lastPull.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
