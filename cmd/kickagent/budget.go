package main

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/kickagent/kickagent/internal/engine"
)

// policyBudgetFlags registers --policy-timeout and --policy-memory-mib,
// the bound of a policy's evaluation in plan and test-policy: a policy
// once ran past 60 s and 16.8 GB in plan. The agent's own bound is half
// the cycle's time and engine.DefaultPolicyMemory.
func policyBudgetFlags(fs *flag.FlagSet, b *engine.Budget, timeout time.Duration) {
	b.Timeout, b.Memory = timeout, engine.DefaultPolicyMemory
	fs.Func("policy-timeout", "stop the Rego policy after this long", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as 30s, got %q", s)
		}
		b.Timeout = d
		return nil
	})
	fs.Func("policy-memory-mib", "stop the Rego policy when the heap grows by this many MiB", func(s string) error {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 0 {
			return fmt.Errorf("want a positive number of MiB, got %q", s)
		}
		b.Memory = n << 20
		return nil
	})
}
