package main

var runUsage = `Usage: kickagent run [-c config] [-a anvil_socket_path] [--rules PATH]... [--rules-dir DIR] [--policy DIR]...
                     [--interval 5s] [--idle-interval 1m] [--metrics ADDR] [--audit-log FILE] [--state-dir DIR] [--auth-policy ADDR]
                     [--dry-run] [--once]
                     [--max-kicks-per-cycle N] [--breaker-fraction F] [--log-level info] [--log-json]

The agent. Every interval it takes one anvil snapshot, evaluates the YAML
rules and Rego policies once, and kicks what they select, through the same
code as kickagent kick (never forcing collateral; inside a process that
serves other sessions too, such as 2.3's imap-hibernate, it closes just the
selected connections' sockets, which needs CAP_NET_ADMIN; see kick --help).
Rules are reloaded when a file changes (the directories of the rule files,
the drop-in directory and the policy directories are watched; on Linux a
file written in place counts once its writer closes it) or on SIGHUP; a
reload that fails, or that would empty a main rules file without saying
rules: [], keeps the previous rules. A drop-in file with errors (or over 4
MiB) is left out or kept at its last good version, loudly, and the other
rules apply. Reloads compile while cycles go on; after a successful reload a
cycle runs at once.

Safety valves: the allow list; max_kicks_per_cycle per rule and over all
rules (default 100; the rest wait, oldest decisions first); a circuit
breaker that kicks nothing, until the rules change, when the rules would
kick more than --breaker-fraction (default 0.5) of all sessions (judged on
snapshots of at least 20 sessions).

Every setting can come from the config file (-c, see CONFIGURATION.md) or a
flag; flags win, --rules and --policy add to the config's. Both are checked
against the same bounds before anything runs: a bad flag value is the usage
status, a bad config file (a value out of bounds, an unknown key) the
configuration status, with file:line.

The flags are:
  -c CONFIG            the agent's config file
  -a PATH              anvil socket (default /run/dovecot/anvil)
  --rules PATH         YAML rules file or directory (repeatable)
  --rules-dir DIR      drop-in directory (created if missing, watched)
  --policy DIR         Rego policy directory (repeatable)
  --interval D         time between cycles, 1s to 1h (default 5s); a cycle
                       must finish within 0.9 x the interval
  --idle-interval D    longest gap between anvil snapshots once the last 3
                       selected nothing to kick, 1s to 1h (default 1m; the
                       gap is one interval per 10,000 sessions, so a small
                       server keeps the interval); a rule change, a block
                       and a reset's time take one at once; set it to the
                       interval for a snapshot every interval
  --metrics ADDR       listen address of /metrics and /healthz
                       (default 127.0.0.1:9868; "off" disables)
  --audit-log FILE     append one JSON line per decision acted on ("-": stdout);
                       reopened on SIGHUP (logrotate); a write that fails is
                       queued and retried, and /healthz answers 503 meanwhile
  --state-dir DIR      where the cutoffs of active resets survive restarts
                       (default /var/lib/kickagent; "off": memory only, so
                       a restart kicks again sessions logged in after a
                       reset); one agent per directory
  --auth-policy ADDR   answer Dovecot's auth policy requests on ADDR: a
                       loopback IP:PORT or unix:/PATH (default off; the
                       other settings are in the config file's auth_policy):
                       a login a kick rule would kick is refused, failed
                       logins feed brute-force rules (CONFIGURATION.md)
  --dry-run            decide and audit, kick nothing (and refuse no login)
  --once               run one cycle and exit (cron, tests)
  --max-kicks-per-cycle N
                       kicks per cycle over all non-drain rules, at least 1
                       (default 100; to kick nothing use --dry-run)
  --breaker-fraction F the circuit breaker's fraction of all sessions, more
                       than 0 and at most 1 (default 0.5; 1 disables it)
  --log-level LEVEL    debug, info, warn, error (default info)
  --log-json           JSON logs instead of text

Success means stopped by SIGTERM/SIGINT, or --once ran its cycle. With
--once a failed cycle is the anvil status; rules that do not load at start
are the configuration status.
` + exitStatus(exitOK, exitFailure, exitUsage, exitTempFail, exitConfig)
