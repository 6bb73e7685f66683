// Command kickbench times one mass kick on a rig instance: it logs n real IMAP sessions in
// (testrig.DialIMAP, the rig's users spread over source addresses 127.0.1.1 …), checks that
// anvil lists them, runs the kick command given after "--", and reports how long the command
// took, when the last client saw EOF, how many clients were disconnected, and when anvil's
// table no longer held any of them. Output is one line of key=value pairs.
//
//	kickbench -inst b24 -n 1000 -- kickagent kick -a SOCK 127.0.0.0/8
//
// It needs an instance with room for n IMAP processes (b24 in test/dovecot/instance.sh).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/testrig"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		if err := agentCmd(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "kickbench agent:", err)
			os.Exit(1)
		}
		return
	}
	name := flag.String("inst", "b24", "rig instance")
	n := flag.Int("n", 1000, "real IMAP sessions to open")
	conc := flag.Int("conc", 16, "concurrent logins")
	wait := flag.Duration("wait", 30*time.Second, "how long to wait for the clients' EOF")
	flag.Parse()
	if flag.NArg() == 0 || *n < 1 || *n > 250*250 {
		fmt.Fprintln(os.Stderr, "usage: kickbench [-inst NAME] [-n N] [-conc C] -- KICK_COMMAND ...")
		os.Exit(64)
	}
	if err := run(*name, *n, *conc, *wait, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "kickbench:", err)
		os.Exit(1)
	}
}

// src is the client address of session i: 127.0.1.1 … 127.0.1.250, 127.0.2.1 …
func src(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, byte(1 + i/250), byte(1 + i%250)}) }

func run(name string, n, conc int, wait time.Duration, cmdArgs []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in, err := testrig.Load(name)
	if err != nil {
		return err
	}
	conns, openDur, err := open(ctx, in, n, conc)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err != nil {
		return err
	}
	cl := &anvil.Client{Path: in.Anvil}
	if listed, err := countReal(ctx, cl); err != nil {
		return err
	} else if listed != n {
		return fmt.Errorf("anvil lists %d of the %d sessions opened", listed, n)
	}

	// One reader per client, blocked until the server closes the connection.
	eof := make([]time.Time, n)
	var wg sync.WaitGroup
	wctx, wcancel := context.WithTimeout(ctx, wait)
	defer wcancel()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.WaitClosed(wctx) == nil {
				eof[i] = time.Now()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // let the readers block

	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, cmdArgs[0], cmdArgs[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err = cmd.Run()
	cmdDur := time.Since(t0)
	exit := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		exit = ee.ExitCode()
	} else if err != nil {
		return err
	}
	// anvil's table: poll until no session of ours is left (after the command, so the
	// polling never competes with it).
	left, goneDur := -1, time.Duration(-1)
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if left, err = countReal(ctx, cl); err != nil {
			return err
		}
		if left == 0 {
			goneDur = time.Since(t0)
			break
		}
	}
	wg.Wait()
	closed, last := 0, t0
	for _, t := range eof {
		if !t.IsZero() {
			closed++
			if t.After(last) {
				last = t
			}
		}
	}
	lastLine := strings.TrimSpace(out.String())
	if i := strings.LastIndexByte(lastLine, '\n'); i >= 0 {
		lastLine = lastLine[i+1:]
	}
	fmt.Printf("n=%d open_s=%.3f cmd_s=%.4f last_eof_s=%.4f anvil_empty_s=%.4f closed=%d left=%d exit=%d out=%q\n",
		n, openDur.Seconds(), cmdDur.Seconds(), last.Sub(t0).Seconds(), goneDur.Seconds(), closed, left, exit, lastLine)
	return nil
}

// open logs n IMAP sessions in, conc at a time, users round-robin over testrig.Users.
func open(ctx context.Context, in *testrig.Instance, n, conc int) ([]*testrig.Conn, time.Duration, error) {
	conns := make([]*testrig.Conn, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				conns[i], errs[i] = testrig.DialIMAP(ctx, src(i), in.IMAPPort, testrig.Users[i%len(testrig.Users)], testrig.Password)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return conns, time.Since(start), errors.Join(errs...)
}

// countReal counts anvil's sessions of the rig's users from 127.0.0.0/8: the ones kickbench
// opens. Synthetic sessions (testrig.SyntheticMix) never have these user names.
func countReal(ctx context.Context, cl *anvil.Client) (int, error) {
	snap, err := cl.Dump(ctx)
	if err != nil {
		return 0, err
	}
	lo := netip.MustParsePrefix("127.0.0.0/8")
	n := 0
	for i := range snap.Sessions {
		s := &snap.Sessions[i]
		if lo.Contains(s.IP) && slices.Contains(testrig.Users, s.User) {
			n++
		}
	}
	return n, nil
}
