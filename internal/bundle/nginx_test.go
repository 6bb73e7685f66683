package bundle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The tests below run against real nginx (test/nginx/bundle-server.sh),
// when KICKAGENT_IT=1 or CI is set. There a rig that does not start is a
// failure, never a skip.

const rigScript = "../../test/nginx/bundle-server.sh"

// nginxRig is one bundle server of the test's own, on rigPort.
type nginxRig struct {
	dir  string // BUNDLE_DIR
	port int
}

// rigPort is next to the rig's default (18481), so a rig started by hand
// does not collide with the tests'.
const rigPort = 18482

func requireIT(t testing.TB) {
	t.Helper()
	if os.Getenv("KICKAGENT_IT") != "1" && os.Getenv("CI") == "" {
		t.Skip("nginx bundle server test: set KICKAGENT_IT=1 (needs root: test/nginx/bundle-server.sh fetches nginx with apt-get download)")
	}
}

// startRig starts nginx for t and stops it (by its recorded pid) when t ends.
func startRig(t testing.TB) *nginxRig {
	t.Helper()
	requireIT(t)
	r := &nginxRig{dir: t.TempDir(), port: rigPort}
	// nginx's workers run as nobody: they must reach the files (403 else).
	for _, d := range []string{r.dir, filepath.Dir(r.dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := r.script("start"); err != nil {
		t.Fatalf("bundle server did not start: %v\n%s", err, out)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *nginxRig) script(args ...string) ([]byte, error) {
	cmd := exec.Command(rigScript, args...)
	cmd.Env = append(os.Environ(), "BUNDLE_DIR="+r.dir, "BUNDLE_PORT="+strconv.Itoa(r.port))
	return cmd.CombinedOutput()
}

func (r *nginxRig) stop(t testing.TB) {
	t.Helper()
	if out, err := r.script("stop"); err != nil {
		t.Errorf("bundle server stop: %v\n%s", err, out)
	}
}

func (r *nginxRig) url(name string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/bundles/%s", r.port, name)
}

func (r *nginxRig) path(name string) string { return filepath.Join(r.dir, "www", "bundles", name) }

// publish publishes data as name through the rig's publish.
func (r *nginxRig) publish(t testing.TB, data []byte, name string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := r.script("publish", src, name); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
}

// naiveCopy replaces name with data by rename, with the given mtime, as a
// publisher that does not mind nginx's ETag would (cp, rsync -t, ...).
func (r *nginxRig) naiveCopy(t testing.TB, data []byte, name string, mtime time.Time) {
	t.Helper()
	tmp := r.path("." + name + ".naive")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.path(name)); err != nil {
		t.Fatal(err)
	}
}

// get fetches url with If-None-Match etag.
func get(t testing.TB, url, etag string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("ETag"), body
}

// equalSizePair returns two signed bundles, revisions r1 and r2, with
// different rules but the same size in bytes: nginx's ETag cannot tell them
// apart by size. Compressed sizes of same-length variants scatter by a few
// bytes (and builds carry their time), so it keeps every size seen of each
// revision and returns the first r1/r2 pair that match.
func equalSizePair(t testing.TB, priv []byte) (r1, r2 []byte) {
	t.Helper()
	ones, twos := map[int][]byte{}, map[int][]byte{}
	for i := range 1000 {
		one := mustBundle(t, mustSrcDir(t, fmt.Sprintf("  - name: block-a%04d\n    users: [a%04d@example.com]\n", i, i)), "r1", priv)
		if two, ok := twos[len(one)]; ok {
			return one, two
		}
		ones[len(one)] = one
		two := mustBundle(t, mustSrcDir(t, fmt.Sprintf("  - name: block-b%04d\n    users: [b%04d@example.com]\n", i, i)), "r2", priv)
		if one, ok := ones[len(two)]; ok {
			return one, two
		}
		twos[len(two)] = two
	}
	t.Fatalf("no equal-size pair in 1000 tries of each (sizes %d and %d seen)", len(ones), len(twos))
	return nil, nil
}

// TestNginxETagPitfall shows why the rig's publish bumps mtimes: a naive
// replacement of equal size within the same second keeps nginx's ETag, so
// an agent holding the old bundle gets 304; publish makes it a 200.
func TestNginxETagPitfall(t *testing.T) {
	r := startRig(t)
	good, _ := testKeys(t)
	b1, b2 := equalSizePair(t, good.priv)
	url := r.url("kickagent.tar.gz")

	now := time.Now().Truncate(time.Second)
	r.naiveCopy(t, b1, "kickagent.tar.gz", now)
	code, etag1, body := get(t, url, "")
	if code != 200 || !bytes.Equal(body, b1) {
		t.Fatalf("first GET: %d, %d bytes", code, len(body))
	}
	r.naiveCopy(t, b2, "kickagent.tar.gz", now)
	code, etag, _ := get(t, url, etag1)
	if code != http.StatusNotModified || etag != etag1 {
		t.Fatalf("naive equal-size copy in the same second: %d etag %s (was %s); the pitfall needs 304 and the same ETag", code, etag, etag1)
	}
	t.Logf("naive copy: ETag %s for both bundles, agent gets 304 and misses r2", etag1)

	r.publish(t, b2, "kickagent.tar.gz")
	code, etag2, body := get(t, url, etag1)
	if code != 200 || etag2 == etag1 || !bytes.Equal(body, b2) {
		t.Fatalf("after publish: %d, etag %s (was %s), body is r2: %v", code, etag2, etag1, bytes.Equal(body, b2))
	}

	// Two publishes in the same second: strictly later mtimes each time.
	var mtimes []int64
	for _, b := range [][]byte{b1, b2, b1} {
		r.publish(t, b, "same-second.tar.gz")
		st, err := os.Stat(r.path("same-second.tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		mtimes = append(mtimes, st.ModTime().Unix())
	}
	if !(mtimes[0] < mtimes[1] && mtimes[1] < mtimes[2]) {
		t.Errorf("publish mtimes %v, want strictly increasing", mtimes)
	}
}

// TestNginxSource runs Source against nginx: r1 arrives, a naive
// same-second equal-size replacement is missed (the pitfall, with OPA's
// downloader), the rig's publish of the same r2 arrives, a wrongly signed r3
// is refused with r2 kept, and with nginx stopped a new Source starts from
// the persisted r2.
func TestNginxSource(t *testing.T) {
	r := startRig(t)
	good, evil := testKeys(t)
	b1, b2 := equalSizePair(t, good.priv)
	state := t.TempDir()
	rec := newRecorder("")
	s := mustSource(t, r.url("kickagent.tar.gz"), state, verifyWith(good), rec.onBundle, prometheus.NewRegistry())

	r.publish(t, b1, "kickagent.tar.gz")
	st, err := os.Stat(r.path("kickagent.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	if rev := rec.wait(t, 3*time.Second); rev != "r1" { // the first poll is at once, then 1 s
		t.Fatalf("got %s, want r1", rev)
	}

	r.naiveCopy(t, b2, "kickagent.tar.gz", st.ModTime())
	select {
	case rev := <-rec.got:
		t.Fatalf("got %s through a same-mtime equal-size copy; expected the 304 pitfall", rev)
	case <-time.After(3500 * time.Millisecond): // three polls or more
	}
	t.Log("naive copy of r2: not seen in 3.5 s of 1 s polls (304)")

	r.publish(t, b2, "kickagent.tar.gz")
	if rev := rec.wait(t, 3*time.Second); rev != "r2" {
		t.Fatalf("got %s, want r2", rev)
	}
	waitFor(t, time.Second, "r2 in force", func() bool { return s.Revision() == "r2" })

	r.publish(t, mustBundle(t, mustSrcDir(t, "# r3\n"), "r3", evil.priv), "kickagent.tar.gz")
	waitFor(t, 4*time.Second, "verify failure counted", func() bool {
		return testutil.ToFloat64(s.m.failures.WithLabelValues(ReasonVerify)) >= 1
	})
	if len(rec.got) != 0 || s.Revision() != "r2" {
		t.Fatalf("wrongly signed r3 handed on or r2 not in force (%q)", s.Revision())
	}

	r.stop(t)
	rec2 := newRecorder("")
	s2 := mustSource(t, r.url("kickagent.tar.gz"), state, verifyWith(good), rec2.onBundle, prometheus.NewRegistry())
	b, err := s2.LoadPersisted(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Revision != "r2" || rec2.wait(t, time.Second) != "r2" {
		t.Fatalf("persisted %s, want r2", b.Manifest.Revision)
	}
	runSource(t, s2)
	waitFor(t, 3*time.Second, "download failure counted", func() bool {
		return testutil.ToFloat64(s2.m.failures.WithLabelValues(ReasonDownload)) >= 1
	})
	if s2.Revision() != "r2" || testutil.ToFloat64(s2.m.persisted) != 1 {
		t.Errorf("with nginx down: in force %q, from_persisted %v; want r2, 1", s2.Revision(), testutil.ToFloat64(s2.m.persisted))
	}
}

// BenchmarkNginxPublishLatency measures publish → OnBundle with 1 s polling
// against nginx: each iteration publishes a new revision through the rig
// and waits for the Source to hand it on. Reported: median and max over
// the iterations (-benchtime 10x for ten publishes).
func BenchmarkNginxPublishLatency(b *testing.B) {
	r := startRig(b)
	good, _ := testKeys(b)
	bundles := make([][]byte, b.N+1)
	for i := range bundles {
		bundles[i] = mustBundle(b, mustSrcDir(b, fmt.Sprintf("# rev %d\n", i)), fmt.Sprintf("b%d", i), good.priv)
	}
	rec := newRecorder("")
	s, err := New(Config{URL: r.url("lat.tar.gz"), MinDelay: time.Second, MaxDelay: time.Second,
		Verification: verifyWith(good), StateDir: b.TempDir(), OnBundle: rec.onBundle})
	if err != nil {
		b.Fatal(err)
	}
	r.publish(b, bundles[0], "lat.tar.gz")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitRev(b, rec, "b0", 5*time.Second)

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		// Publish at a random phase of the poll cycle, as a real publisher does.
		time.Sleep(time.Duration(i*137%1000) * time.Millisecond)
		start := time.Now()
		r.publish(b, bundles[i], "lat.tar.gz")
		waitRev(b, rec, fmt.Sprintf("b%d", i), 5*time.Second)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "ms-median")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "ms-max")
	b.Logf("publish → OnBundle latencies: %v", lat)
}

func waitRev(tb testing.TB, rec *recorder, want string, d time.Duration) {
	tb.Helper()
	select {
	case rev := <-rec.got:
		if rev != want {
			tb.Fatalf("got %s, want %s", rev, want)
		}
	case <-time.After(d):
		tb.Fatalf("%s not within %v", want, d)
	}
}
