package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// The hibernation and exact-kick tests (issue 16: hibernate_test.go,
// exact_kick_test.go) use client addresses 127.0.0.140-127.0.0.179 only.

// holdIdle logs IMAP sessions in, selects INBOX and enters IDLE in each, as
// a mail client waiting for new mail does: h23 and h24 hand such a client
// to imap-hibernate after 1 s.
func holdIdle(t *testing.T, ctx context.Context, inst *testrig.Instance, logins ...login) []*held {
	t.Helper()
	hs := hold(t, ctx, inst, logins...)
	for _, h := range hs {
		if err := h.conn.Select(ctx, "INBOX"); err != nil {
			t.Fatalf("%s: %v", inst.Name, err)
		}
		if err := h.conn.Idle(ctx); err != nil {
			t.Fatalf("%s: %v", inst.Name, err)
		}
	}
	return hs
}

// hibernatedService is the service anvil lists a hibernated IMAP session
// under: 2.3's imap-hibernate keeps "imap", 2.4's registers its own name.
func hibernatedService(inst *testrig.Instance) string {
	if inst.Is24() {
		return "imap-hibernate"
	}
	return "imap"
}

// procTitle is pid's process title (argv[0], e.g. dovecot-ka-h23/imap-hibernate).
func procTitle(pid int64) string {
	b, err := os.ReadFile("/proc/" + strconv.FormatInt(pid, 10) + "/cmdline")
	if err != nil {
		return ""
	}
	title, _, _ := bytes.Cut(bytes.TrimRight(b, "\x00"), []byte{0})
	return strings.TrimSpace(string(title))
}

// pidsOfService is pidsOf for one service.
func pidsOfService(recs []whoRec, user, service, src string) []int64 {
	var keep []whoRec
	for _, r := range recs {
		if r.Service == service {
			keep = append(keep, r)
		}
	}
	return pidsOf(keep, user, src)
}

// onePID returns the one pid anvil lists every held session under (with
// service, or the held protocol when service is ""), or why there is none.
func onePID(recs []whoRec, service string, hs []*held) (int64, string) {
	var pid int64
	for _, h := range hs {
		svc := service
		if svc == "" {
			svc = h.proto
		}
		pids := pidsOfService(recs, h.user, svc, h.src)
		switch {
		case len(pids) != 1:
			return 0, fmt.Sprintf("%s from %s has %s pids %v", h.user, h.src, svc, pids)
		case pid != 0 && pids[0] != pid:
			return 0, fmt.Sprintf("%s from %s is in pid %d, another session in pid %d", h.user, h.src, pids[0], pid)
		}
		pid = pids[0]
	}
	return pid, ""
}

// waitHibernated waits until anvil lists every held session under one pid
// whose process title ends in "/imap-hibernate", and returns that pid.
func waitHibernated(t *testing.T, ctx context.Context, inst *testrig.Instance, hs []*held) int64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		recs := whoJSON(t, ctx, inst)
		pid, why := onePID(recs, hibernatedService(inst), hs)
		if why == "" {
			title := procTitle(pid)
			if strings.HasSuffix(title, "/imap-hibernate") {
				return pid
			}
			why = fmt.Sprintf("pid %d is %q, not imap-hibernate", pid, title)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the sessions are not hibernated in one process after 15s: %s: %+v", inst.Name, why, recs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sharedPID checks that anvil lists every held session in one process (a
// v23shared imap process, a v24proxyhp login process) and returns its pid.
func sharedPID(t *testing.T, recs []whoRec, inst *testrig.Instance, service string, hs []*held) int64 {
	t.Helper()
	pid, why := onePID(recs, service, hs)
	if why != "" {
		t.Fatalf("%s: the sessions do not share one process: %s: %+v", inst.Name, why, recs)
	}
	return pid
}

// checkKicks compares "user ip outcome method [collateral]" of every kick
// --json record with want, order ignored: the method tells a socket
// destroyed inside a shared process from a KICK-USER or a SIGTERM.
func checkKicks(t *testing.T, inst *testrig.Instance, recs []kickRec, want ...string) {
	t.Helper()
	var got []string
	for _, r := range recs {
		s := fmt.Sprintf("%s %s %s %s", r.User, unmapIP(r.IP), r.Outcome, r.Method)
		if r.Collateral {
			s += " collateral"
		}
		got = append(got, s)
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: kick --json records %q, want %q (records %+v)", inst.Name, got, want, recs)
	}
}

// auditKicks lists "user ip result method" of the audit records that end a
// kick (not the kick-intent lines written before it).
func auditKicks(recs []auditRec) []string {
	var out []string
	for _, r := range recs {
		if r.Result == "kick-intent" {
			continue
		}
		if slices.Contains([]string{"kicked", "still-connected", "failed", "refused-collateral"}, r.Result) {
			out = append(out, fmt.Sprintf("%s %s %s %s", r.User, unmapIP(r.IP), r.Result, r.Method))
		}
	}
	slices.Sort(out)
	return out
}
