package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/authmaster"
	"github.com/kickagent/kickagent/internal/config"
	"github.com/kickagent/kickagent/internal/engine"
	"github.com/kickagent/kickagent/internal/jobs"
)

// defaultFlushTimeout bounds the auth cache flush: the auth process
// answers CACHE-FLUSH itself, without a passdb lookup, so a slow answer
// means a stuck process, and the reset must go on to the kick.
const defaultFlushTimeout = 10 * time.Second

// cacheFlusher is the auth cache flush reset needs (authmaster.Client).
type cacheFlusher interface {
	FlushUsers(ctx context.Context, users []string) (int, error)
}

// newFlusher makes the flusher for a socket; a variable for the tests.
var newFlusher = func(path string) cacheFlusher { return &authmaster.Client{Path: path} }

// resetFlush is what reset does with the auth cache before it sets the
// cutoff.
type resetFlush struct {
	socket  string
	names   []string // the cache names to flush; none when skipped
	skip    string   // why nothing is flushed ("" when names are)
	partial bool     // skipping leaves the old password cached: exitPartial
	timeout time.Duration
}

// planFlush decides what to flush for a reset of user (of field's value
// when field is set). The auth cache is keyed by the login name as the
// passdb lookup saw it, after auth_username_format (default %Lu on 2.3,
// %{user | lower} on 2.4), so the name as given and its lowercase form are
// flushed:
// the reset's rule matches user names in any ASCII case, and flushing an
// entry only costs the next login a passdb lookup. An alt-username value
// is no key of the cache, and which login names carry it cannot be known
// (a device whose session has ended is not in anvil), so with field
// nothing is flushed rather than something wrong.
func planFlush(user, field, flag string, c *config.Config, noFlush bool, timeout time.Duration) resetFlush {
	f := resetFlush{socket: cmp.Or(flag, authmaster.SocketNextTo(cmp.Or(c.AnvilSocket, anvil.DefaultSocket))), timeout: timeout}
	switch {
	case noFlush:
		f.skip = "--no-cache-flush"
	case field != "":
		f.skip = fmt.Sprintf("the auth cache is keyed by login names, not by %s values, and which login names carry %s=%s cannot be told "+
			"(a device whose session has ended is in no list): flush them by hand (doveadm auth cache flush LOGIN...), "+
			"or pass --no-cache-flush when Dovecot has no auth cache", field, field, user)
		f.partial = true
	default:
		f.names = []string{user}
		if l := asciiLower(user); l != user {
			f.names = append(f.names, l)
		}
	}
	return f
}

// asciiLower lowercases ASCII letters only, as Dovecot's %L does.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// reset flushes (or skips), then installs the job newJob makes for the
// cutoff, and returns the exit code. The cutoff is at the flush's
// completion, or at if later: a session that logged in before the flush
// completed may have used the cached old password, so it counts as old. A
// failed flush still installs the reset (a reset that does not kick is
// worse) and says so loudly, with exitPartial.
func (f resetFlush) reset(ctx context.Context, d jobs.Dir, at time.Time, newJob func(time.Time) jobs.Job, stdout, stderr io.Writer) int {
	if f.names == nil {
		f.reportSkip(stderr)
		job := newJob(at)
		job.Rule.Description += "; auth cache not flushed (" + cmp.Or(shortSkip(f.skip), "skipped") + ")"
		job.Rule.AuthCacheFlush = engine.CacheFlushSkipped
		code := installIn(ctx, d, job, stdout, stderr)
		if code == exitOK && f.partial {
			return exitPartial
		}
		return code
	}
	n, ferr := f.run(ctx)
	if done := time.Now(); done.After(at) {
		at = done
	}
	job := newJob(at)
	// The rule's description is in every kick's audit record: the trail
	// says whether the old password could still get in.
	if ferr != nil {
		job.Rule.Description += "; auth cache NOT flushed: " + ferr.Error()
		job.Rule.AuthCacheFlush = engine.CacheFlushFailed
	} else {
		job.Rule.Description += fmt.Sprintf("; auth cache: %d entries flushed for %s", n, strings.Join(f.names, ", "))
		job.Rule.AuthCacheFlush = engine.CacheFlushed
	}
	code := installIn(ctx, d, job, stdout, stderr)
	cutoff := job.Rule.LoggedInBefore
	if code != exitOK {
		cutoff = ""
	}
	f.report(stdout, stderr, n, ferr, cutoff)
	if code == exitOK && ferr != nil {
		return exitPartial
	}
	return code
}

// shortSkip names why nothing was flushed, in a few words.
func shortSkip(skip string) string {
	if skip == "--no-cache-flush" {
		return skip
	}
	if skip != "" {
		return "reset by passdb field: flush its login names by hand"
	}
	return ""
}

// run flushes and returns the count; the reset goes on whatever happens.
func (f resetFlush) run(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return newFlusher(f.socket).FlushUsers(ctx, f.names)
}

// quoted lists names for output.
func quoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// dryRun says what reset would do, changing nothing; at is the --at
// text ("" for now).
func (f resetFlush) dryRun(w io.Writer, what, at string) {
	cutoff := "now"
	if at != "" {
		cutoff = at
	}
	switch {
	case f.skip == "--no-cache-flush":
		fmt.Fprintf(w, "dry run: would install the reset of %s with the cutoff %s, without an auth cache flush (--no-cache-flush); nothing changed\n",
			what, cutoff)
	case f.skip != "":
		fmt.Fprintf(w, "dry run: would NOT flush the auth cache: %s\n", f.skip)
		fmt.Fprintf(w, "dry run: would install the reset of %s with the cutoff %s and exit %d (cache not flushed); nothing changed\n",
			what, cutoff, exitPartial)
	default:
		if at != "" {
			cutoff = "the later of " + at + " and the flush's completion"
		} else {
			cutoff = "the flush's completion"
		}
		fmt.Fprintf(w, "dry run: would flush the auth cache entries of %s through %s, then install the reset of %s "+
			"with the cutoff at %s; nothing changed\n", quoted(f.names), f.socket, what, cutoff)
	}
}

// report prints the outcome of a flush that was tried: on stdout when it
// worked, and on stderr loudly when it did not, since the old password may
// then still log in. cutoff is the installed rule's, "" when the install
// failed.
func (f resetFlush) report(stdout, stderr io.Writer, n int, err error, cutoff string) {
	if err == nil {
		old := ""
		if cutoff != "" {
			old = "; sessions logged in before " + cutoff + " are old"
		}
		fmt.Fprintf(stdout, "auth cache: %d entries flushed for %s (%s)%s\n", n, quoted(f.names), f.socket, old)
		return
	}
	fmt.Fprintf(stderr, "kickagent reset: WARNING: the auth cache was NOT flushed: %v\n", err)
	kicks := "the reset was not installed either (see above)"
	if cutoff != "" {
		kicks = "the reset is installed and kicks the sessions from before " + cutoff
	}
	fmt.Fprintf(stderr, "kickagent reset: WARNING: the old password may still log in until auth_cache_ttl ends; %s. "+
		"Flush by hand (doveadm auth cache flush %s) or fix the cause and run reset again (--auth-master PATH names the socket)\n",
		kicks, strings.Join(f.names, " "))
}

// reportSkip warns about a flush that reset cannot do (-f).
func (f resetFlush) reportSkip(stderr io.Writer) {
	if f.partial {
		fmt.Fprintf(stderr, "kickagent reset: WARNING: the auth cache was NOT flushed: %s\n", f.skip)
	}
}
