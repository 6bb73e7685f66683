// Package authmaster speaks the small part of Dovecot's auth-master
// protocol that kickagent needs: CACHE-FLUSH, which removes users' entries
// from the authentication cache, as "doveadm auth cache flush USER" does.
//
// The protocol is the same on Dovecot 2.3 and 2.4 (auth-master protocol
// major version 1; src/auth/auth-master-connection.c, and the client side
// in lib-auth/auth-master.c, lib-auth-client/auth-master.c in 2.4): the
// server greets with "VERSION\t1\t<minor>" and "SPID\t<pid>", the client
// sends "VERSION\t1\t0" (at once, as lib-auth does), then
// "CACHE-FLUSH\t<id>\t<user>..." once greeted, and gets
// "OK\t<id>\t<count>", the number of cache entries removed (passdb and
// userdb entries both count). The server never answers an error on the
// wire: a command it refuses makes it log and hang up, so EOF is its only
// error signal, and the cause is in Dovecot's log.
//
// Speaking the protocol rather than running doveadm keeps kickagent free of
// a doveadm binary and of doveadm's config (a chroot, another base_dir),
// and gives exact errors: the socket is missing, access is refused, the
// auth process does not answer, or it answered something unexpected.
package authmaster
