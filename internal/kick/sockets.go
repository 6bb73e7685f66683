package kick

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kickagent/kickagent/internal/procfs"
	"github.com/kickagent/kickagent/internal/sockdiag"
)

// KernelSockets is the SocketCloser of this host: it finds a Dovecot
// process's client connections through /proc (its socket descriptors) and
// the kernel's socket diagnostics (their addresses), and closes one with
// SOCK_DESTROY, which needs CAP_NET_ADMIN and a kernel built with
// CONFIG_INET_DIAG_DESTROY.
type KernelSockets struct {
	// Proc verifies the process as for a signal; its BaseDir's master.pid
	// names the master whose listening sockets tell client connections
	// from the process's other TCP sockets (e.g. to an SQL server).
	Proc ProcSignaler
}

// Conns returns pid's TCP sockets whose local address is a listener of
// its Dovecot's master.
func (k KernelSockets) Conns(ctx context.Context, pid int64, service string) ([]TCPConn, error) {
	if err := netAdmin(k.Proc.root()); err != nil {
		return nil, err
	}
	if err := k.Proc.verify(pid, service); err != nil {
		return nil, err
	}
	root := k.Proc.root()
	same, err := procfs.SameNetNS(root, pid)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	if !same {
		return nil, fmt.Errorf("%w: pid %d runs in another network namespace than kickagent", ErrExactUnavailable, pid)
	}
	mine, err := procfs.SocketInodes(root, pid)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	master, err := k.Proc.masterPID()
	if err != nil {
		return nil, err
	}
	theirs, err := procfs.SocketInodes(root, master)
	if err != nil {
		return nil, fmt.Errorf("master pid %d: %w", master, err)
	}
	c, err := sockdiag.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: socket diagnostics: %w", ErrExactUnavailable, err)
	}
	defer c.Close()
	socks, err := c.TCP(ctx, ^sockdiag.StateMask(0))
	if err != nil {
		return nil, fmt.Errorf("list TCP sockets: %w", err)
	}
	listen := make(map[netip.AddrPort]bool)
	for _, s := range socks {
		if _, ok := theirs[s.Inode]; ok && s.State == sockdiag.Listen {
			listen[s.Local] = true
		}
	}
	var out []TCPConn
	for _, s := range socks {
		if _, ok := mine[s.Inode]; !ok || s.Inode == 0 || s.State == sockdiag.Listen {
			continue
		}
		if listens(listen, s) {
			out = append(out, TCPConn{Local: s.Local, Remote: s.Remote, Handle: s})
		}
	}
	return out, nil
}

// listens reports whether s's local address is a listener's, directly or
// through a wildcard listener of its family on the same port.
func listens(listen map[netip.AddrPort]bool, s sockdiag.Socket) bool {
	wild := netip.IPv4Unspecified()
	if s.Family == syscall.AF_INET6 {
		wild = netip.IPv6Unspecified()
	}
	return listen[s.Local] || listen[netip.AddrPortFrom(wild, s.Local.Port())]
}

// Close destroys c's socket; one already gone counts as closed.
func (k KernelSockets) Close(ctx context.Context, c TCPConn) error {
	s, ok := c.Handle.(sockdiag.Socket)
	if !ok {
		return fmt.Errorf("connection %s -> %s has no socket", c.Remote, c.Local)
	}
	d, err := sockdiag.Open()
	if err != nil {
		return fmt.Errorf("%w: socket diagnostics: %w", ErrExactUnavailable, err)
	}
	defer d.Close()
	err = d.Destroy(ctx, s)
	switch {
	case err == nil, sockdiag.Gone(err):
		return nil
	case sockdiag.Unsupported(err):
		return fmt.Errorf("%w: %w", ErrExactUnavailable, err)
	}
	return err
}

// capNetAdmin is CAP_NET_ADMIN's bit in /proc/PID/status's CapEff.
const capNetAdmin = 12

// netAdmin checks that this process may destroy sockets: without
// CAP_NET_ADMIN the kernel refuses, so say so before looking further.
func netAdmin(root string) error {
	data, err := os.ReadFile(filepath.Join(root, "self", "status"))
	if err != nil {
		return fmt.Errorf("%w: read capabilities: %w", ErrExactUnavailable, err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return fmt.Errorf("%w: CapEff %q: %w", ErrExactUnavailable, v, err)
			}
			if caps&(1<<capNetAdmin) == 0 {
				return fmt.Errorf("%w: kickagent lacks CAP_NET_ADMIN (the systemd unit grants it)", ErrExactUnavailable)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: no CapEff in %s/self/status", ErrExactUnavailable, root)
}
