package main

// usage is printed by "kickagent -h"; keep it in step with README.md.
const usage = `kickagent lists and disconnects Dovecot IMAP/POP3 sessions through Dovecot's
anvil process, on Dovecot 2.3 and 2.4.

Usage:
  kickagent who [-a anvil_socket_path] [-1] [-f passdb_field] [--json] [user_mask ...] [ip[/bits]]
  kickagent version

Run "kickagent COMMAND -h" for the flags of a command.

Arguments select sessions exactly as doveadm who/kick do: user masks with '*'
and '?' (ASCII case-insensitive; several masks are OR-ed); one ip or ip/bits
network (an IPv4-mapped IPv6 client counts as IPv4; /0 matches everything;
an all-digits argument is a user mask).

Exit status: 0 success, 64 usage error, 75 anvil unreachable or its reply
malformed.
`

const whoUsage = `Usage: kickagent who [-a anvil_socket_path] [-1] [-f passdb_field] [--json] [user_mask ...] [ip[/bits]]

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
`
