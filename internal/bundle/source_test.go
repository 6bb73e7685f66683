package bundle

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fileServer serves one bundle with a content-hash ETag, as a bundle
// service should; set swaps what it serves.
type fileServer struct {
	mu   sync.Mutex
	body []byte
}

func (f *fileServer) set(b []byte) { f.mu.Lock(); f.body = b; f.mu.Unlock() }

func (f *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	body := f.body
	f.mu.Unlock()
	if body == nil {
		http.NotFound(w, r)
		return
	}
	etag := fmt.Sprintf(`"%x"`, sha256.Sum256(body))
	w.Header().Set("ETag", etag)
	if strings.Contains(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Write(body)
}

// recorder is an OnBundle that records revisions and refuses those in
// refuse.
type recorder struct {
	refuse string
	got    chan string
}

func newRecorder(refuse string) *recorder {
	return &recorder{refuse: refuse, got: make(chan string, 16)}
}

func (r *recorder) onBundle(_ context.Context, b *opabundle.Bundle) error {
	if _, err := Extract(b); err != nil {
		return err
	}
	rev := b.Manifest.Revision
	r.got <- rev
	if rev == r.refuse {
		return errors.New("rules do not compile")
	}
	return nil
}

// wait returns the next revision handed on, failing t after d.
func (r *recorder) wait(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case rev := <-r.got:
		return rev
	case <-time.After(d):
		t.Fatalf("no bundle within %v", d)
		return ""
	}
}

func mustSource(t *testing.T, url, stateDir string, v Verification, on func(context.Context, *opabundle.Bundle) error, reg prometheus.Registerer) *Source {
	t.Helper()
	s, err := New(Config{URL: url, MinDelay: time.Second, MaxDelay: time.Second, Verification: v, StateDir: stateDir, OnBundle: on, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runSource(t *testing.T, s *Source) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within %v", what, d)
}

func TestSourceTakesRefusesAndPersists(t *testing.T) {
	good, evil := testKeys(t)
	src := mustSrcDir(t, "")
	fs := &fileServer{}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	state := t.TempDir()
	rec := newRecorder("r3")
	reg := prometheus.NewRegistry()
	s := mustSource(t, srv.URL+"/bundles/kickagent.tar.gz", state, verifyWith(good), rec.onBundle, reg)

	fs.set(mustBundle(t, src, "r1", good.priv))
	runSource(t, s)
	if rev := rec.wait(t, 5*time.Second); rev != "r1" {
		t.Fatalf("got %s, want r1", rev)
	}
	waitFor(t, 2*time.Second, "r1 in force", func() bool { return s.Revision() == "r1" })
	assertPersisted(t, state, good, "r1")

	// Signed with a key the agent does not trust: never handed on.
	fs.set(mustBundle(t, src, "r2", evil.priv))
	waitFor(t, 5*time.Second, "verify failure counted", func() bool {
		return testutil.ToFloat64(s.m.failures.WithLabelValues(ReasonVerify)) >= 1
	})
	// Refused by the agent: the previous stays in force and on disk.
	fs.set(mustBundle(t, src, "r3", good.priv))
	if rev := rec.wait(t, 5*time.Second); rev != "r3" {
		t.Fatalf("got %s, want r3 (r2 must never be handed on)", rev)
	}
	waitFor(t, 2*time.Second, "rejection counted", func() bool {
		return testutil.ToFloat64(s.m.failures.WithLabelValues(ReasonRejected)) == 1
	})
	if s.Revision() != "r1" {
		t.Errorf("in force %q after a refusal, want r1", s.Revision())
	}
	assertPersisted(t, state, good, "r1")
	if _, err := os.Stat(filepath.Join(state, persistDir, pendingFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused bundle's staged copy left: %v", err)
	}
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP kickagent_bundle_info The bundle revision in force (value 1).
# TYPE kickagent_bundle_info gauge
kickagent_bundle_info{revision="r1"} 1
# HELP kickagent_bundle_from_persisted 1 while the bundle in force is the copy persisted under the state directory (none downloaded since start).
# TYPE kickagent_bundle_from_persisted gauge
kickagent_bundle_from_persisted 0
`), "kickagent_bundle_info", "kickagent_bundle_from_persisted")
	if err != nil {
		t.Error(err)
	}
	if v := testutil.ToFloat64(s.m.lastSuccess); v == 0 {
		t.Error("last success timestamp not set")
	}

	// A restart with the server gone: the persisted r1, verified again.
	srv.Close()
	rec2 := newRecorder("")
	reg2 := prometheus.NewRegistry()
	s2 := mustSource(t, srv.URL+"/bundles/kickagent.tar.gz", state, verifyWith(good), rec2.onBundle, reg2)
	b, err := s2.LoadPersisted(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Revision != "r1" || rec2.wait(t, time.Second) != "r1" || s2.Revision() != "r1" {
		t.Fatalf("persisted revision %q, want r1 handed on and in force", b.Manifest.Revision)
	}
	if testutil.ToFloat64(s2.m.persisted) != 1 {
		t.Error("from_persisted not 1")
	}
	runSource(t, s2)
	waitFor(t, 5*time.Second, "download failure counted", func() bool {
		return testutil.ToFloat64(s2.m.failures.WithLabelValues(ReasonDownload)) >= 1
	})
	if s2.Revision() != "r1" {
		t.Errorf("in force %q with the server down, want r1", s2.Revision())
	}
}

// assertPersisted checks the persisted bundle verifies and is rev.
func assertPersisted(t *testing.T, state string, kp keyPair, rev string) {
	t.Helper()
	st := store{dir: filepath.Join(state, persistDir)}
	vc, err := verifyWith(kp).config()
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.load(vc)
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Revision != rev {
		t.Fatalf("persisted %q, want %q", b.Manifest.Revision, rev)
	}
}

func TestLoadPersistedRefuses(t *testing.T) {
	good, evil := testKeys(t)
	src := mustSrcDir(t, "")
	tests := []struct {
		name    string
		file    []byte // nil: no persisted file
		wantErr string
	}{
		{"none", nil, ErrNoPersisted.Error()},
		{"corrupt", []byte("\x1f\x8b garbage"), "persisted copy"},
		{"truncated", mustBundle(t, src, "r1", good.priv)[:100], "persisted copy"},
		{"wrong key", mustBundle(t, src, "r1", evil.priv), "failed to verify JWT signature"},
		{"unsigned", mustBundle(t, src, "r1", nil), "bundle missing .signatures.json file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			rec := newRecorder("")
			s := mustSource(t, "http://127.0.0.1:1/b.tar.gz", state, verifyWith(good), rec.onBundle, prometheus.NewRegistry())
			if tt.file != nil {
				if err := os.WriteFile(filepath.Join(state, persistDir, currentFile), tt.file, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := s.LoadPersisted(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
			}
			if tt.file == nil && !errors.Is(err, ErrNoPersisted) {
				t.Errorf("err %v is not ErrNoPersisted", err)
			}
			if len(rec.got) != 0 || s.Revision() != "" {
				t.Error("a refused persisted bundle was handed on")
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	good, _ := testKeys(t)
	on := func(context.Context, *opabundle.Bundle) error { return nil }
	for name, cfg := range map[string]Config{
		"no keys":      {URL: "http://h/b.tar.gz", StateDir: t.TempDir(), OnBundle: on},
		"no path":      {URL: "http://h", StateDir: t.TempDir(), OnBundle: on, Verification: verifyWith(good)},
		"no state dir": {URL: "http://h/b.tar.gz", OnBundle: on, Verification: verifyWith(good)},
		"no OnBundle":  {URL: "http://h/b.tar.gz", StateDir: t.TempDir(), Verification: verifyWith(good)},
		"min > max":    {URL: "http://h/b.tar.gz", StateDir: t.TempDir(), OnBundle: on, Verification: verifyWith(good), MinDelay: 5 * time.Second, MaxDelay: time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestRetryAfterLocalFix: a bundle refused because of something outside it
// (here a flag standing for a clashing local file) is taken by Retry once
// that is fixed, without a new publish; the downloader itself does not
// fetch the same bytes again.
func TestRetryAfterLocalFix(t *testing.T) {
	good, _ := testKeys(t)
	fs := &fileServer{}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	var mu sync.Mutex
	clash := true
	got := make(chan string, 16)
	on := func(_ context.Context, b *opabundle.Bundle) error {
		got <- b.Manifest.Revision
		mu.Lock()
		defer mu.Unlock()
		if clash && b.Manifest.Revision == "r2" {
			return errors.New("duplicate rule name block-eve (first defined in rules.d/eve.yaml)")
		}
		return nil
	}
	state := t.TempDir()
	s := mustSource(t, srv.URL+"/b.tar.gz", state, verifyWith(good), on, prometheus.NewRegistry())
	if ok, err := s.Retry(context.Background()); ok || err != nil {
		t.Fatalf("Retry with nothing refused: %v %v", ok, err)
	}
	src := mustSrcDir(t, "")
	fs.set(mustBundle(t, src, "r1", good.priv))
	runSource(t, s)
	waitFor(t, 5*time.Second, "r1 in force", func() bool { return s.Revision() == "r1" })
	fs.set(mustBundle(t, src, "r2", good.priv))
	waitFor(t, 5*time.Second, "r2 refused", func() bool {
		return testutil.ToFloat64(s.m.failures.WithLabelValues(ReasonRejected)) == 1
	})
	time.Sleep(2500 * time.Millisecond) // two polls or more: 304s, no second refusal
	if n := testutil.ToFloat64(s.m.failures.WithLabelValues(ReasonRejected)); n != 1 {
		t.Errorf("refused %v times, want once (the same bytes are not re-fetched)", n)
	}
	mu.Lock()
	clash = false
	mu.Unlock()
	ok, err := s.Retry(context.Background())
	if !ok || err != nil || s.Revision() != "r2" {
		t.Fatalf("Retry: %v %v, in force %q; want r2", ok, err, s.Revision())
	}
	assertPersisted(t, state, good, "r2")
	if ok, _ := s.Retry(context.Background()); ok {
		t.Error("Retry after r2 was taken found something to retry")
	}
}
