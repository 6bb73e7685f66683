// Command probe logs one real IMAP session in to a rig instance, holds it, and reports whether
// the server closed it within a timeout: bench/soak.sh's check that a running agent still
// enforces its rules. The address is a loopback source of the caller's choice, so that the
// audit record of the kick (its ip) names this probe and no other.
//
//	probe -inst b24 -src 127.9.0.1 -user dave -timeout 5s
//
// It prints one line, key=value:
//
//	src=127.9.0.1 user=dave login_at=1765015200.123 closed=1 after_s=1.234 bye="..." err=""
//
// login_at is when the login completed (Unix seconds), after_s the time from then until the
// server closed the connection (EOF, with or without a * BYE first). The exit status is 0 when
// the server closed it, 3 when it was still open at the timeout (then the probe closes it
// itself), 1 when the login failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

const (
	exitClosed  = 0
	exitFailed  = 1
	exitStillOn = 3
)

func main() {
	name := flag.String("inst", "b24", "rig instance (test/dovecot/instance.sh)")
	src := flag.String("src", "127.9.0.1", "loopback source address")
	user := flag.String("user", "dave", "user to log in (password \"pass\")")
	timeout := flag.Duration("timeout", 5*time.Second, "how long to wait for the server to close the session after login")
	flag.Parse()
	os.Exit(run(*name, *src, *user, *timeout))
}

func run(name, srcText, user string, timeout time.Duration) int {
	line := func(loginAt time.Time, closed bool, after time.Duration, bye string, err error) {
		at, es := 0.0, ""
		if !loginAt.IsZero() {
			at = float64(loginAt.UnixMicro()) / 1e6
		}
		if err != nil {
			es = err.Error()
		}
		c := 0
		if closed {
			c = 1
		}
		fmt.Printf("src=%s user=%q login_at=%.3f closed=%d after_s=%.3f bye=%q err=%q\n",
			srcText, user, at, c, after.Seconds(), bye, es)
	}
	src, err := netip.ParseAddr(srcText)
	if err != nil {
		line(time.Time{}, false, 0, "", err)
		return exitFailed
	}
	in, err := testrig.Load(name)
	if err != nil {
		line(time.Time{}, false, 0, "", err)
		return exitFailed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	c, err := testrig.DialIMAP(ctx, src, in.IMAPPort, user, testrig.Password)
	cancel()
	if err != nil {
		line(time.Time{}, false, 0, "", err)
		return exitFailed
	}
	defer c.Close()
	loginAt := time.Now()
	if !c.Closed(timeout) {
		line(loginAt, false, time.Since(loginAt), c.Bye(), nil)
		return exitStillOn
	}
	line(loginAt, true, time.Since(loginAt), c.Bye(), nil)
	return exitClosed
}
