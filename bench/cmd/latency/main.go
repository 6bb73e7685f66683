// Command latency measures how long a running agent takes from a rule file written into its
// drop-in directory to the client seeing its connection closed. Each trial logs one real IMAP
// session in from its own address (127.0.5.N), waits until anvil lists it, writes a rule
// selecting exactly that user and address into DIR by rename (as kickagent block does), and
// times until the client reads EOF. The rule file is removed after each trial.
//
//	latency -inst b24 -dir RULES_DIR -n 20
//
// It prints one line per trial (seconds) and a summary: n, min, median, p90, max.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/testrig"
)

func main() {
	name := flag.String("inst", "b24", "rig instance")
	dir := flag.String("dir", "", "the agent's --rules-dir")
	n := flag.Int("n", 20, "trials")
	flag.Parse()
	if err := run(*name, *dir, *n); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

// listed waits until anvil lists a session of user from src.
func listed(ctx context.Context, sock, user string, src netip.Addr) error {
	cl := &anvil.Client{Path: sock}
	for {
		c, err := cl.Open(ctx)
		if err != nil {
			return err
		}
		snap, err := c.Dump(ctx)
		c.Close()
		if err != nil {
			return err
		}
		for i := range snap.Sessions {
			if s := &snap.Sessions[i]; s.User == user && s.IP == src {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("session %s from %s not listed: %w", user, src, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func run(name, dir string, n int) error {
	in, err := testrig.Load(name)
	if err != nil {
		return err
	}
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	final := filepath.Join(dir, "zz-bench-latency.yaml")
	var ds []float64
	for i := range n {
		err := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			src := netip.AddrFrom4([4]byte{127, 0, 5, byte(1 + i%250)})
			user := testrig.Users[i%len(testrig.Users)]
			c, err := testrig.DialIMAP(ctx, src, in.IMAPPort, user, testrig.Password)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := listed(ctx, in.Anvil, user, src); err != nil {
				return err
			}
			// A random phase against the agent's 5 s ticker.
			time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
			q, err := testrig.IMAPQuote(user)
			if err != nil {
				return err
			}
			rule := fmt.Sprintf("rules:\n  - name: bench-latency-%d\n    users: [%s]\n    networks: [%s/32]\n", i, q, src)
			tmp := filepath.Join(dir, ".bench-latency.tmp")
			if err := os.WriteFile(tmp, []byte(rule), 0o644); err != nil {
				return err
			}
			start := time.Now()
			if err := os.Rename(tmp, final); err != nil {
				return err
			}
			err = c.WaitClosed(ctx)
			d := time.Since(start)
			if rerr := os.Remove(final); err == nil {
				err = rerr
			}
			if err != nil {
				return fmt.Errorf("trial %d: %w", i, err)
			}
			ds = append(ds, d.Seconds())
			fmt.Printf("trial %d: %.3f s\n", i, d.Seconds())
			time.Sleep(300 * time.Millisecond) // the agent reloads the removal
			return nil
		}()
		if err != nil {
			return err
		}
	}
	slices.Sort(ds)
	q := func(p float64) float64 { return ds[int(p*float64(len(ds)-1)+0.5)] }
	md := q(0.5)
	if len(ds)%2 == 0 {
		md = (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
	}
	fmt.Printf("n=%d min=%.3f median=%.3f p90=%.3f max=%.3f\n", len(ds), ds[0], md, q(0.9), ds[len(ds)-1])
	return nil
}
