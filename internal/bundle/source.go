package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Source.
type Config struct {
	// URL is the bundle's full URL: the service's base and the resource
	// path, e.g. http://bundles.example/bundles/kickagent.tar.gz.
	URL string
	// MinDelay and MaxDelay bound the wait between polls (whole seconds,
	// OPA's granularity; zero: OPA's defaults, 60 s and 120 s).
	MinDelay, MaxDelay time.Duration
	// LongPollTimeout, when set, asks the server to hold a poll open until
	// a new bundle exists or this passes. Servers that do not answer with
	// Content-Type application/vnd.openpolicyagent.bundles (nginx, S3) get
	// plain polling.
	LongPollTimeout time.Duration
	Verification    Verification
	// StateDir is the agent's state directory; the last good bundle lives
	// in StateDir/bundle/.
	StateDir string
	// OnBundle is the agent's validate-then-swap: it returns an error to
	// refuse a bundle, and the one in force stays. It runs on the
	// downloader's goroutine, one bundle at a time.
	OnBundle func(ctx context.Context, b *opabundle.Bundle) error
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Now      func() time.Time
}

// Source polls a bundle service and hands each new verified bundle on.
type Source struct {
	cfg   Config
	vc    *opabundle.VerificationConfig
	store store
	m     *metrics
	log   *slog.Logger
	dl    *download.Downloader

	takeMu sync.Mutex // one bundle handed on at a time

	mu      sync.Mutex
	rev     string         // the revision in force, "" for none
	failing string         // the reason of the current failure streak, "" for none
	refused *refusedBundle // the newest verified bundle the agent refused
}

// New checks cfg and builds a Source; nothing is fetched before Run.
func New(cfg Config) (*Source, error) {
	if cfg.OnBundle == nil {
		return nil, errors.New("bundle: no OnBundle")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	vc, err := cfg.Verification.config()
	if err != nil {
		return nil, err
	}
	st, err := newStore(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("bundle: metrics: %w", err)
	}
	s := &Source{cfg: cfg, vc: vc, store: st, m: m, log: cfg.Logger.With("component", "bundle")}
	s.dl, err = s.downloader()
	if err != nil {
		return nil, err
	}
	return s, nil
}

// downloader builds OPA's downloader for cfg.URL.
func (s *Source) downloader() (*download.Downloader, error) {
	u, err := url.Parse(s.cfg.URL)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path == "" || u.Path == "/" {
		return nil, fmt.Errorf("bundle: URL %q: want scheme://host/path/to/bundle.tar.gz", s.cfg.URL)
	}
	base := (&url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host}).String()
	restCfg, err := json.Marshal(map[string]any{"name": "kickagent-bundle", "url": base})
	if err != nil {
		return nil, err
	}
	client, err := rest.New(restCfg, nil, rest.Logger(opaLogger{s.log}))
	if err != nil {
		return nil, fmt.Errorf("bundle: client: %w", err)
	}
	trigger := plugins.TriggerPeriodic
	dc := download.Config{Trigger: &trigger}
	if s.cfg.MinDelay > 0 || s.cfg.MaxDelay > 0 {
		lo, hi := seconds(s.cfg.MinDelay), seconds(s.cfg.MaxDelay)
		dc.Polling.MinDelaySeconds, dc.Polling.MaxDelaySeconds = &lo, &hi
	}
	if s.cfg.LongPollTimeout > 0 {
		t := seconds(s.cfg.LongPollTimeout)
		dc.Polling.LongPollingTimeoutSeconds = &t
	}
	if err := dc.ValidateAndInjectDefaults(); err != nil {
		return nil, fmt.Errorf("bundle: polling: %w", err)
	}
	path := u.EscapedPath()
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return download.New(dc, client, strings.TrimPrefix(path, "/")).
		WithCallback(s.onUpdate).
		WithBundleVerificationConfig(s.vc).
		WithSizeLimitBytes(maxFileBytes).
		// Persistence makes the downloader keep the raw tarball (Update.Raw),
		// which is what we save; OPA's own persistence is not used.
		WithBundlePersistence(true), nil
}

// seconds rounds d up to whole seconds, at least 1.
func seconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// Run polls until ctx ends. Failures are logged and counted, never fatal:
// the bundle in force stays until a better one arrives.
func (s *Source) Run(ctx context.Context) error {
	s.dl.Start(ctx)
	<-ctx.Done()
	s.dl.Stop(context.Background())
	return nil
}

// Revision returns the revision in force, "" for none.
func (s *Source) Revision() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// LoadPersisted reads the last good bundle from the state directory,
// verifies its signature again and hands it to OnBundle, so that a restart
// while the bundle service is down still enforces it. Call it before Run.
// It returns ErrNoPersisted when there is none (a first start); on any
// other error nothing was handed on.
func (s *Source) LoadPersisted(ctx context.Context) (*opabundle.Bundle, error) {
	b, err := s.store.load(s.vc)
	if err != nil {
		return nil, err
	}
	if _, err := Extract(b); err != nil {
		return nil, fmt.Errorf("bundle: persisted copy: %w", err)
	}
	s.takeMu.Lock()
	defer s.takeMu.Unlock()
	if err := s.cfg.OnBundle(ctx, b); err != nil {
		s.m.failures.WithLabelValues(ReasonRejected).Inc()
		return nil, fmt.Errorf("bundle: persisted revision %s refused: %w", b.Manifest.Revision, err)
	}
	s.setInForce(b.Manifest.Revision, true)
	s.log.Info("bundle loaded from the state directory", "rev", b.Manifest.Revision)
	return b, nil
}

func (s *Source) setInForce(rev string, persisted bool) {
	s.mu.Lock()
	s.rev = rev
	s.mu.Unlock()
	s.m.inForce(rev, persisted)
}

// onUpdate is the downloader's callback, on its goroutine. It returns nil
// for failures it has counted, as the downloader only passes errors back
// to its own loop.
func (s *Source) onUpdate(ctx context.Context, u download.Update) error {
	if u.Error != nil {
		reason := ReasonVerify
		var he download.HTTPError
		if errors.As(u.Error, &he) || strings.HasPrefix(u.Error.Error(), "request failed") {
			reason = ReasonDownload
		}
		s.fail(reason, u.Error)
		return nil
	}
	if u.Bundle == nil { // 304 Not Modified
		s.ok()
		s.log.Debug("bundle unchanged", "etag", u.ETag)
		return nil
	}
	var raw []byte
	if u.Raw != nil {
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(u.Raw); err == nil {
			raw = buf.Bytes()
		}
	}
	if err := s.take(ctx, u.Bundle, raw); err != nil {
		if errors.Is(err, errPersist) {
			// Fetch it again next poll: the downloader already holds its
			// ETag and would otherwise answer 304 until the next publish.
			s.dl.SetCache("")
		}
		return nil
	}
	s.ok()
	return nil
}

// fail counts a failure and logs it: a warning when the reason changes,
// debug while it repeats (a server down fails every poll).
func (s *Source) fail(reason string, err error) {
	s.m.failures.WithLabelValues(reason).Inc()
	s.mu.Lock()
	repeat := s.failing == reason
	s.failing = reason
	s.mu.Unlock()
	level := slog.LevelWarn
	if repeat {
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "bundle not taken; the one in force stays", "reason", reason, "rev", s.Revision(), "err", err)
}

// ok records a successful poll.
func (s *Source) ok() {
	s.m.lastSuccess.Set(float64(s.cfg.Now().UnixNano()) / 1e9)
	s.mu.Lock()
	was := s.failing
	s.failing = ""
	s.mu.Unlock()
	if was != "" {
		s.log.Info("bundle service reachable again", "rev", s.Revision())
	}
}

// errPersist marks a failure to save a bundle.
var errPersist = errors.New("bundle: persist")

// take checks a verified bundle's layout, stages it on disk, hands it to
// OnBundle and, if accepted, makes it the persisted one. One at a time:
// the downloader, LoadPersisted and Retry may call it.
func (s *Source) take(ctx context.Context, b *opabundle.Bundle, raw []byte) error {
	s.takeMu.Lock()
	defer s.takeMu.Unlock()
	return s.takeLocked(ctx, b, raw)
}

func (s *Source) takeLocked(ctx context.Context, b *opabundle.Bundle, raw []byte) error {
	rev := b.Manifest.Revision
	if _, err := Extract(b); err != nil {
		s.fail(ReasonLayout, err)
		return err
	}
	if len(raw) == 0 {
		err := fmt.Errorf("%w: %s: no raw bytes", errPersist, rev)
		s.fail(ReasonPersist, err)
		return err
	}
	if err := s.store.stage(raw); err != nil {
		err = fmt.Errorf("%w: %w", errPersist, err)
		s.fail(ReasonPersist, err)
		return err
	}
	if err := s.cfg.OnBundle(ctx, b); err != nil {
		if derr := s.store.drop(); derr != nil {
			s.log.Warn("cannot remove the refused bundle's staged copy", "err", derr)
		}
		// Kept for Retry: the refusal may come from local files that
		// conflict with it. The downloader keeps its ETag, so the same
		// bytes are not fetched and refused again every poll.
		s.mu.Lock()
		s.refused = &refusedBundle{b: b, raw: raw}
		s.mu.Unlock()
		err = fmt.Errorf("bundle: revision %s refused: %w", rev, err)
		s.fail(ReasonRejected, err)
		return err
	}
	s.mu.Lock()
	s.refused = nil
	s.mu.Unlock()
	// Saved first, so that the revision reported in force is on disk
	// (a test raced the rename); in force either way: OnBundle took it.
	err := s.store.commit()
	s.setInForce(rev, false)
	s.log.Info("bundle taken", "rev", rev)
	if err != nil {
		// In force but not saved: a restart with the server down would
		// start from the previous one.
		err = fmt.Errorf("%w: %w", errPersist, err)
		s.fail(ReasonPersist, err)
		return err
	}
	return nil
}

// refusedBundle is the newest verified bundle the agent refused.
type refusedBundle struct {
	b   *opabundle.Bundle
	raw []byte
}

// Retry hands the newest refused bundle to OnBundle again, if there is one
// newer than the one in force; it reports whether there was. Call it after
// the agent's local rules change: a bundle refused because it clashed with
// a local file (a duplicate rule name) is taken once the clash is gone,
// without waiting for the next publish.
func (s *Source) Retry(ctx context.Context) (bool, error) {
	// Under takeMu: a bundle the downloader takes meanwhile clears
	// refused, so an older one is never handed on after a newer.
	s.takeMu.Lock()
	defer s.takeMu.Unlock()
	s.mu.Lock()
	r := s.refused
	s.mu.Unlock()
	if r == nil {
		return false, nil
	}
	return true, s.takeLocked(ctx, r.b, r.raw)
}
