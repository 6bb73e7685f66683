package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/audit"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/kick"
)

// outcomeKicker answers every selected session with one outcome and, with
// intent, announces them first as AnvilKicker does. At each kick it
// records what the audit file held then.
type outcomeKicker struct {
	outcome kick.Outcome
	err     error // of every result
	intent  bool
	file    func() string
	calls   int
	atKick  []string // the audit file when the kick went out
}

func (k *outcomeKicker) Kick(ctx context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool) ([]kick.Result, error) {
	return k.KickIntent(ctx, snap, selected, nil)
}

func (k *outcomeKicker) KickIntent(_ context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool, before func([]*anvil.Session)) ([]kick.Result, error) {
	var res []kick.Result
	var ss []*anvil.Session
	for i := range snap.Sessions {
		if s := &snap.Sessions[i]; selected(s) {
			ss = append(ss, s)
			res = append(res, kick.Result{Session: s, Outcome: k.outcome, Method: "fake", Err: k.err})
		}
	}
	if before != nil && k.intent && k.outcome != kick.RefusedCollateral {
		before(ss)
	}
	k.calls++
	k.atKick = append(k.atKick, k.file())
	return res, nil
}

// plainKicker hides KickIntent: the agent announces every session itself.
type plainKicker struct{ k *outcomeKicker }

func (p plainKicker) Kick(ctx context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool) ([]kick.Result, error) {
	return p.k.Kick(ctx, snap, selected)
}

type clockRig struct {
	a    *Agent
	now  time.Time
	reg  *prometheus.Registry
	logs *bytes.Buffer
}

func newClockRig(t *testing.T, rules string, snap *anvil.Snapshot, k Kicker, w io.Writer) *clockRig {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &clockRig{now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}}
	r.a = New(Settings{Interval: 5 * time.Second}, Deps{Source: &fakeSource{snap: snap}, Kicker: k, Audit: audit.New(w),
		Metrics: NewMetrics(r.reg), Now: func() time.Time { return r.now },
		Logger: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Load: func(ctx context.Context) (*engine.Ruleset, error) {
			return engine.Load(ctx, engine.Sources{Rules: []string{path}})
		}})
	rs, err := r.a.load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.a.swap(rs)
	return r
}

// cycles runs n cycles an interval apart.
func (r *clockRig) cycles(t *testing.T, n int) {
	t.Helper()
	for range n {
		if err := r.a.cycle(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.now = r.now.Add(5 * time.Second)
	}
}

// The intent to kick is in the audit file before the kick goes out, so a
// crash between the kick and its outcome leaves a trace (before: records
// were buffered and flushed at the end of the cycle).
func TestIntentAuditedBeforeKick(t *testing.T) {
	for _, withIntent := range []bool{true, false} {
		var buf bytes.Buffer
		k := &outcomeKicker{outcome: kick.Kicked, intent: true, file: buf.String}
		var kk Kicker = k
		if !withIntent {
			kk = plainKicker{k}
		}
		r := newClockRig(t, `rules: [{name: bad, users: [mallory]}]`, sessions(2, func(i int) string { return []string{"alice", "mallory"}[i] }), kk, &buf)
		r.cycles(t, 1)
		if k.calls != 1 || !strings.Contains(k.atKick[0], `"result":"kick-intent"`) || !strings.Contains(k.atKick[0], `"user":"mallory"`) {
			t.Fatalf("intent kicker %v: audit file when the kick went out:\n%s\nwant mallory's kick-intent line", withIntent, k.atKick)
		}
		if strings.Contains(k.atKick[0], "alice") {
			t.Errorf("intent for a session no rule names:\n%s", k.atKick[0])
		}
		if got := strings.Count(buf.String(), "\n"); got != 2 {
			t.Errorf("%d audit lines, want intent and outcome:\n%s", got, buf.String())
		}
	}
}

// A session whose kick keeps failing is audited and logged once per
// outcome and retried with a backoff (before: 1 audit and 1 WARN line per
// session every cycle).
func TestUnkickableAuditedOnce(t *testing.T) {
	for _, o := range []kick.Outcome{kick.RefusedCollateral, kick.StillConnected, kick.Failed} {
		t.Run(string(o), func(t *testing.T) {
			var buf bytes.Buffer
			k := &outcomeKicker{outcome: o, intent: true, file: func() string { return "" }}
			r := newClockRig(t, `rules: [{name: bad, users: [mallory]}]`, sessions(3, func(int) string { return "mallory" }), k, &buf)
			r.cycles(t, 40) // 200 s
			if n := strings.Count(buf.String(), `"result":"`+string(o)+`"`); n != 3 {
				t.Errorf("%d %s audit lines for 3 sessions over 40 cycles, want 3:\n%s", n, o, buf.String())
			}
			wantIntents := 3
			if o == kick.RefusedCollateral {
				wantIntents = 0 // nothing went out
			}
			if n := strings.Count(buf.String(), `"result":"kick-intent"`); n != wantIntents {
				t.Errorf("%d intent lines, want %d", n, wantIntents)
			}
			if n := strings.Count(r.logs.String(), "level=WARN"); n != 3 {
				t.Errorf("%d WARN lines, want 3:\n%s", n, r.logs.String())
			}
			// Tried at 0, 5, 15, 35, 75, 155 s (waits 5, 10, 20, 40, 80 s), then every retryCap.
			if k.calls < 5 || k.calls > 8 {
				t.Errorf("%d kick attempts in 40 cycles, want about 6 (doubling backoff)", k.calls)
			}
			if v := testutil.ToFloat64(r.a.m.kicks.WithLabelValues("bad", string(o))); v != float64(3*k.calls) {
				t.Errorf("kicks_total{%s} = %v, want every attempt (%d)", o, v, 3*k.calls)
			}
		})
	}
}

// A kick that works after failing is audited, and the backoff is gone.
func TestRetryThenKicked(t *testing.T) {
	var buf bytes.Buffer
	k := &outcomeKicker{outcome: kick.StillConnected, intent: true, file: func() string { return "" }}
	r := newClockRig(t, `rules: [{name: bad, users: [mallory]}]`, sessions(1, func(int) string { return "mallory" }), k, &buf)
	r.cycles(t, 4)
	k.outcome = kick.Kicked
	r.cycles(t, 6)
	want := []string{"kick-intent", "still-connected", "kicked"}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec audit.Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		got = append(got, rec.Result)
	}
	if len(got) < 3 || strings.Join(got[:3], " ") != strings.Join(want, " ") {
		t.Fatalf("audit results %v, want %v then one more kick per cycle", got, want)
	}
	if len(r.a.st.retries) != 0 {
		t.Errorf("backoff kept after the kick: %v", r.a.st.retries)
	}
}

// fullDisk fails every write with ENOSPC until freed.
type fullDisk struct {
	buf  bytes.Buffer
	full bool
}

func (d *fullDisk) Write(p []byte) (int, error) {
	if d.full {
		return 0, syscall.ENOSPC
	}
	return d.buf.Write(p)
}

// A full disk is counted, logged at most once a minute, and the records
// kept are written once space is back.
func TestAuditWriteErrors(t *testing.T) {
	d := &fullDisk{full: true}
	k := &outcomeKicker{outcome: kick.Kicked, intent: true, file: func() string { return "" }}
	snap := sessions(3, func(i int) string { return []string{"alice", "bob", "mallory"}[i] })
	r := newClockRig(t, `rules: [{name: bad, users: [mallory, bob]}]`, snap, k, d)
	r.cycles(t, 12) // a minute: 2 kicks, each intent + outcome, every cycle
	if v := testutil.ToFloat64(r.a.m.auditErrors); v < 12 {
		t.Errorf("kickagent_audit_write_errors_total = %v, want a count of every failure", v)
	}
	if n := strings.Count(r.logs.String(), "audit log write failed"); n < 1 || n > 2 {
		t.Errorf("%d audit failure log lines in a minute of failures, want 1 or 2:\n%s", n, r.logs.String())
	}
	if r.a.audit.Err() == nil {
		t.Error("audit.Err() nil while writes fail (healthz reads it)")
	}
	d.full = false
	r.cycles(t, 1)
	if r.a.audit.Err() != nil || r.a.audit.Pending() != 0 {
		t.Errorf("after space came back: Err %v, %d pending", r.a.audit.Err(), r.a.audit.Pending())
	}
	if n := strings.Count(d.buf.String(), `"result":"kicked"`); n != 2*13 {
		t.Errorf("%d kicked lines, want 26 (2 a cycle for 13 cycles)", n)
	}
	if !strings.Contains(r.logs.String(), "audit log writes recovered") {
		t.Errorf("no recovery log:\n%s", r.logs.String())
	}
	if errors.Is(r.a.audit.Err(), syscall.ENOSPC) {
		t.Error("error kept")
	}
}

// failKicker announces its sessions, then anvil fails before any result.
type failKicker struct{}

func (failKicker) Kick(ctx context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool) ([]kick.Result, error) {
	return failKicker{}.KickIntent(ctx, snap, selected, nil)
}

func (failKicker) KickIntent(_ context.Context, snap *anvil.Snapshot, selected func(*anvil.Session) bool, before func([]*anvil.Session)) ([]kick.Result, error) {
	var ss []*anvil.Session
	for i := range snap.Sessions {
		if s := &snap.Sessions[i]; selected(s) {
			ss = append(ss, s)
		}
	}
	before(ss)
	return nil, errors.New("anvil: connection reset")
}

// Every intent gets an outcome while the agent lives: a kick that anvil's
// failure left without a result is audited as failed.
func TestIntentWithoutResultFails(t *testing.T) {
	var buf bytes.Buffer
	r := newClockRig(t, `rules: [{name: bad, users: [mallory]}]`, sessions(1, func(int) string { return "mallory" }), failKicker{}, &buf)
	r.cycles(t, 1)
	out := buf.String()
	if !strings.Contains(out, `"result":"kick-intent"`) || !strings.Contains(out, `"result":"failed"`) || !strings.Contains(out, "connection reset") {
		t.Fatalf("audit after anvil failed mid-kick:\n%s\nwant the intent and a failed outcome naming the error", out)
	}
}

// A kick that went out but was not seen to work in its cycle (the soak
// found it: at 1 s and 100,000 sessions the confirming dump did not fit,
// and the closed session stayed audited as failed) is audited as kicked
// when a later snapshot no longer lists the session; a kick that never
// went out is not.
func TestLeftAfterKickAudited(t *testing.T) {
	unconfirmed := fmt.Errorf("%w: no complete dump within 167ms", kick.ErrUnconfirmed)
	for _, c := range []struct {
		name    string
		outcome kick.Outcome
		err     error
		want    []string
	}{
		{"still listed", kick.StillConnected, nil, []string{"kick-intent", "still-connected", "kicked"}},
		{"unconfirmed", kick.Failed, unconfirmed, []string{"kick-intent", "failed", "kicked"}},
		{"never sent", kick.Failed, errors.New("pid 7: not this Dovecot's master; not signalled"), []string{"kick-intent", "failed"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			k := &outcomeKicker{outcome: c.outcome, err: c.err, intent: true, file: func() string { return "" }}
			r := newClockRig(t, `rules: [{name: bad, users: [mallory]}]`, sessions(2, func(i int) string { return []string{"alice", "mallory"}[i] }), k, &buf)
			r.cycles(t, 1)
			r.a.src.(*fakeSource).snap = sessions(1, func(int) string { return "alice" })
			r.cycles(t, 2)
			var got []string
			var last audit.Record
			for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				last = audit.Record{}
				if err := json.Unmarshal([]byte(l), &last); err != nil {
					t.Fatalf("audit line %q: %v", l, err)
				}
				got = append(got, last.Result)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("audit results %v, want %v", got, c.want)
			}
			if last.Result == audit.Kicked && (last.User != "mallory" || last.Rule != "bad" || last.Note != "left after the kick" || last.Error != "") {
				t.Errorf("late kicked record %+v", last)
			}
			kicked := testutil.ToFloat64(r.a.m.kicks.WithLabelValues("bad", audit.Kicked))
			if want := float64(len(c.want) - 2); kicked != want {
				t.Errorf("kicks_total{bad,kicked} = %v, want %v", kicked, want)
			}
			if len(r.a.st.retries) != 0 || len(r.a.st.leftAfterKick) != 0 {
				t.Errorf("state kept after the session left: %v %v", r.a.st.retries, r.a.st.leftAfterKick)
			}
		})
	}
}
