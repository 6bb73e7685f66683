#!/usr/bin/env bash
# The main job, against throwaway real Dovecot (README "Try it"): installs Go
# (test/lib/go.sh) and Dovecot 2.3 and 2.4 (test/dovecot/install.sh), starts
# the demo instances demo24 and demo23 on loopback, starts `kickagent run` on
# a drop-in directory with metrics, an audit log and the auth policy listener
# both instances ask, holds live IMAP/POP3 sessions, and shows the agent
# acting: a rule written, block NET (sessions closed, new logins refused), a
# brute-force rule, reset USER, a broken edit. Everything is left running; it
# prints what to try next.
#   test/demo.sh         set up and show (again: restarts the demo from scratch)
#   test/demo.sh stop    stops the agent, the session holders and demo23/demo24
# Run as root. The demo instances are apart from the tests' (test/run.sh
# leaves them alone). KA_DEMO_METRICS (default 127.0.0.1:9869) is the agent's
# metrics address, KA_DEMO_POLICY (default 127.0.0.1:9871) its auth policy
# listener: one above the documented examples (9868, 9870), so that an agent
# installed on the same machine keeps its ports.
set -euo pipefail
# The agent and the session holders outlive this script: they must not
# inherit its descriptors, or a lock held around it (flock FILE test/demo.sh)
# would stay held for as long as they run.
for fd in "/proc/$$/fd/"*; do
  fd=${fd##*/}
  case $fd in 0 | 1 | 2 | 255) continue ;; esac
  eval "exec $fd>&-" 2>/dev/null || true
done
cd "$(dirname "$0")/.."
# shellcheck source=lib/go.sh
. test/lib/go.sh
ka_root
D=$KA_ROOT/demo
METRICS=${KA_DEMO_METRICS:-127.0.0.1:9869}
POLICY=${KA_DEMO_POLICY:-127.0.0.1:9871}
# Dovecot's auth_policy_server_api_header and the agent's api_header: the same.
POLICY_KEY=X-API-Key:kickagent-demo

# stop_pid FILE: ends the process whose pid FILE holds, if it is still ours.
stop_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  if [ -d "/proc/$pid" ] && grep -qa -- "$2" "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  fi
  rm -f "$1"
}
stop_demo() {
  stop_pid "$D/agent.pid" "$D/kickagent"
  for f in "$D"/hold-*.pid; do [ -e "$f" ] && stop_pid "$f" "$D/demo-hold"; done
  if [ -x test/dovecot/instance.sh ]; then
    test/dovecot/instance.sh stop demo24 || true
    test/dovecot/instance.sh stop demo23 || true
    test/dovecot/instance.sh release || true
  fi
}
if [ "${1:-}" = stop ]; then stop_demo; echo "demo stopped"; exit 0; fi
[ $# -eq 0 ] || { echo "usage: test/demo.sh [stop]" >&2; exit 2; }

t0=$(date +%s)
echo "== prerequisites and Go (before the long steps)"
ka_prereqs curl
ka_go
echo "== Dovecot 2.3 (Debian 12) and 2.4 (Debian 13 chroot); the first run takes minutes"
test/dovecot/install.sh
mkdir -p "$D"
stop_demo >/dev/null 2>&1 || true
go build -o "$D/kickagent" ./cmd/kickagent
go build -o "$D/demo-hold" ./test/demo
ka=$D/kickagent
# Both instances ask the one agent at their door, so its rules refuse logins
# on demo23 too; its cycles kick on demo24 only (the anvil it watches), and
# its audit records say "dovecot":"2.4" for demo23's logins as well. In
# production each Dovecot server has its own agent.
for v in demo24 demo23; do
  KA_POLICY_URL="http://$POLICY/" KA_POLICY_HEADER=$POLICY_KEY test/dovecot/instance.sh start "$v"
done
# shellcheck disable=SC1091
. "$KA_ROOT/inst/demo24/env"
A=$KA_ANVIL
IMAP24=$KA_IMAP_PORT
# shellcheck disable=SC1091
IMAP23=$(. "$KA_ROOT/inst/demo23/env" && echo "$KA_IMAP_PORT")

# The agent starts before the sessions are held: with nothing listening at
# the policy URL, Dovecot lets each login in after logging an error.
rm -rf "$D/rules.d" "$D/state"; mkdir -p "$D/rules.d"; : > "$D/audit.jsonl"
printf '# test/demo.sh: the auth policy listener; the rest are flags.\nauth_policy:\n  listen: "%s"\n  api_header: "%s"\n' \
  "$POLICY" "$POLICY_KEY" > "$D/kickagent.yaml"
setsid "$ka" run -c "$D/kickagent.yaml" -a "$A" --rules-dir "$D/rules.d" --state-dir "$D/state" \
  --interval 1s --metrics "$METRICS" --audit-log "$D/audit.jsonl" > "$D/agent.log" 2>&1 < /dev/null &
echo $! > "$D/agent.pid"
for _ in $(seq 100); do curl -sf "http://$METRICS/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://$METRICS/healthz" >/dev/null || { cat "$D/agent.log"; echo "demo: the agent did not become healthy" >&2; exit 1; }

# hold NAME SPEC...: logs SPECs in and keeps them open in a detached process
# that outlives this script (test/demo.sh stop ends it).
hold() {
  local name=$1; shift
  setsid "$D/demo-hold" -for 87600h "$@" > "$D/hold-$name.log" 2>&1 < /dev/null &
  echo $! > "$D/hold-$name.pid"
  for _ in $(seq 100); do grep -q holding "$D/hold-$name.log" && return 0; sleep 0.1; done
  cat "$D/hold-$name.log" >&2; exit 1
}
hold main "demo24:alice@127.0.0.2/imap" "demo24:alice@127.0.0.3/pop3" "demo24:bob@::1/imap" \
  "demo24:jane@127.0.0.4/imap" "demo24:jano@127.0.0.5/pop3" "demo24:james@127.0.0.6/imap" \
  "demo24:john doe@127.0.0.7/imap" "demo24:eve@127.0.0.8/imap" "demo24:dave@127.0.0.9/imap" \
  "demo23:alice@127.0.0.2/imap" "demo23:bob@::1/imap" "demo23:jane@127.0.0.4/imap"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
show() { echo "\$ $*"; "$@" || echo "(exit $?)"; }
listed() { "$ka" who -1 -a "$A" 2>/dev/null | grep -c -- "$1" || true; }
now_ms() { date +%s%3N; }
# gone USER_OR_IP START: waits (10 s at most) until no session matches, prints the time taken.
gone() {
  for _ in $(seq 200); do
    if [ "$(listed "$1")" = 0 ]; then echo "  -> sessions matching '$1' closed $(( $(now_ms) - $2 )) ms after the change"; return 0; fi
    sleep 0.05
  done
  echo "  -> FAILED: '$1' still listed after 10 s" >&2; tail -n 20 "$D/agent.log" >&2; exit 1
}
# audit PATTERN [RESULT]: the last audit record of RESULT (default kicked)
# matching PATTERN; the outcome follows the confirming dumps, so it may come
# just after the session is gone. No such record within 5 s ends the demo.
audit() {
  local l=""
  for _ in $(seq 50); do
    l=$(grep -- "$1" "$D/audit.jsonl" | grep -- "\"result\":\"${2:-kicked}\"" | tail -n 1) && [ -n "$l" ] && break
    sleep 0.1
  done
  [ -n "$l" ] || { echo "demo: no '${2:-kicked}' audit record matching '$1'" >&2; exit 1; }
  echo "  audit: $l"
}
# imap_login SRC PORT USER PASS: one IMAP login with curl from SRC (a
# loopback address, so Dovecot sees it as the client's IP); prints the
# server's answer to the login command and how long it took.
imap_login() {
  local start out
  start=$(now_ms)
  out=$({ curl -sv --max-time 40 --interface "$1" --url "imap://127.0.0.1:$2/" --user "$3:$4" -X NOOP 2>&1 || true; } |
    tr -d '\r' | awk '$1 == ">" && ($3 == "AUTHENTICATE" || $3 == "LOGIN") { tag = $2 }
      $1 == "<" && tag != "" && $2 == tag && !done { sub(/^< /, ""); print; done = 1 }')
  echo "${out:-no answer to the login} ($(( $(now_ms) - start )) ms)"
}
answers() { sed 's/ ([0-9]* ms)$//' "$@" | sort | uniq -c | sed 's/^ *//'; }
# expect WANT LINE: LINE must contain WANT, or the demo ends.
expect() { case $2 in *"$1"*) ;; *) echo "demo: expected '$1', got: $2" >&2; exit 1 ;; esac; }
rev() { curl -s "http://$METRICS/metrics" | sed -n 's/^kickagent_rules_info{rev="\([^"]*\)"}.*/\1/p'; }
# in_parallel OUT_PREFIX CMD...: runs CMD in the background, its output to
# OUT_PREFIX.N; pids collects the pids (wait on them, not on the agent).
pids=()
in_parallel() { local out=$1; shift; "$@" > "$out.${#pids[@]}" 2>&1 & pids+=($!); }
wait_all() { local p; for p in "${pids[@]}"; do wait "$p"; done; pids=(); }

say "== Dovecot $KA_VERSION (demo24), agent running on an empty drop-in directory; sessions:"
show "$ka" who -a "$A"

say "== 1. a rule written: kick eve (rules.d/demo.yaml)"
start=$(now_ms)
printf 'rules:\n  - name: no-eve\n    description: demo, eve is compromised\n    users: [eve]\n' > "$D/rules.d/demo.yaml"
gone eve "$start"; audit '"eve"'

say "== 2. kickagent block 127.0.0.4/31 (jane and jano): their sessions close, their new logins are refused"
start=$(now_ms)
show "$ka" block 127.0.0.4/31 --reason "demo: abusive network" --for 1h --rules-dir "$D/rules.d"
gone 127.0.0.4 "$start"; gone 127.0.0.5 "$start"; audit '"jano"'
show "$ka" who -1 -a "$A"
# Dovecot answers every failed login after about 2 s: the three run side by side.
rm -f "$D"/try.*
in_parallel "$D/try" imap_login 127.0.0.4 "$IMAP24" jane pass
in_parallel "$D/try" imap_login 127.0.0.4 "$IMAP23" jane pass
in_parallel "$D/try" imap_login 127.0.0.20 "$IMAP24" jane pass
wait_all
echo "  jane from 127.0.0.4, Dovecot 2.4:   $(cat "$D/try.0")"
echo "  jane from 127.0.0.4, Dovecot 2.3:   $(cat "$D/try.1")"
echo "  jane from 127.0.0.20 (not blocked): $(cat "$D/try.2")"
expect "NO [ALERT]" "$(cat "$D/try.0")"; expect "NO [ALERT]" "$(cat "$D/try.1")"; expect "OK" "$(cat "$D/try.2")"
audit '"ip":"127.0.0.4"' login-refused

say "== 3. a brute-force rule (rules.d/brute-force.yaml): 5 failed logins from one IP within 1m block it for 2m"
r0=$(rev)
printf 'rules:\n  - name: brute-force\n    description: demo, password guessing\n    failed_logins: 5\n    within: 1m\n    block_for: 2m\n' \
  > "$D/rules.d/brute-force.yaml"
for _ in $(seq 100); do [ "$(rev)" != "$r0" ] && break; sleep 0.1; done
[ "$(rev)" != "$r0" ] || { tail -n 20 "$D/agent.log" >&2; echo "demo: the brute-force rule was not loaded" >&2; exit 1; }
# Side by side: Dovecot answers each failure after ~2 s, and its own auth
# penalty (on, as by default) holds the next attempts from the address ~4 s
# more; one after the other they would take over 20 s.
rm -f "$D"/try.*
start=$(now_ms)
for _ in 1 2 3 4 5; do in_parallel "$D/try" imap_login 127.0.0.66 "$IMAP24" dave wrong-password; done
wait_all
echo "  dave from 127.0.0.66, wrong password, 5 logins side by side, answered within $(( $(now_ms) - start )) ms:"
answers "$D"/try.* | sed 's/^/    /'
[ "$(answers "$D"/try.*)" = "5 A002 NO [AUTHENTICATIONFAILED] Authentication failed." ] ||
  { echo "demo: expected 5 failed logins" >&2; exit 1; }
audit '"ip":"127.0.0.66"' blocked
l=$(imap_login 127.0.0.66 "$IMAP24" dave pass)
echo "  dave from 127.0.0.66, right password: $l"
echo "  (Dovecot's auth penalty for the address holds it ~4 s before the agent is asked)"
expect "NO [ALERT]" "$l"
audit '"ip":"127.0.0.66"' login-refused
echo "  metrics, the door so far (steps 2 and 3):"
curl -s "http://$METRICS/metrics" | grep -E '^kickagent_(auth_policy_(requests|refusals)_total|bruteforce_blocks)[ {]' |
  sed 's/^/    /'

say "== 4. kickagent reset alice: the old sessions close, a new login stays"
start=$(now_ms)
show "$ka" reset alice --auth-master "$(dirname "$A")/auth-master" --rules-dir "$D/rules.d"
gone alice "$start"; audit '"alice"'
sleep 2 # one interval: a login right at the reset may count as old (kickagent reset --help)
hold alice-new "demo24:alice@127.0.0.12/imap"
sleep 3
echo "  -> the new login, 3 s (3 cycles) later: $(listed alice) alice session(s) listed"
[ "$(listed alice)" = 1 ] || { echo "demo: the new alice login did not stay" >&2; exit 1; }

say "== 5. a broken edit: the old rules are kept, the log names file:line"
printf 'rules:\n  - name: no-eve\n    users: [eve]\n    usres: [dave]\n' > "$D/rules.d/demo.yaml"
for _ in $(seq 50); do grep -q 'demo.yaml:' "$D/agent.log" && break; sleep 0.1; done
echo "  log: $(grep 'demo.yaml:' "$D/agent.log" | tail -n 1)"
l=$(imap_login 127.0.0.8 "$IMAP24" eve pass)
echo "  eve logs in again: $l"
expect "NO [ALERT]" "$l"
audit '"ip":"127.0.0.8"' login-refused
echo "  -> refused at the door by no-eve: the last good rules are in force"
echo "  metric: $(curl -s "http://$METRICS/metrics" | grep '^kickagent_config_last_reload_successful')"

say "== Dovecot 2.3 (demo23), the one-off commands: who and kick, next to doveadm"
# shellcheck disable=SC1091
. "$KA_ROOT/inst/demo23/env"
show "$ka" who -1 -a "$KA_ANVIL"
# shellcheck disable=SC2086 # KA_DOVEADM is a command line
show $KA_DOVEADM who -1
show "$ka" kick --dry-run -a "$KA_ANVIL" 'JAN*'
show "$ka" kick -a "$KA_ANVIL" 'jan?'

# policy_block CONF: the auth policy settings instance.sh wrote into CONF.
policy_block() {
  awk '/^auth_policy/ { p = 1 } p { print "      " $0 } p && !/\{$/ && (!/^ / || /^}/) { p = 0 }' "$1"
}
# shellcheck disable=SC1091
conf24=$(. "$KA_ROOT/inst/demo24/env" && echo "$KA_DIR/dovecot.conf")
conf23=$KA_DIR/dovecot.conf
cat <<EOT

== done in $(( $(date +%s) - t0 )) s. Everything keeps running; try:
  sessions:   $ka who -1 -a $A        (agent's Dovecot 2.4)
              $ka who -1 -a $KA_ANVIL    (Dovecot 2.3)
  log in:     users alice bob carol jane jano james dave eve "john doe", password "pass"
              demo24 IMAP 127.0.0.1:32343 POP3 :32310; demo23 IMAP :32143 POP3 :32110
              e.g. curl -s --url imap://127.0.0.1:32343/ --user dave:pass -X 'CAPABILITY'
  rules:      edit $D/rules.d/demo.yaml (fix "usres"), or
              $ka block 127.0.0.9 --rules-dir $D/rules.d ; $ka blocks --rules-dir $D/rules.d
  at the door: both instances ask the agent (auth_policy in $D/kickagent.yaml)
              before and after each login; demo24's dovecot.conf got:
$(policy_block "$conf24")
              and demo23's (Dovecot 2.3):
$(policy_block "$conf23")
              a refused login, from a blocked network (-v shows "NO [ALERT]"):
                curl -v --interface 127.0.0.4 --url imap://127.0.0.1:32343/ --user jane:pass
              refusals and blocks: grep -E 'login-refused|blocked' $D/audit.jsonl
              curl -s http://$METRICS/metrics | grep -E '^kickagent_(auth_policy_(requests|refusals)_total|bruteforce_blocks)[ {]'
              127.0.0.66's brute-force block ends 2 minutes after it began
  agent:      log $D/agent.log, audit $D/audit.jsonl, metrics http://$METRICS/metrics
  stop it all: test/demo.sh stop
EOT
