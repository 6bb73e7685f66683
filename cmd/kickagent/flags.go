package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/config"
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
	a.timeout = 30 * time.Second
	fs.Var(checked(&a.timeout, config.ParseDuration, config.CheckTimeout), "timeout", "anvil timeout")
}

// checkedValue is a flag whose value is parsed and checked when it is set,
// by the same functions that check the config file, so that a bad value is
// a usage error that names the flag ("invalid value "1ns" for flag
// -interval: …"). A flag never given keeps its zero value: the config
// file's value, else the default.
type checkedValue[T any] struct {
	p     *T
	parse func(string) (T, error)
	check func(T) error
}

func checked[T any](p *T, parse func(string) (T, error), check func(T) error) *checkedValue[T] {
	return &checkedValue[T]{p, parse, check}
}

func (v *checkedValue[T]) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return fmt.Sprint(*v.p)
}

func (v *checkedValue[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	if v.check != nil {
		if err := v.check(x); err != nil {
			return err
		}
	}
	*v.p = x
	return nil
}

// Parsers for checkedValue, with errors that say what is wanted.
func parseString(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty value")
	}
	return s, nil
}

func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return n, nil
}

func parseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return f, nil
}

// warnBadLines prints one warning per kind of malformed anvil line a dump
// had; the lines were skipped and the command goes on with the rest.
func warnBadLines(stderr io.Writer, cmd string, bad anvil.BadLines) {
	for _, p := range bad.Problems {
		fmt.Fprintf(stderr, "kickagent %s: warning: skipped %d malformed anvil line(s): line %d: %s %q\n",
			cmd, p.Count, p.Line, p.Reason, p.Text)
	}
}
