package kick

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/kickagent/kickagent/internal/anvil"
)

// MethodSocketDestroy is the Result.Method of a session closed by
// destroying its TCP socket(s) inside a process that holds other sessions.
const MethodSocketDestroy = "socket-destroy"

// TCPConn is one client connection of a Dovecot process: a TCP socket among
// the process's descriptors whose local address is one of its Dovecot's
// listeners. Handle is the SocketCloser's own reference to it.
type TCPConn struct {
	Local, Remote netip.AddrPort
	Handle        any
}

// SocketCloser closes single TCP connections inside a Dovecot process,
// where Dovecot itself can only close them all (2.3: SIGTERM to a shared or
// imap-hibernate process; 2.4: KICK-USER, all of a user's connections in a
// process).
type SocketCloser interface {
	// Conns returns the client connections each process of procs (pid ->
	// service, each verified as for a signal) holds, in one look at the
	// kernel's socket table. The error is for the whole lookup; one
	// process's own error is in its ProcConns.
	Conns(ctx context.Context, procs map[int64]string) (map[int64]ProcConns, error)
	// Close closes c. An error wrapping ErrExactUnavailable means the
	// kernel or our privileges refuse it (and c is still open).
	Close(ctx context.Context, c TCPConn) error
}

// ProcConns is one process's client connections, or why they are unknown.
type ProcConns struct {
	Conns []TCPConn
	Err   error
}

// ErrExactUnavailable marks a SocketCloser error that says it cannot close
// sockets on this host at all (kernel without socket destroy, no
// CAP_NET_ADMIN, another network namespace), as opposed to a unit that is
// ambiguous.
var ErrExactUnavailable = errors.New("socket destroy unavailable")

// exactConns returns the connections of u's process that belong to u's
// targets and to no other session, or why they cannot be told apart. Anvil
// records no client port, so the only key is the client address: every
// session of the process from a target's address must be a target, and the
// process must hold exactly as many connections from that address as anvil
// counts (a connection anvil has not listed yet, or a session whose socket
// is elsewhere, makes the counts differ).
func exactConns(u *Unit, conns []TCPConn) ([]TCPConn, error) {
	want := make(map[netip.Addr]int)
	for _, s := range u.Targets {
		if !s.IP.IsValid() {
			return nil, fmt.Errorf("%s has no client address in anvil", s.User)
		}
		want[bare(s.IP)] += max(s.Connections, 1)
	}
	for _, s := range u.Process {
		if _, ok := want[bare(s.IP)]; ok && !slices.Contains(u.Targets, s) {
			return nil, fmt.Errorf("%s (%s) connects from the same address %s in pid %d, and anvil lists no client ports to tell the connections apart",
				s.User, s.Service, s.IP, u.PID)
		}
	}
	var out []TCPConn
	have := make(map[netip.Addr]int)
	for _, c := range conns {
		ip := bare(c.Remote.Addr())
		if _, ok := want[ip]; ok {
			have[ip]++
			out = append(out, c)
		}
	}
	ips := make([]netip.Addr, 0, len(want))
	for ip := range want {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	for _, ip := range ips {
		if have[ip] != want[ip] {
			return nil, fmt.Errorf("pid %d holds %d connection(s) from %s to this Dovecot's listeners, anvil lists %d",
				u.PID, have[ip], ip, want[ip])
		}
	}
	return out, nil
}

// bare is a, ready to compare anvil's client address with a socket's peer:
// IPv4-mapped IPv6 as IPv4, no zone (anvil prints none).
func bare(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// exactPlan is, per unit of a plan, the connections to close instead of the
// protocol's kick (nil: none), or why not.
type exactPlan struct {
	conns  [][]TCPConn
	whyNot []error
}

// planExact looks up, for every unit with collateral, whether its targets'
// connections can be closed alone. Then one fresh dump checks that those
// processes still list, from those addresses, exactly the sessions the plan
// saw: a connection the socket lookup found but anvil had not listed yet
// would have changed the counts.
func planExact(ctx context.Context, conn Conn, sc SocketCloser, plan *Plan) exactPlan {
	ep := exactPlan{conns: make([][]TCPConn, len(plan.Units)), whyNot: make([]error, len(plan.Units))}
	procs := make(map[int64]string)
	for _, u := range plan.Units {
		if len(u.Collateral) > 0 {
			procs[u.PID] = u.Service
		}
	}
	if len(procs) == 0 {
		return ep
	}
	byPID, err := sc.Conns(ctx, procs)
	var found []int
	for i, u := range plan.Units {
		if len(u.Collateral) == 0 {
			continue
		}
		if err != nil {
			ep.whyNot[i] = err // the same for every process
			continue
		}
		pc := byPID[u.PID]
		cs, uerr := pc.Conns, pc.Err
		if uerr == nil {
			cs, uerr = exactConns(u, cs)
		}
		if uerr != nil {
			ep.whyNot[i] = uerr
			continue
		}
		ep.conns[i] = cs
		found = append(found, i)
	}
	if len(found) == 0 {
		return ep
	}
	snap, dumpErr := conn.Dump(ctx)
	for _, i := range found {
		var err error
		if dumpErr == nil {
			err = unchanged(plan.Units[i], snap)
		} else {
			err = fmt.Errorf("anvil could not be asked again before closing single connections: %w", dumpErr)
		}
		if err != nil {
			ep.conns[i], ep.whyNot[i] = nil, err
		}
	}
	return ep
}

// unchanged checks that snap lists, in u's process and from the addresses of
// u's targets, the targets and nothing else.
func unchanged(u *Unit, snap *anvil.Snapshot) error {
	want := make(map[anvil.SessionKey]int)
	ips := make(map[netip.Addr]bool)
	for _, s := range u.Targets {
		want[s.Key()] = max(s.Connections, 1)
		ips[bare(s.IP)] = true
	}
	n := 0
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		if s.PID != u.PID || !ips[bare(s.IP)] {
			continue
		}
		if c, ok := want[s.Key()]; !ok || c != max(s.Connections, 1) {
			return fmt.Errorf("pid %d's sessions from %s changed while its sockets were looked up (%s)", u.PID, s.IP, s.User)
		}
		n++
	}
	if n != len(want) {
		return fmt.Errorf("pid %d's selected sessions changed while its sockets were looked up", u.PID)
	}
	return nil
}

// closeConns closes cs. When the first one is refused as unavailable, no
// connection was closed and the error wraps ErrExactUnavailable; a
// connection already gone counts as closed (the confirming dump decides).
func closeConns(ctx context.Context, sc SocketCloser, cs []TCPConn) error {
	var errs []error
	for i, c := range cs {
		err := sc.Close(ctx, c)
		switch {
		case err == nil:
		case errors.Is(err, ErrExactUnavailable) && i == 0:
			return err
		default:
			errs = append(errs, fmt.Errorf("close %s -> %s: %w", c.Remote, c.Local, err))
		}
	}
	return errors.Join(errs...)
}

// refusal is the error of a refused-collateral result: why the targets'
// own connections could not be closed instead (nil without a SocketCloser).
func refusal(whyNot error) error {
	if whyNot == nil {
		return nil
	}
	return fmt.Errorf("closing only the selected connections is not possible: %w", whyNot)
}
