package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/jobs"
)

// drainHintTimeout bounds the snapshot drainHint takes: the drain is
// already installed, and the hint must not hold the command up.
const drainHintTimeout = 5 * time.Second

// drainHint warns when the drain just installed has nothing to kick on a
// snapshot taken now: the agent then ends it at its next cycle, which
// looks like a drain that "completed" at once. The usual cause is running
// it on a server that proxies nothing to that address (a backend, or the
// wrong proxy), or Dovecot 2.3, whose anvil does not list proxied
// sessions. A snapshot that cannot be taken only says so: the drain
// stands either way.
func drainHint(ctx context.Context, fs *flag.FlagSet, j *jobFlags, af *anvilFlags, job jobs.Job, stderr io.Writer) {
	d, c, err := j.dir(fs)
	if err != nil {
		return
	}
	socket := af.socket
	if socket == "" {
		socket = c.AnvilSocket
	}
	ctx, cancel := context.WithTimeout(ctx, min(af.timeout, drainHintTimeout))
	defer cancel()
	snap, err := (&anvil.Client{Path: socket}).Dump(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "kickagent drain: note: cannot count the sessions to drain (%v); see kickagent drain --status\n", err)
		return
	}
	drains, err := d.Drains(ctx, snap, time.Now())
	if err != nil {
		return
	}
	for _, s := range drains {
		if filepath.Base(s.Path) != jobs.FileName(job.Kind, job.Target) || s.Left > 0 {
			continue
		}
		if job.Target == jobs.DrainAll {
			fmt.Fprintln(stderr, "kickagent drain: note: no session to drain on this server now; the agent ends the drain at its next cycle")
			return
		}
		fmt.Fprintf(stderr, "kickagent drain: note: no session on this server is proxied to %s now, so the agent ends the drain at its next cycle;"+
			" run it on the proxy, with the backend address the proxy connects to (as kickagent who shows it)\n", job.Target)
		if snap.Protocol == anvil.Proto23 {
			fmt.Fprintf(stderr, "kickagent drain: note: Dovecot 2.3's anvil does not list proxied sessions; kickagent kick -h %s kicks them through the ipc socket\n", job.Target)
		}
	}
}
