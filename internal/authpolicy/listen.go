package authpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"strconv"
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
// earlier run is replaced; the new one is mode 0660, owned by group
// (a name or a number; "": the agent's own), which must be the group of
// Dovecot's auth process (default_internal_user's, "dovecot"): the auth
// process does not run as root.
func Listen(addr, group string) (net.Listener, error) {
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
	if group != "" {
		gid, err := lookupGroup(group)
		if err == nil {
			err = os.Chown(path, -1, gid)
		}
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket group %s of %s: %w", group, path, err)
		}
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

// lookupGroup returns the gid of a group name or number.
func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(grp.Gid)
}
