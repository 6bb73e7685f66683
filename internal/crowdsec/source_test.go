package crowdsec

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	csbouncer "github.com/crowdsecurity/go-cs-bouncer"
	"github.com/prometheus/client_golang/prometheus"
)

// A LAPI that accepts connections and never answers: the pull times out
// and is counted, and Run goes on (the library would wait forever).
func TestPullTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{URL: "http://" + ln.Addr().String() + "/", KeyFile: key, PullTimeout: 200 * time.Millisecond},
		prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	before := counterValue(csbouncer.TotalLAPIError)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for counterValue(csbouncer.TotalLAPIError) == before {
		if time.Now().After(deadline) {
			t.Fatal("a hung pull was not cut off")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned while its context was alive: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if !s.LastPull().IsZero() {
		t.Error("a pull succeeded")
	}
}
