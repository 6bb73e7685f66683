package main

var checkUsage = `Usage: kickagent check [-c config] [--rules PATH]... [--policy DIR]...

Validates everything the agent would load: YAML rule files (a file, or a
directory of *.yaml/*.yml loaded in name order) and Rego policy directories.
Prints every error as file:line: message and exits with the configuration
status if there is any; otherwise prints a one-line summary.

The flags are:
  -c CONFIG     the agent's config file; its rules, rules_dir and policy are
                loaded, and --rules/--policy add to them
  --rules PATH  YAML rules file or directory (repeatable)
  --policy DIR  directory of Rego policies, package kickagent (repeatable)
` + exitStatus(exitOK, exitUsage, exitConfig)

var snapshotUsage = `Usage: kickagent snapshot [-a anvil_socket_path] > snap.json

Records anvil's live sessions as JSON (the who --json keys per session,
plus dovecot, taken and alt_fields), for kickagent plan --snapshot.

The flags are:
  -a PATH       anvil socket (default /run/dovecot/anvil)
  --timeout D   give up after D (default 30s)
` + exitStatus(exitOK, exitFailure, exitUsage, exitTempFail)

var planUsage = `Usage: kickagent plan [-c config] [--rules PATH]... [--policy DIR]... [--snapshot snap.json | -a anvil_socket_path] [--json] [--now TIME] [--policy-timeout D] [--policy-memory-mib N]

Prints which sessions the rules would kick, by which rule and why, without
kicking: one row per session a rule selects, with action kick, dry-run (only
dry_run rules select it) or allowed (the allow list protects it). Rules past
their expires time are inactive and named on stderr.

The flags are:
  -c CONFIG       the agent's config file (rules, rules_dir, policy, anvil_socket)
  --rules PATH    YAML rules file or directory (repeatable)
  --policy DIR    Rego policy directory (repeatable)
  --snapshot FILE evaluate a recorded snapshot instead of the live anvil
  -a PATH         anvil socket (default: the config's, else /run/dovecot/anvil)
  --json          one JSON object per decision: the who --json keys plus
                  rule, engine (yaml, rego), reason and action
  --now TIME      evaluate as of this RFC 3339 time (rule expiry, policies)
  --timeout D     give up on anvil after D (default 30s)
  --policy-timeout D
                  stop the Rego policy's evaluation after D (default 30s)
  --policy-memory-mib N
                  stop it when the heap grows by N MiB (default 1024)

A Rego policy that fails or exceeds its bound is reported as a failure,
after printing the YAML rules' decisions: what the agent would enforce.
` + exitStatus(exitOK, exitFailure, exitUsage, exitTempFail, exitConfig)
