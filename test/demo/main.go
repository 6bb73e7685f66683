// Command demo holds real IMAP/POP3 sessions open on the throwaway Dovecot
// instances of test/dovecot until it is stopped or -for passes, so that
// kickagent has live sessions to list and kick. test/demo.sh runs it.
//
// Usage: go run ./test/demo [-for 10m] INSTANCE:USER@SRC_IP/PROTO ...
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

func main() {
	hold := flag.Duration("for", 10*time.Minute, "how long to hold the sessions")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var conns []*testrig.Conn
	for _, spec := range flag.Args() {
		c, err := open(ctx, spec)
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo: %s: %v\n", spec, err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	fmt.Printf("holding %d sessions\n", len(conns))
	select {
	case <-ctx.Done():
	case <-time.After(*hold):
	}
	for _, c := range conns {
		c.Close()
	}
}

// open parses INSTANCE:USER@SRC/PROTO and logs the session in.
func open(ctx context.Context, spec string) (*testrig.Conn, error) {
	name, rest, ok1 := strings.Cut(spec, ":")
	at := strings.LastIndex(rest, "@")
	if !ok1 || at < 0 {
		return nil, fmt.Errorf("want INSTANCE:USER@SRC_IP/PROTO")
	}
	user, srcProto := rest[:at], rest[at+1:]
	src, proto, _ := strings.Cut(srcProto, "/")
	addr, err := netip.ParseAddr(src)
	if err != nil {
		return nil, err
	}
	inst, err := testrig.Load(name)
	if err != nil {
		return nil, err
	}
	if proto == "pop3" {
		return testrig.DialPOP3(ctx, addr, inst.POP3Port, user, testrig.Password)
	}
	return testrig.DialIMAP(ctx, addr, inst.IMAPPort, user, testrig.Password)
}
