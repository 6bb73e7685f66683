package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

// The agent tests use client addresses 127.0.0.9-127.0.0.20 only (the
// other suites use 127.0.0.2-6 and ::1), and narrow every rule that kicks
// to those addresses, so that they never touch another suite's sessions.

// blockedRules is the rules.yaml of the main scenario: one blocked network.
const blockedRules = `rules:
  - name: blocked-net
    description: blocked test network
    networks: [127.0.0.9/32]
`

// TestAgent runs `kickagent run` against real Dovecot 2.3 and 2.4 with
// live IMAP and POP3 sessions: the limits, the circuit breaker, then the
// main scenario (start, hot reload, broken edit, drop-in removal, SIGHUP,
// metrics, a Dovecot restart, SIGTERM). The two versions run in parallel;
// each restarts its own instance at the end.
func TestAgent(t *testing.T) {
	for _, name := range []string{testrig.V23, testrig.V24} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inst := instance(t, name)
			t.Run("per-cycle limit", func(t *testing.T) { agentLimit(t, inst) })
			t.Run("circuit breaker", func(t *testing.T) { agentBreaker(t, inst) })
			t.Run("main", func(t *testing.T) { agentMain(t, inst) })
		})
	}
}

// agentMain is cases 1-4, 6 and 7 with one agent process.
func agentMain(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	// The SIGHUP case needs a rules file whose content changes where no
	// watch sees it: a symlink in a watched directory to a file in another.
	hupDir, linkDir := t.TempDir(), t.TempDir()
	hupFile, hupLink := filepath.Join(hupDir, "hup.yaml"), filepath.Join(linkDir, "hup.yaml")
	writeFileT(t, hupFile, "rules: []\n")
	if err := os.Symlink(hupFile, hupLink); err != nil {
		t.Fatal(err)
	}

	cs := holdListed(t, ctx, inst,
		login{"alice", "127.0.0.9", "imap"}, // blocked
		login{"alice", "127.0.0.10", "imap"},
		login{"bob", "127.0.0.11", "pop3"},
	)
	blocked, bystanders := cs[0], cs[1:]

	a := startAgent(t, inst, agentOpts{rules: blockedRules, args: []string{"--rules", hupLink}})
	kicked := []string{} // "rule user ip" of every kick expected in the audit log

	t.Run("blocked network kicked within one interval", func(t *testing.T) {
		d := closeTime(t, ctx, blocked, a.started, agentInterval+2*time.Second)
		t.Logf("%s: agent start → blocked session closed: %v", inst.Name, d)
		if d > agentInterval {
			t.Errorf("%s: the blocked session closed %v after the agent started, more than one interval (%v)", inst.Name, d, agentInterval)
		}
		kicked = append(kicked, "blocked-net alice 127.0.0.9")
		a.waitHealthy(t, 2*time.Second)
		assertOpen(t, ctx, bystanders...)
	})

	t.Run("SIGHUP reloads", func(t *testing.T) {
		c := holdListed(t, ctx, inst, login{"bob", "127.0.0.18", "imap"})[0]
		n := a.count("rules reloaded")
		// Rewritten in place, outside every watched directory: only
		// SIGHUP (or the 30s poll) can see it.
		writeFileT(t, hupFile, "rules:\n  - name: hup-rule\n    networks: [127.0.0.18/32]\n")
		time.Sleep(500 * time.Millisecond)
		if got := a.count("rules reloaded"); got != n {
			t.Fatalf("%s: the agent reloaded without SIGHUP: the test cannot tell what triggered it", inst.Name)
		}
		assertOpen(t, ctx, c)
		start := time.Now()
		if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		d := closeTime(t, ctx, c, start, 3*time.Second)
		a.waitLog(t, "rules reloaded", n+1, time.Second)
		t.Logf("%s: SIGHUP → session closed: %v", inst.Name, d)
		kicked = append(kicked, "hup-rule bob 127.0.0.18")
		writeFileT(t, hupFile, "rules: []\n")
		if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		a.waitLog(t, "rules reloaded", n+2, 2*time.Second)
		a.waitMetric(t, 1, 2*time.Second, "kickagent_rules_loaded")
	})

	// One login per round, each from its own address so that a session
	// of the previous round still leaving anvil cannot be taken for it.
	rounds := []login{
		{"carol", "127.0.0.12", "imap"},
		{"dave", "127.0.0.13", "pop3"},
		{"james", "127.0.0.14", "imap"},
		{"jane", "127.0.0.15", "imap"},
		{"jano", "127.0.0.16", "imap"},
	}
	var relogin *testrig.Conn
	var reloginAt time.Time
	t.Run("rules.d write kicks within a second", func(t *testing.T) {
		var lats []time.Duration
		for i, l := range rounds {
			c := holdListed(t, ctx, inst, l)[0]
			rule := fmt.Sprintf("dropin-%d", i)
			start := time.Now()
			a.dropIn(t, "50-dropin.yaml", fmt.Sprintf("rules:\n  - name: %s\n    users: [%s]\n    networks: [%s/32]\n", rule, l.user, l.src))
			d := closeTime(t, ctx, c, start, 5*time.Second)
			if d > time.Second {
				t.Errorf("%s: round %d: rule written → session closed took %v, want < 1s", inst.Name, i, d)
			}
			lats = append(lats, d)
			kicked = append(kicked, fmt.Sprintf("%s %s %s", rule, l.user, l.src))
			// Deleting the drop-in stops its kicks.
			a.removeDropIn(t, "50-dropin.yaml")
			a.waitMetric(t, 1, 2*time.Second, "kickagent_rules_loaded")
		}
		t.Logf("%s: rule written → session closed, %d rounds: %v; median %v", inst.Name, len(lats), lats, median(lats))
	})
	if !t.Failed() {
		// The user of the last round logs in again; checked after the
		// next case, over three intervals.
		relogin = holdListed(t, ctx, inst, rounds[len(rounds)-1])[0]
		reloginAt = time.Now()
	}

	t.Run("broken edit keeps the old rules", func(t *testing.T) {
		eve := holdListed(t, ctx, inst, login{"eve", "127.0.0.17", "imap"})[0]
		n := a.count("reload failed")
		a.dropIn(t, "60-broken.yaml", "rules:\n  - name: broken\n    networks: [127.0.0.17/32]\n    userz: [eve]\n")
		a.waitLog(t, "reload failed", n+1, 2*time.Second)
		where := filepath.Join(a.rulesD, "60-broken.yaml") + ":4"
		if !strings.Contains(a.stderr.String(), where) || !strings.Contains(a.stderr.String(), `unknown key \"userz\"`) {
			t.Errorf("%s: the agent's log does not name %s and the unknown key:\n%s", inst.Name, where, a.stderr.String())
		}
		a.waitMetric(t, 0, time.Second, "kickagent_config_last_reload_successful")
		// The old rules are still active: a new session from the blocked
		// network is kicked again.
		// (Not waited for in anvil: the agent may kick it first.)
		c := hold(t, ctx, inst, login{"alice", "127.0.0.9", "imap"})[0].conn
		d := closeTime(t, ctx, c, time.Now(), agentInterval+2*time.Second)
		t.Logf("%s: blocked session after the broken edit closed after %v", inst.Name, d)
		kicked = append(kicked, "blocked-net alice 127.0.0.9")
		// The broken rule kicks nothing, over two more cycles.
		time.Sleep(2*agentInterval + 200*time.Millisecond)
		assertOpen(t, ctx, eve)
		if v, _ := a.metric(t, "kickagent_rules_loaded"); v != 1 {
			t.Errorf("%s: kickagent_rules_loaded = %v after the broken edit, want 1", inst.Name, v)
		}
		a.removeDropIn(t, "60-broken.yaml")
		a.waitMetric(t, 1, 2*time.Second, "kickagent_config_last_reload_successful")
	})

	t.Run("deleted drop-in kicks no more", func(t *testing.T) {
		if relogin == nil {
			t.Skip("the rules.d case failed")
		}
		if wait := time.Until(reloginAt.Add(3*agentInterval + 200*time.Millisecond)); wait > 0 {
			time.Sleep(wait)
		}
		t.Logf("%s: %s from %s open %v after its drop-in was deleted", inst.Name, relogin.User, relogin.Src, time.Since(reloginAt).Round(time.Millisecond))
		assertOpen(t, ctx, relogin)
		assertOpen(t, ctx, bystanders...)
	})

	t.Run("metrics and health", func(t *testing.T) {
		a.waitHealthy(t, time.Second)
		if v, ok := a.metric(t, "kickagent_kicks_total", "rule", "blocked-net", "result", "kicked"); !ok || v < 1 {
			t.Errorf("%s: kickagent_kicks_total{rule=\"blocked-net\",result=\"kicked\"} = %v (present %v), want ≥ 1", inst.Name, v, ok)
		}
		// Rules no longer loaded leave no series behind (they kicked above).
		for _, rule := range []string{"hup-rule", "dropin-0"} {
			if v, ok := a.metric(t, "kickagent_kicks_total", "rule", rule, "result", "kicked"); ok {
				t.Errorf("%s: kickagent_kicks_total{rule=%q,result=\"kicked\"} = %v after the rule was removed, want no series", inst.Name, rule, v)
			}
		}
		if v, _ := a.metric(t, "kickagent_config_last_reload_successful"); v != 1 {
			t.Errorf("%s: kickagent_config_last_reload_successful = %v, want 1", inst.Name, v)
		}
		if v, _ := a.metric(t, "kickagent_circuit_breaker_open"); v != 0 {
			t.Errorf("%s: kickagent_circuit_breaker_open = %v, want 0", inst.Name, v)
		}
	})

	t.Run("survives a Dovecot restart", func(t *testing.T) {
		// Stopped first, so that the agent is seen to live through cycles
		// that fail, then started again with instance.sh start.
		errsBefore, _ := a.metric(t, "kickagent_anvil_errors_total")
		warnsBefore := a.count("anvil snapshot failed")
		if err := testrig.Stop(ctx, inst.Name); err != nil {
			t.Fatalf("stop %s: %v", inst.Name, err)
		}
		a.waitMetricMin(t, errsBefore+1, 3*agentInterval, "kickagent_anvil_errors_total")
		a.waitLog(t, "anvil snapshot failed", warnsBefore+1, time.Second)
		start := time.Now()
		if _, err := testrig.Start(ctx, inst.Name); err != nil {
			t.Fatalf("start %s: %v", inst.Name, err)
		}
		t.Logf("%s: instance.sh start took %v", inst.Name, time.Since(start).Round(time.Millisecond))
		a.alive(t)
		c := hold(t, ctx, inst, login{"alice", "127.0.0.9", "imap"})[0].conn
		d := closeTime(t, ctx, c, time.Now(), agentInterval+2*time.Second)
		t.Logf("%s: after the restart, a blocked session closed after %v", inst.Name, d)
		kicked = append(kicked, "blocked-net alice 127.0.0.9")
		a.waitHealthy(t, 2*time.Second)
		errsAfter, _ := a.metric(t, "kickagent_anvil_errors_total")
		t.Logf("%s: failed cycles while Dovecot was away: %v", inst.Name, errsAfter-errsBefore)
	})

	// The metric counts every kick (once the kick is confirmed, a moment
	// after the client saw the close); read it before the agent stops.
	nBlocked := 0
	for _, k := range kicked {
		if strings.HasPrefix(k, "blocked-net ") {
			nBlocked++
		}
	}
	a.waitMetric(t, float64(nBlocked), 2*time.Second, "kickagent_kicks_total", "rule", "blocked-net", "result", "kicked")
	if nBlocked >= 3 {
		// alice came back from the blocked network three times: the
		// operator is told (repeat_threshold defaults to 3).
		a.waitMetricMin(t, 1, time.Second, "kickagent_repeat_kicks_total", "rule", "blocked-net")
		a.waitLog(t, "user kicked repeatedly", 1, time.Second)
	}

	t.Run("SIGTERM and the audit log", func(t *testing.T) {
		a.stop(t)
		if !strings.Contains(a.stderr.String(), "kickagent running") {
			t.Errorf("%s: no start message in the agent's log:\n%s", inst.Name, a.stderr.String())
		}
		recs := a.auditLog(t)
		var got []string
		for _, r := range recs {
			if r.Result != "kicked" {
				continue
			}
			got = append(got, fmt.Sprintf("%s %s %s", r.Rule, r.User, unmapIP(r.IP)))
			if r.Reason == "" || r.Engine != "yaml" || r.Dovecot == "" || r.Rev == "" || r.PID == 0 || r.Time.IsZero() {
				t.Errorf("%s: incomplete audit record %+v", inst.Name, r)
			}
			if r.Rule == "blocked-net" && !strings.HasPrefix(r.Reason, "blocked test network") {
				t.Errorf("%s: audit reason %q does not start with the rule's description", inst.Name, r.Reason)
			}
		}
		slices.Sort(got)
		slices.Sort(kicked)
		if !slices.Equal(got, kicked) {
			t.Errorf("%s: audit log kicks:\n  %s\nwant one line per kick:\n  %s\nall records: %+v", inst.Name,
				strings.Join(got, "\n  "), strings.Join(kicked, "\n  "), recs)
		}
	})
}

// agentLimit: --max-kicks-per-cycle 1 and a rule matching three sessions:
// they close one per cycle.
func agentLimit(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	logins := []login{
		{"jane", "127.0.0.12", "imap"},
		{"jano", "127.0.0.13", "imap"},
		{"james", "127.0.0.14", "pop3"},
	}
	cs := holdListed(t, ctx, inst, logins...)
	other := holdListed(t, ctx, inst, login{"carol", "127.0.0.15", "imap"})[0]
	a := startAgent(t, inst, agentOpts{
		rules: "rules:\n  - name: three\n    networks: [127.0.0.12/32, 127.0.0.13/32, 127.0.0.14/32]\n",
		args:  []string{"--max-kicks-per-cycle", "1"},
	})
	closed := make([]time.Duration, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, cancel := context.WithTimeout(ctx, 4*agentInterval+3*time.Second)
			defer cancel()
			errs[i] = c.WaitClosed(wctx)
			closed[i] = time.Since(a.started)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %s from %s not closed: %v", inst.Name, logins[i].user, logins[i].src, err)
		}
	}
	slices.Sort(closed)
	t.Logf("%s: closed after agent start: %v", inst.Name, closed)
	for i := 1; i < len(closed); i++ {
		if gap := closed[i] - closed[i-1]; gap < agentInterval/2 {
			t.Errorf("%s: two sessions closed %v apart: the per-cycle limit of 1 did not hold (closes at %v)", inst.Name, gap, closed)
		}
	}
	assertOpen(t, ctx, other)
	if v, ok := a.metric(t, "kickagent_kicks_total", "rule", "three", "result", "held-back"); !ok || v < 1 {
		t.Errorf("%s: kickagent_kicks_total{result=\"held-back\"} = %v (present %v), want ≥ 1", inst.Name, v, ok)
	}
	// SIGTERM comes while the agent still confirms the last kick: it must
	// finish that kick and audit it as kicked, not cut it short.
	a.stop(t)
	recs := a.auditLog(t)
	if got := results(recs, "kicked"); len(got) != 3 {
		t.Errorf("%s: kicked records %q, want 3", inst.Name, got)
	}
	if got := results(recs, "held-back"); len(got) < 1 {
		t.Errorf("%s: no held-back record in the audit log: %+v", inst.Name, recs)
	}
}

// agentBreaker: a rule that matches everyone trips the breaker (fraction
// 0.5, judged from 2 sessions on, set in a -c config file): nothing is
// kicked until the rules change.
func agentBreaker(t *testing.T, inst *testrig.Instance) {
	ctx := testCtx(t)
	cs := holdListed(t, ctx, inst,
		login{"bob", "127.0.0.16", "imap"},
		login{"carol", "127.0.0.17", "pop3"},
		login{"dave", "127.0.0.18", "imap"},
	)
	a := startAgent(t, inst, agentOpts{
		rules:  "rules:\n  - name: everyone\n    users: [\"*\"]\n",
		config: "limits:\n  breaker_fraction: 0.5\n  breaker_min_sessions: 2\n",
	})
	a.waitMetric(t, 1, 3*time.Second, "kickagent_circuit_breaker_open")
	a.waitLog(t, "CIRCUIT BREAKER OPEN", 1, time.Second)
	time.Sleep(2*agentInterval + 200*time.Millisecond)
	assertOpen(t, ctx, cs...)
	if v, ok := a.metric(t, "kickagent_kicks_total", "rule", "everyone", "result", "breaker"); !ok || v < float64(len(cs)) {
		t.Errorf("%s: kickagent_kicks_total{rule=\"everyone\",result=\"breaker\"} = %v (present %v), want ≥ %d", inst.Name, v, ok, len(cs))
	}
	if v, _ := a.metric(t, "kickagent_kicks_total", "rule", "everyone", "result", "kicked"); v != 0 {
		t.Errorf("%s: the breaker is open but %v sessions were kicked", inst.Name, v)
	}

	// A narrower rule set resets the breaker and kicks.
	start := time.Now()
	tmp := filepath.Join(a.dir, ".rules.yaml.tmp")
	writeFileT(t, tmp, "rules:\n  - name: narrow\n    networks: [127.0.0.16/32]\n")
	if err := os.Rename(tmp, a.rules); err != nil {
		t.Fatal(err)
	}
	d := closeTime(t, ctx, cs[0], start, 3*time.Second)
	t.Logf("%s: breaker reset by a rule change; narrow rule kicked after %v", inst.Name, d)
	a.waitMetric(t, 0, time.Second, "kickagent_circuit_breaker_open")
	assertOpen(t, ctx, cs[1:]...)
	a.stop(t)
	recs := a.auditLog(t)
	if got := results(recs, "kicked"); !slices.Equal(got, []string{"narrow bob 127.0.0.16 kicked"}) {
		t.Errorf("%s: kicked records %q, want only the narrow rule's", inst.Name, got)
	}
	// One breaker record per held session (audited once, not every cycle).
	var breaker []string
	for _, r := range recs {
		if ip := unmapIP(r.IP); r.Result == "breaker" && slices.Contains([]string{"127.0.0.16", "127.0.0.17", "127.0.0.18"}, ip) {
			breaker = append(breaker, r.User+" "+ip)
		}
	}
	slices.Sort(breaker)
	if want := []string{"bob 127.0.0.16", "carol 127.0.0.17", "dave 127.0.0.18"}; !slices.Equal(breaker, want) {
		t.Errorf("%s: breaker records for the held sessions %q, want %q", inst.Name, breaker, want)
	}
}
