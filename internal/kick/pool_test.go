package kick

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// poolAnvil is a fakeAnvil that opens extra kick connections and checks
// that each carries one kick at a time.
type poolAnvil struct {
	*fakeAnvil
	delay time.Duration
	// hang makes the kick of user never answered (until its deadline).
	hang func(user string) bool
	// closeAt makes the n-th kick (1-based) find anvil gone.
	closeAt int
	// openFails makes OpenKicker fail from the n-th call (1-based) on.
	openFails int

	mu                    sync.Mutex
	opened, open, maxOpen int
	inFlight, maxInFlight int
	overlap               bool // two kicks at once on one connection
	sent                  int
	dead                  bool
}

type poolKicker struct {
	p      *poolAnvil
	busy   bool
	closed bool
}

func (p *poolAnvil) OpenKicker(ctx context.Context) (anvil.Kicker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opened++
	if p.dead || (p.openFails > 0 && p.opened >= p.openFails) {
		return nil, errors.New("connect: refused")
	}
	p.open++
	p.maxOpen = max(p.maxOpen, p.open)
	return &poolKicker{p: p}, nil
}

func (k *poolKicker) Close() error {
	k.p.mu.Lock()
	defer k.p.mu.Unlock()
	if !k.closed {
		k.closed = true
		k.p.open--
	}
	return nil
}

func (k *poolKicker) KickUser(ctx context.Context, user, guid string) (int, error) {
	p := k.p
	p.mu.Lock()
	if k.busy || k.closed {
		p.overlap = true
	}
	k.busy = true
	p.inFlight++
	p.maxInFlight = max(p.maxInFlight, p.inFlight)
	p.sent++
	dead := p.dead || p.sent == p.closeAt
	p.dead = dead
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		k.busy = false
		p.inFlight--
		p.mu.Unlock()
	}()
	if dead {
		return 0, fmt.Errorf("%w (x) during KICK-USER", anvil.ErrClosed)
	}
	if p.hang != nil && p.hang(user) {
		<-ctx.Done()
		return 0, fmt.Errorf("anvil x: KICK-USER: %w", ctx.Err())
	}
	time.Sleep(p.delay)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fakeAnvil.KickUser(ctx, user, guid)
}

// manyUsers is a 2.4 table of n users, each alone in its imap process.
func manyUsers(n int) *poolAnvil {
	f := &fakeAnvil{proto: anvil.Proto24}
	for i := range n {
		f.sessions = append(f.sessions, s24(int64(100+i), "imap", fmt.Sprintf("u%03d", i), "127.0.0.2", i+1, ""))
	}
	return &poolAnvil{fakeAnvil: f, delay: time.Millisecond}
}

func outcomes(rs []Result) map[Outcome]int {
	m := map[Outcome]int{}
	for _, r := range rs {
		m[r.Outcome]++
	}
	return m
}

func TestRunPoolKicksEachUnitOnce(t *testing.T) {
	p := manyUsers(60)
	rs, err := runPool(t, p, func(*anvil.Session) bool { return true }, fast)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rs); got[Kicked] != 60 || len(rs) != 60 {
		t.Errorf("outcomes %v, want 60 kicked", got)
	}
	kicks := slices.Clone(p.kicks)
	slices.Sort(kicks)
	if len(slices.Compact(kicks)) != 60 || len(p.kicks) != 60 {
		t.Errorf("%d KICK-USERs (%d distinct), want 60 distinct", len(p.kicks), len(slices.Compact(kicks)))
	}
	if p.overlap {
		t.Error("two kicks in flight on one connection")
	}
	if p.maxInFlight < 2 || p.maxInFlight > DefaultParallel || p.maxOpen != DefaultParallel {
		t.Errorf("%d kicks in flight on %d connections, want %d", p.maxInFlight, p.maxOpen, DefaultParallel)
	}
	if p.open != 0 {
		t.Errorf("%d kick connections left open", p.open)
	}
	// Results keep the plan's order.
	for i, r := range rs {
		if want := fmt.Sprintf("u%03d", i); r.Session.User != want {
			t.Fatalf("result %d is %s, want %s", i, r.Session.User, want)
		}
	}
}

func TestRunPoolParallelOne(t *testing.T) {
	p := manyUsers(5)
	opt := fast
	opt.Parallel = 1
	if _, err := runPool(t, p, func(*anvil.Session) bool { return true }, opt); err != nil {
		t.Fatal(err)
	}
	if p.opened != 0 || len(p.kicks) != 5 {
		t.Errorf("opened %d connections, %d kicks; want 0 and 5 on the Conn", p.opened, len(p.kicks))
	}
}

// A kick that times out fails alone; its connection, which could read the
// late reply as the next kick's, is replaced.
func TestRunPoolKickTimeout(t *testing.T) {
	p := manyUsers(12)
	p.hang = func(user string) bool { return user == "u003" }
	opt := fast
	opt.KickTimeout = 50 * time.Millisecond
	rs, err := runPool(t, p, func(*anvil.Session) bool { return true }, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		want := Kicked
		if r.Session.User == "u003" {
			want = Failed
		}
		if r.Outcome != want {
			t.Errorf("%s: %s, want %s (%v)", r.Session.User, r.Outcome, want, r.Err)
		}
	}
	if p.opened != DefaultParallel+1 || p.overlap {
		t.Errorf("opened %d connections (overlap %v), want %d", p.opened, p.overlap, DefaultParallel+1)
	}
}

// Anvil gone: no kick is sent after it, nothing is claimed kicked, and
// units never sent have no result.
func TestRunPoolAnvilClosed(t *testing.T) {
	p := manyUsers(60)
	p.closeAt = 6
	rs, err := runPool(t, p, func(*anvil.Session) bool { return true }, fast)
	if !errors.Is(err, anvil.ErrClosed) {
		t.Fatalf("Run error %v, want ErrClosed", err)
	}
	if got := outcomes(rs); got[Failed] != len(rs) || len(rs) < 6 || len(rs) > 6+DefaultParallel {
		t.Errorf("outcomes %v of %d results", got, len(rs))
	}
	for _, r := range rs {
		if r.Err == nil {
			t.Errorf("%s failed without an error", r.Session.User)
		}
	}
	if p.sent > 6+DefaultParallel-1 {
		t.Errorf("%d kicks sent, anvil closed at the 6th", p.sent)
	}
}

// No extra connection: all kicks go one at a time on the Conn.
func TestRunPoolOpenFails(t *testing.T) {
	p := manyUsers(8)
	p.openFails = 1
	rs, err := runPool(t, p, func(*anvil.Session) bool { return true }, fast)
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rs); got[Kicked] != 8 {
		t.Errorf("outcomes %v", got)
	}
	if len(p.kicks) != 8 {
		t.Errorf("%d kicks, want 8", len(p.kicks))
	}
}

// Sessions no process can hold never leave: Run does not wait the whole
// Settle for them, yet reports them still connected.
func TestRunNoWaitForImpossiblePIDs(t *testing.T) {
	p := manyUsers(3)
	p.sessions[1].PID = maxPID + 1
	p.stuck = func(s *anvil.Session) bool { return s.PID > maxPID }
	opt := fast
	opt.Settle = 5 * time.Second
	start := time.Now()
	rs, err := runPool(t, p, func(*anvil.Session) bool { return true }, opt)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v: waited for a session that cannot leave", d)
	}
	checkResults(t, rs,
		"u000@100/0001 kicked kick-user",
		"u002@102/0003 kicked kick-user",
		fmt.Sprintf("u001@%d/0002 still-connected kick-user", maxPID+1))
}

func runPool(t *testing.T, p *poolAnvil, sel func(*anvil.Session) bool, opt Options) ([]Result, error) {
	t.Helper()
	snap, err := p.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p.dumps = 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Run(ctx, p, &fakeSig{anvil: p.fakeAnvil}, NewPlan(snap, sel), opt)
}

// TestRunPoolOnAnvil runs the pool over real anvil connections to a fake
// anvil: the kicks go out on DefaultParallel extra connections, each
// KICK-USER once, and the first connection only dumps.
func TestRunPoolOnAnvil(t *testing.T) {
	ss := anviltest.Sessions24(30)
	srv := anviltest.New(t, anvil.Proto24, anviltest.WithDump(anvil.FormatDump24(anviltest.AltNames24, ss)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := (&anvil.Client{Path: srv.Path, Protocol: anvil.Proto24}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	snap, err := c.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opt := fast
	opt.Settle = 10 * time.Millisecond
	rs, err := Run(ctx, c, goneSig{}, NewPlan(snap, func(*anvil.Session) bool { return true }), opt)
	if err != nil {
		t.Fatal(err)
	}
	// The fake never drops a session: nothing may be claimed kicked.
	if got := outcomes(rs); got[StillConnected] != 27 || got[Skipped] != 3 {
		t.Errorf("outcomes %v, want 27 still-connected, 3 skipped (lmtp)", got)
	}
	if srv.Conns() != 1+DefaultParallel {
		t.Fatalf("%d connections, want %d", srv.Conns(), 1+DefaultParallel)
	}
	for _, l := range srv.ConnLines(0)[2:] {
		if l != "CONNECT-DUMP" {
			t.Errorf("first connection sent %q", l)
		}
	}
	var kicks []string
	for i := 1; i < srv.Conns(); i++ {
		lines := srv.ConnLines(i)
		if !slices.Equal(lines[:2], []string{anviltest.Handshake24, ""}) {
			t.Errorf("connection %d: handshake %q", i, lines[:2])
		}
		kicks = append(kicks, lines[2:]...)
	}
	var want []string
	for _, s := range ss {
		if s.Service == "lmtp" {
			continue
		}
		want = append(want, "KICK-USER\t"+s.User+"\t"+s.ConnGUID)
	}
	slices.Sort(kicks)
	slices.Sort(want)
	if !slices.Equal(kicks, want) {
		t.Errorf("KICK-USERs:\n%q\nwant\n%q", kicks, want)
	}
}

// goneSig finds every process already gone.
type goneSig struct{}

func (goneSig) Terminate(pid int64, service string) error { return ErrGone }
