package sockdiag

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Conn is one NETLINK_SOCK_DIAG socket. It is safe for concurrent use;
// requests are serialised.
type Conn struct {
	mu     sync.Mutex
	nl     *netlink.Conn // nil after an I/O failure left it out of step: redialled on next use
	closed bool
}

// Open opens a NETLINK_SOCK_DIAG socket in the caller's network namespace.
func Open() (*Conn, error) {
	nl, err := dial()
	if err != nil {
		return nil, err
	}
	return &Conn{nl: nl}, nil
}

func dial() (*netlink.Conn, error) {
	nl, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, nil)
	if err != nil {
		return nil, fmt.Errorf("sockdiag: open netlink: %w", err)
	}
	return nl, nil
}

// Close closes the socket. It waits for a request in flight: cancel that
// request's context to end it sooner.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.nl == nil {
		return nil
	}
	err := c.nl.Close()
	c.nl = nil
	return err
}

// TCP dumps the TCP sockets of both families (AF_INET, then AF_INET6) in
// the given states. An error means no list: a partial one is never returned.
func (c *Conn) TCP(ctx context.Context, states StateMask) ([]Socket, error) {
	var out []Socket
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		msgs, err := c.execute(ctx, netlink.Message{
			Header: netlink.Header{Type: sockDiagByFamily, Flags: netlink.Request | netlink.Dump},
			Data:   encodeDump(fam, states),
		})
		if err != nil {
			return nil, fmt.Errorf("sockdiag: dump family %d: %w", fam, err)
		}
		if out == nil {
			out = make([]Socket, 0, len(msgs))
		}
		for _, m := range msgs {
			s, err := decodeMsg(m.Data)
			if err != nil {
				return nil, fmt.Errorf("sockdiag: dump family %d: %w", fam, err)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// Destroy closes exactly s (family, 4-tuple, IfIndex and Cookie as dumped)
// with SOCK_DESTROY: the kernel aborts the connection, the peer gets a RST
// (its read: "connection reset by peer") and the owning process's next
// read or write fails (ECONNABORTED, then EPIPE).
// Errors wrap the kernel's errno (test them with Unsupported and Gone, or
// errors.Is): on Linux 6.18, ENOENT both when no socket has that 4-tuple
// any more and when one has but its cookie differs (a reused tuple); EPERM
// without CAP_NET_ADMIN; EOPNOTSUPP without CONFIG_INET_DIAG_DESTROY. The
// kernel looks the socket up before it checks privileges, so without
// CAP_NET_ADMIN a socket that is gone still gives ENOENT.
func (c *Conn) Destroy(ctx context.Context, s Socket) error {
	req, err := encodeDestroy(s)
	if err != nil {
		return err
	}
	_, err = c.execute(ctx, netlink.Message{
		Header: netlink.Header{Type: sockDestroy, Flags: netlink.Request | netlink.Acknowledge},
		Data:   req,
	})
	if err != nil {
		return fmt.Errorf("sockdiag: destroy %v-%v: %w", s.Local, s.Remote, err)
	}
	return nil
}

// Unsupported reports whether err says the kernel or our privileges refuse
// socket destruction, so the caller should fall back to another way of
// kicking: EPERM or EACCES (no CAP_NET_ADMIN in the socket's namespace),
// EOPNOTSUPP (no CONFIG_INET_DIAG_DESTROY), EPROTONOSUPPORT or
// EAFNOSUPPORT (no sock_diag at all).
func Unsupported(err error) bool {
	for _, e := range []syscall.Errno{syscall.EPERM, syscall.EACCES, syscall.EOPNOTSUPP, syscall.EPROTONOSUPPORT, syscall.EAFNOSUPPORT} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Gone reports whether err says the socket Destroy named no longer exists:
// ENOENT (the 4-tuple is free, or another socket with another cookie holds
// it now) or ESTALE (sock_diag's own code for a cookie mismatch, which
// inet_diag turns into ENOENT on Linux 6.18). Either way nothing of the
// dumped socket is left to close.
func Gone(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESTALE)
}

// execute sends m and reads its replies under ctx: its deadline becomes
// the socket's, and its cancellation moves the deadline to the past,
// which unblocks a pending read.
func (c *Conn) execute(ctx context.Context, m netlink.Message) ([]netlink.Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.closed {
		return nil, net.ErrClosed
	}
	if c.nl == nil {
		nl, err := dial()
		if err != nil {
			return nil, err
		}
		c.nl = nl
	}
	nl := c.nl
	deadline, _ := ctx.Deadline() // zero: none
	if err := nl.SetDeadline(deadline); err != nil {
		return nil, err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = nl.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	msgs, err := nl.Execute(m)
	if !stop() {
		<-fired // its SetDeadline must not land on a later request
	}
	if err == nil {
		return msgs, nil
	}
	if !kernelErrno(err) {
		// A timeout or a read error can leave replies of this request
		// in the socket, which the next request would read as its own:
		// start the next one on a fresh socket.
		_ = nl.Close()
		c.nl = nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("%w: %w", ctxErr, err)
	}
	return nil, err
}

// kernelErrno reports whether err is an error the kernel answered in a
// netlink message (the reply ended; the socket is in step), not a failed
// system call or a deadline.
func kernelErrno(err error) bool {
	var oe *netlink.OpError
	if !errors.As(err, &oe) {
		return false
	}
	_, ok := oe.Err.(syscall.Errno)
	return ok
}
