package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/kickagent/kickagent/internal/engine"
)

var testPolicyUsage = `Usage: kickagent test-policy [-q | -v] [--run REGEX] [--policy-timeout D] [--policy-memory-mib N] DIR...

Runs the Rego unit tests of the policy in each DIR (test_* rules in
*_test.rego files, searched recursively) through the embedded OPA tester,
as "opa test DIR" would, with kickagent's builtins (kickagent.in_networks,
kickagent.user_match) available: a stock opa binary does not have them.

The policy must first load as the agent loads it (package kickagent, Rego
v1, strict compile); the tests are compiled in strict mode too. Builtin
errors (an invalid CIDR given to net.cidr_contains, a bad time string)
fail the test instead of being silently undefined.

Each test is printed with PASS, FAIL or ERROR; failures show the test's
print() output. Load and compile errors are printed as file:line: message.

Policies and tests run in the agent's sandbox: OPA builtins that reach
the network, the host, the clock or randomness (http.send,
net.lookup_ip_addr, time.now_ns, rand.intn …) are refused at load.

The flags are:
  -q          print only failing tests and the summary
  -v          print every test (the default; accepted as "opa test -v"
              takes it)
  --run REGEX run only the tests whose name matches REGEX
  --policy-timeout D
              stop the whole run after D (default 60s)
  --policy-memory-mib N
              stop the run when the heap grows by N MiB (default 1024)

Success means every test passed; a test that failed or errored, no test
found, or a policy that did not load is a failure.
` + exitStatus(exitOK, exitFailure, exitUsage)

// runTestPolicy implements "kickagent test-policy".
func runTestPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("test-policy", testPolicyUsage, stderr)
	quiet := fs.Bool("q", false, "print only failures")
	verbose := fs.Bool("v", false, "print every test (the default)")
	run := fs.String("run", "", "run only tests matching REGEX")
	var budget engine.Budget
	policyBudgetFlags(fs, &budget, 60*time.Second)
	dirs, err := parseArgs(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(dirs) == 0 {
		fmt.Fprint(stderr, "kickagent test-policy: no policy directory given\n\n", testPolicyUsage)
		return exitUsage
	}
	if *quiet && *verbose {
		fmt.Fprint(stderr, "kickagent test-policy: -q and -v contradict each other\n")
		return exitUsage
	}
	ctx, stop := budget.Guard(ctx)
	defer stop()
	ch, err := engine.RunPolicyTests(ctx, dirs, *run)
	if err != nil {
		var errs engine.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stderr, e)
			}
		} else {
			fmt.Fprintf(stderr, "kickagent test-policy: %v\n", err)
		}
		return exitFailure
	}
	// Tests run in parallel; report them in file and line order.
	var results []*tester.Result
	failed := 0
	for r := range ch {
		results = append(results, r)
		if !r.Pass() && !r.Skip {
			failed++
		}
	}
	if err := stop(); err != nil {
		// The tests that were cut short report "cancelled"; say why.
		fmt.Fprintf(stderr, "kickagent test-policy: %v\n", err)
		return exitFailure
	}
	slices.SortFunc(results, func(a, b *tester.Result) int {
		return cmp.Or(cmp.Compare(locFile(a), locFile(b)), cmp.Compare(locRow(a), locRow(b)), cmp.Compare(a.Name, b.Name))
	})
	sorted := make(chan *tester.Result, len(results))
	for _, r := range results {
		sorted <- r
	}
	close(sorted)
	rep := tester.PrettyReporter{Output: stdout, Verbose: !*quiet, FailureLine: true}
	if err := rep.Report(sorted); err != nil {
		fmt.Fprintf(stderr, "kickagent test-policy: %v\n", err)
		return exitFailure
	}
	switch {
	case len(results) == 0:
		fmt.Fprintln(stderr, "kickagent test-policy: no tests found")
		return exitFailure
	case failed > 0:
		return exitFailure
	}
	return exitOK
}

func locFile(r *tester.Result) string {
	if r.Location == nil {
		return ""
	}
	return r.Location.File
}

func locRow(r *tester.Result) int {
	if r.Location == nil {
		return 0
	}
	return r.Location.Row
}
