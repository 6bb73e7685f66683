package authpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"
)

// CheckListen checks a listen address: "off", a loopback IP and port
// ("127.0.0.1:9870", "[::1]:9870"), or "unix:/path". Nothing else: the
// endpoint decides who may log in and takes reports that block clients,
// so it must not be reachable from the network.
func CheckListen(addr string) error {
	if addr == "" || addr == "off" {
		return nil
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !strings.HasPrefix(path, "/") {
			return fmt.Errorf("%q: a UNIX socket path must be absolute", addr)
		}
		return nil
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want a loopback address and port (127.0.0.1:9870, [::1]:9870) or unix:/path", addr)
	}
	if !ap.Addr().IsLoopback() {
		return fmt.Errorf("%q: not a loopback address; the auth policy endpoint must not be reachable from the network", addr)
	}
	return nil
}

// Listen opens addr (CheckListen's forms). A UNIX socket left by an
// earlier run is replaced; the new one is mode 0660.
func Listen(addr string) (net.Listener, error) {
	if err := CheckListen(addr); err != nil {
		return nil, err
	}
	path, unix := strings.CutPrefix(addr, "unix:")
	if !unix {
		return net.Listen("tcp", addr)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return ln, nil
}

// Serve answers on ln until ctx ends. Dovecot waits for every answer (its
// timeout is 2 s by default), so reads and writes are bounded well below.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second,
		WriteTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("auth policy listener: %w", err)
	}
	return nil
}
