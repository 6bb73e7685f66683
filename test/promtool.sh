#!/usr/bin/env bash
# Checks the shipped Prometheus alerting rules and the agent's live metrics
# with promtool (README "Dashboard and alerts"):
#   promtool check rules   contrib/prometheus/kickagent.rules.yml
#   promtool test rules    contrib/prometheus/kickagent.rules.test.yml
#   promtool check metrics on /metrics of `kickagent run` against real Dovecot
# test/run.sh calls it after starting the Dovecot instances; alone, start
# v24 first (KA_ROOT=... test/dovecot/instance.sh start v24). Run as root:
# it installs Debian's prometheus package for promtool, without starting
# the Prometheus service. INSTANCE (default v24) names the Dovecot instance.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
INSTANCE=${INSTANCE:-v24}

if ! command -v promtool >/dev/null; then
  echo "== installing promtool (Debian's prometheus package; its service is not started)"
  # policy-rc.d answering 101 forbids invoke-rc.d to start the service the
  # package ships; any policy-rc.d already present is put back afterwards.
  prc=/usr/sbin/policy-rc.d
  saved=""
  if [ -e "$prc" ]; then saved=$(mktemp); cp -p "$prc" "$saved"; fi
  restore() { if [ -n "$saved" ]; then mv "$saved" "$prc"; else rm -f "$prc"; fi; }
  trap restore EXIT
  printf '#!/bin/sh\nexit 101\n' > "$prc"
  chmod 755 "$prc"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  restore
  trap - EXIT
fi

echo "== promtool check rules, test rules"
promtool check rules contrib/prometheus/kickagent.rules.yml
promtool test rules contrib/prometheus/kickagent.rules.test.yml

echo "== promtool check rules on the dashboard's queries (contrib/grafana/kickagent.json)"
# Each panel query becomes a recording rule, with Grafana's variables
# replaced, so promtool parses it: a typo in a panel fails here.
command -v jq >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
dashrules=$(mktemp)
{
  echo 'groups: [{name: dashboard, rules: ['
  jq -r '[.. | .expr? // empty] | to_entries[] | "{record: dashboard_query_\(.key), expr: \(.value | gsub("\\$__rate_interval"; "5m") | gsub("\\$job|\\$instance"; ".*") | tojson)},"' \
    contrib/grafana/kickagent.json
  echo ']}]'
} > "$dashrules"
promtool check rules "$dashrules"
rm -f "$dashrules"

echo "== promtool check metrics on a live /metrics (kickagent run against Dovecot $INSTANCE)"
socket=$(eval "$(test/dovecot/instance.sh env "$INSTANCE")"; echo "$KA_ANVIL")
[ -S "$socket" ] || { echo "no anvil socket for $INSTANCE ($socket): start the instance first"; exit 1; }
work=$(mktemp -d)
pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/kickagent" ./cmd/kickagent
# A rule naming a user no instance has: the agent runs full cycles and
# kicks nothing on the shared instance.
printf 'rules:\n  - name: promtool-check\n    users: [nobody-promtool-check]\n' > "$work/rules.yaml"
# Dry run, and a state directory of its own (not /var/lib/kickagent).
"$work/kickagent" run -a "$socket" --rules "$work/rules.yaml" --interval 1s \
  --metrics 127.0.0.1:0 --dry-run --state-dir "$work/state" 2> "$work/log" &
pid=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(sed -n 's/.*msg="metrics listening" addr=\([^ ]*\).*/\1/p' "$work/log" | head -n 1)
  if [ -n "$addr" ] && curl -fsS "http://$addr/metrics" 2>/dev/null | grep -q '^kickagent_cycles_total{result="ok"}'; then break; fi
  kill -0 "$pid" 2>/dev/null || { tail -n 20 "$work/log"; echo "kickagent exited"; exit 1; }
  sleep 0.2
done
curl -fsS "http://$addr/metrics" > "$work/metrics"
grep -q '^kickagent_cycles_total{result="ok"}' "$work/metrics" || { tail -n 20 "$work/log"; echo "no completed cycle"; exit 1; }
promtool check metrics < "$work/metrics"
echo "promtool: rules, rule tests and $(grep -c '^kickagent_' "$work/metrics") kickagent samples OK"
