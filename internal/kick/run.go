package kick

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
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

// Result reports one session: a target, or with Force a collateral one.
type Result struct {
	Session    *anvil.Session
	Unit       *Unit // nil for skipped sessions
	Outcome    Outcome
	Method     string // kick-user, sigterm, login-sigterm
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
	// Poll is the interval of the confirming dumps.
	Poll time.Duration
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
}

// Run executes plan and confirms every kick with fresh dumps. It returns
// one Result per selected session (and per collateral session of a forced
// unit). The error is set only when anvil itself failed.
func Run(ctx context.Context, conn Conn, sig Signaler, plan *Plan, opt Options) ([]Result, error) {
	opt.defaults()
	var results []Result
	for _, sk := range plan.Skipped {
		results = append(results, Result{Session: sk.Session, Outcome: Skipped, Err: errors.New(sk.Reason)})
	}
	var pending []*Result
	for _, u := range plan.Units {
		outcome, method := Outcome(""), "kick-user"
		if plan.Protocol == anvil.Proto23 {
			method = "sigterm"
		}
		var err error
		switch {
		case len(u.Collateral) > 0 && !opt.Force:
			outcome = RefusedCollateral
		case opt.DryRun:
			outcome = DryRun
		case plan.Protocol == anvil.Proto23:
			if err = sig.Terminate(u.PID, u.Service); errors.Is(err, ErrGone) {
				err = nil
			}
		default:
			kctx, cancel := context.WithTimeout(ctx, opt.KickTimeout)
			_, err = conn.KickUser(kctx, u.User, u.Targets[0].ConnGUID)
			cancel()
			if err != nil && (errors.Is(err, anvil.ErrClosed) || ctx.Err() != nil) {
				return append(results, unitResults(u, Failed, method, err, opt.Force)...), fmt.Errorf("kick %s (pid %d): %w", u.User, u.PID, err)
			}
		}
		if err != nil {
			outcome = Failed
		}
		// A forced unit also closes its collateral: list it when the kick
		// runs and when a dry run shows what --force would do.
		withCollateral := opt.Force && (outcome == "" || outcome == DryRun)
		results = append(results, unitResults(u, outcome, method, err, withCollateral)...)
	}
	for i := range results {
		if results[i].Outcome == "" {
			pending = append(pending, &results[i])
		}
	}
	if len(pending) == 0 {
		return results, nil
	}
	first := opt
	if plan.Protocol == anvil.Proto24 && slices.ContainsFunc(pending, isProxied) {
		// Dovecot 2.4.0-2.4.4 leaves some proxied sessions open: look
		// for them after a short wait instead of the whole Settle.
		first.Settle = min(opt.Settle, stuckLoginWait)
	}
	snap, err := settle(ctx, conn, pending, first)
	if err == nil && plan.Protocol == anvil.Proto24 {
		if closeStuckLogins(snap, sig, pending) || first.Settle < opt.Settle {
			snap, err = settle(ctx, conn, pending, opt)
		}
	}
	var ix snapIndex
	if err == nil {
		ix = indexOf(snap)
	}
	for _, r := range pending {
		switch {
		case err != nil:
			r.Outcome, r.Err = Failed, fmt.Errorf("could not confirm: %w", err)
		case ix.has(r.Session):
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

// settle dumps until no pending session is left or opt.Settle passes, and
// returns the last dump.
func settle(ctx context.Context, conn Conn, pending []*Result, opt Options) (*anvil.Snapshot, error) {
	deadline := time.Now().Add(opt.Settle)
	for {
		snap, err := conn.Dump(ctx)
		if err != nil {
			return nil, err
		}
		ix := indexOf(snap)
		left := 0
		for _, r := range pending {
			if ix.has(r.Session) {
				left++
			}
		}
		if left == 0 || time.Now().After(deadline) {
			return snap, nil
		}
		select {
		case <-ctx.Done():
			return snap, nil
		case <-time.After(opt.Poll):
		}
	}
}

// identity is a session's identity across dumps: the connection GUID on
// 2.4; pid and ident on 2.3.
type identity struct {
	guid          string
	pid           int64
	service, user string
	ip            netip.Addr
}

func identityOf(s *anvil.Session) identity {
	if s.ConnGUID != "" {
		return identity{guid: s.ConnGUID}
	}
	return identity{pid: s.PID, service: s.Service, user: s.User, ip: s.IP}
}

// snapIndex answers "is this session still there" in constant time, so
// that confirming a thousand kicks in a 100,000-session dump stays linear.
type snapIndex map[identity]struct{}

func indexOf(snap *anvil.Snapshot) snapIndex {
	ix := make(snapIndex, len(snap.Sessions))
	for i := range snap.Sessions {
		ix[identityOf(&snap.Sessions[i])] = struct{}{}
	}
	return ix
}

func (ix snapIndex) has(s *anvil.Session) bool {
	_, ok := ix[identityOf(s)]
	return ok
}

// present reports whether s is still in snap: by connection GUID on 2.4,
// by pid and ident on 2.3.
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
// it still holds exactly that one session. Reports whether it signalled.
func closeStuckLogins(snap *anvil.Snapshot, sig Signaler, pending []*Result) bool {
	perPID := make(map[int64]int)
	for i := range snap.Sessions {
		perPID[snap.Sessions[i].PID]++
	}
	ix := indexOf(snap)
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
