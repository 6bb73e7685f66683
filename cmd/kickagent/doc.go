package main

// usage is printed by "kickagent --help"; keep it in step with README.md.
var usage = `kickagent lists and disconnects Dovecot IMAP/POP3 sessions through Dovecot's
anvil process, on Dovecot 2.3 and 2.4.

Usage:
  kickagent who [-a anvil_socket_path] [-1] [-f passdb_field] [--json] [user_mask ...] [ip[/bits]]
  kickagent kick [-a anvil_socket_path] [-f passdb_field] [-h dest_ip] [--dry-run] [--json] [--force] user_mask ... [ip[/bits]]
  kickagent kick [-a anvil_socket_path] [-f passdb_field] -h dest_ip
  kickagent run [-c config] [-a socket] [--rules PATH]... [--rules-dir DIR] [--policy DIR]... [--interval 5s] [--metrics ADDR] [--audit-log FILE] [--dry-run] [--once]
  kickagent block NETWORK|USER_MASK [--for 24h] [--reason TEXT]     (also: unblock, blocks)
  kickagent reset USER [--at TIME] [-f passdb_field] [--auth-master PATH | --no-cache-flush] [--dry-run]
  kickagent drain --dest IP|--all [--rate N/s] | --status | --cancel
  kickagent check [-c config] [--rules PATH]... [--policy DIR]...
  kickagent snapshot [-a anvil_socket_path] > snap.json
  kickagent plan [-c config] [--rules PATH]... [--policy DIR]... [--snapshot snap.json | -a anvil_socket_path] [--json]
  kickagent test-policy [-q | -v] [--run REGEX] DIR...
  kickagent bundle build --src DIR --revision REV --signing-key FILE [--key-id ID] [--scope S] -o FILE
  kickagent version

Run "kickagent COMMAND --help" for the flags of a command (--help, since
kick's -h is the proxy destination, as in doveadm kick -h).

Arguments select sessions exactly as doveadm who/kick do: user masks with '*'
and '?' (ASCII case-insensitive; several masks are OR-ed); one ip or ip/bits
network (an IPv4-mapped IPv6 client counts as IPv4; an IPv6 zone (scope)
selects that interface only; /0 matches everything; an all-digits
argument is a user mask). Old-style IPv4 text doveadm reads with inet_aton
rules (127.1, 0x7f.0.0.1, 10/8), IPv4-mapped networks and other text that
looks like an address but is none are refused (usage), never taken for a
user mask. README "Differences from doveadm" lists every difference.

Environment: KICKAGENT_CPUPROFILE=FILE writes a Go CPU profile of the
command to FILE (go tool pprof), for performance reports.
` + exitStatus()

var kickUsage = `Usage:
  kickagent kick [-a anvil_socket_path] [-f passdb_field] [-h dest_ip] [--dry-run] [--json] [--force] user_mask ...
  kickagent kick [-a anvil_socket_path] [-f passdb_field] [-h dest_ip] [...] ip[/bits]
  kickagent kick [-a anvil_socket_path] [-f passdb_field] [-h dest_ip] [...] user_mask ... ip[/bits]
  kickagent kick [-a anvil_socket_path] -h dest_ip

Disconnects the sessions that match, as doveadm kick does: every session of
a user matching a mask ('*', '?', case-insensitive; masks are OR-ed), every
session from the network, only sessions matching both when both are given,
and with -h only proxied sessions to that destination.

Delivery: Dovecot 2.4: one dump, local matching, then one KICK-USER user
conn_guid per process and user; a proxied session in a one-connection login
process that anvil fails to close (Dovecot 2.4.0-2.4.4) gets SIGTERM to that
login process once it is verified to hold only that session. Dovecot 2.3:
SIGTERM to each session's process after checking /proc that the pid is still
that Dovecot process; lmtp is never signalled. Results are confirmed with a
fresh dump: a session counts as kicked only when it left anvil's table.

Single connections: when the protocol's kick would also close connections
the command did not name (2.3: a process serving other users or connections,
such as imap-hibernate or an imap process with client_limit > 1; 2.4: other
connections of the same user in the same process), kickagent closes exactly
the named connections instead by destroying their TCP sockets (method
socket-destroy, as ss -K does): the process's sockets whose peer is the
session's client address and whose local address is one of that Dovecot's
listeners. This needs CAP_NET_ADMIN and a kernel with
CONFIG_INET_DIAG_DESTROY, and it is done only when the connections are
certain: every session of that process from that address is named, and the
process holds exactly as many connections from it as anvil counts.

Collateral guard: otherwise (two sessions from one address in one process,
one of them named; or the kernel or a missing capability refuses), nothing is
done for it unless --force is given, and the connections that would be hit
are listed with the reason.

The flags are:
  -a PATH     anvil socket (default /run/dovecot/anvil)
  -f FIELD    match the masks against alt-username field FIELD (user_*)
  -h IP       only proxied sessions whose destination is IP (an IP address;
              host names are not resolved)
  --dry-run   print what would be kicked, kick nothing
  --json      one JSON object per selected connection: the who keys plus
              outcome (kicked, dry-run, refused-collateral, still-connected,
              failed, skipped), method, collateral, error
  --force     also kick when connections not named would be closed (only
              where single connections cannot be closed)
  --ipc PATH  Dovecot 2.3 ipc socket, where 2.3 keeps its proxied sessions
              (default: the ipc socket next to the anvil socket; used when
              it exists). 2.3 proxies are kicked per user with ipc's KICK,
              which closes all of that user's proxied connections: a user
              with proxied connections the command did not name is refused
              unless --force.
  --timeout D give up after D (default 30s)

With --dry-run, success means every selected connection would be kicked.
` + exitStatus(exitOK, exitFailure, exitPartial, exitUsage, exitNotFound, exitTempFail)

var whoUsage = `Usage: kickagent who [-a anvil_socket_path] [-1] [-f passdb_field] [--json] [user_mask ...] [ip[/bits]]

Lists the sessions in Dovecot's anvil, as doveadm who does.

Without -1, one row per user and service: username, number of connections,
service, (pids), (client ips). With -1, one row per connection: username,
service, pid, ip, and on Dovecot 2.4 also dest_ip and the alt-username fields.
Rows are sorted by username and service; values are never truncated.

The flags are:
  -a PATH   anvil socket (default /run/dovecot/anvil; BASE_DIR/anvil when
            Dovecot runs with another base_dir)
  -1        one row per connection
  -f FIELD  match the user masks against the passdb/userdb alt-username field
            FIELD (e.g. user_alt, Dovecot 2.4) instead of the login name;
            needs at least one mask
  --json    one JSON object per anvil record with the keys user, service,
            pid, ip, conn_guid, dest_ip, alt (object), connections (2.3
            refcount; 1 on 2.4)
  --timeout DURATION
            give up on anvil after this long (default 30s)
` + exitStatus(exitOK, exitFailure, exitUsage, exitTempFail)
