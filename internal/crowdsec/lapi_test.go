package crowdsec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	csbouncer "github.com/crowdsecurity/go-cs-bouncer"
	"github.com/kickagent/kickagent/internal/testrig"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// These tests run against the real LAPI of test/crowdsec/lapi.sh, only with
// KICKAGENT_IT=1 (or CI) set; then a LAPI that is not running fails them.

const pullEvery = time.Second

// lapi runs test/crowdsec/lapi.sh with the tests' KA_ROOT.
func lapi(t *testing.T, args ...string) string {
	t.Helper()
	repo, err := testrig.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	root, err := testrig.Root()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(repo, "test/crowdsec/lapi.sh"), args...)
	cmd.Env = append(os.Environ(), "KA_ROOT="+root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lapi.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// needLAPI skips without KICKAGENT_IT, and fails when the LAPI is not up.
func needLAPI(t *testing.T) Config {
	t.Helper()
	if os.Getenv("KICKAGENT_IT") == "" && os.Getenv("CI") == "" {
		t.Skip("set KICKAGENT_IT=1 and run test/crowdsec/lapi.sh start to test against a real CrowdSec LAPI")
	}
	lapi(t, "status")
	cfg := Config{UpdateFrequency: pullEvery}
	sc := bufio.NewScanner(strings.NewReader(lapi(t, "env")))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "CROWDSEC_URL":
			cfg.URL = v
		case "CROWDSEC_KEY_FILE":
			cfg.KeyFile = v
		}
	}
	if cfg.URL == "" || cfg.KeyFile == "" {
		t.Fatal("lapi.sh env: no CROWDSEC_URL or CROWDSEC_KEY_FILE")
	}
	lapi(t, "decisions-delete", "--all") // a clean slate; the deletions stream harmlessly
	return cfg
}

// testLogger logs to t until the test ends (the bouncer's logrus output is
// routed here too).
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// runSource starts s.Run; at cleanup it checks that Run was still running
// and returns nil once its context ends.
func runSource(t *testing.T, s *Source) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		select {
		case err := <-done:
			t.Errorf("Run returned before its context ended: %v", err)
			cancel()
			return
		default:
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10 s after its context ended")
		}
	})
}

// waitFor polls cond every 10 ms until it holds, and returns how long that took.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func blocked(s *Source, ip string) func() bool {
	return func() bool { _, ok := s.Blocked(netip.MustParseAddr(ip)); return ok }
}

func lifted(s *Source, ip string) func() bool {
	return func() bool { _, ok := s.Blocked(netip.MustParseAddr(ip)); return !ok }
}

func TestLAPIDecisionsBecomeBlocks(t *testing.T) {
	cfg := needLAPI(t)
	reg := prometheus.NewRegistry()
	s, err := New(cfg, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	waitFor(t, "first pull", 5*time.Second, func() bool { return !s.LastPull().IsZero() })
	limit := 3 * pullEvery

	lapi(t, "decisions-add", "--ip", "198.51.100.7", "--duration", "10m", "--reason", "kickagent-it")
	t.Logf("ip: cscli add -> blocked in %v", waitFor(t, "ip block", limit, blocked(s, "198.51.100.7")))
	if d, _ := s.Blocked(netip.MustParseAddr("198.51.100.7")); d.Scope != ScopeIP || d.Origin != "cscli" || d.Scenario != "kickagent-it" ||
		time.Until(d.Until) < 9*time.Minute {
		t.Errorf("decision %+v", d)
	}
	lapi(t, "decisions-add", "--range", "203.0.113.5/24", "--duration", "10m")
	t.Logf("range: cscli add -> blocked in %v", waitFor(t, "range block", limit, blocked(s, "203.0.113.200")))
	lapi(t, "decisions-add", "--ip", "2001:db8::7", "--duration", "10m")
	t.Logf("ipv6: cscli add -> blocked in %v", waitFor(t, "ipv6 block", limit, blocked(s, "2001:db8::7")))
	lapi(t, "decisions-add", "--scope", "username", "--value", "Mallory@Example.com", "--duration", "10m")
	t.Logf("username: cscli add -> blocked in %v", waitFor(t, "username block", limit, func() bool {
		_, ok := s.UserBlocked("mallory@example.com")
		return ok
	}))
	lapi(t, "decisions-add", "--ip", "192.0.2.66", "--type", "captcha", "--duration", "10m")

	rev := s.Revision()
	lapi(t, "decisions-delete", "--ip", "198.51.100.7")
	t.Logf("ip: cscli delete -> lifted in %v", waitFor(t, "ip lift", limit, lifted(s, "198.51.100.7")))
	if s.Revision() == rev {
		t.Error("revision unchanged by a deletion")
	}
	lapi(t, "decisions-delete", "-v", "Mallory@Example.com")
	t.Logf("username: cscli delete -> lifted in %v", waitFor(t, "username lift", limit, func() bool {
		_, ok := s.UserBlocked("Mallory@Example.com")
		return !ok
	}))
	// The LAPI re-sends deletions for a while (expired since its last pull
	// minus 2 s); they must change nothing.
	rev = s.Revision()
	time.Sleep(4 * pullEvery)
	if s.Revision() != rev {
		t.Errorf("repeated deletions changed the revision %d -> %d", rev, s.Revision())
	}
	t.Logf("repeated deletions received (noop): %v", testutil.ToFloat64(s.m.ignored.WithLabelValues("noop_delete")))
	if got := testutil.ToFloat64(s.m.ignored.WithLabelValues("type")); got < 1 {
		t.Errorf("captcha not counted as ignored (%v)", got)
	}
	if _, ok := s.Blocked(netip.MustParseAddr("192.0.2.66")); ok {
		t.Error("captcha decision blocks")
	}
	for _, ip := range []string{"203.0.113.200", "2001:db8::7"} {
		if !blocked(s, ip)() {
			t.Errorf("%s lifted by another decision's deletion", ip)
		}
	}

	// A short decision ends on the local clock.
	lapi(t, "decisions-add", "--ip", "198.51.100.9", "--duration", "3s")
	waitFor(t, "short block", limit, blocked(s, "198.51.100.9"))
	t.Logf("3s decision: lifted %v after being seen", waitFor(t, "expiry", 3*time.Second+limit, lifted(s, "198.51.100.9")))
}

// A Source started while the LAPI is down waits for it (Run does not
// return) and takes its decisions once it is up.
func TestLAPIDownAtStart(t *testing.T) {
	cfg := needLAPI(t)
	lapi(t, "stop")
	t.Cleanup(func() { lapi(t, "start") })
	s, err := New(cfg, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	errsBefore := counterValue(csbouncer.TotalLAPIError)
	runSource(t, s)
	time.Sleep(2 * time.Second)
	if n := counterValue(csbouncer.TotalLAPIError) - errsBefore; n < 1 {
		t.Errorf("pull errors counted: %v", n)
	}
	if !s.LastPull().IsZero() {
		t.Fatal("pulled from a stopped LAPI")
	}
	if n := counterValue(s.m.pulls); n != 0 {
		t.Fatalf("pulls %v", n)
	}
	lapi(t, "start")
	lapi(t, "decisions-add", "--ip", "198.51.100.77", "--duration", "10m")
	// The library retries a failed first connect every 10 s.
	t.Logf("LAPI up -> blocked in %v", waitFor(t, "block after the LAPI came up", 12*time.Second+3*pullEvery, blocked(s, "198.51.100.77")))
	lapi(t, "decisions-delete", "--ip", "198.51.100.77")
	waitFor(t, "lift", 3*pullEvery, lifted(s, "198.51.100.77"))

	// Down again after the first pull: pulls fail, blocks stay, and the
	// next pulls after the restart bring what changed (no 10 s wait now).
	lapi(t, "decisions-add", "--ip", "198.51.100.78", "--duration", "10m")
	waitFor(t, "block", 3*pullEvery, blocked(s, "198.51.100.78"))
	lapi(t, "stop")
	time.Sleep(2 * pullEvery)
	if !blocked(s, "198.51.100.78")() {
		t.Fatal("a block was dropped while the LAPI was down")
	}
	lapi(t, "start")
	lapi(t, "decisions-delete", "--ip", "198.51.100.78")
	lapi(t, "decisions-add", "--ip", "198.51.100.79", "--duration", "10m")
	t.Logf("LAPI restarted -> new block in %v", waitFor(t, "block after restart", 3*pullEvery, blocked(s, "198.51.100.79")))
	waitFor(t, "lift after restart", 3*pullEvery, lifted(s, "198.51.100.78"))
}

// ids lists the ids of the decisions cscli shows for ip.
func ids(t *testing.T, ip string) []int64 {
	t.Helper()
	var alerts []struct {
		Decisions []struct {
			ID int64 `json:"id"`
		} `json:"decisions"`
	}
	out := lapi(t, "cscli", "decisions", "list", "--ip", ip, "-o", "json")
	if i := strings.IndexByte(out, '['); i >= 0 {
		out = out[i:] // cscli may log before the JSON
	}
	if err := json.Unmarshal([]byte(out), &alerts); err != nil {
		t.Fatalf("cscli decisions list: %v\n%s", err, out)
	}
	var ids []int64
	for _, a := range alerts {
		for _, d := range a.Decisions {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// Two bans on one address: the LAPI streams only the longer one, says
// nothing when it is deleted while the shorter holds, and deletes the
// shorter one when that one goes. The block must follow the LAPI's view.
func TestLAPIOverlappingDecisions(t *testing.T) {
	cfg := needLAPI(t)
	s, err := New(cfg, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, s)
	waitFor(t, "first pull", 5*time.Second, func() bool { return !s.LastPull().IsZero() })
	const ip = "192.0.2.50"
	// cscli lists only the longest decision per value, as the stream does.
	lapi(t, "decisions-add", "--ip", ip, "--duration", "1h")
	first := ids(t, ip)
	lapi(t, "decisions-add", "--ip", ip, "--duration", "2h")
	second := ids(t, ip)
	if len(first) != 1 || len(second) != 1 || first[0] == second[0] {
		t.Fatalf("decision ids %v then %v", first, second)
	}
	short, long := first[0], second[0]
	waitFor(t, "the longer decision held", 3*pullEvery, func() bool {
		d, _ := s.Blocked(netip.MustParseAddr(ip))
		return d.ID == long
	})
	lapi(t, "decisions-delete", "--id", strconv.FormatInt(long, 10))
	time.Sleep(3 * pullEvery)
	if !blocked(s, ip)() {
		t.Fatal("lifted while the shorter decision still holds")
	}
	lapi(t, "decisions-delete", "--id", strconv.FormatInt(short, 10))
	t.Logf("last decision deleted -> lifted in %v", waitFor(t, "lift", 3*pullEvery, lifted(s, ip)))
}

// A key the LAPI does not know: Run keeps retrying, counts the errors and
// holds nothing.
func TestLAPIWrongKey(t *testing.T) {
	cfg := needLAPI(t)
	cfg.KeyFile = filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(cfg.KeyFile, []byte("ffffffffffffffffffffffffffffffff\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, prometheus.NewRegistry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	errsBefore := counterValue(csbouncer.TotalLAPIError)
	runSource(t, s)
	time.Sleep(time.Second)
	if !s.LastPull().IsZero() || counterValue(csbouncer.TotalLAPIError)-errsBefore < 1 {
		t.Errorf("last pull %v, pull errors %v", s.LastPull(), counterValue(csbouncer.TotalLAPIError)-errsBefore)
	}
}
