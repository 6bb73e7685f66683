package anvil_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// TestRealAnvilTiming times, against running Dovecot anvils, a raw read of
// the dump (the floor, as bench/cmd/rawdump), Conn.Dump as the agent takes
// it (new connection with protocol detection, size hint from the last
// dump) and Stream (who -1), interleaved, in rotating order. It runs only
// when KICKAGENT_ANVIL_TIMING lists the anvils, e.g.
//
//	KICKAGENT_ANVIL_TIMING=24=/path/b24/anvil,23=/path/b23/anvil \
//	  flock /tmp/kickagent-bench.lock ./anvil.test -test.run RealAnvilTiming -test.v
//
// KICKAGENT_ANVIL_ROUNDS sets the rounds (default 9).
func TestRealAnvilTiming(t *testing.T) {
	spec := os.Getenv("KICKAGENT_ANVIL_TIMING")
	if spec == "" {
		t.Skip("KICKAGENT_ANVIL_TIMING not set")
	}
	rounds := 9
	if r := os.Getenv("KICKAGENT_ANVIL_ROUNDS"); r != "" {
		n, err := strconv.Atoi(r)
		if err != nil || n < 1 {
			t.Fatalf("KICKAGENT_ANVIL_ROUNDS=%q", r)
		}
		rounds = n
	}
	for _, item := range strings.Split(spec, ",") {
		ver, path, _ := strings.Cut(item, "=")
		proto := anvil.Proto24
		if ver == "23" {
			proto = anvil.Proto23
		}
		timeAnvil(t, proto, path, rounds)
	}
}

func timeAnvil(t *testing.T, proto anvil.Protocol, path string, rounds int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl := &anvil.Client{Path: path}
	hint, sessions := 0, 0
	runs := map[string]func() error{
		"raw": func() error {
			_, err := rawDump(path, proto)
			return err
		},
		"dump": func() error {
			c, err := cl.Open(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDumpSizeHint(hint)
			snap, err := c.Dump(ctx)
			if err == nil {
				hint, sessions = snap.Bytes, len(snap.Sessions)
			}
			return err
		},
		"stream": func() error {
			_, err := cl.Stream(ctx, nil, func(*anvil.Session) error { return nil })
			return err
		},
	}
	order := []string{"raw", "dump", "stream"}
	took := map[string][]time.Duration{}
	for r := -1; r < rounds; r++ { // round -1 warms up and sets the hint
		for i := range order {
			name := order[(i+max(r, 0))%len(order)]
			start := time.Now()
			if err := runs[name](); err != nil {
				t.Fatalf("%s %s: %v", proto.Dovecot(), name, err)
			}
			if r >= 0 {
				took[name] = append(took[name], time.Since(start))
			}
		}
	}
	raw := median(took["raw"])
	t.Logf("Dovecot %s, %d sessions, %d bytes, %d rounds", proto.Dovecot(), sessions, hint, rounds)
	for _, name := range order {
		d := slices.Clone(took[name])
		slices.Sort(d)
		t.Logf("  %-6s median %.4f s = %.2f x raw; min %.4f; all %v", name, median(d).Seconds(),
			float64(median(d))/float64(raw), d[0].Seconds(), secs(d))
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func secs(d []time.Duration) string {
	f := make([]string, len(d))
	for i, x := range d {
		f[i] = strconv.FormatFloat(x.Seconds(), 'f', 3, 64)
	}
	return strings.Join(f, " ")
}
