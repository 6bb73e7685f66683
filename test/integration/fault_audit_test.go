package integration

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// The audit fault tests use client addresses 127.0.0.30-127.0.0.39 only,
// and every rule that kicks names those addresses.

// auditRule kicks the sessions from the given addresses.
func auditRule(name string, ips ...string) string {
	var nets []string
	for _, ip := range ips {
		nets = append(nets, ip+"/32")
	}
	return fmt.Sprintf("rules:\n  - name: %s\n    networks: [%s]\n", name, strings.Join(nets, ", "))
}

// TestFaultAudit: the audit trail survives a full disk, a SIGKILL right
// after a kick, and logrotate's mv + SIGHUP, on real Dovecot 2.3 and 2.4.
func TestFaultAudit(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			t.Run("disk full", func(t *testing.T) { auditDiskFull(t, inst) })
			t.Run("SIGKILL after a kick", func(t *testing.T) { auditSIGKILL(t, inst) })
			t.Run("mv and SIGHUP", func(t *testing.T) { auditRotate(t, inst) })
		})
	}
}

// readAudit reads an audit file; every line must be one JSON object and
// the file must not end in a partial line.
func readAudit(t *testing.T, a *agentProc, path string) []auditRec {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", a.inst.Name, err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("%s: %s ends with a partial line: %q", a.inst.Name, path, data[strings.LastIndexByte(string(data), '\n')+1:])
	}
	saved := a.audit
	defer func() { a.audit = saved }()
	a.audit = path
	return a.auditLog(t)
}

// waitAudit waits until path holds every "rule user ip result" of want.
func waitAudit(t *testing.T, a *agentProc, path string, within time.Duration, want ...string) []auditRec {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a.alive(t)
		var recs []auditRec
		if _, err := os.Stat(path); err == nil {
			recs = readAudit(t, a, path)
		}
		got := results(recs, "kick-intent", "kicked", "still-connected", "failed", "refused-collateral")
		if !slices.ContainsFunc(want, func(w string) bool { return !slices.Contains(got, w) }) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s lacks some of %q within %v; it has %q", a.inst.Name, path, want, within, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it when the test ends (after the agent, stopped by an earlier Cleanup
// registered later, closed its file).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs on %s (the test needs root): %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			_ = exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// fill writes path until the device is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return
		}
	}
}

// auditDiskFull: the audit log's disk is full while kicks happen. Kicks go
// on, /healthz says why it is unhealthy, failures are counted, no line is
// left partial; once space is freed every kick has its intent and outcome
// lines (before: the last line was cut mid-JSON and no line came after).
func auditDiskFull(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	dir := mountTmpfs(t, 64<<10)
	path := filepath.Join(dir, "audit.log")
	// A first line that leaves less room in its page than a record takes:
	// the first record written on the full disk is cut short by write(2).
	pad := 4096 - 150
	first := `{"result":"padding","pad":"` + strings.Repeat("x", pad-30) + `"}` + "\n"
	writeFileT(t, path, first)
	fill(t, filepath.Join(dir, "filler"))

	ips := []string{"127.0.0.30", "127.0.0.31", "127.0.0.32"}
	hs := hold(t, ctx, inst, login{"alice", ips[0], "imap"}, login{"bob", ips[1], "pop3"}, login{"carol", ips[2], "imap"})
	waitListed(t, ctx, inst, hs)
	a := startAgent(t, inst, agentOpts{rules: auditRule("full-disk", ips...), args: []string{"--audit-log", path}})
	a.audit = path
	for _, h := range hs {
		closeTime(t, ctx, h.conn, a.started, 10*time.Second)
	}

	// Unhealthy, naming the audit log, while the records wait.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.alive(t)
		code, body, err := a.get("/healthz")
		if err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "audit log not writable") {
			t.Logf("%s: /healthz on the full disk: %d %s", inst.Name, code, strings.TrimSpace(body))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /healthz on a full audit disk: %d %q %v, want 503 naming the audit log", inst.Name, code, body, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.waitMetricMin(t, 1, 5*time.Second, "kickagent_audit_write_errors_total")
	if recs := readAudit(t, a, path); len(recs) != 1 || recs[0].Result != "padding" {
		t.Errorf("%s: on the full disk the audit log holds %+v, want only the first line (no partial record)", inst.Name, recs)
	}
	// Every kick happened although its record could not be written.
	a.waitMetric(t, 3, 5*time.Second, "kickagent_kicks_total", "rule", "full-disk", "result", "kicked")

	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	a.waitHealthy(t, 10*time.Second)
	var want []string
	for i, u := range []string{"alice", "bob", "carol"} {
		want = append(want, "full-disk "+u+" "+ips[i]+" kick-intent", "full-disk "+u+" "+ips[i]+" kicked")
	}
	recs := waitAudit(t, a, path, 5*time.Second, want...)
	if n := a.count("audit log write failed"); n != 1 {
		t.Errorf("%s: the audit failure was logged %d times, want once (at most once a minute)", inst.Name, n)
	}
	t.Logf("%s: %d audit lines after space was freed; write errors counted", inst.Name, len(recs))
}

// auditSIGKILL: the agent is killed the moment the kicked session closes,
// before it could confirm the kick: the intent line is in the file
// (before: records were written after the settle wait and flushed at the
// end of the cycle, and the killed agent left none).
func auditSIGKILL(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	ip := "127.0.0.33"
	c := holdListed(t, ctx, inst, login{"dave", ip, "imap"})[0]
	a := startAgent(t, inst, agentOpts{rules: auditRule("killed", ip)})
	closeTime(t, ctx, c, a.started, 10*time.Second)
	a.stopped = true
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	recs := readAudit(t, a, a.audit)
	if got := results(recs, "kick-intent"); !slices.Contains(got, "killed dave "+ip+" kick-intent") {
		t.Fatalf("%s: after SIGKILL the audit log has %+v, want dave's kick-intent", inst.Name, recs)
	}
}

// auditRotate: logrotate renames the audit log and sends SIGHUP; the lines
// of later kicks go to a new file at the configured path (before: to the
// renamed file, forever).
func auditRotate(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	ip := "127.0.0.35"
	a := startAgent(t, inst, agentOpts{rules: auditRule("rotated", ip)})
	a.waitHealthy(t, 10*time.Second)
	c := hold(t, ctx, inst, login{"jane", ip, "imap"})[0].conn
	closeTime(t, ctx, c, time.Now(), 10*time.Second)
	waitAudit(t, a, a.audit, 5*time.Second, "rotated jane "+ip+" kicked")

	old := a.audit + ".1"
	if err := os.Rename(a.audit, old); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(a.audit); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no new audit log at %s within 5s of SIGHUP", inst.Name, a.audit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c = hold(t, ctx, inst, login{"jano", ip, "imap"})[0].conn
	closeTime(t, ctx, c, time.Now(), 10*time.Second)
	waitAudit(t, a, a.audit, 5*time.Second, "rotated jano "+ip+" kick-intent", "rotated jano "+ip+" kicked")
	if got := results(readAudit(t, a, old), "kick-intent", "kicked"); slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "jano") }) {
		t.Errorf("%s: the rotated file got lines after SIGHUP: %q", inst.Name, got)
	}
}

// TestFaultAuditCollateral: on v23shared alice and bob share one imap
// process and one client address (so their sockets cannot be told apart);
// a rule naming alice alone is refused as collateral on every try. It is
// audited and logged once, retried with a backoff, and neither session is
// touched (before: one audit and one WARN line every cycle).
func TestFaultAuditCollateral(t *testing.T) {
	inst := instance(t, testrig.V23Shared)
	ctx := testCtx(t)
	waitQuiet(t, ctx, inst)
	hs := hold(t, ctx, inst, login{"alice", "127.0.0.36", "imap"}, login{"bob", "127.0.0.36", "imap"})
	waitListed(t, ctx, inst, hs)
	recs := whoJSON(t, ctx, inst)
	alice, bob := pidsOf(recs, "alice", "127.0.0.36"), pidsOf(recs, "bob", "127.0.0.36")
	if len(alice) != 1 || !slices.Equal(alice, bob) {
		t.Fatalf("%s: alice (pids %v) and bob (pids %v) do not share one imap process: %+v", inst.Name, alice, bob, recs)
	}
	a := startAgent(t, inst, agentOpts{rules: "rules:\n  - name: collateral\n    users: [alice]\n    networks: [127.0.0.36/32]\n"})
	waitAudit(t, a, a.audit, 10*time.Second, "collateral alice 127.0.0.36 refused-collateral")
	// Eight more cycles: tries at about 1, 2, 4 and 8 s after the first.
	ok, _ := a.metric(t, "kickagent_cycles_total", "result", "ok")
	a.waitMetricMin(t, ok+8, 20*time.Second, "kickagent_cycles_total", "result", "ok")
	arecs := readAudit(t, a, a.audit)
	if got := results(arecs, "refused-collateral", "kick-intent", "kicked", "failed", "still-connected"); len(got) != 1 {
		t.Errorf("%s: %d kick records over 9 cycles, want 1 refused-collateral: %q", inst.Name, len(got), got)
	}
	if n := a.count("session not kicked"); n != 1 {
		t.Errorf("%s: %d 'session not kicked' log lines, want 1", inst.Name, n)
	}
	tries, _ := a.metric(t, "kickagent_kicks_total", "rule", "collateral", "result", "refused-collateral")
	if tries < 2 || tries > 6 {
		t.Errorf("%s: %v tries in 9 cycles, want a retry with a doubling backoff (2-6)", inst.Name, tries)
	}
	checkClosed(t, ctx, inst, hs)
}
