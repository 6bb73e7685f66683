// Package ipc speaks the client side of Dovecot 2.3's ipc socket
// (BASE_DIR/ipc), the only place where Dovecot 2.3 knows its proxied
// sessions: 2.3 login processes never register proxies in anvil. It lists
// proxies (LIST-FULL) and kicks them by exact virtual user (KICK). Dovecot
// 2.4 has no ipc service; its proxies are in anvil.
package ipc
