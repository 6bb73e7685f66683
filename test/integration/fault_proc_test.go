package integration

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// TestFaultProcOtherInstance: on Dovecot 2.3 a kick is a SIGTERM to the
// pid anvil names. An anvil entry of v23 that names the pid of a real imap
// process of v23shared (a stale or forged entry: the title dovecot-…/imap
// and a parent named dovecot both fit) must not make v23's agent signal
// that process: it belongs to another Dovecot. The agent refuses, audits
// the refusal with its reason, and the other instance's client stays
// connected; a session of v23's own imap process is still kicked.
func TestFaultProcOtherInstance(t *testing.T) {
	inst := instance(t, testrig.V23)
	other := instance(t, testrig.V23Shared)
	ctx := testCtx(t)

	victim := holdListed(t, ctx, other, login{"dave", "127.0.0.21", "imap"})[0]
	pids := pidsOf(whoJSON(t, ctx, other), "dave", "127.0.0.21")
	if len(pids) != 1 {
		t.Fatalf("%s: dave from 127.0.0.21 has pids %v, want one", other.Name, pids)
	}
	own := holdListed(t, ctx, inst, login{"carol", "127.0.0.22", "imap"})[0]
	registerPID23(t, ctx, inst, pids[0], "imap/127.0.0.23/eve")
	if got := pidsOf(whoJSON(t, ctx, inst), "eve", "127.0.0.23"); len(got) != 1 || got[0] != pids[0] {
		t.Fatalf("%s: anvil lists eve from 127.0.0.23 with pids %v, want [%d]", inst.Name, got, pids[0])
	}

	a := startAgent(t, inst, agentOpts{rules: "rules:\n  - name: fault-proc\n    users: [eve, carol]\n"})
	// Control: the check accepts the instance's own imap process.
	closeTime(t, ctx, own, a.started, 10*time.Second)

	rec := waitAuditFor(t, a, "eve", 10*time.Second)
	if rec.Result != "failed" || rec.PID != pids[0] {
		t.Errorf("%s: eve's audit record %+v: want result failed on pid %d", inst.Name, rec, pids[0])
	}
	for _, part := range []string{strconv.FormatInt(pids[0], 10), "not this Dovecot's master", "master.pid", "not signalled"} {
		if !strings.Contains(rec.Error, part) {
			t.Errorf("%s: eve's audit error %q does not say %q", inst.Name, rec.Error, part)
		}
	}
	t.Logf("%s: refusal audited: %s", inst.Name, rec.Error)
	// Refused in every cycle, never signalled.
	stayOpen(t, ctx, 2, victim)

	// The one-shot command refuses the same way.
	out, errOut, code := kickagent(t, ctx, "kick", "-a", inst.Anvil, "eve")
	if code == 0 || !strings.Contains(out+errOut, "not this Dovecot's master") {
		t.Errorf("%s: kick eve: exit %d, want a refusal naming the master:\nstdout: %s\nstderr: %s", inst.Name, code, out, errOut)
	}
	assertOpen(t, ctx, victim)
}

// waitAuditFor waits for the first audit record of user.
func waitAuditFor(t *testing.T, a *agentProc, user string, within time.Duration) auditRec {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a.alive(t)
		for _, r := range a.auditLog(t) {
			// The outcome, not the kick-intent line written before it.
			if r.User == user && r.Result != "kick-intent" {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no audit record for %s within %v:\n%s", a.inst.Name, user, within, a.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// registerPID23 registers a session on a 2.3 anvil under a real pid, which
// testrig's synthetic sessions refuse to do, and disconnects it when the
// test ends. A LOOKUP round trip shows that anvil has processed it.
func registerPID23(t *testing.T, ctx context.Context, inst *testrig.Instance, pid int64, ident string) {
	t.Helper()
	send := func(lines string) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", inst.Anvil)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("VERSION\tanvil\t1\t0\n" + lines + "LOOKUP\t" + ident + "\n")); err != nil {
			return err
		}
		_, err = bufio.NewReader(c).ReadString('\n')
		return err
	}
	line := strconv.FormatInt(pid, 10) + "\t" + ident + "\n"
	if err := send("CONNECT\t" + line); err != nil {
		t.Fatalf("%s: register %s under pid %d: %v", inst.Name, ident, pid, err)
	}
	t.Cleanup(func() {
		if err := send("DISCONNECT\t" + line); err != nil {
			t.Errorf("%s: disconnect %s of pid %d: %v", inst.Name, ident, pid, err)
		}
	})
}
