package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Bounds of the agent's settings. CONFIGURATION.md ("Bounds") gives the
// reasons; the config file and the flags are checked against the same.
const (
	// MinInterval: a cycle must finish within 0.9 × the interval, and it
	// holds the wait for a 2.4 greeting on a server whose base_dir gives no
	// hint (150 ms), the dump (0.1–0.3 s for 100k sessions), the
	// evaluation and the kicks; anvil, one process serving every login,
	// also formats each dump.
	MinInterval = time.Second
	// MaxInterval: expiry, first-seen ages, rates and /healthz (3 ×
	// interval) all work in cycles; beyond an hour use a timer and --once.
	MaxInterval = time.Hour
	// MinRepeatThreshold: a threshold of 1 would call every kick a loop.
	MinRepeatThreshold = 2
	// MinDumpMaxLineBytes: anvil's own lines reach about 1 KiB (its input
	// buffer) plus escapes; a lower bound would skip real sessions.
	MinDumpMaxLineBytes = 4 << 10
	// MaxDumpMaxLineBytes: a line up to the bound is held whole.
	MaxDumpMaxLineBytes = 16 << 20
	// MinDumpMaxBytes: about 20,000 sessions; below, a small server's dump
	// would fail.
	MinDumpMaxBytes = 1 << 20
)

// ParseDuration is time.ParseDuration with an error that says what is
// wanted.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 5s, 1m30s)", s)
	}
	return d, nil
}

// CheckInterval refuses an interval outside [MinInterval, MaxInterval].
func CheckInterval(d time.Duration) error {
	switch {
	case d < MinInterval:
		return fmt.Errorf("%v is too short: at least %v (a cycle must fit in 0.9 × the interval; see CONFIGURATION.md)", d, MinInterval)
	case d > MaxInterval:
		return fmt.Errorf("%v is too long: at most %v (for rarer runs use a timer and kickagent run --once)", d, MaxInterval)
	}
	return nil
}

// CheckMaxKicksPerCycle refuses a cap below 1: 0 would kick nothing while
// the agent looks active (dry_run says that openly), and a negative cap is
// meaningless.
func CheckMaxKicksPerCycle(n int) error {
	if n < 1 {
		return fmt.Errorf("%d: want at least 1 (to kick nothing, use dry_run; leave it out for the default 100)", n)
	}
	return nil
}

// CheckBreakerFraction wants a fraction in (0, 1]; 1 disables the breaker
// (no cycle kicks more than all sessions).
func CheckBreakerFraction(f float64) error {
	if math.IsNaN(f) || f <= 0 || f > 1 {
		return fmt.Errorf("%v: want a fraction of the sessions, more than 0 and at most 1 (1 disables the breaker)", f)
	}
	return nil
}

// CheckBreakerMinSessions wants at least 1 (1: the breaker judges every
// snapshot; an empty one has nothing to kick).
func CheckBreakerMinSessions(n int) error {
	if n < 1 {
		return fmt.Errorf("%d: want at least 1 (1: judge every snapshot; leave it out for the default 20)", n)
	}
	return nil
}

// CheckRepeatThreshold wants at least MinRepeatThreshold.
func CheckRepeatThreshold(n int) error {
	if n < MinRepeatThreshold {
		return fmt.Errorf("%d: want at least %d kicks within an hour (1 would report every kick as a loop)", n, MinRepeatThreshold)
	}
	return nil
}

// CheckDumpMaxLineBytes wants a line bound in [MinDumpMaxLineBytes,
// MaxDumpMaxLineBytes].
func CheckDumpMaxLineBytes(n int) error {
	if n < MinDumpMaxLineBytes || n > MaxDumpMaxLineBytes {
		return fmt.Errorf("%d: want %d to %d bytes (anvil's own lines are about 1 KiB; leave it out for the default %d)",
			n, MinDumpMaxLineBytes, MaxDumpMaxLineBytes, anvil.DefaultMaxLineBytes)
	}
	return nil
}

// CheckDumpMaxBytes wants a dump bound of at least MinDumpMaxBytes.
func CheckDumpMaxBytes(n int) error {
	if n < MinDumpMaxBytes {
		return fmt.Errorf("%d: want at least %d bytes (a dump is about 50 bytes per session; leave it out for the default %d)",
			n, MinDumpMaxBytes, anvil.DefaultMaxDumpBytes)
	}
	return nil
}

// CheckDumpMaxSessions wants at least 1.
func CheckDumpMaxSessions(n int) error {
	if n < 1 {
		return fmt.Errorf("%d: want at least 1 (leave it out for the default %d)", n, anvil.DefaultMaxSessions)
	}
	return nil
}

// CheckMetricsListen wants "off" or HOST:PORT (HOST may be empty: all
// addresses).
func CheckMetricsListen(s string) error {
	if s == "off" {
		return nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%q: want HOST:PORT or off (%s)", s, ae.Err)
		}
		return fmt.Errorf("%q: want HOST:PORT or off", s)
	}
	return nil
}

// CheckTimeout wants a positive timeout.
func CheckTimeout(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%v: want a positive duration", d)
	}
	return nil
}

// DefaultStateDir is systemd's StateDirectory=kickagent.
const DefaultStateDir = "/var/lib/kickagent"

// CheckStateDir wants "off" or an absolute directory (a config file's
// relative path is made absolute first): the agent may run from any
// working directory.
func CheckStateDir(s string) error {
	if s != "off" && !filepath.IsAbs(s) {
		return fmt.Errorf("%q: want an absolute directory or off", s)
	}
	return nil
}

// Bounds of the auth policy listener's counters.
const (
	MaxFailureWindow = 24 * time.Hour
	MinTableSize     = 1000
	MaxTableSize     = 10000000
)

// CheckFailureWindow bounds auth_policy.failure_window.
func CheckFailureWindow(d time.Duration) error {
	if d <= 0 || d > MaxFailureWindow {
		return fmt.Errorf("%s: want more than 0 and at most %s", d, MaxFailureWindow)
	}
	return nil
}

// CheckTableSize bounds auth_policy.table_size: below MinTableSize a
// brute force from a few hundred addresses would evict its own counts.
func CheckTableSize(n int) error {
	if n < MinTableSize || n > MaxTableSize {
		return fmt.Errorf("%d: want %d to %d", n, MinTableSize, MaxTableSize)
	}
	return nil
}
