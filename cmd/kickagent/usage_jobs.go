package main

var blockUsage = `Usage:
  kickagent block NETWORK|USER_MASK [--for DURATION] [--reason TEXT] [--force] [-c config | --rules-dir DIR]
  kickagent unblock NETWORK|USER_MASK [-c config | --rules-dir DIR]
  kickagent blocks [-c config | --rules-dir DIR]

block writes a drop-in rule into the running agent's rules directory (found
from its config file, default /etc/kickagent/kickagent.yaml, or --rules-dir):
every session from NETWORK, or of users matching USER_MASK, is kicked on every cycle until the rule expires (--for, default
24h); the agent deletes expired block files. The new file is checked
together with the agent's other rules first, as the agent loads them, and
is not installed (a configuration error) if it has errors or the main rules files or
policies do not load; another drop-in file with errors is printed as a
warning (file:line) and does not stop the block, since the agent leaves
that file out. unblock removes it; blocks lists active and expired blocks,
resets and drains.

The target is read as who and kick read it: a network when it parses as
ip or ip/bits (IPv6 also in brackets, or with a zone such as fe80::1%eth0
for that interface only), written in canonical form (192.0.2.7/24 blocks
192.0.2.0/24); all digits, or anything else, is a user mask. Network-like
text with a surprising reading (127.1, 10/8, ::ffff:10.0.0.0/120) is
refused with what to write instead. block prints how it read the target;
one that looks like a host name (example.com) stays a user mask, with a
warning: host names are never resolved. A block of everyone ('*', any mask
of only '*' and '?' with a '*', 0.0.0.0/0, ::/0) needs --force. unblock
takes any form of a blocked network, and a user mask in any ASCII case, as
the rules match it (unblock 'alice*' lifts ALICE*).

The flags are:
  --for D        how long the block lasts (default 24h)
  --reason TEXT  recorded in the rule's description and so in the audit log
  --force        allow a block that selects every session
  -c CONFIG      the agent's config file (rules_dir, and the rules and
                 policies the new file is checked with); default
                 /etc/kickagent/kickagent.yaml. A -c that is given must be
                 readable; the default may be missing when --rules-dir is given
  --rules-dir D  the drop-in directory, instead of the config's rules_dir
` + exitStatus(exitOK, exitFailure, exitUsage, exitNotFound, exitConfig)

var resetUsage = `Usage: kickagent reset USER [--at TIME] [-f passdb_field] [--expire 24h]
         [--auth-master PATH | --no-cache-flush] [--timeout 10s] [--dry-run]
         [-c config | --rules-dir DIR]

After a password reset: USER's entries are flushed from Dovecot's
authentication cache, then every session of USER that was already logged
in when the reset took effect is kicked, on every cycle until it is gone;
sessions that log in after it (with the new password) are left alone.

The flush comes first because with auth_cache_size > 0 (usual with SQL and
LDAP passdbs) the cache keeps accepting the OLD password until
auth_cache_ttl ends: a phone holding it would reconnect at once after the
kick, as a new session that the reset leaves alone. The cutoff is then set
at the flush's completion (or --at, if later): a session that logged in
before the flush completed may have used the cached password, so it counts
as old. reset prints how many cache entries it flushed. The cache is keyed
by the login name after auth_username_format, which lowercases by
default, so USER and its lowercase form are flushed. With -f nothing is flushed: the cache knows login names, not alt
values (see the exit status).

When the flush fails (socket missing, no permission, the auth process not
answering), the reset is installed all the same (a reset that does not kick
is worse), a WARNING on stderr says that the old password may still log in,
and the exit status says so (below).

Anvil records no login time, so "already logged in" is defined by the
agent: a session is old when the agent first saw it in a snapshot taken no
later than the first snapshot at or after the cutoff. Guarantee: every
session that existed at the cutoff is kicked. Limit: a session that logs in
less than one interval after it (before the agent's next snapshot) may be
kicked once too, and when the agent was not running at the cutoff, every
session present at its first snapshot counts as old. The rule expires after
--expire.

The flags are:
  --at TIME          when the reset took effect (RFC 3339; default now)
  -f FIELD           USER is a value of the alt-username field FIELD (user_*);
                     the auth cache is not flushed (a WARNING and that exit
                     status, unless --no-cache-flush)
  --expire D         lifetime of the rule (default 24h)
  --auth-master PATH Dovecot's auth-master socket (default: auth-master in
                     the base_dir of the config's anvil_socket, else
                     /run/dovecot/auth-master); needs root, as doveadm does
  --no-cache-flush   do not flush (Dovecot without an auth cache, or flushed
                     by other means)
  --timeout D        how long the flush may take (default 10s)
  --dry-run          print what would be flushed and installed; change nothing
  -c, --rules-dir    as for block
` + exitStatus(exitOK, exitFailure, exitPartial, exitUsage, exitConfig)

var drainUsage = `Usage:
  kickagent drain --dest IP [--rate N/s] [-a anvil_socket_path] [-c config | --rules-dir DIR]
  kickagent drain --all [--rate N/s] [-c config | --rules-dir DIR]
  kickagent drain --status [-a anvil_socket_path]
  kickagent drain --dest IP --cancel | --all --cancel

Drain before maintenance: the agent kicks every proxied session to backend
IP (--dest), or every session on this server (--all), at most --rate per
second (default 10/s), so clients reconnect gradually elsewhere. Drain rules
bypass the circuit breaker and the global per-cycle cap (the rate paces
them); sessions that Dovecot only kicks together (a user's connections in
one login process) go together when the bucket allows. The drain ends by
itself: the agent deletes its file once nothing is left to kick. --status shows the drains, the sessions left and the time to
go, counted from the engine's own decisions on a snapshot taken now (the
allow list applies, and a session an earlier rule kicks is that rule's);
--cancel stops one. A new drain that has nothing to kick on a snapshot
taken at once (a server that proxies nothing to IP, or Dovecot 2.3, whose
anvil does not list proxies) is reported on stderr: the agent would end it
at its next cycle.
` + exitStatus(exitOK, exitFailure, exitUsage, exitNotFound, exitTempFail, exitConfig)
