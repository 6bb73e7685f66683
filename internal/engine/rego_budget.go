package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"sync"
	"time"
)

// Isolation of the policy from the YAML rules.
//
// A policy that loaded can still fail at run time: a builtin error that
// only some session's data triggers, a result of the wrong shape, a
// conflict, an evaluation that runs away in time or memory on one
// snapshot. Ruleset.Evaluate then returns the YAML rules' decisions with a
// *PolicyError: the caller enforces them and reports the policy as
// failing. One engine's failure never disables the other.

// DefaultPolicyMemory is the heap growth one policy evaluation may cause
// when Budget.Memory is 0.
const DefaultPolicyMemory = 1 << 30

// Budget bounds one policy evaluation.
type Budget struct {
	// Timeout: 0 means half the time left before the context's deadline
	// (none without a deadline).
	Timeout time.Duration
	// Memory is the growth of the Go heap (bytes) allowed while the
	// policy is evaluated; 0 means DefaultPolicyMemory. The heap is
	// sampled every few milliseconds: a bound, not an exact limit.
	Memory uint64
}

// Sentinels of a PolicyError that exceeded its budget.
var (
	ErrPolicyTimeout = errors.New("policy evaluation exceeded its time budget")
	ErrPolicyMemory  = errors.New("policy evaluation exceeded its memory budget")
)

// Reasons of a PolicyError, bounded for a metric label.
const (
	PolicyFailError   = "error"
	PolicyFailTimeout = "timeout"
	PolicyFailMemory  = "memory"
)

// PolicyError is a failed policy evaluation. The decisions returned with
// it (the YAML rules') are complete and valid; none of the policy's are
// among them.
type PolicyError struct {
	Reason string // PolicyFail*
	Err    error
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("policy not evaluated (%s): %v", e.Reason, e.Err)
}

func (e *PolicyError) Unwrap() error { return e.Err }

func policyError(err error) *PolicyError {
	reason := PolicyFailError
	switch {
	case errors.Is(err, ErrPolicyMemory):
		reason = PolicyFailMemory
	case errors.Is(err, ErrPolicyTimeout), errors.Is(err, context.DeadlineExceeded):
		reason = PolicyFailTimeout
	}
	return &PolicyError{Reason: reason, Err: err}
}

// Guard returns a context that is cancelled when the budget is exceeded,
// and a stop function that ends the watch and returns ErrPolicyTimeout or
// ErrPolicyMemory if that is why the context ended; stop may be called
// more than once. OPA checks the context between evaluation steps, so a
// runaway policy stops within a step (a single builtin call is not
// interrupted).
func (b Budget) Guard(ctx context.Context) (context.Context, func() error) {
	timeout := b.Timeout
	if dl, ok := ctx.Deadline(); ok && timeout <= 0 {
		timeout = max(time.Until(dl)/2, time.Millisecond)
	}
	mem := b.Memory
	if mem == 0 {
		mem = DefaultPolicyMemory
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stopTimer := func() bool { return false }
	if timeout > 0 {
		stopTimer = time.AfterFunc(timeout, func() {
			cancel(fmt.Errorf("%w (%s)", ErrPolicyTimeout, timeout))
		}).Stop
	}
	done := make(chan struct{})
	go watchHeap(done, mem, cancel)
	return ctx, sync.OnceValue(func() error {
		stopTimer()
		close(done)
		cause := context.Cause(ctx)
		cancel(nil)
		if errors.Is(cause, ErrPolicyTimeout) || errors.Is(cause, ErrPolicyMemory) {
			return cause
		}
		return nil
	})
}

const heapMetric = "/memory/classes/heap/objects:bytes"

// heapBytes is the memory of the heap's objects, live and not yet swept.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// watchHeap cancels when the heap grows by more than limit bytes over
// its size at the start, until done is closed.
func watchHeap(done <-chan struct{}, limit uint64, cancel context.CancelCauseFunc) {
	base := heapBytes()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if h := heapBytes(); h > base+limit {
				cancel(fmt.Errorf("%w (heap grew by %d MiB, limit %d MiB)", ErrPolicyMemory, (h-base)>>20, limit>>20))
				return
			}
		}
	}
}
