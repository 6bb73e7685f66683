// Package anvil speaks the protocol of Dovecot's anvil process, the table of
// live sessions behind doveadm who and doveadm kick, in both generations in
// production: Dovecot 2.3 (anvil protocol 1, silent server) and Dovecot 2.4
// (anvil protocol 2, the server greets first).
//
// It dials the anvil UNIX socket, detects the protocol, reads CONNECT-DUMP
// into one normalized Snapshot and runs the commands it is given. It never
// decides what to kick. Everything read from the wire is untrusted: fields
// are tab-unescaped as Dovecot's strescape.c does and validated, and a
// malformed dump is an error, never a partial snapshot. What a reply may
// make the reader hold is bounded (Limits): an over-long line is read past
// and skipped, an oversized dump fails with ErrTooLarge.
package anvil
