package ipc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kickagent/kickagent/internal/anvil"
)

// Proxy is one proxied connection held by a 2.3 login process.
type Proxy struct {
	User     string
	Service  string // imap, pop3, submission
	SrcIP    netip.Addr
	DestIP   netip.Addr
	DestPort int
	// Alt maps alt-username field names (user_*) to values.
	Alt map[string]string
}

// Session returns p in anvil's normalized form (service "<proto>-login",
// as 2.4 anvil shows proxies), so the same filters apply.
func (p *Proxy) Session() anvil.Session {
	s := anvil.Session{Service: p.Service + "-login", User: p.User, IP: p.SrcIP, DestIP: p.DestIP, Connections: 1}
	if len(p.Alt) > 0 {
		names := make([]string, 0, len(p.Alt))
		vals := make([]string, 0, len(p.Alt))
		for k, v := range p.Alt {
			names = append(names, k)
			vals = append(vals, v)
		}
		s.SetAlt(names, vals)
	}
	return s
}

// Client talks to one ipc socket, one command per connection.
type Client struct {
	Path string
}

// List returns every proxied connection of every login process.
func (c *Client) List(ctx context.Context) ([]Proxy, error) {
	lines, err := c.command(ctx, "LIST-FULL")
	if err != nil {
		return nil, err
	}
	return parseList(lines)
}

// Kick closes every proxied connection whose virtual user is exactly user
// (case-sensitive, in every login process). The count Dovecot returns is
// only the last process's, so callers confirm with List.
func (c *Client) Kick(ctx context.Context, user string) error {
	_, err := c.command(ctx, "KICK", user)
	return err
}

// command sends "proxy\t*\t<cmd>…" and collects the ':' reply lines up to
// the final '+' (ok) or '-' (error) line.
func (c *Client) command(ctx context.Context, fields ...string) ([]string, error) {
	line, err := anvil.FormatCommand(append([]string{"proxy", "*"}, fields...)...)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		return nil, fmt.Errorf("ipc socket %s (Dovecot 2.3 proxies): %w", c.Path, err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := nc.Write([]byte(line)); err != nil {
		return nil, fmt.Errorf("ipc %s: %s: %w", c.Path, fields[0], err)
	}
	r := bufio.NewReader(nc)
	var out []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("ipc %s: %s: reply ended early (ipc errors are in Dovecot's log): %w", c.Path, fields[0], err)
		}
		l = strings.TrimSuffix(l, "\n")
		switch {
		case strings.HasPrefix(l, ":"):
			out = append(out, l[1:])
		case strings.HasPrefix(l, "+"):
			return out, nil
		case strings.HasPrefix(l, "-"):
			return nil, fmt.Errorf("ipc %s: %s: %s", c.Path, fields[0], l[1:])
		default:
			return nil, fmt.Errorf("ipc %s: %s: unexpected reply %q", c.Path, fields[0], l)
		}
	}
}

// ErrFormat marks a LIST-FULL reply that cannot be parsed.
var ErrFormat = errors.New("ipc LIST-FULL reply malformed")

// parseList parses LIST-FULL replies. Every login process sends its own
// header ("username\t<alt fields…>\tservice\tsrc-ip\tdest-ip\tdest-port")
// followed by its rows, and processes differ in their alt fields. ipc
// forwards the processes' lines as they come, so they may interleave: a row
// is read with the most recent header of the same width.
func parseList(lines []string) ([]Proxy, error) {
	var headers [][]string
	var out []Proxy
	for i, l := range lines {
		f := strings.Split(l, "\t")
		for j := range f {
			f[j] = anvil.Unescape(f[j])
		}
		if len(f) < 5 {
			return nil, fmt.Errorf("%w: line %d %q: want at least 5 fields", ErrFormat, i+1, l)
		}
		if f[len(f)-1] == "dest-port" && f[0] == "username" {
			headers = append(headers, f)
			continue
		}
		var header []string
		for h := len(headers) - 1; h >= 0; h-- {
			if len(headers[h]) == len(f) {
				header = headers[h]
				break
			}
		}
		if header == nil {
			return nil, fmt.Errorf("%w: line %d %q: no header of %d fields before it", ErrFormat, i+1, l, len(f))
		}
		n := len(f)
		p := Proxy{User: f[0], Service: f[n-4]}
		var err error
		if p.SrcIP, err = anvil.ParseAddr(f[n-3]); err != nil {
			return nil, fmt.Errorf("%w: line %d: bad src-ip %q", ErrFormat, i+1, f[n-3])
		}
		if p.DestIP, err = anvil.ParseAddr(f[n-2]); err != nil {
			return nil, fmt.Errorf("%w: line %d: bad dest-ip %q", ErrFormat, i+1, f[n-2])
		}
		if p.DestPort, err = strconv.Atoi(f[n-1]); err != nil {
			return nil, fmt.Errorf("%w: line %d: bad dest-port %q", ErrFormat, i+1, f[n-1])
		}
		for j := 1; j < n-4; j++ {
			if f[j] != "" {
				if p.Alt == nil {
					p.Alt = make(map[string]string)
				}
				p.Alt[header[j]] = f[j]
			}
		}
		out = append(out, p)
	}
	return out, nil
}
