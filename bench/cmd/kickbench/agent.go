package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kickagent/kickagent/internal/agent"
	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/kick"
)

// agentCmd times what a running agent does when a rule file appears: one
// agent cycle (agent.Step, a fresh agent each round, so that the rules are
// new to it) that dumps, evaluates and kicks for real, split into: the
// cycle's dump; decided (cycle start to the first KICK-USER); all kicks
// answered by anvil (cycle start to the first confirming dump, which Run
// takes only after the last answer); confirmed (the cycle's end: the
// settle wait and the results). Process start and rule loading, which a
// running agent has behind it, are not included; nor is a first, warm-up
// round.
//
//	kickbench agent -a SOCK -rules kick50.yaml [-rounds 5] [-parallel 8] [-tsv FILE -label L]
//
// With -tsv, each round also appends "<L>ans <µs> 0" (all kicks answered)
// and "<L>conf <µs> 0" (confirmed) to FILE, in bench/run.sh's tm format.
//
// Use it only against synthetic sessions (bench/cmd/synth: kick type N,
// pids above pid_max), which anvil skips: nothing is closed.
func agentCmd(args []string) error {
	fs := flag.NewFlagSet("agent", flag.ExitOnError)
	socket := fs.String("a", anvil.DefaultSocket, "anvil socket")
	rules := fs.String("rules", "", "YAML rule file")
	rounds := fs.Int("rounds", 5, "cycles to time")
	parallel := fs.Int("parallel", kick.DefaultParallel, "kick connections (1: one at a time on the agent's)")
	tsv := fs.String("tsv", "", "append per-round times to this file")
	label := fs.String("label", "agent", "key prefix of the -tsv lines")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rs, err := engine.Load(ctx, engine.Sources{Rules: []string{*rules}})
	if err != nil {
		return err
	}
	var rows [][5]time.Duration // dump, decided, answered, confirmed, kicks phase
	kicks, still := 0, 0
	// Round 0 warms the process up (a running agent is warm) and is not
	// timed.
	for r := 0; r <= *rounds; r++ {
		src := &agent.AnvilSource{Client: &anvil.Client{Path: *socket}}
		td := &timedDump{src: src}
		tc := &timedConn{src: src}
		var conn kick.Conn = seqConn{tc}
		if *parallel > 1 {
			conn = poolConn{tc}
		}
		a := agent.New(agent.Settings{Interval: 5 * time.Second, MaxKicksPerCycle: 1000000, BreakerFraction: 0.9},
			agent.Deps{Source: td, Kicker: &resultKicker{k: &agent.AnvilKicker{Conn: conn, Signal: kick.ForSocket(*socket), Settle: 5 * time.Second / 3}, still: &still},
				Metrics: agent.NewMetrics(prometheus.NewRegistry()), Load: func(context.Context) (*engine.Ruleset, error) { return rs, nil },
				Logger: slog.New(slog.DiscardHandler)})
		start := time.Now()
		tc.start = start
		still = 0
		err := a.Step(ctx)
		end := time.Since(start)
		src.Close()
		if err != nil {
			return err
		}
		if tc.kicks == 0 {
			return fmt.Errorf("round %d: no KICK-USER sent", r)
		}
		kicks = tc.kicks
		if r == 0 {
			continue
		}
		rows = append(rows, [5]time.Duration{td.last, tc.first, tc.answered, end, tc.answered - tc.first})
	}
	med := func(i int) float64 {
		v := make([]float64, len(rows))
		for j, r := range rows {
			v[j] = r[i].Seconds()
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	all := func(i int) string {
		var b strings.Builder
		for _, r := range rows {
			fmt.Fprintf(&b, "%.3f ", r[i].Seconds())
		}
		return strings.TrimSpace(b.String())
	}
	fmt.Printf("parallel=%d rounds=%d kicks=%d still_connected=%d dump=%.3f decided=%.3f answered=%.3f confirmed=%.3f kicks_per_s=%.0f\n",
		*parallel, len(rows), kicks, still, med(0), med(1), med(2), med(3), float64(kicks)/med(4))
	if *tsv != "" {
		f, err := os.OpenFile(*tsv, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		for _, r := range rows {
			fmt.Fprintf(f, "%sans %d 0\n%sconf %d 0\n", *label, r[2].Microseconds(), *label, r[3].Microseconds())
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	fmt.Printf("answered_all=%s\nconfirmed_all=%s\n", strings.ReplaceAll(all(2), " ", ","), strings.ReplaceAll(all(3), " ", ","))
	return nil
}

// timedDump is the cycle's session source; it times the cycle's dump.
type timedDump struct {
	src  *agent.AnvilSource
	last time.Duration
}

func (t *timedDump) Dump(ctx context.Context, each func(int, *anvil.Session)) (*anvil.Snapshot, error) {
	t0 := time.Now()
	s, err := t.src.Dump(ctx, each)
	t.last = time.Since(t0)
	return s, err
}

// timedConn is the kicker's anvil: it notes the first KICK-USER and the
// first confirming dump (Run dumps only after every kick was answered).
type timedConn struct {
	src             *agent.AnvilSource
	start           time.Time
	mu              sync.Mutex
	kicks           int
	first, answered time.Duration
}

func (t *timedConn) sent() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kicks == 0 {
		t.first = time.Since(t.start)
	}
	t.kicks++
}

func (t *timedConn) Dump(ctx context.Context) (*anvil.Snapshot, error) {
	if t.answered == 0 {
		t.answered = time.Since(t.start)
	}
	return t.src.Dump(ctx, nil)
}

func (t *timedConn) KickUser(ctx context.Context, user, guid string) (int, error) {
	t.sent()
	return t.src.KickUser(ctx, user, guid)
}

// seqConn kicks one at a time on the agent's connection.
type seqConn struct{ *timedConn }

// poolConn also opens kick connections (kick.KickOpener).
type poolConn struct{ *timedConn }

func (p poolConn) OpenKicker(ctx context.Context) (anvil.Kicker, error) {
	c, err := p.src.Client.Open(ctx)
	if err != nil {
		return nil, err
	}
	return timedKicker{c, p.timedConn}, nil
}

type timedKicker struct {
	*anvil.Conn
	t *timedConn
}

func (k timedKicker) KickUser(ctx context.Context, user, guid string) (int, error) {
	k.t.sent()
	return k.Conn.KickUser(ctx, user, guid)
}

// resultKicker counts the sessions reported still connected.
type resultKicker struct {
	k     agent.Kicker
	still *int
}

func (r *resultKicker) Kick(ctx context.Context, snap *anvil.Snapshot, sel func(*anvil.Session) bool) ([]kick.Result, error) {
	res, err := r.k.Kick(ctx, snap, sel)
	for _, x := range res {
		if x.Outcome == kick.StillConnected {
			*r.still++
		}
	}
	return res, err
}
