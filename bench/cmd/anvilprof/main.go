// Command anvilprof measures what a CONNECT-DUMP costs Dovecot's anvil under
// different read strategies of the reader: it attaches `perf trace` to anvil,
// runs one dump with bench/cmd/rawdump, and reads anvil's system calls back:
// how long anvil stayed away from its event loop (epoll_wait) after reading
// the request, how much time it spent out of it until the reply's last write,
// and how many write(2) calls it made and how long they took.
//
//	anvilprof -pid ANVIL_PID -sock ANVIL_SOCKET -v 23|24 [-runs 3] [-rawdump PATH] STRATEGY...
//
// STRATEGY is plain (read as fast as possible, like doveadm), paced (kickagent's
// 2.3 pacing: wait 2 ms after a small read) or wait=DURATION ("fill then
// wait": send CONNECT-DUMP, read nothing for DURATION, then read everything).
// Runs rotate through the strategies; each strategy is also timed -runs times
// without tracing (the reader's wall time), since tracing slows every system
// call a little. It prints a markdown table of medians; -each also prints
// every run to stderr.
//
// It only reads anvil (perf trace attaches to it); it signals nothing but
// the perf process it started.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	pid, sock, ver, rawdump, perf string
	runs                          int
	attach                        time.Duration
	verbose                       bool
	strategies                    []string
}

func main() {
	var c config
	flag.StringVar(&c.pid, "pid", "", "anvil's pid")
	flag.StringVar(&c.sock, "sock", "", "anvil's socket")
	flag.StringVar(&c.ver, "v", "24", "anvil protocol: 23 or 24")
	flag.StringVar(&c.rawdump, "rawdump", "", "bench/cmd/rawdump binary (default: rawdump next to this one)")
	flag.StringVar(&c.perf, "perf", "/usr/bin/perf", "perf binary")
	flag.IntVar(&c.runs, "runs", 3, "traced dumps per strategy (and as many untraced)")
	flag.DurationVar(&c.attach, "attach", 1500*time.Millisecond, "time given perf trace to attach before the dump")
	flag.BoolVar(&c.verbose, "each", false, "print every run to stderr")
	flag.Parse()
	c.strategies = flag.Args()
	if c.pid == "" || c.sock == "" || len(c.strategies) == 0 || c.runs < 1 {
		fmt.Fprintln(os.Stderr, "usage: anvilprof -pid PID -sock SOCKET -v 23|24 [-runs N] plain|paced|wait=D ...")
		os.Exit(2)
	}
	if c.rawdump == "" {
		exe, err := os.Executable()
		if err == nil {
			c.rawdump = filepath.Join(filepath.Dir(exe), "rawdump")
		}
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "anvilprof:", err)
		os.Exit(1)
	}
}

// readerArgs turns a strategy into rawdump flags.
func readerArgs(s string) ([]string, error) {
	switch {
	case s == "plain":
		return nil, nil
	case s == "paced":
		return []string{"-pace"}, nil
	case strings.HasPrefix(s, "wait="):
		if _, err := time.ParseDuration(s[5:]); err != nil {
			return nil, fmt.Errorf("strategy %s: %w", s, err)
		}
		return []string{"-wait", s[5:]}, nil
	}
	return nil, fmt.Errorf("unknown strategy %q (plain, paced, wait=D)", s)
}

func run(c config) error {
	traced := map[string][]dumpStats{}
	wallT := map[string][]float64{}
	wall := map[string][]float64{}
	for _, s := range c.strategies {
		if _, err := readerArgs(s); err != nil {
			return err
		}
	}
	n := len(c.strategies)
	for r := 0; r < c.runs; r++ {
		for j := 0; j < n; j++ {
			s := c.strategies[(r+j)%n]
			w, err := dump(c, s)
			if err != nil {
				return err
			}
			wall[s] = append(wall[s], w)
			st, wt, err := tracedDump(c, s)
			if err != nil {
				return fmt.Errorf("%s run %d: %w", s, r+1, err)
			}
			traced[s] = append(traced[s], st)
			wallT[s] = append(wallT[s], wt)
			if c.verbose {
				fmt.Fprintf(os.Stderr, "%s run %d: reader %.1fms (traced %.1fms) %s\n", s, r+1, w, wt, st)
			}
		}
	}
	fmt.Println("| reader | reader's wall time, untraced (ms) | traced (ms) | anvil away from its loop (ms) | all runs (ms) | out of the loop until the last write (ms) | loop returns | write(2) calls | of them before the loop returned | EAGAIN | time in write(2) (ms) | longest write (ms) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range c.strategies {
		ts := traced[s]
		get := func(f func(dumpStats) float64) float64 {
			v := make([]float64, len(ts))
			for i, t := range ts {
				v[i] = f(t)
			}
			return median(v)
		}
		var aw []string
		for _, t := range ts {
			aw = append(aw, strconv.FormatFloat(t.Away, 'f', 1, 64))
		}
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %s | %.1f | %.0f | %.0f | %.0f | %.0f | %.1f | %.3f |\n", s,
			median(wall[s]), median(wallT[s]), get(func(d dumpStats) float64 { return d.Away }), strings.Join(aw, " "),
			get(func(d dumpStats) float64 { return d.Busy }), get(func(d dumpStats) float64 { return float64(d.Stretches) }),
			get(func(d dumpStats) float64 { return float64(d.Writes) }), get(func(d dumpStats) float64 { return float64(d.WritesAway) }),
			get(func(d dumpStats) float64 { return float64(d.WritesFailed) }), get(func(d dumpStats) float64 { return d.WriteSum }),
			get(func(d dumpStats) float64 { return d.WriteMax }))
	}
	return nil
}

// dump runs rawdump once with strategy s and returns its wall time in ms
// (CONNECT-DUMP sent → last byte read).
func dump(c config, s string) (float64, error) {
	args, _ := readerArgs(s)
	args = append(args, "-q", "-time", "-v", c.ver, c.sock)
	out, err := exec.Command(c.rawdump, args...).Output()
	if err != nil {
		return 0, fmt.Errorf("rawdump %s: %w", strings.Join(args, " "), err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, fmt.Errorf("rawdump printed %q", out)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return v * 1000, err
}

// tracedDump runs one dump with perf trace attached to anvil.
func tracedDump(c config, s string) (dumpStats, float64, error) {
	f, err := os.CreateTemp("", "anvilprof-*.trace")
	if err != nil {
		return dumpStats{}, 0, err
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	var stderr bytes.Buffer
	p := exec.Command(c.perf, "trace", "-p", c.pid, "-o", name,
		"-e", "read,write,writev,sendmsg,epoll_wait,epoll_pwait,accept,accept4")
	p.Stderr = &stderr
	if err := p.Start(); err != nil {
		return dumpStats{}, 0, fmt.Errorf("perf trace: %w", err)
	}
	time.Sleep(c.attach)
	wt, derr := dump(c, s)
	time.Sleep(200 * time.Millisecond) // anvil's last epoll_wait entry
	_ = p.Process.Signal(syscall.SIGINT)
	if err := p.Wait(); err != nil && !isInterrupt(err) {
		return dumpStats{}, 0, fmt.Errorf("perf trace: %w: %s", err, stderr.String())
	}
	if derr != nil {
		return dumpStats{}, 0, derr
	}
	tf, err := os.Open(name)
	if err != nil {
		return dumpStats{}, 0, err
	}
	defer tf.Close()
	calls, err := parseTrace(tf)
	if err != nil {
		return dumpStats{}, 0, err
	}
	st, err := analyse(calls)
	return st, wt, err
}

func isInterrupt(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && (ws.Signaled() && ws.Signal() == syscall.SIGINT || ws.ExitStatus() == 130)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
