package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// agentInterval is the cycle interval of every agent the tests start.
const agentInterval = time.Second

// agentProc is one `kickagent run` subprocess with its own directory
// (rules.yaml, rules.d/, kickagent.yaml), an audit log and a free loopback
// metrics port.
type agentProc struct {
	inst     *testrig.Instance
	dir      string
	rules    string // rules.yaml
	rulesD   string // rules.d
	audit    string // audit.log
	metrics  string // host:port of /metrics and /healthz
	cmd      *exec.Cmd
	stderr   *lockedBuffer
	started  time.Time
	done     chan struct{}
	exitCode int
	stopped  bool
}

// agentOpts configure startAgent.
type agentOpts struct {
	rules  string   // content of rules.yaml
	config string   // content of kickagent.yaml, passed with -c when not empty
	args   []string // extra flags
}

// lockedBuffer is a bytes.Buffer the subprocess writes to while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeLoopbackPort returns an address on 127.0.0.1 nobody listens on now.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startAgent starts `kickagent run` against inst with a 1s interval. The
// agent is stopped (SIGTERM) at the end of the test if the test did not
// stop it.
func startAgent(t *testing.T, inst *testrig.Instance, o agentOpts) *agentProc {
	t.Helper()
	dir := t.TempDir()
	// The audit log is written every cycle: it lives outside the watched
	// directories, as /var/log is outside /etc.
	a := &agentProc{inst: inst, dir: dir, rules: filepath.Join(dir, "rules.yaml"),
		rulesD: filepath.Join(dir, "rules.d"), audit: filepath.Join(t.TempDir(), "audit.log"),
		metrics: freeLoopbackPort(t), stderr: &lockedBuffer{}, done: make(chan struct{})}
	writeFileT(t, a.rules, o.rules)
	if err := os.Mkdir(a.rulesD, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "-a", inst.Anvil, "--interval", agentInterval.String(),
		"--rules", a.rules, "--rules-dir", a.rulesD, "--audit-log", a.audit, "--metrics", a.metrics,
		"--state-dir", filepath.Join(dir, "state")} // not the host's /var/lib/kickagent
	if o.config != "" {
		cfg := filepath.Join(dir, "kickagent.yaml")
		writeFileT(t, cfg, o.config)
		args = append(args, "-c", cfg)
	}
	args = append(args, o.args...)
	a.cmd = exec.Command(bin, args...)
	a.cmd.Stderr = a.stderr
	a.cmd.Stdout = a.stderr
	a.started = time.Now()
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start kickagent run: %v", err)
	}
	go func() {
		err := a.cmd.Wait()
		a.exitCode = 0
		if ee, ok := err.(*exec.ExitError); ok {
			a.exitCode = ee.ExitCode()
		} else if err != nil {
			a.exitCode = -1
		}
		close(a.done)
	}()
	t.Cleanup(func() {
		if !a.stopped {
			a.stop(t)
		}
		if t.Failed() {
			t.Logf("%s: agent stderr:\n%s", inst.Name, a.stderr.String())
		}
	})
	return a
}

// stop sends SIGTERM to the agent (the process this test started, by its
// pid) and checks that it exits 0 promptly.
func (a *agentProc) stop(t *testing.T) {
	t.Helper()
	a.stopped = true
	select {
	case <-a.done:
		t.Errorf("%s: the agent exited on its own with %d", a.inst.Name, a.exitCode)
		return
	default:
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("%s: SIGTERM the agent: %v", a.inst.Name, err)
	}
	select {
	case <-a.done:
		if a.exitCode != 0 {
			t.Errorf("%s: the agent exited %d after SIGTERM, want 0", a.inst.Name, a.exitCode)
		}
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
		t.Errorf("%s: the agent did not exit within 5s of SIGTERM", a.inst.Name)
	}
}

// alive fails the test when the agent has exited.
func (a *agentProc) alive(t *testing.T) {
	t.Helper()
	select {
	case <-a.done:
		t.Fatalf("%s: the agent exited with %d:\n%s", a.inst.Name, a.exitCode, a.stderr.String())
	default:
	}
}

// count is how often s occurs in the agent's stderr.
func (a *agentProc) count(s string) int { return strings.Count(a.stderr.String(), s) }

// waitLog waits until the agent's stderr holds s at least n times.
func (a *agentProc) waitLog(t *testing.T, s string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for a.count(s) < n {
		a.alive(t)
		if time.Now().After(deadline) {
			t.Fatalf("%s: the agent did not log %q (%d times) within %v:\n%s", a.inst.Name, s, n, within, a.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches path from the agent's HTTP listener.
func (a *agentProc) get(path string) (int, string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + a.metrics + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitHealthy waits until /healthz answers 200 ok: the rules loaded and a
// cycle completed.
func (a *agentProc) waitHealthy(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a.alive(t)
		code, body, err := a.get("/healthz")
		if err == nil && code == http.StatusOK && strings.TrimSpace(body) == "ok" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /healthz: %d %q %v", a.inst.Name, code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// series formats a metric name and labels as the Prometheus text format
// writes them (labels in name order).
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var kv []string
	for i := 0; i+1 < len(labels); i += 2 {
		kv = append(kv, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	sort.Strings(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

// metric returns the value of one series on /metrics (ok false: absent).
func (a *agentProc) metric(t *testing.T, name string, labels ...string) (float64, bool) {
	t.Helper()
	v, ok, err := a.scrape(name, labels...)
	if err != nil {
		t.Fatalf("%s: %v", a.inst.Name, err)
	}
	return v, ok
}

func (a *agentProc) scrape(name string, labels ...string) (float64, bool, error) {
	code, body, err := a.get("/metrics")
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("status %d", code)
	}
	if err != nil {
		return 0, false, fmt.Errorf("/metrics: %w", err)
	}
	want := series(name, labels...)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 || l[:i] != want {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			return 0, false, fmt.Errorf("/metrics: bad line %q", l)
		}
		return v, true, nil
	}
	return 0, false, nil
}

// waitMetric waits until a series has the value want. /metrics may not
// answer yet while the agent starts.
func (a *agentProc) waitMetric(t *testing.T, want float64, within time.Duration, name string, labels ...string) {
	t.Helper()
	a.waitMetricFunc(t, func(v float64) bool { return v == want }, fmt.Sprint(want), within, name, labels...)
}

// waitMetricMin waits until a series is at least min.
func (a *agentProc) waitMetricMin(t *testing.T, min float64, within time.Duration, name string, labels ...string) {
	t.Helper()
	a.waitMetricFunc(t, func(v float64) bool { return v >= min }, fmt.Sprint("≥ ", min), within, name, labels...)
}

func (a *agentProc) waitMetricFunc(t *testing.T, ok func(float64) bool, want string, within time.Duration, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a.alive(t)
		v, present, err := a.scrape(name, labels...)
		if err == nil && present && ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s = %v (present %v, err %v), want %s", a.inst.Name, series(name, labels...), v, present, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dropIn writes a rules.d file the way an editor does: a hidden temporary
// file in the same directory, renamed into place.
func (a *agentProc) dropIn(t *testing.T, name, content string) {
	t.Helper()
	tmp := filepath.Join(a.rulesD, "."+name+".tmp")
	writeFileT(t, tmp, content)
	if err := os.Rename(tmp, filepath.Join(a.rulesD, name)); err != nil {
		t.Fatal(err)
	}
}

// removeDropIn deletes a rules.d file.
func (a *agentProc) removeDropIn(t *testing.T, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(a.rulesD, name)); err != nil {
		t.Fatal(err)
	}
}

// auditRec is one line of the agent's audit log.
type auditRec struct {
	Time    time.Time `json:"time"`
	Result  string    `json:"result"`
	Rule    string    `json:"rule"`
	Engine  string    `json:"engine"`
	Reason  string    `json:"reason"`
	Rev     string    `json:"rules_rev"`
	Dovecot string    `json:"dovecot"`
	User    string    `json:"user"`
	Service string    `json:"service"`
	IP      string    `json:"ip"`
	PID     int64     `json:"pid"`
	Method  string    `json:"method"`
	Error   string    `json:"error"`
}

// auditLog reads every line of the audit log; each must be one JSON object.
func (a *agentProc) auditLog(t *testing.T) []auditRec {
	t.Helper()
	data, err := os.ReadFile(a.audit)
	if err != nil {
		t.Fatalf("%s: read the audit log: %v", a.inst.Name, err)
	}
	var recs []auditRec
	for i, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if l == "" {
			continue
		}
		var r auditRec
		var raw map[string]any
		if err := json.Unmarshal([]byte(l), &raw); err != nil {
			t.Fatalf("%s: audit log line %d is not one JSON object: %v\n%s", a.inst.Name, i+1, err, l)
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%s: audit log line %d: %v\n%s", a.inst.Name, i+1, err, l)
		}
		recs = append(recs, r)
	}
	return recs
}

// results lists "rule user ip result" of the records with one of results.
func results(recs []auditRec, results ...string) []string {
	var out []string
	for _, r := range recs {
		if slices.Contains(results, r.Result) {
			out = append(out, fmt.Sprintf("%s %s %s %s", r.Rule, r.User, unmapIP(r.IP), r.Result))
		}
	}
	slices.Sort(out)
	return out
}

func unmapIP(s string) string {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	return ip.Unmap().String()
}

func writeFileT(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// holdListed logs the sessions in and waits until anvil lists them.
func holdListed(t *testing.T, ctx context.Context, inst *testrig.Instance, logins ...login) []*testrig.Conn {
	t.Helper()
	hs := hold(t, ctx, inst, logins...)
	waitListed(t, ctx, inst, hs)
	cs := make([]*testrig.Conn, len(hs))
	for i, h := range hs {
		cs[i] = h.conn
	}
	return cs
}

// closeTime waits up to within for the server to close c and returns when
// the client saw it, measured from since.
func closeTime(t *testing.T, ctx context.Context, c *testrig.Conn, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	wctx, cancel := context.WithDeadline(ctx, since.Add(within))
	defer cancel()
	if err := c.WaitClosed(wctx); err != nil {
		t.Fatalf("%s from %s (%s) was not closed within %v: %v", c.User, c.Src, c.Proto, within, err)
	}
	return time.Since(since)
}

// median of ds (ds is sorted in place).
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	n := len(ds)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}
