package anvil_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
	"github.com/kickagent/kickagent/internal/anvil/anviltest"
)

// connect(2) refuses a directory or a regular file at the path exactly as
// a stale socket; the message says what is there instead.
func TestDialNotASocket(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"d", "is a directory, not a socket"},
		{"f", "is not a socket but a regular file"},
	} {
		path := filepath.Join(dir, tc.name)
		_, err := (&anvil.Client{Path: path}).Dump(testCtx(t, 10*time.Second))
		if err == nil || !strings.Contains(err.Error(), path+" "+tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "stale") {
			t.Errorf("%s: %v still suggests a stale socket", tc.name, err)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s: %v does not wrap the errno", tc.name, err)
		}
	}
}

var within = regexp.MustCompile(`within ([0-9.]+m?s)`)

// An anvil that accepted but never answers is a timeout after connecting,
// with the step it hung in, not a failed connect.
func TestSilentAnvil(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proto anvil.Protocol
		opts  []anviltest.Option
		want  string
	}{
		{"stopped", anvil.Proto23, []anviltest.Option{anviltest.WithSilent()},
			"connected, but anvil sent no dump within 300ms (no greeting, so Dovecot 2.3 assumed; handshake done, CONNECT-DUMP sent)"},
		{"stall-dump-2.4", anvil.Proto24, []anviltest.Option{anviltest.WithStallDump()},
			"connected, but anvil sent no dump within 300ms (handshake done, CONNECT-DUMP sent)"},
		{"no-greeting-2.4", anvil.Proto24, []anviltest.Option{anviltest.WithNoGreeting(), anviltest.WithHint24()},
			"connected, but anvil sent no greeting within 300ms (handshake: waiting for the 2.4 greeting)"},
	} {
		// Dump is the agent's path, Stream who's: both must say the same.
		for _, op := range []string{"Dump", "Stream"} {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				s := anviltest.New(t, tc.proto, tc.opts...)
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				cl := &anvil.Client{Path: s.Path}
				var err error
				if op == "Dump" {
					_, err = cl.Dump(ctx)
				} else {
					_, err = cl.Stream(ctx, nil, func(*anvil.Session) error { return nil })
				}
				// The wait is measured from the connect: it may run over
				// the timeout, or under it by what connecting took (9 ms
				// on a loaded CI machine).
				got := ""
				if err != nil {
					got = err.Error()
					if m := within.FindStringSubmatch(got); m != nil {
						if d, _ := time.ParseDuration(m[1]); d >= 200*time.Millisecond && d < 2*time.Second {
							got = strings.Replace(got, m[0], "within 300ms", 1)
						}
					}
				}
				if !strings.Contains(got, tc.want) {
					t.Errorf("got %v\nwant %q", err, tc.want)
				}
				if strings.Contains(got, "connect to") {
					t.Errorf("%v reports a failed connect", err)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%v does not wrap context.DeadlineExceeded", err)
				}
			})
		}
	}
}
