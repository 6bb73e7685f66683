#!/usr/bin/env bash
# The main job, against throwaway real Dovecot (README "Try it"): installs Go
# (test/lib/go.sh) and Dovecot 2.3 and 2.4 (test/dovecot/install.sh), starts
# the demo instances demo24 and demo23 on loopback, holds live IMAP/POP3
# sessions, starts `kickagent run` on a drop-in directory with metrics and an
# audit log, and shows the agent acting: a rule written, block NET, reset
# USER, a broken edit. Everything is left running; it prints what to try next.
#   test/demo.sh         set up and show (again: restarts the demo from scratch)
#   test/demo.sh stop    stops the agent, the session holders and demo23/demo24
# Run as root. The demo instances are apart from the tests' (test/run.sh
# leaves them alone). KA_DEMO_METRICS (default 127.0.0.1:9869) is the agent's
# metrics address.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/go.sh
. test/lib/go.sh
ka_root
D=$KA_ROOT/demo
METRICS=${KA_DEMO_METRICS:-127.0.0.1:9869}

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
for v in demo24 demo23; do test/dovecot/instance.sh start "$v"; done
# shellcheck disable=SC1091
. "$KA_ROOT/inst/demo24/env"
A=$KA_ANVIL

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

rm -rf "$D/rules.d" "$D/state"; mkdir -p "$D/rules.d"; : > "$D/audit.jsonl"
setsid "$ka" run -a "$A" --rules-dir "$D/rules.d" --state-dir "$D/state" --interval 1s \
  --metrics "$METRICS" --audit-log "$D/audit.jsonl" > "$D/agent.log" 2>&1 < /dev/null &
echo $! > "$D/agent.pid"
for _ in $(seq 100); do curl -sf "http://$METRICS/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://$METRICS/healthz" >/dev/null || { cat "$D/agent.log"; echo "demo: the agent did not become healthy" >&2; exit 1; }

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
# audit PATTERN: the last "kicked" audit record matching PATTERN; the outcome
# follows the confirming dumps, so it may come just after the session is gone.
audit() {
  local l=""
  for _ in $(seq 50); do
    l=$(grep -- "$1" "$D/audit.jsonl" | grep '"result":"kicked"' | tail -n 1) && [ -n "$l" ] && break
    sleep 0.1
  done
  echo "  audit: ${l:-none}"
}

say "== Dovecot $KA_VERSION (demo24), agent running on an empty drop-in directory; sessions:"
show "$ka" who -a "$A"

say "== 1. a rule written: kick eve (rules.d/demo.yaml)"
start=$(now_ms)
printf 'rules:\n  - name: no-eve\n    description: demo, eve is compromised\n    users: [eve]\n' > "$D/rules.d/demo.yaml"
gone eve "$start"; audit '"eve"'

say "== 2. kickagent block 127.0.0.4/31 (jane and jano); the others stay"
start=$(now_ms)
show "$ka" block 127.0.0.4/31 --reason "demo: abusive network" --for 1h --rules-dir "$D/rules.d"
gone 127.0.0.4 "$start"; gone 127.0.0.5 "$start"; audit '"jano"'
show "$ka" who -1 -a "$A"

say "== 3. kickagent reset alice: the old sessions close, a new login stays"
start=$(now_ms)
show "$ka" reset alice --auth-master "$(dirname "$A")/auth-master" --rules-dir "$D/rules.d"
gone alice "$start"; audit '"alice"'
sleep 2 # one interval: a login right at the reset may count as old (kickagent reset --help)
hold alice-new "demo24:alice@127.0.0.12/imap"
sleep 3
echo "  -> the new login, 3 s (3 cycles) later: $(listed alice) alice session(s) listed"
[ "$(listed alice)" = 1 ] || { echo "demo: the new alice login did not stay" >&2; exit 1; }

say "== 4. a broken edit: the old rules are kept, the log names file:line"
printf 'rules:\n  - name: no-eve\n    users: [eve]\n    usres: [dave]\n' > "$D/rules.d/demo.yaml"
for _ in $(seq 50); do grep -q 'demo.yaml:' "$D/agent.log" && break; sleep 0.1; done
echo "  log: $(grep 'demo.yaml:' "$D/agent.log" | tail -n 1)"
start=$(now_ms)
hold eve-again "demo24:eve@127.0.0.8/imap"
gone eve "$start"
echo "  -> eve logged in again and was kicked: the last good rules are in force"
echo "  metric: $(curl -s "http://$METRICS/metrics" | grep '^kickagent_config_last_reload_successful')"

say "== Dovecot 2.3 (demo23), the one-off commands: who and kick, next to doveadm"
# shellcheck disable=SC1091
. "$KA_ROOT/inst/demo23/env"
show "$ka" who -1 -a "$KA_ANVIL"
# shellcheck disable=SC2086 # KA_DOVEADM is a command line
show $KA_DOVEADM who -1
show "$ka" kick --dry-run -a "$KA_ANVIL" 'JAN*'
show "$ka" kick -a "$KA_ANVIL" 'jan?'

cat <<EOT

== done in $(( $(date +%s) - t0 )) s. Everything keeps running; try:
  sessions:   $ka who -1 -a $A        (agent's Dovecot 2.4)
              $ka who -1 -a $KA_ANVIL    (Dovecot 2.3)
  log in:     users alice bob carol jane jano james dave eve "john doe", password "pass"
              demo24 IMAP 127.0.0.1:32343 POP3 :32310; demo23 IMAP :32143 POP3 :32110
              e.g. curl -s --url imap://127.0.0.1:32343/ --user dave:pass -X 'CAPABILITY'
  rules:      edit $D/rules.d/demo.yaml (fix "usres"), or
              $ka block 127.0.0.9 --rules-dir $D/rules.d ; $ka blocks --rules-dir $D/rules.d
  agent:      log $D/agent.log, audit $D/audit.jsonl, metrics http://$METRICS/metrics
  stop it all: test/demo.sh stop
EOT
