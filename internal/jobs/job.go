package jobs

import (
	"errors"
	"fmt"
	"time"

	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/match"
)

// Job is one job's rule and the target its file is named after.
type Job struct {
	Kind Kind
	// Target is what the job is about: a network in canonical form or a
	// user mask (block), "[field]:user" (reset), a backend address or
	// "all" (drain).
	Target string
	Rule   engine.RuleSpec
}

// ErrUsage marks a job argument that is refused as given (a network
// literal the parser does not accept, a bad rate or backend); the message
// says why.
var ErrUsage = errors.New("bad job argument")

type usageError struct{ err error }

func (e usageError) Error() string        { return e.err.Error() }
func (e usageError) Unwrap() error        { return e.err }
func (e usageError) Is(target error) bool { return target == ErrUsage }

func usage(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// NewBlock is a block of arg until the given time: a network when arg is
// one (match.ClassifyArg, as who and kick read it), else a user mask.
// Network-like text the parser refuses ("127.1", "10/8") is an ErrUsage,
// never a user mask that would match nobody.
func NewBlock(arg string, until time.Time, reason string) (Job, error) {
	if arg == "" {
		return Job{}, usage("an empty target (use '*' to mean every user)")
	}
	n, isNet, err := match.ClassifyArg(arg)
	if err != nil {
		return Job{}, usageError{err}
	}
	j := Job{Kind: Block, Target: arg}
	if isNet {
		j.Target = n.String()
		j.Rule.Networks = []string{j.Target}
	} else {
		j.Rule.Users = []string{arg}
	}
	j.Rule.Name = RuleName(Block, j.Target)
	j.Rule.Expires = RFC3339Up(until)
	j.Rule.Description = reason
	if reason == "" {
		j.Rule.Description = "blocked with kickagent block"
	}
	return j, nil
}

// NewReset kicks the sessions of user (or, with field, of the sessions
// whose alt-username field has that value) that were logged in at the
// reset time at; the rule expires after lifetime.
func NewReset(user, field string, at time.Time, lifetime time.Duration) Job {
	target := field + ":" + user
	// The cutoff keeps milliseconds: rounded up to a whole second it
	// would lie up to a second after the reset, and a session that
	// logged in with the new password in that second counted as old.
	cutoff := rfc3339MilliUp(at)
	j := Job{Kind: Reset, Target: target, Rule: engine.RuleSpec{Name: RuleName(Reset, target),
		LoggedInBefore: cutoff, Expires: RFC3339Up(at.Add(lifetime)),
		Description: "password reset of " + user + " at " + cutoff + ": sessions from before it"}}
	if field != "" {
		j.Rule.PassdbField, j.Rule.Values = field, []string{user}
	} else {
		j.Rule.Users = []string{user}
	}
	return j
}

// DrainAll is the drain target of every session on the server.
const DrainAll = "all"

// NewDrain drains the proxied sessions to backend dest, or with dest
// DrainAll every session, at rate ("N/s", "N/m", as the engine reads it).
func NewDrain(dest, rate string) (Job, error) {
	if _, err := engine.ParseRate(rate); err != nil {
		return Job{}, usage("--rate: %w", err)
	}
	j := Job{Kind: Drain, Target: DrainAll, Rule: engine.RuleSpec{Drain: true, Rate: rate}}
	if dest == DrainAll {
		j.Rule.Users = []string{"*"}
		j.Rule.Description = "drain of every session on this server"
	} else {
		a, err := match.ParseAddr(dest)
		if err != nil {
			return Job{}, usage("--dest: %w (give the backend's IP address; host names are not resolved)", err)
		}
		// Written as dest_hosts compares it (match.DestKey: no zone; a
		// mapped address is not its IPv4 form, as in doveadm kick -h).
		j.Target = match.DestKey(a).String()
		j.Rule.DestHosts = []string{j.Target}
		j.Rule.Description = "drain of backend " + j.Target
	}
	j.Rule.Name = RuleName(Drain, j.Target)
	return j, nil
}

// RFC3339Up formats t in whole seconds, rounded up: RFC 3339 without a
// fraction would otherwise end a block up to a second early, and put a
// reset's cutoff before the reset, where a session that logged in between
// the two would count as new.
func RFC3339Up(t time.Time) string {
	if u := t.Truncate(time.Second); u.Before(t) {
		t = u.Add(time.Second)
	}
	return t.UTC().Format(time.RFC3339)
}

// rfc3339MilliUp formats t in milliseconds, rounded up (see RFC3339Up).
func rfc3339MilliUp(t time.Time) string {
	if u := t.Truncate(time.Millisecond); u.Before(t) {
		t = u.Add(time.Millisecond)
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
