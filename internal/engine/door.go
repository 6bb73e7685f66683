package engine

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Judging a login at the door (Dovecot's auth policy, internal/authpolicy):
// the attempt is judged as the session it would become, by the rules that
// can judge a session before it exists.
//
// Rules that never refuse a login:
//   - reset rules (logged_in_before): the new password decides who gets in;
//   - drain rules: where a login goes is the passdb's business;
//   - dest_hosts rules: the backend is not chosen yet;
//   - expired rules and brute-force rules (those block through Blocked).
//
// A Rego policy judges the attempt only when it is per-session and does
// not read the per-user or per-IP session counts (a login cannot know the
// other sessions); otherwise DoorSkip says why, and the agent's cycles
// remain its only enforcement.

// Attempt is one login attempt, as an auth policy request describes it.
type Attempt struct {
	// User is the name the session would carry (the request's user, else
	// its login name).
	User    string
	IP      netip.Addr // invalid when the request had none
	Service string     // the protocol: imap, pop3, …
	// Alt holds the alt-username fields (user_*) the request carried.
	Alt map[string]string
	Now time.Time
	// Protocol is the Dovecot generation (Rego input.dovecot).
	Protocol anvil.Protocol
	// Login and Failures are Rego input only (input.attempt).
	Login    string
	Failures map[string]int
	// Blocked, if set, reports a brute-force block covering the IP;
	// BlockedUser, if set, a block of the user (CrowdSec's username
	// decisions).
	Blocked     func(ip netip.Addr) (Block, bool)
	BlockedUser func(user string) (Block, bool)
}

// Block is a brute-force block in force: the rule that made it and why.
type Block struct {
	Rule, File string
	Reason     string
	DryRun     bool
}

// Session returns the session the attempt would become.
func (a *Attempt) Session() anvil.Session {
	s := anvil.Session{Service: a.Service, User: a.User, IP: a.IP, Connections: 1}
	if len(a.Alt) > 0 {
		names := make([]string, 0, len(a.Alt))
		for k := range a.Alt {
			names = append(names, k)
		}
		slices.Sort(names)
		vals := make([]string, len(names))
		for i, k := range names {
			vals[i] = a.Alt[k]
		}
		s.SetAlt(names, vals)
	}
	return s
}

// doorRule says whether r may refuse a login.
func (r *rule) doorRule(now time.Time) bool {
	return r.active(now) && r.loggedInBefore.IsZero() && !r.drain && r.dests == nil
}

var scratchPool sync.Pool // *scratch, per ruleIndex size

// Judge decides on one attempt, as Evaluate decides on a session: the
// first kick rule in load order (else the policy's first kick), else a
// dry-run, and ActionAllowed when the allow list covers it. Rule "" when
// nothing selects it. A failing policy returns the YAML verdict with a
// *PolicyError, as Evaluate does.
func (rs *Ruleset) Judge(ctx context.Context, a *Attempt) (Decision, error) {
	a.Now = timeOrNow(a.Now)
	s := a.Session()
	var best *rule
	if len(rs.rules) > 0 {
		sc, _ := scratchPool.Get().(*scratch)
		if sc == nil || len(sc.mark) != rs.index.nrules {
			sc = rs.index.newScratch()
		}
		for _, id := range rs.index.candidates(sc, &s) {
			r := rs.rules[id]
			if r.doorRule(a.Now) && r.matches(&s) && (best == nil || better(r, best)) {
				best = r
			}
		}
		scratchPool.Put(sc)
	}
	var d Decision
	if best != nil {
		d = Decision{Session: &s, ID: "login", Rule: best.name, Engine: EngineYAML, Reason: best.explain(&s),
			Action: ActionKick, File: best.file}
		if best.dryRun {
			d.Action = ActionDryRun
		}
	}
	if best == nil || best.dryRun {
		if b, ok := blockOf(a.Blocked, a.BlockedUser, &s); ok && (best == nil || !b.DryRun) {
			d = Decision{Session: &s, ID: "login", Rule: b.Rule, Engine: EngineYAML, Reason: b.Reason,
				Action: ActionKick, File: b.File}
			if b.DryRun {
				d.Action = ActionDryRun
			}
		}
	}
	var perr error
	if rs.policy != nil && rs.policy.DoorSkip() == "" && (d.Rule == "" || d.Action == ActionDryRun) {
		pd, ok, err := rs.policy.judge(ctx, &s, a, rs.doorAllow())
		switch {
		case err != nil:
			perr = policyError(err)
		case ok && (d.Rule == "" || pd.Action == ActionKick):
			d = pd
		}
	}
	if d.Rule != "" && rs.Allow.Protects(&s) {
		d.Action = ActionAllowed
	}
	return d, perr
}

// DoorSkip says why the Rego policy does not judge logins, or "" when it
// does (no policy: "").
func (rs *Ruleset) DoorSkip() string {
	if rs.policy == nil {
		return ""
	}
	return rs.policy.DoorSkip()
}

// ResetFlushes counts the active reset rules by what reset did with the
// auth cache (flushed, failed, skipped; "unknown" for a reset written by
// hand or by an older kickagent).
func (rs *Ruleset) ResetFlushes(now time.Time) map[string]int {
	out := map[string]int{}
	for _, r := range rs.rules {
		if !r.loggedInBefore.IsZero() && r.active(now) {
			out[cmp.Or(r.cacheFlush, "unknown")]++
		}
	}
	return out
}

// BruteForceRules lists the active brute-force rules.
func (rs *Ruleset) BruteForceRules(now time.Time) []BruteForceRule {
	var out []BruteForceRule
	for _, r := range rs.bfRules {
		if r.active(now) {
			b := *r.bf
			b.Name, b.File, b.Line, b.DryRun = r.name, r.file, r.line, r.dryRun
			out = append(out, b)
		}
	}
	return out
}

// doorAllow is input.allow for the policy's login judgements, built once.
func (rs *Ruleset) doorAllow() *ast.Term {
	rs.allowOnce.Do(func() { rs.allowTerm = allowTerm(rs.Allow) })
	return rs.allowTerm
}

// addBlocks adds the decisions of the brute-force blocks in force to ds
// (in snapshot order): a blocked client's session is kicked as a
// "kickagent block" of its IP would kick it. A session a kick rule already
// selects keeps that decision.
func (rs *Ruleset) addBlocks(in *Input, ds []Decision) []Decision {
	if in.Blocked == nil && in.BlockedUser == nil {
		return ds
	}
	var out []Decision
	k := 0
	for i := range in.Snapshot.Sessions {
		s := &in.Snapshot.Sessions[i]
		var have *Decision
		for ; k < len(ds) && ds[k].Index <= i; k++ {
			if ds[k].Index == i {
				have = &ds[k]
			} else {
				out = append(out, ds[k])
			}
		}
		d := have
		if have == nil || have.Action == ActionDryRun {
			if b, ok := blockOf(in.Blocked, in.BlockedUser, s); ok && (have == nil || !b.DryRun) {
				nd := Decision{Session: s, Index: i, ID: s.ID(), Rule: b.Rule, Engine: EngineYAML,
					Reason: b.Reason, Action: ActionKick, File: b.File}
				switch {
				case rs.Allow.Protects(s):
					nd.Action = ActionAllowed
				case b.DryRun:
					nd.Action = ActionDryRun
				}
				d = &nd
			}
		}
		if d != nil {
			out = append(out, *d)
		}
	}
	return append(out, ds[k:]...)
}

// blockOf returns the block covering s: its client IP's, else its user's.
func blockOf(ip func(netip.Addr) (Block, bool), user func(string) (Block, bool), s *anvil.Session) (Block, bool) {
	if ip != nil && s.IP.IsValid() {
		if b, ok := ip(s.IP); ok {
			return b, true
		}
	}
	if user != nil {
		return user(s.User)
	}
	return Block{}, false
}
