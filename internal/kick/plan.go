package kick

import (
	"slices"
	"strings"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Unit is the smallest thing Dovecot can kick that holds selected sessions:
// on 2.3 a process (SIGTERM), on 2.4 one user's sessions within a process
// (KICK-USER user guid reaches the processes holding guid, and they drop
// all of that user's connections there).
type Unit struct {
	PID     int64
	Service string
	User    string // 2.4 only
	// Targets are the selected sessions the unit kicks.
	Targets []*anvil.Session
	// Collateral are sessions the unit's kick would also close that were
	// not selected. A unit with collateral runs only when forced, or when
	// its targets' own connections can be closed (SocketCloser).
	Collateral []*anvil.Session
	// Process is every session anvil lists in the process (shared by the
	// units of one process).
	Process []*anvil.Session
}

// Skip is a selected session that is never kicked, and why.
type Skip struct {
	Session *anvil.Session
	Reason  string
}

// Plan is what a kick would do to one snapshot.
type Plan struct {
	Protocol anvil.Protocol
	Units    []*Unit
	Skipped  []Skip
}

// Selected counts the selected sessions (2.3 records count their refcount).
func (p *Plan) Selected() int {
	n := 0
	for _, u := range p.Units {
		n += connections(u.Targets)
	}
	return n
}

func connections(ss []*anvil.Session) int {
	n := 0
	for _, s := range ss {
		n += max(s.Connections, 1)
	}
	return n
}

// Kickable reports whether a session can be kicked at all: lmtp is a
// delivery in progress, which anvil never kicks on 2.4 (kick type N) and
// whose process must not be signalled on 2.3.
func Kickable(s *anvil.Session) bool { return s.Service != "lmtp" }

// NewPlan plans the kick of the sessions of snap for which selected is true.
func NewPlan(snap *anvil.Snapshot, selected func(*anvil.Session) bool) *Plan {
	p := &Plan{Protocol: snap.Protocol}
	// Only processes holding a selected session matter: group just their
	// sessions, not the whole (100,000-session) table.
	byPID := make(map[int64][]*anvil.Session)
	sel := make(map[*anvil.Session]bool)
	for i := range snap.Sessions {
		if s := &snap.Sessions[i]; selected(s) {
			sel[s] = true
			byPID[s.PID] = nil
		}
	}
	if len(sel) == 0 {
		return p
	}
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		if all, ok := byPID[s.PID]; ok {
			byPID[s.PID] = append(all, s)
		}
	}
	pids := make([]int64, 0, len(byPID))
	for pid := range byPID {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	for _, pid := range pids {
		all := byPID[pid]
		var chosen []*anvil.Session
		for _, s := range all {
			if !sel[s] {
				continue
			}
			if !Kickable(s) {
				p.Skipped = append(p.Skipped, Skip{s, "lmtp deliveries are never kicked"})
				continue
			}
			chosen = append(chosen, s)
		}
		if len(chosen) == 0 {
			continue
		}
		if snap.Protocol == anvil.Proto23 {
			p.Units = append(p.Units, unitFor(pid, "", chosen, all, all))
			continue
		}
		for _, user := range usersOf(chosen) {
			var targets, scope []*anvil.Session
			for _, s := range chosen {
				if s.User == user {
					targets = append(targets, s)
				}
			}
			for _, s := range all {
				if s.User == user {
					scope = append(scope, s)
				}
			}
			p.Units = append(p.Units, unitFor(pid, user, targets, scope, all))
		}
	}
	return p
}

// unitFor builds a unit whose kick closes every session in scope.
func unitFor(pid int64, user string, targets, scope, all []*anvil.Session) *Unit {
	u := &Unit{PID: pid, User: user, Targets: targets, Service: targets[0].Service, Process: all}
	for _, s := range scope {
		if !slices.Contains(targets, s) {
			u.Collateral = append(u.Collateral, s)
		}
	}
	return u
}

func usersOf(ss []*anvil.Session) []string {
	var users []string
	for _, s := range ss {
		if !slices.Contains(users, s.User) {
			users = append(users, s.User)
		}
	}
	slices.SortFunc(users, strings.Compare)
	return users
}
