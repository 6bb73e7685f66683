// Command kickagent lists and disconnects Dovecot sessions; see doc.go.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	endProfile := startProfile(os.Getenv("KICKAGENT_CPUPROFILE"), os.Stderr)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	endProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile of the whole command to path (for
// performance reports: BENCHMARKS.md). It returns the function that ends it.
func startProfile(path string, stderr io.Writer) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kickagent: KICKAGENT_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// run dispatches the subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if args[0] != "run" {
		// One-shot commands hold one snapshot and exit: collecting garbage
		// less often saves a fifth of a 100,000-session listing.
		debug.SetGCPercent(400)
	}
	switch args[0] {
	case "who":
		return runWho(ctx, args[1:], stdout, stderr)
	case "kick":
		return runKick(ctx, args[1:], stdout, stderr)
	case "run":
		return runAgent(ctx, args[1:], stdout, stderr)
	case "block":
		return runBlock(ctx, args[1:], stdout, stderr)
	case "unblock":
		return runUnblock(ctx, args[1:], stdout, stderr)
	case "blocks":
		return runBlocks(ctx, args[1:], stdout, stderr)
	case "reset":
		return runReset(ctx, args[1:], stdout, stderr)
	case "drain":
		return runDrain(ctx, args[1:], stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "plan":
		return runPlan(ctx, args[1:], stdout, stderr)
	case "snapshot":
		return runSnapshot(ctx, args[1:], stdout, stderr)
	case "test-policy":
		return runTestPolicy(ctx, args[1:], stdout, stderr)
	case "bundle":
		return runBundle(ctx, args[1:], stdout, stderr)
	case "help":
		// "kickagent help kick" is "kickagent kick --help".
		if len(args) == 2 && args[1] != "help" {
			return run(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "version", "--version":
		fmt.Fprintln(stdout, currentBuild())
		return exitOK
	}
	fmt.Fprintf(stderr, "kickagent: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}
