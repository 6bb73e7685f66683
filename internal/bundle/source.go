package bundle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	mu  sync.Mutex
	rev string // the revision in force, "" for none
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
		s.m.failures.WithLabelValues(reason).Inc()
		s.log.Warn("bundle refused or unavailable; the one in force stays", "reason", reason, "rev", s.Revision(), "err", u.Error)
		return nil
	}
	if u.Bundle == nil { // 304 Not Modified
		s.m.lastSuccess.Set(float64(s.cfg.Now().UnixNano()) / 1e9)
		s.log.Debug("bundle unchanged", "etag", u.ETag)
		return nil
	}
	if err := s.take(ctx, u.Bundle, u.Raw); err != nil {
		s.log.Warn("bundle not taken; the one in force stays", "rev", s.Revision(), "new_rev", u.Bundle.Manifest.Revision, "err", err)
		return nil
	}
	s.m.lastSuccess.Set(float64(s.cfg.Now().UnixNano()) / 1e9)
	return nil
}

// take checks a verified bundle's layout, stages it on disk, hands it to
// OnBundle and, if accepted, makes it the persisted one.
func (s *Source) take(ctx context.Context, b *opabundle.Bundle, raw io.Reader) error {
	rev := b.Manifest.Revision
	if _, err := Extract(b); err != nil {
		s.m.failures.WithLabelValues(ReasonLayout).Inc()
		return err
	}
	var buf bytes.Buffer
	if raw != nil {
		if _, err := buf.ReadFrom(raw); err != nil {
			return s.persistFailed(fmt.Errorf("bundle: read raw %s: %w", rev, err))
		}
	}
	if buf.Len() == 0 {
		return s.persistFailed(fmt.Errorf("bundle: %s: no raw bytes to persist", rev))
	}
	if err := s.store.stage(buf.Bytes()); err != nil {
		return s.persistFailed(err)
	}
	if err := s.cfg.OnBundle(ctx, b); err != nil {
		s.m.failures.WithLabelValues(ReasonRejected).Inc()
		if derr := s.store.drop(); derr != nil {
			s.log.Warn("cannot remove the refused bundle's staged copy", "err", derr)
		}
		// The ETag stays: the same bytes would be refused again, so they
		// are not fetched again until the publisher replaces them.
		return fmt.Errorf("bundle: revision %s refused: %w", rev, err)
	}
	s.setInForce(rev, false)
	s.log.Info("bundle taken", "rev", rev)
	if err := s.store.commit(); err != nil {
		// In force but not saved: a restart with the server down would
		// start from the previous one. Counted; fetched again next poll.
		s.m.failures.WithLabelValues(ReasonPersist).Inc()
		s.dl.SetCache("")
		return err
	}
	return nil
}

// persistFailed counts err and makes the next poll fetch the bundle again
// (the downloader already holds its ETag).
func (s *Source) persistFailed(err error) error {
	s.m.failures.WithLabelValues(ReasonPersist).Inc()
	s.dl.SetCache("")
	return err
}
