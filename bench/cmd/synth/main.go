// Command synth registers synthetic anvil sessions (testrig.SyntheticMix) in a running rig
// instance and exits; the sessions stay in anvil until the instance restarts. No process
// holds them (pids > 4194304; on 2.4 kick type N), so no kick can reach a real process.
//
//	go run ./bench/cmd/synth -inst b24 -n 100000 -seed 1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

func main() {
	name := flag.String("inst", "b24", "rig instance (test/dovecot/instance.sh)")
	n := flag.Int("n", 100000, "number of sessions")
	seed := flag.Int64("seed", 1, "SyntheticMix seed")
	flag.Parse()
	if err := run(*name, *n, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		os.Exit(1)
	}
}

func run(name string, n int, seed int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in, err := testrig.Load(name)
	if err != nil {
		return err
	}
	sessions := testrig.SyntheticMix(n, seed)
	if !in.Is24() {
		sessions = testrig.StripFor23(sessions)
	}
	start := time.Now()
	sc, err := testrig.RegisterSynthetic(ctx, in, sessions)
	if err != nil {
		return err
	}
	if err := sc.Close(); err != nil {
		return err
	}
	fmt.Printf("synth: %d sessions registered in %s (Dovecot %s) in %.2fs\n", n, name, in.Version, time.Since(start).Seconds())
	return nil
}
