package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// newFlagSet returns a FlagSet that prints help text to stderr on -h.
func newFlagSet(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, help) }
	return fs
}

// parseArgs parses flags that may stand before, between or after the
// positional arguments (as doveadm's getopt allows); "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if len(rest) == 0 || (consumed > 0 && args[consumed-1] == "--") {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// anvilFlags are the flags every command that talks to anvil has.
type anvilFlags struct {
	socket  string
	timeout time.Duration
}

func (a *anvilFlags) register(fs *flag.FlagSet) {
	// Empty means the config file's socket, else anvil.DefaultSocket.
	fs.StringVar(&a.socket, "a", "", "anvil socket path (default /run/dovecot/anvil)")
	fs.DurationVar(&a.timeout, "timeout", 30*time.Second, "anvil timeout")
}

// warnBadLines prints one warning per kind of malformed anvil line a dump
// had; the lines were skipped and the command goes on with the rest.
func warnBadLines(stderr io.Writer, cmd string, bad anvil.BadLines) {
	for _, p := range bad.Problems {
		fmt.Fprintf(stderr, "kickagent %s: warning: skipped %d malformed anvil line(s): line %d: %s %q\n",
			cmd, p.Count, p.Line, p.Reason, p.Text)
	}
}
