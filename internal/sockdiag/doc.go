// Package sockdiag lists and destroys TCP sockets through Linux's
// NETLINK_SOCK_DIAG (inet_diag) interface, the way `ss -K` does.
//
// kickagent uses it on Dovecot 2.3, where one imap-hibernate or shared imap
// process holds many users' connections and signalling the process would
// kick them all: closing one user's TCP socket with SOCK_DESTROY kicks only
// that user. This package only talks to the kernel; which sockets to close
// is decided in internal/kick.
//
// A destroy names the socket by family, 4-tuple, bound device and the
// kernel's socket cookie as dumped, so it cannot hit a later socket that
// reuses the same 4-tuple (the kernel answers ENOENT instead). Destroying
// needs CAP_NET_ADMIN and a kernel built with CONFIG_INET_DIAG_DESTROY; see
// Unsupported and Gone for the errors a caller branches on. Dumps need no
// privilege. Everything happens in the network namespace of the process that
// called Open.
//
// Why github.com/mdlayher/netlink and not vishvananda/netlink:
// vishvananda/netlink v1.3.1's SocketDestroy is IPv4-only and sends no
// cookie, and its dump has no state filter and always asks for INFO
// extensions. mdlayher/netlink is a well-kept transport (sequence and pid
// validation, multipart dumps, deadlines, errno errors); the
// inet_diag_req_v2 / inet_diag_msg encoding is about 100 lines we own and
// fuzz (codec.go).
package sockdiag
