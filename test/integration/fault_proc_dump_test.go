package integration

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// TestFaultProcDumpBounds (issue 12 item 14) against real anvils: a dump
// over limits.dump_max_sessions fails every cycle loudly — logged with the
// setting, counted, /healthz not ok — and nothing is kicked from the part
// read, while a session the rules name stays open; with the defaults the
// same agent kicks it. And the least line bound (4096) still holds the
// longest line real anvil registers (a ~900-byte user name: anvil's input
// buffer is 1 KiB). Real Dovecot cannot send a line over that bound, so the
// over-long line itself is tested against the fake anvil only
// (internal/anvil TestDumpLineTooLong, TestDumpEndless).
func TestFaultProcDumpBounds(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			inst := instance(t, name)
			ctx := testCtx(t)
			c := holdListed(t, ctx, inst, login{"jano", "127.0.0.31", "imap"})[0]
			long := strings.Repeat("l", 900)
			var ss []testrig.SyntheticSession
			for i := range 10 {
				ss = append(ss, testrig.SyntheticSession{User: fmt.Sprintf("syn-bound-%d", i), Service: "imap",
					IP: netip.MustParseAddr("192.0.2.31"), PID: testrig.MinSyntheticPID + 310 + i})
			}
			ss = append(ss, testrig.SyntheticSession{User: long, Service: "imap",
				IP: netip.MustParseAddr("192.0.2.32"), PID: testrig.MinSyntheticPID + 320})
			sc, err := testrig.RegisterSynthetic(ctx, inst, ss)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := sc.Disconnect(testCtx(t)); err != nil {
					t.Errorf("%s: disconnect the synthetic sessions: %v", inst.Name, err)
				}
			})
			rules := "rules:\n  - name: bound\n    users: [jano]\n  - name: long\n    users: [\"lll*\"]\n    dry_run: true\n"

			over := startAgent(t, inst, agentOpts{rules: rules, config: "limits:\n  dump_max_sessions: 5\n"})
			over.waitLog(t, "dump exceeds 5 sessions (limits.dump_max_sessions)", 2, 10*time.Second)
			over.waitMetricMin(t, 2, 5*time.Second, "kickagent_anvil_errors_total")
			if code, body, err := over.get("/healthz"); err != nil || code == http.StatusOK {
				t.Errorf("%s: /healthz answers %d %q (%v) while every dump fails", inst.Name, code, body, err)
			}
			assertOpen(t, ctx, c)
			if recs := over.auditLog(t); len(recs) != 0 {
				t.Errorf("%s: the agent over the bound acted: %+v", inst.Name, recs)
			}
			over.stop(t)

			a := startAgent(t, inst, agentOpts{rules: rules, config: "limits:\n  dump_max_line_bytes: 4096\n"})
			closeTime(t, ctx, c, a.started, 10*time.Second)
			rec := waitAuditFor(t, a, long, 10*time.Second)
			if rec.Result != "dry-run" || rec.Rule != "long" {
				t.Errorf("%s: the long user's record %+v, want a dry-run of rule long", inst.Name, rec)
			}
			if n, _ := a.metric(t, "kickagent_anvil_bad_lines_total", "reason", "line_too_long"); n != 0 {
				t.Errorf("%s: %v real lines over 4096 bytes", inst.Name, n)
			}
		})
	}
}
