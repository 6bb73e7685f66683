package sockdiag

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kickagent/kickagent/internal/procfs"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// mustNetAdmin fails, never skips: CI runs as root, and a skipped kernel
// test would hide a regression.
func mustNetAdmin(tb testing.TB) {
	tb.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				tb.Fatal(err)
			}
			if caps&(1<<unix.CAP_NET_ADMIN) == 0 {
				tb.Fatal("these tests destroy sockets and need CAP_NET_ADMIN: run them as root")
			}
			return
		}
	}
	tb.Fatal("no CapEff in /proc/self/status")
}

// echoServer listens on addr and echoes every accepted connection;
// accepted delivers the server side of each.
type echoServer struct {
	ln       net.Listener
	accepted chan net.Conn
	wg       sync.WaitGroup
}

func mustEcho(tb testing.TB, network, addr string) *echoServer {
	tb.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		tb.Fatalf("listen %s %s: %v", network, addr, err)
	}
	s := &echoServer{ln: ln, accepted: make(chan net.Conn, 16)}
	tb.Cleanup(func() { ln.Close(); s.wg.Wait() })
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tb.Cleanup(func() { c.Close() })
			s.accepted <- c
			s.wg.Go(func() { _, _ = io.Copy(c, c) })
		}
	})
	return s
}

// pair dials s and returns the client and the server side.
func (s *echoServer) pair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	return s.pairVia(tb, s.ln.Addr().String())
}

// pairVia dials s at addr (for a wildcard listener).
func (s *echoServer) pairVia(tb testing.TB, addr string) (client, server net.Conn) {
	tb.Helper()
	client, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	select {
	case server = <-s.accepted:
	case <-time.After(5 * time.Second):
		tb.Fatal("no accept")
	}
	return client, server
}

func addrPort(a net.Addr) netip.AddrPort {
	return unmap(a.(*net.TCPAddr).AddrPort())
}

// unmap: Go shows a dual-stack socket's IPv4 peer as IPv4, the kernel's
// dump as v4-mapped IPv6.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// find returns the dumped socket that is c's server side: one of this
// process's sockets by inode, with c's addresses.
func find(tb testing.TB, conn *Conn, c net.Conn, states StateMask) (Socket, bool) {
	tb.Helper()
	socks, err := conn.TCP(context.Background(), states)
	if err != nil {
		tb.Fatal(err)
	}
	mine, err := procfs.SocketInodes("", int64(os.Getpid()))
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range socks {
		if _, ok := mine[s.Inode]; ok && unmap(s.Local) == addrPort(c.LocalAddr()) && unmap(s.Remote) == addrPort(c.RemoteAddr()) {
			return s, true
		}
	}
	return Socket{}, false
}

func echoes(c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	return nil
}

func TestDestroy(t *testing.T) {
	mustNetAdmin(t)
	conn, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		name, network, addr, dial string
		family                    uint8
		mapped                    bool
	}{
		{"ipv4", "tcp4", "127.0.0.1:0", "127.0.0.1", unix.AF_INET, false},
		{"ipv6", "tcp6", "[::1]:0", "::1", unix.AF_INET6, false},
		// Dovecot's listen = *, :: on a dual-stack socket: an IPv4 client
		// is an AF_INET6 socket with v4-mapped addresses.
		{"dual-stack", "tcp", "[::]:0", "127.0.0.1", unix.AF_INET6, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := mustEcho(t, tc.network, tc.addr)
			dial := net.JoinHostPort(tc.dial, strconv.Itoa(int(addrPort(srv.ln.Addr()).Port())))
			victim, victimSrv := srv.pairVia(t, dial)
			other, otherSrv := srv.pairVia(t, dial)
			s, ok := find(t, conn, victimSrv, States(Established))
			if !ok {
				t.Fatalf("server side of %v not in the dump", victimSrv.RemoteAddr())
			}
			if s.Family != tc.family || s.Local.Addr().Is4In6() != tc.mapped || s.Remote.Addr().Is4In6() != tc.mapped ||
				s.State != Established || s.Cookie == 0 || s.UID != uint32(os.Getuid()) {
				t.Errorf("dumped %+v", s)
			}
			o, ok := find(t, conn, otherSrv, States(Established))
			if !ok {
				t.Fatal("the other connection is not in the dump")
			}
			if o.Cookie == s.Cookie || o.Inode == s.Inode {
				t.Errorf("two sockets share cookie or inode: %+v, %+v", s, o)
			}

			// A cookie that is not the socket's (a reused 4-tuple): the
			// kernel refuses with ENOENT (Linux 6.18), as if it were gone.
			wrong := o
			wrong.Cookie ^= 1
			err := conn.Destroy(context.Background(), wrong)
			if !errors.Is(err, syscall.ENOENT) || !Gone(err) || Unsupported(err) {
				t.Errorf("destroy with a wrong cookie: %v, want ENOENT", err)
			}
			if err := echoes(other); err != nil {
				t.Fatalf("the wrong-cookie destroy hit the connection: %v", err)
			}

			if err := conn.Destroy(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			if err := victim.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if n, err := victim.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("client of the destroyed socket read %d bytes, %v; want EOF or reset", n, err)
			}
			if err := echoes(other); err != nil {
				t.Errorf("the other connection: %v", err)
			}
			if _, ok := find(t, conn, victimSrv, States(Established)); ok {
				t.Error("destroyed socket still established")
			}

			// Again: the 4-tuple is free now.
			err = conn.Destroy(context.Background(), s)
			if !errors.Is(err, syscall.ENOENT) || !Gone(err) || Unsupported(err) {
				t.Errorf("second destroy: %v, want ENOENT", err)
			}
		})
	}
}

func TestListen(t *testing.T) {
	conn, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		srv := mustEcho(t, tc.network, tc.addr)
		socks, err := conn.TCP(context.Background(), States(Listen))
		if err != nil {
			t.Fatal(err)
		}
		want := addrPort(srv.ln.Addr())
		found := false
		for _, s := range socks {
			if s.State != Listen {
				t.Errorf("asked for LISTEN, got %+v", s)
			}
			found = found || s.Local == want
		}
		if !found {
			t.Errorf("%s listener %v not among %d LISTEN sockets", tc.network, want, len(socks))
		}
	}
}

// A context that ends mid-request leaves the Conn usable: the next
// request gets its own replies, not the cut-off one's.
func TestContext(t *testing.T) {
	conn, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv := mustEcho(t, "tcp4", "127.0.0.1:0")
	for range 20 { // a dump of more than one datagram, so it can be cut mid-way
		srv.pair(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := conn.TCP(ctx, States(Established)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	for i := range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i)*5*time.Microsecond)
		_, _ = conn.TCP(ctx, States(Established))
		cancel()
		socks, err := conn.TCP(context.Background(), States(Listen))
		if err != nil {
			t.Fatalf("after a timed-out dump (%d): %v", i, err)
		}
		for _, s := range socks {
			if s.State != Listen {
				t.Fatalf("after a timed-out dump (%d), a listener dump returned %v", i, s)
			}
		}
	}
}

func TestClosed(t *testing.T) {
	conn, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.TCP(context.Background(), States(Listen)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("dump on a closed Conn: %v, want net.ErrClosed", err)
	}
	if err := conn.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestErrorClasses(t *testing.T) {
	wrap := func(e syscall.Errno) error {
		return fmt.Errorf("sockdiag: destroy: %w", &netlink.OpError{Op: "receive", Err: e})
	}
	for e, want := range map[syscall.Errno][2]bool{ // Unsupported, Gone
		syscall.EPERM:      {true, false},
		syscall.EACCES:     {true, false},
		syscall.EOPNOTSUPP: {true, false},
		syscall.ENOENT:     {false, true},
		syscall.ESTALE:     {false, true},
		syscall.EINVAL:     {false, false},
	} {
		err := wrap(e)
		if got := [2]bool{Unsupported(err), Gone(err)}; got != want {
			t.Errorf("%v: Unsupported, Gone = %v, want %v", e, got, want)
		}
	}
	if Unsupported(nil) || Gone(nil) {
		t.Error("nil classified")
	}
}

// Without CAP_NET_ADMIN the kernel refuses with EPERM, which Unsupported
// reports so kick can fall back. Capabilities are per thread: one locked
// thread drops CAP_NET_ADMIN and dies with its goroutine.
func TestDestroyUnprivileged(t *testing.T) {
	mustNetAdmin(t)
	conn, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv := mustEcho(t, "tcp4", "127.0.0.1:0")
	client, server := srv.pair(t)
	s, ok := find(t, conn, server, States(Established))
	if !ok {
		t.Fatal("server side not in the dump")
	}
	// Destroys of a socket that is not there (a wrong cookie) and of s,
	// from a thread without CAP_NET_ADMIN.
	errc := make(chan [2]error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		err := unix.Capget(&hdr, &data[0])
		if err == nil {
			data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
			err = unix.Capset(&hdr, &data[0])
		}
		var c *Conn
		if err == nil {
			c, err = Open()
		}
		if err != nil {
			errc <- [2]error{err, err}
			return
		}
		defer c.Close()
		wrong := s
		wrong.Cookie ^= 1
		errc <- [2]error{c.Destroy(context.Background(), wrong), c.Destroy(context.Background(), s)}
	}()
	errs := <-errc
	// The kernel looks the socket up before it checks privileges.
	if !errors.Is(errs[0], syscall.ENOENT) {
		t.Errorf("destroy of no socket without CAP_NET_ADMIN: %v, want ENOENT", errs[0])
	}
	if err := errs[1]; !errors.Is(err, syscall.EPERM) || !Unsupported(err) || Gone(err) {
		t.Errorf("destroy without CAP_NET_ADMIN: %v, want EPERM", err)
	}
	if err := echoes(client); err != nil {
		t.Errorf("the connection after a refused destroy: %v", err)
	}
}
