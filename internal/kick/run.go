package kick

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Conn is what Run needs of an anvil connection.
type Conn interface {
	Dump(ctx context.Context) (*anvil.Snapshot, error)
	KickUser(ctx context.Context, user, guid string) (int, error)
}

// Signaler terminates a verified Dovecot process.
type Signaler interface {
	Terminate(pid int64, service string) error
}

// Outcome is what happened to one selected session.
type Outcome string

// Outcomes of a kick.
const (
	Kicked            Outcome = "kicked"
	StillConnected    Outcome = "still-connected"
	RefusedCollateral Outcome = "refused-collateral"
	Failed            Outcome = "failed"
	Skipped           Outcome = "skipped"
	DryRun            Outcome = "dry-run"
)

// ErrUnconfirmed wraps the error of a kick that went out but whose effect
// could not be seen (anvil failed or the deadline came before a dump).
var ErrUnconfirmed = errors.New("could not confirm")

// Result reports one session: a target, or with Force a collateral one.
type Result struct {
	Session    *anvil.Session
	Unit       *Unit // nil for skipped sessions
	Outcome    Outcome
	Method     string // kick-user, sigterm, login-sigterm, socket-destroy
	Collateral bool   // not selected, closed because of --force
	Err        error
}

// Options tune Run.
type Options struct {
	Force  bool
	DryRun bool
	// KickTimeout bounds one KICK-USER (Dovecot's own tool waits 25 s).
	KickTimeout time.Duration
	// Settle bounds the wait for kicked sessions to leave anvil's table.
	Settle time.Duration
	// Poll is the least interval of the confirming dumps.
	Poll time.Duration
	// Parallel is how many admin connections carry kicks at once when
	// the Conn can open them (KickOpener); 1 kicks one at a time on it.
	Parallel int
	// BeforeSend, if set, is called once with the units about to be
	// kicked (signalled or sent KICK-USER), before any of them is: the
	// agent records its intent there, so a crash mid-kick leaves a trace.
	BeforeSend func(units []*Unit)
	// Sockets, if set, closes exactly the targets' connections of a unit
	// that would otherwise also close unselected sessions.
	Sockets SocketCloser
}

func (o *Options) defaults() {
	if o.KickTimeout <= 0 {
		o.KickTimeout = 25 * time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 5 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
}

// Run executes plan and confirms every kick with fresh dumps. It returns
// one Result per selected session (and per collateral session of a forced
// unit). The error is set only when anvil itself failed; then the units
// whose kick was never sent have no Result.
func Run(ctx context.Context, conn Conn, sig Signaler, plan *Plan, opt Options) ([]Result, error) {
	opt.defaults()
	var results []Result
	for _, sk := range plan.Skipped {
		results = append(results, Result{Session: sk.Session, Outcome: Skipped, Err: errors.New(sk.Reason)})
	}
	method := "kick-user"
	if plan.Protocol == anvil.Proto23 {
		method = "sigterm"
	}
	var ep exactPlan
	if opt.Sockets != nil {
		ep = planExact(ctx, conn, opt.Sockets, plan)
	} else {
		ep = exactPlan{conns: make([][]TCPConn, len(plan.Units)), whyNot: make([]error, len(plan.Units))}
	}
	outcomes := make([]Outcome, len(plan.Units))
	errs := make([]error, len(plan.Units))
	methods := make([]string, len(plan.Units))
	var todo []int // units to KICK-USER, sent together below
	viaAnvil := make([]bool, len(plan.Units))
	var sending []*Unit
	for i, u := range plan.Units {
		methods[i] = method
		if ep.conns[i] != nil {
			methods[i] = MethodSocketDestroy
		}
		switch {
		case len(u.Collateral) > 0 && ep.conns[i] == nil && !opt.Force:
			outcomes[i] = RefusedCollateral
		case opt.DryRun:
			outcomes[i] = DryRun
		default:
			sending = append(sending, u)
		}
	}
	if opt.BeforeSend != nil && len(sending) > 0 {
		opt.BeforeSend(sending)
	}
	refused := false // the kernel refused closing a single connection
	for i, u := range plan.Units {
		if outcomes[i] != "" {
			continue
		}
		if ep.conns[i] != nil {
			if refused {
				errs[i] = ep.whyNot[i]
			} else {
				errs[i] = closeConns(ctx, opt.Sockets, ep.conns[i])
			}
			if !errors.Is(errs[i], ErrExactUnavailable) {
				continue
			}
			refused = true
			ep.conns[i], ep.whyNot[i], errs[i], methods[i] = nil, errs[i], nil, method
			if !opt.Force {
				outcomes[i] = RefusedCollateral
				continue
			}
			// Forced: the protocol's kick, collateral included.
		}
		switch {
		case plan.Protocol == anvil.Proto23:
			if errs[i] = sig.Terminate(u.PID, u.Service); errors.Is(errs[i], ErrGone) {
				errs[i] = nil
			}
		default:
			todo = append(todo, i)
			viaAnvil[i] = true
		}
	}
	kr := kickUnits(ctx, conn, plan.Units, todo, opt)
	for _, i := range todo {
		errs[i] = kr.errs[i]
	}
	for i, u := range plan.Units {
		if viaAnvil[i] && !kr.sent[i] {
			continue // anvil failed first
		}
		outcome, err := outcomes[i], errs[i]
		if outcome == RefusedCollateral {
			results = append(results, unitResults(u, outcome, methods[i], refusal(ep.whyNot[i]), false)...)
			continue
		}
		if kr.fatal != nil && outcome == "" {
			// Anvil failed: nothing can be confirmed.
			results = append(results, unitResults(u, Failed, methods[i], cmp.Or(err, fmt.Errorf("%w: %w", ErrUnconfirmed, kr.fatal)), opt.Force && ep.conns[i] == nil)...)
			continue
		}
		if err != nil {
			outcome = Failed
		}
		// A forced unit also closes its collateral: list it when the kick
		// runs and when a dry run shows what --force would do. An exact
		// unit closes only its targets.
		withCollateral := opt.Force && ep.conns[i] == nil && (outcome == "" || outcome == DryRun)
		results = append(results, unitResults(u, outcome, methods[i], err, withCollateral)...)
	}
	if kr.fatal != nil {
		return results, kr.fatal
	}
	var pending []*Result
	for i := range results {
		if results[i].Outcome == "" {
			pending = append(pending, &results[i])
		}
	}
	if len(pending) == 0 {
		return results, nil
	}
	first := opt
	if plan.Protocol == anvil.Proto24 && slices.ContainsFunc(pending, func(r *Result) bool { return isProxied(r) && canLeave(r.Session) }) {
		// Dovecot 2.4.0-2.4.4 leaves some proxied sessions open: look
		// for them after a short wait instead of the whole Settle.
		first.Settle = min(opt.Settle, stuckLoginWait)
	}
	snap, left, err := settle(ctx, conn, pending, first)
	if err == nil && plan.Protocol == anvil.Proto24 {
		if closeStuckLogins(snap, left, sig, pending) || (first.Settle < opt.Settle && waiting(pending, left)) {
			_, left, err = settle(ctx, conn, pending, opt)
		}
	}
	for _, r := range pending {
		switch {
		case err != nil:
			r.Outcome, r.Err = Failed, fmt.Errorf("%w: %w", ErrUnconfirmed, err)
		case left.has(r.Session):
			r.Outcome = StillConnected
		default:
			r.Outcome = Kicked
		}
	}
	return results, err
}

func unitResults(u *Unit, o Outcome, method string, err error, withCollateral bool) []Result {
	var rs []Result
	for _, s := range u.Targets {
		rs = append(rs, Result{Session: s, Unit: u, Outcome: o, Method: method, Err: err})
	}
	if withCollateral {
		for _, s := range u.Collateral {
			rs = append(rs, Result{Session: s, Unit: u, Outcome: o, Method: method, Err: err, Collateral: true})
		}
	}
	return rs
}

// settle dumps until no pending session that can leave is listed or
// opt.Settle passes, and returns the last dump and which pending sessions
// it lists. Dumps are at least as far apart as the last one took, so that
// confirming never keeps anvil busy more than half of the time.
func settle(ctx context.Context, conn Conn, pending []*Result, opt Options) (*anvil.Snapshot, idSet, error) {
	deadline := time.Now().Add(opt.Settle)
	want := make(idSet, len(pending))
	for _, r := range pending {
		want[r.Session.Key()] = struct{}{}
	}
	for {
		t0 := time.Now()
		snap, err := conn.Dump(ctx)
		if err != nil {
			return nil, nil, err
		}
		took := time.Since(t0)
		left := want.listedIn(snap)
		if !waiting(pending, left) || time.Now().After(deadline) {
			return snap, left, nil
		}
		select {
		case <-ctx.Done():
			return snap, left, nil
		case <-time.After(max(opt.Poll, took)):
		}
	}
}

// waiting reports whether a pending session that can leave is still listed.
func waiting(pending []*Result, listed idSet) bool {
	return slices.ContainsFunc(pending, func(r *Result) bool { return canLeave(r.Session) && listed.has(r.Session) })
}

// canLeave reports whether a kick can make s leave anvil: a session whose
// pid no process can have (a synthetic or corrupt record) stays listed
// whatever is kicked, so waiting for it only delays the outcome, which the
// last dump still observes (still-connected).
func canLeave(s *anvil.Session) bool { return s.PID <= maxPID }

// idSet is a set of session identities (anvil.Session.Key).
type idSet map[anvil.SessionKey]struct{}

// indexOf indexes a whole snapshot.
func indexOf(snap *anvil.Snapshot) idSet {
	ix := make(idSet, len(snap.Sessions))
	for i := range snap.Sessions {
		ix[snap.Sessions[i].Key()] = struct{}{}
	}
	return ix
}

// listedIn returns the members of set that snap lists. It looks up each
// record in set, the small side, instead of indexing a 100,000-session
// dump for every confirming poll.
func (set idSet) listedIn(snap *anvil.Snapshot) idSet {
	out := make(idSet)
	for i := range snap.Sessions {
		id := snap.Sessions[i].Key()
		if _, ok := set[id]; ok {
			out[id] = struct{}{}
		}
	}
	return out
}

func (set idSet) has(s *anvil.Session) bool {
	_, ok := set[s.Key()]
	return ok
}

// present reports whether s is still in snap (by anvil.Session.Key).
func present(snap *anvil.Snapshot, s *anvil.Session) bool { return indexOf(snap).has(s) }

// stuckLoginWait is how long a proxied session may take to leave anvil
// after KICK-USER before it is presumed stuck in its login process.
const stuckLoginWait = 750 * time.Millisecond

func isProxied(r *Result) bool {
	return strings.HasSuffix(r.Session.Service, "-login") && r.Session.DestIP.IsValid()
}

// closeStuckLogins works around Dovecot 2.4.0-2.4.4, where anvil counts a
// proxied session in a one-connection login process as kicked but the
// process ignores the signal: such a process is terminated directly when
// it still holds exactly that one session (ix: the pending sessions snap
// lists). Reports whether it signalled.
func closeStuckLogins(snap *anvil.Snapshot, ix idSet, sig Signaler, pending []*Result) bool {
	perPID := make(map[int64]int)
	for i := range snap.Sessions {
		perPID[snap.Sessions[i].PID]++
	}
	signalled := false
	for _, r := range pending {
		s := r.Session
		if !strings.HasSuffix(s.Service, "-login") || !s.DestIP.IsValid() || !ix.has(s) || perPID[s.PID] != 1 {
			continue
		}
		if err := sig.Terminate(s.PID, s.Service); err == nil {
			r.Method = "login-sigterm"
			signalled = true
		} else if !errors.Is(err, ErrGone) {
			r.Err = err
		}
	}
	return signalled
}
