package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// The state tests use client addresses 127.0.0.71-127.0.0.79 and alice.

// TestFaultStateResetRestart: a reset survives restarts of the agent. The
// first agent runs in dry run, so the session from before the reset is
// still there when it is killed (SIGKILL: no clean shutdown); alice then
// logged in again, after the reset. The restarted agent (no dry run)
// kicks the old session and leaves the new one, and so do the agents
// after a SIGTERM and another SIGKILL. Before the state file every
// restart took a new cutoff, and the new session was kicked.
func TestFaultStateResetRestart(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inst := instance(t, name)
			ctx := testCtx(t)
			state := t.TempDir()
			a := startAgent(t, inst, agentOpts{rules: noRules, args: []string{"--state-dir", state, "--dry-run"}})
			a.waitHealthy(t, 5*time.Second)
			old := holdListed(t, ctx, inst, login{"alice", "127.0.0.71", "imap"})[0]
			a.mustJob(t, ctx, "reset", "alice", "--no-cache-flush") // passwd-file: nothing cached
			waitStateSessions(t, state, 1, 5*time.Second)
			// Logged in after the cutoff snapshot, with the new password.
			fresh := holdListed(t, ctx, inst, login{"alice", "127.0.0.72", "pop3"})[0]
			time.Sleep(agentInterval + agentInterval/2) // a cycle sees it
			rulesD := a.rulesD

			for i, stop := range []string{"SIGKILL", "SIGTERM", "SIGKILL"} {
				if stop == "SIGKILL" {
					a.kill(t)
				} else {
					a.stop(t)
				}
				start := time.Now()
				a = startAgent(t, inst, agentOpts{rules: noRules, args: []string{"--state-dir", state, "--rules-dir", rulesD}})
				a.rulesD = rulesD
				a.waitHealthy(t, 5*time.Second)
				if a.count("reset state restored") != 1 {
					t.Errorf("%s: restart %d after %s: no \"reset state restored\" in the log", inst.Name, i+1, stop)
				}
				if i == 0 {
					d := closeTime(t, ctx, old, start, 2*agentInterval+5*time.Second)
					t.Logf("%s: after %s the session from before the reset closed in %v", inst.Name, stop, d)
				}
				stayOpen(t, ctx, 3, fresh)
				if t.Failed() {
					t.Fatalf("%s: restart %d after %s kicked the session logged in after the reset", inst.Name, i+1, stop)
				}
			}
		})
	}
}

// kill ends the agent with SIGKILL, as a crash or the OOM killer would.
func (a *agentProc) kill(t *testing.T) {
	t.Helper()
	a.stopped = true
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("%s: SIGKILL the agent: %v", a.inst.Name, err)
	}
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the agent did not exit within 5s of SIGKILL", a.inst.Name)
	}
}

// waitStateSessions waits until the state file in dir holds one reset and
// at least n sessions (a session of alice left by another test counts).
func waitStateSessions(t *testing.T, dir string, n int, within time.Duration) {
	t.Helper()
	path := filepath.Join(dir, "resets.json")
	var last string
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		data, err := os.ReadFile(path)
		if err != nil {
			last = err.Error()
			continue
		}
		last = string(data)
		var st struct {
			Resets   []json.RawMessage `json:"resets"`
			Sessions []json.RawMessage `json:"sessions"`
		}
		if json.Unmarshal(data, &st) == nil && len(st.Resets) == 1 && len(st.Sessions) >= n {
			return
		}
	}
	t.Fatalf("state file %s: want 1 reset and at least %d sessions within %v; last: %s", path, n, within, last)
}

// TestFaultStateMetricsForgetBlocks: per-address blocks (fail2ban's way)
// that kicked and were lifted leave no kickagent_kicks_total or
// kickagent_repeat_kicks_total series behind: before, every block ever
// made kept its series until the agent restarted.
func TestFaultStateMetricsForgetBlocks(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inst := instance(t, name)
			ctx := testCtx(t)
			a := startAgent(t, inst, agentOpts{rules: noRules})
			a.waitHealthy(t, 5*time.Second)
			var ls []login
			for i := 75; i <= 79; i++ {
				ls = append(ls, login{"alice", fmt.Sprintf("127.0.0.%d", i), "imap"})
			}
			cs := holdListed(t, ctx, inst, ls...)
			start := time.Now()
			for _, l := range ls {
				a.mustJob(t, ctx, "block", l.src)
			}
			for _, c := range cs {
				closeTime(t, ctx, c, start, 2*agentInterval+5*time.Second)
			}
			// Five kicks of alice: repeats from the third (repeat_threshold 3).
			waitBlockSeries(t, a, "kickagent_kicks_total{", len(ls))
			waitBlockSeries(t, a, "kickagent_repeat_kicks_total{", len(ls)-2)
			for _, l := range ls {
				a.mustJob(t, ctx, "unblock", l.src)
			}
			waitBlockSeries(t, a, "kickagent_kicks_total{", 0)
			waitBlockSeries(t, a, "kickagent_repeat_kicks_total{", 0)
		})
	}
}

// waitBlockSeries waits until /metrics has n series of metric (its name
// and "{") labelled with a block rule, and fails after 5s.
func waitBlockSeries(t *testing.T, a *agentProc, metric string, n int) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, body, err := a.get("/metrics")
		if err != nil {
			t.Fatalf("%s: /metrics: %v", a.inst.Name, err)
		}
		got = got[:0]
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, metric) && strings.Contains(l, `rule="kickagent-block-`) {
				got = append(got, l)
			}
		}
		if len(got) == n {
			return
		}
	}
	t.Fatalf("%s: %d %s…} series of block rules, want %d:\n%s", a.inst.Name, len(got), metric, n, strings.Join(got, "\n"))
}
