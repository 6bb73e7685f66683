package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/kickagent/kickagent/internal/testrig"
)

func loginsCmd(args []string) (*result, error) {
	fs := flag.NewFlagSet("logins", flag.ContinueOnError)
	inst := fs.String("inst", "p23", "rig instance (test/dovecot/instance.sh), running")
	rate := fs.Float64("rate", 20, "logins per second")
	n := fs.Int("n", 200, "logins")
	src := fs.Int("src", 61, "second octet of the client addresses 127.SRC.x.y (one per login)")
	timeout := fs.Duration("timeout", 30*time.Second, "per login")
	asJSON := fs.Bool("json", false, "JSON output")
	raw := fs.String("raw", "", "also write every login's latency (to LOGIN OK) to this file (ms, one a line)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *rate <= 0 || *n < 1 || *n > 65000 || *src < 1 || *src > 254 {
		return nil, errors.New("logins: -rate positive, -n 1…65000, -src 1…254")
	}
	in, err := testrig.Load(*inst)
	if err != nil {
		return nil, err
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(in.IMAPPort))
	t := newTally(*n)
	var mu sync.Mutex
	late := schedule(*rate, *n, func(i int, at time.Time) {
		// Its own address per login: anvil limits connections per user and IP, and slows
		// an address down after failures.
		from := netip.AddrFrom4([4]byte{127, byte(*src), byte(1 + i/250), byte(1 + i%250)})
		user := testrig.Users[i%len(testrig.Users)]
		ctx, cancel := context.WithDeadline(context.Background(), at.Add(*timeout))
		defer cancel()
		loggedIn, err := imapLogin(ctx, from, dst, user, testrig.Password)
		done := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if loggedIn.IsZero() {
			loggedIn = done // failed before LOGIN's answer: counted at the time it failed
		}
		t.lat = append(t.lat, loggedIn.Sub(at))
		t.total = append(t.total, done.Sub(at))
		if err != nil {
			t.fail(fmt.Errorf("%s from %s: %w", user, from, err))
			return
		}
		t.answers["ok"]++
	})
	total, lat := summarise(t.total), summarise(t.lat)
	if err := writeRaw(*raw, t.lat); err != nil {
		return nil, err
	}
	return &result{asJSON: *asJSON, What: fmt.Sprintf("IMAP logins to %s (%s)", *inst, in.Version), Rate: *rate,
		Duration: float64(*n) / *rate, Sent: *n, Latency: lat, Total: &total, Answers: t.answers,
		Errors: t.errors, ErrorSamples: t.samples, LateMax: ms(late)}, nil
}

// imapLogin connects from src, reads the greeting, logs in and out. It returns when LOGIN's
// tagged OK arrived (zero if it did not).
func imapLogin(ctx context.Context, src netip.Addr, dst netip.AddrPort, user, pass string) (time.Time, error) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	c, err := d.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		return time.Time{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	r := bufio.NewReader(c)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		return time.Time{}, fmt.Errorf("greeting %q: %v", l, err)
	}
	u, err := testrig.IMAPQuote(user)
	if err != nil {
		return time.Time{}, err
	}
	p, err := testrig.IMAPQuote(pass)
	if err != nil {
		return time.Time{}, err
	}
	l, err := command(c, r, "a", "LOGIN "+u+" "+p)
	if err != nil {
		return time.Time{}, err
	}
	if !strings.HasPrefix(l, "a OK") {
		return time.Time{}, fmt.Errorf("LOGIN: %s", strings.TrimSpace(l))
	}
	loggedIn := time.Now()
	if l, err = command(c, r, "b", "LOGOUT"); err != nil {
		return loggedIn, err
	}
	if !strings.HasPrefix(l, "b OK") {
		return loggedIn, fmt.Errorf("LOGOUT: %s", strings.TrimSpace(l))
	}
	return loggedIn, nil
}

// command sends a tagged command and returns its tagged answer, skipping untagged lines.
func command(c net.Conn, r *bufio.Reader, tag, cmd string) (string, error) {
	if _, err := fmt.Fprintf(c, "%s %s\r\n", tag, cmd); err != nil {
		return "", err
	}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return l, fmt.Errorf("%s: %w", strings.Fields(cmd)[0], err)
		}
		if strings.HasPrefix(l, tag+" ") {
			return l, nil
		}
	}
}
