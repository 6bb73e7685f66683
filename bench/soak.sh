#!/usr/bin/env bash
# Soak test of a running kickagent on real Dovecot (issue 12): SESSIONS synthetic sessions,
# RULES YAML rules, a short interval, while Dovecot is restarted and the rules are edited every
# few minutes and a real IMAP login of a user a rule names is made every PROBE_EVERY seconds.
# It ends with a summary and exits non-zero when a criterion fails:
#   - RSS flat: the median of the last RSS_WINDOW s at most RSS_GROWTH % above the first's;
#   - no unexplained failed cycle: every failed cycle falls between a Dovecot restart's start
#     and RESTART_GRACE s after its synthetic sessions were registered again;
#   - every probe closed within PROBE_TIMEOUT s, by a kick the agent audited (a kick-intent
#     record from the probe's address); the outcomes recorded for them are reported;
#   - every kick audited: "session kicked" log lines = kicked audit lines = kicks_total, each
#     kicked line preceded by a kick-intent line for the same session, each intent followed by
#     an outcome; no audit record for any other session (synthetic sessions are never
#     selected); every audit line JSON; no audit write error;
#   - every edit reloaded (reloads ok = edits, none failed); the agent alive at the end.
# Needs root, jq and test/dovecot/install.sh. Uses only the benchmark instance b23 or b24 of
# test/dovecot/instance.sh (refuses to run if it is already up, restarts it as it goes, stops
# it at the end); the integration-test instances are never touched. With the rig elsewhere
# than .dovecot in this tree, set KA_ROOT.
#
#   VER=2.4 bench/soak.sh                     # the one-hour soak
#   SOAK_SECS=300 RESTART_EVERY=100 EDIT_EVERY=60 VER=2.3 bench/soak.sh   # a validation run
#
# Knobs (environment): SOAK_SECS=3600, VER=2.4 (2.3 or 2.4: one version per run),
# SESSIONS=100000 (synthetic, testrig.SyntheticMix), SEED=1, RULES=1000 (the probe's rule
# included), INTERVAL=1s (the agent's --interval; IDLE_INTERVAL, default INTERVAL: snapshots every
# interval, as the probes' 5 s criterion assumes), RESTART_EVERY=300 (s; instance.sh start, then
# the synthetic sessions registered again; 0: never), RESTART_GRACE=10 (s), EDIT_EVERY=120 (s;
# alternately a drop-in replaced by rename and another rewritten in place with cat >; 0:
# never), PROBE_EVERY=15 (s; 0: never), PROBE_TIMEOUT=5 (s), PROBE_USER=dave, RSS_EVERY=10 (s),
# RSS_WINDOW=300 (s; at most a third of SOAK_SECS), RSS_GROWTH=20 (%), AGENT_ARGS= (more flags
# for kickagent run). GOMEMLIMIT, if set, reaches the agent (the systemd unit sets 75MiB).
# The logs, samples and summary stay in the work directory printed at the start.
set -eEuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
SOAK_SECS=${SOAK_SECS:-3600} VER=${VER:-2.4} SESSIONS=${SESSIONS:-100000} SEED=${SEED:-1}
RULES=${RULES:-1000} INTERVAL=${INTERVAL:-1s} RESTART_EVERY=${RESTART_EVERY:-300}
RESTART_GRACE=${RESTART_GRACE:-10} EDIT_EVERY=${EDIT_EVERY:-120} PROBE_EVERY=${PROBE_EVERY:-15}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-5} PROBE_USER=${PROBE_USER:-dave} RSS_EVERY=${RSS_EVERY:-10}
RSS_WINDOW=${RSS_WINDOW:-300} RSS_GROWTH=${RSS_GROWTH:-20} AGENT_ARGS=${AGENT_ARGS:-}
inst=test/dovecot/instance.sh
log() { echo "$(date +%T) soak: $*" >&2; }
die() { log "$*"; exit 1; }
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
case $VER in 2.3) I=b23 ;; 2.4) I=b24 ;; *) die "VER must be 2.3 or 2.4, not '$VER'" ;; esac
((RULES >= 3)) || die "RULES must be at least 3"
command -v jq >/dev/null || die "needs jq"
# The RSS windows must not overlap: at most a third of the run each.
((RSS_WINDOW * 3 <= SOAK_SECS)) || RSS_WINDOW=$((SOAK_SECS / 3))

# running NAME: whether NAME's dovecot master runs (as instance.sh's master_pid decides).
running() {
  local env base conf pid
  env=$("$inst" env "$1" 2>/dev/null) || return 1
  base=$(sed -n "s/^KA_BASE_DIR='\(.*\)'$/\1/p" <<<"$env")
  conf=$(sed -n "s/^KA_CONF='\(.*\)'$/\1/p" <<<"$env")
  pid=$(cat "$base/master.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$conf"
}
running "$I" && die "$I is already running (another benchmark?); stop it first: $inst stop $I"

W=$(mktemp -d /tmp/kickagent-soak.XXXXXX)
apid='' spid='' started='' # what this script started and has not stopped yet
cleanup() {
  [ -z "$spid" ] || kill "$spid" 2>/dev/null || true
  if [ -n "$apid" ]; then
    kill "$apid" 2>/dev/null || true
    wait "$apid" 2>/dev/null || true
  fi
  [ -z "$started" ] || "$inst" stop "$I" >&2 || true
  log "logs, samples and summary kept in $W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log "work directory $W"

kver="work tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
[ -z "$(git status --porcelain -- cmd internal go.mod 2>/dev/null)" ] || kver="$kver + uncommitted changes"
log "building kickagent ($kver), bench/cmd/synth and bench/cmd/probe"
go build -o "$W/kickagent" ./cmd/kickagent
for c in synth probe; do go build -o "$W/$c" "./bench/cmd/$c"; done

# synth: registers the SESSIONS synthetic sessions (no process holds them; 2.3 pids > pid_max,
# 2.4 kick type N) and prints how long it took.
synth() {
  local t0=$EPOCHREALTIME
  "$W/synth" -inst "$I" -n "$SESSIONS" -seed "$SEED" >>"$W/instance.log" 2>&1 || die "synth failed: $(tail -3 "$W/instance.log")"
  since "$t0"
}
# since EPOCH: seconds from EPOCH to now, one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}'; }
log "starting $I (Dovecot $VER), registering $SESSIONS synthetic sessions"
started=1
"$inst" start "$I" >>"$W/instance.log" 2>&1 || die "$I did not start: $(tail -5 "$W/instance.log")"
declare -A E
while IFS='=' read -r k v; do v=${v#\'} E[$k]=${v%\'}; done < <("$inst" env "$I")
A=${E[KA_ANVIL]}
synth_s=$(synth)
log "synth: ${synth_s}s"

# ---- rules: two drop-ins in D, RULES in all ----
# Rules that select none of SyntheticMix's sessions (its addresses are IPv4 below 224.0.0.0
# and IPv6 in 2001:db8::/32, its users name@example.*/mail.test, its proxy destinations
# 10.1.0.1-4) and no session of the probe: networks in 240.0.0.0/4 and 2001:db9::/32, user
# masks and exact users in .invalid domains (some with services), proxy destinations in
# 172.31.0.0/16. Every edit changes the values of the network rules (SERIAL), so that each edit
# is a new ruleset. The in-place file ends with the probe's rule: a reload of half a file
# would lose it, and the probes would show it.
# gen PREFIX COUNT SERIAL [probe]: a drop-in of COUNT rules named soak-PREFIXnnnn.
gen() {
  awk -v p="$1" -v n="$2" -v s="$3" -v probe="${4:-}" -v pu="$PROBE_USER" 'BEGIN {
    print "rules:"
    for (i = 0; i < n; i++) {
      printf "  - name: soak-%s%04d\n", p, i
      k = i % 6
      if (k == 0) printf "    networks: [\"%d.%d.%d.0/24\"]\n", 240 + i % 16, int(i / 16) % 256, s % 256
      else if (k == 1) printf "    networks: [\"2001:db9:%x:%x::/64\"]\n", i, s % 65536
      else if (k == 2) printf "    users: [\"nobody%d-*@soak.invalid\"]\n", i
      else if (k == 3) printf "    users: [\"*@soak%d.invalid\"]\n    services: [imap, pop3]\n", i
      else if (k == 4) printf "    users: [\"nouser%d@example.invalid\"]\n    except_users: [\"nouser%d-x@example.invalid\"]\n", i, i
      else printf "    dest_hosts: [172.31.%d.%d]\n", int(i / 250) % 256, 1 + i % 250
    }
    if (probe) printf "  - name: soak-probe\n    users: [\"%s\"]\n    networks: [\"127.9.0.0/16\"]\n", pu
  }'
}
D=$W/rules.d
mkdir -p "$D"
NA=$((RULES / 2)) NB=$((RULES - RULES / 2 - 1))
gen a "$NA" 0 >"$D/10-renamed.yaml"
gen b "$NB" 0 probe >"$D/20-inplace.yaml"
"$W/kickagent" check --rules "$D" >"$W/check.txt" 2>&1 || die "the generated rules do not load: $(cat "$W/check.txt")"

# ---- the agent ----
# shellcheck disable=SC2086 # AGENT_ARGS is a list of flags
"$W/kickagent" run -a "$A" --rules-dir "$D" --interval "$INTERVAL" --idle-interval "${IDLE_INTERVAL:-$INTERVAL}" --metrics 127.0.0.1:0 \
  --audit-log "$W/audit.log" --state-dir "$W/state" $AGENT_ARGS 2>"$W/agent.log" &
apid=$!
port=
for ((i = 0; i < 100; i++)); do
  port=$(sed -n 's/.*msg="metrics listening".*addr=127.0.0.1:\([0-9]*\).*/\1/p' "$W/agent.log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || die "agent did not start: $(cat "$W/agent.log")"
# scrape: /metrics into metrics.txt; on a failed scrape metrics.txt keeps the last good one.
scrape() {
  curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" >"$W/metrics.tmp" && mv "$W/metrics.tmp" "$W/metrics.txt"
}
# metric NAME_AND_LABELS: its value in the last scrape (0 when absent), summed over matches.
metric() { awk -v m="$1" 'index($0, m) == 1 && substr($0, length(m) + 1, 1) ~ /[ {]/ {s += $NF} END {printf "%.0f", s}' "$W/metrics.txt"; }
: >"$W/metrics.txt"
for ((i = 0; i < 300; i++)); do
  scrape || true
  [ "$(metric 'kickagent_cycles_total{result="ok"}')" -ge 1 ] && break
  sleep 0.1
done
[ "$(metric 'kickagent_cycles_total{result="ok"}')" -ge 1 ] || die "agent: no first cycle: $(tail -3 "$W/agent.log")"
cp "$W/metrics.txt" "$W/metrics-start.txt"
ok0=$(metric 'kickagent_cycles_total{result="ok"}') err0=$(metric 'kickagent_cycles_total{result="error"}')
rok0=$(metric 'kickagent_reloads_total{result="ok"}') rerr0=$(metric 'kickagent_reloads_total{result="error"}')
log "agent $apid running (metrics :$port); soak for ${SOAK_SECS}s: restart every ${RESTART_EVERY}s, edit every ${EDIT_EVERY}s, probe every ${PROBE_EVERY}s"

# RSS sampler: "epoch VmRSS_kB" every RSS_EVERY s while the agent lives.
(
  while [ -r "/proc/$apid/status" ]; do
    echo "$EPOCHREALTIME $(awk '/^VmRSS/ {print $2}' "/proc/$apid/status")" >>"$W/rss.tsv"
    sleep "$RSS_EVERY"
  done
) &
spid=$!

# restart: the instance restarted (stop, start), the agent's next good cycle awaited, and the
# synthetic sessions registered again; appends "start_epoch end_epoch start_s back_s synth_s"
# to restarts.tsv (back_s: from Dovecot up to the agent's next good cycle; -1: none in 30 s).
restart() {
  local a b st ss back=-1 up ok i
  a=$EPOCHREALTIME
  "$inst" start "$I" >>"$W/instance.log" 2>&1 || die "$I did not restart: $(tail -5 "$W/instance.log")"
  st=$(since "$a")
  up=$EPOCHREALTIME
  scrape || true
  ok=$(metric 'kickagent_cycles_total{result="ok"}')
  for ((i = 0; i < 300; i++)); do
    sleep 0.1
    scrape || continue
    if [ "$(metric 'kickagent_cycles_total{result="ok"}')" -gt "$ok" ]; then
      back=$(since "$up")
      break
    fi
  done
  ss=$(synth)
  b=$EPOCHREALTIME
  echo "$a $b $st $back $ss" >>"$W/restarts.tsv"
  log "restart $(wc -l <"$W/restarts.tsv"): instance ${st}s, agent cycling again after ${back}s, synth ${ss}s"
}
# edit N: edit number N; odd: 10-renamed.yaml replaced by rename, even: 20-inplace.yaml
# rewritten in place. Appends "epoch kind reloaded_within_s rules_loaded" to edits.tsv
# (reloaded_within_s -1: no reload seen within 10 s; rules_loaded: kickagent_rules_loaded then,
# RULES unless a file was read half-written).
edits=0
edit() {
  local n=$1 kind a i before seen=-1 loaded=-1
  scrape || true
  before=$(metric 'kickagent_reloads_total{result="ok"}')
  if ((n % 2)); then
    kind=rename
    gen a "$NA" "$n" >"$D/.10-renamed.yaml.tmp"
    a=$EPOCHREALTIME
    mv "$D/.10-renamed.yaml.tmp" "$D/10-renamed.yaml"
  else
    kind=in-place
    gen b "$NB" "$n" probe >"$W/inplace.next"
    a=$EPOCHREALTIME
    cat "$W/inplace.next" >"$D/20-inplace.yaml"
  fi
  for ((i = 0; i < 100; i++)); do
    sleep 0.1
    scrape || continue
    if [ "$(metric 'kickagent_reloads_total{result="ok"}')" -gt "$before" ]; then
      seen=$(since "$a")
      loaded=$(metric kickagent_rules_loaded)
      break
    fi
  done
  echo "$a $kind $seen $loaded" >>"$W/edits.tsv"
  log "edit $n ($kind): reload seen after ${seen}s, $loaded rules loaded"
}
# probe N: a real IMAP login of PROBE_USER from 127.9.x.y (one address per probe); appends
# "N exit probe-output" to probes.txt.
probe() {
  local n=$1 src out rc=0
  src=127.9.$((n / 250 % 256)).$((1 + n % 250))
  out=$("$W/probe" -inst "$I" -src "$src" -user "$PROBE_USER" -timeout "${PROBE_TIMEOUT}s") || rc=$?
  echo "$n $rc $out" >>"$W/probes.txt"
  ((rc == 0)) || log "probe $n from $src: exit $rc: $out"
}

: >"$W/restarts.tsv"
: >"$W/edits.tsv"
: >"$W/probes.txt"
# next EVERY NEXT NOW: the first multiple of EVERY after NOW on NEXT's schedule (events
# delayed by a restart are not made up in a burst).
next() { echo $(($2 + $1 * (($3 - $2) / $1 + 1))); }
t0=$EPOCHREALTIME s0=$SECONDS load0=$(cut -d' ' -f1-3 /proc/loadavg)
nr=$((RESTART_EVERY > 0 ? RESTART_EVERY : SOAK_SECS + 1))
ne=$((EDIT_EVERY > 0 ? EDIT_EVERY : SOAK_SECS + 1))
np=$((PROBE_EVERY > 0 ? PROBE_EVERY / 3 + 1 : SOAK_SECS + 1))
probes=0 alive=1
while ((SECONDS - s0 < SOAK_SECS)); do
  now=$((SECONDS - s0))
  if ! kill -0 "$apid" 2>/dev/null; then
    alive=0
    log "the agent exited: $(tail -3 "$W/agent.log")"
    break
  fi
  if ((now >= nr)); then
    restart
    nr=$(next "$RESTART_EVERY" "$nr" $((SECONDS - s0)))
  elif ((now >= ne)); then
    edits=$((edits + 1))
    edit "$edits"
    ne=$(next "$EDIT_EVERY" "$ne" $((SECONDS - s0)))
  elif ((now >= np)); then
    probes=$((probes + 1))
    probe "$probes"
    np=$(next "$PROBE_EVERY" "$np" $((SECONDS - s0)))
  else
    sleep 0.2
  fi
done
t1=$EPOCHREALTIME
kill "$spid" 2>/dev/null || true
spid=
scrape || true
cp "$W/metrics.txt" "$W/metrics-end.txt"
if [ "$alive" = 1 ]; then
  kill "$apid"
  arc=0
  wait "$apid" || arc=$?
  apid=
  [ "$arc" = 0 ] || { alive=0; log "the agent exited $arc on SIGTERM"; }
fi

# ---- report ----
dur=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b - a}')
# stats FILE FROM TO: "n median max" (MB) of the RSS samples taken in [FROM, TO).
stats() {
  awk -v a="$2" -v b="$3" '$1 >= a && $1 < b {print $2 / 1024}' "$1" | sort -g |
    awk '{v[NR] = $1} END {if (!NR) {print "0 0 0"; exit}
      m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%d %.1f %.1f\n", NR, m, v[NR]}'
}
read -r rn1 rm1 _ <<<"$(stats "$W/rss.tsv" "$t0" "$(awk -v a="$t0" -v w="$RSS_WINDOW" 'BEGIN {printf "%.6f", a + w}')")"
read -r rn2 rm2 _ <<<"$(stats "$W/rss.tsv" "$(awk -v a="$t1" -v w="$RSS_WINDOW" 'BEGIN {printf "%.6f", a - w}')" "$t1")"
read -r rna _ rmax <<<"$(stats "$W/rss.tsv" 0 "$t1")"
rss_ok=$(awk -v a="$rm1" -v b="$rm2" -v g="$RSS_GROWTH" -v n1="$rn1" -v n2="$rn2" 'BEGIN {print (n1 > 0 && n2 > 0 && b <= a * (1 + g / 100)) ? 1 : 0}')

# Failed cycles: the agent's log lines for them (after the first cycle), each explained when
# within a restart window [start - 1 s, end of synth + RESTART_GRACE].
{ grep -E 'msg="(anvil snapshot failed|rule evaluation failed)' "$W/agent.log" || true; } |
  sed 's/^time=\([^ ]*\) .*/\1/' | { date -f - +%s.%3N 2>/dev/null || true; } |
  awk -v t0="$t0" '$1 >= t0' >"$W/failed-cycles.txt"
nfail=$(wc -l <"$W/failed-cycles.txt")
unexpl=$(awk -v g="$RESTART_GRACE" 'FILENAME == ARGV[1] {a[NR] = $1 - 1; b[NR] = $2 + g; n = NR; next}
  {ok = 0; for (i = 1; i <= n; i++) if ($1 >= a[i] && $1 <= b[i]) ok = 1; if (!ok) u++} END {print u + 0}' \
  "$W/restarts.tsv" "$W/failed-cycles.txt")
ok1=$(metric 'kickagent_cycles_total{result="ok"}') err1=$(metric 'kickagent_cycles_total{result="error"}')
mfail=$((err1 - err0))
cdur=$(awk '/^kickagent_cycle_duration_seconds_sum/ {s = $2} /^kickagent_cycle_duration_seconds_count/ {n = $2} END {if (n) printf "%.3f", s / n}' "$W/metrics.txt")

# Probes: closed, and each closed one explained by a kick-intent record from its address (the
# agent sent a kick); the outcomes recorded for them, by result.
nprobe=$(wc -l <"$W/probes.txt")
nclosed=$(awk '$2 == 0' "$W/probes.txt" | wc -l)
# The audit log parsed once: a line that is not JSON fails the audit criterion, and the
# records before it are used.
ajson=1
AU=$W/audit.log
[ -e "$AU" ] || AU=/dev/null # no record ever written
jq -c . "$AU" >"$W/audit.jsonl" 2>"$W/audit-jq.err" || ajson=0
jq -r 'select(.result == "kick-intent") | .ip' "$W/audit.jsonl" | sort -u >"$W/intent-ips.txt"
naud=$(awk 'FILENAME == ARGV[1] {k[$1] = 1; next} $2 == 0 {sub(/^src=/, "", $3); if ($3 in k) n++} END {print n + 0}' "$W/intent-ips.txt" "$W/probes.txt")
# The last outcome recorded for each probe's address.
jq -r 'select(.result != "kick-intent") | [.ip, .result] | @tsv' "$W/audit.jsonl" >"$W/outcomes.tsv"
pout=$(awk -F'\t' 'FILENAME == ARGV[1] {o[$1] = $2; next} {split($0, f, " "); sub(/^src=/, "", f[3]); c[(f[3] in o) ? o[f[3]] : "none"]++}
  END {for (r in c) printf "%s %d\n", r, c[r]}' "$W/outcomes.tsv" "$W/probes.txt" | sort | paste -sd, | sed 's/,/, /g')
pmed=$(awk '$2 == 0 {for (i = 3; i <= NF; i++) if ($i ~ /^after_s=/) {sub(/^after_s=/, "", $i); print $i}}' "$W/probes.txt" |
  sort -g | awk '{v[NR] = $1} END {if (NR) printf "median %.2f s, max %.2f s", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[NR]; else print "-"}')

# Kicks: agent log, audit log, metric; intents before outcomes; nothing but the probes.
klog=$(grep -c 'msg="session kicked"' "$W/agent.log" || true)
kaud=$(jq -r 'select(.result == "kicked") | 1' "$W/audit.jsonl" | wc -l)
kmet=$(metric 'kickagent_kicks_total{result="kicked",rule="soak-probe"}')
kall=$(awk '/^kickagent_kicks_total\{/ && /result="kicked"/ {s += $NF} END {printf "%.0f", s}' "$W/metrics.txt")
# Per session (user, ip, pid, conn_guid): kicked lines without an earlier intent, and intents
# without a later outcome (kicked, still-connected, refused-collateral, failed).
read -r noint noout < <(jq -r '[.result, .user, .ip, (.pid | tostring), .conn_guid] | @tsv' "$W/audit.jsonl" |
  awk -F'\t' '{k = $2 FS $3 FS $4 FS $5}
    $1 == "kick-intent" {i[k] = 1; open[k] = 1}
    $1 == "kicked" && !(k in i) {n++}
    $1 ~ /^(kicked|still-connected|refused-collateral|failed)$/ {delete open[k]}
    END {for (k in open) m++; print n + 0, m + 0}')
other=$(jq -r --arg u "$PROBE_USER" 'select(.rule != "soak-probe" or .user != $u or (.ip | startswith("127.9.") | not)) | 1' "$W/audit.jsonl" | wc -l)
jq -r '.result' "$W/audit.jsonl" | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1} END {print ""}' >"$W/audit-results.txt"
awerr=$(metric kickagent_audit_write_errors_total) adrop=$(metric kickagent_audit_records_dropped_total)

# Reloads against edits.
rok=$(($(metric 'kickagent_reloads_total{result="ok"}') - rok0)) rerr=$(($(metric 'kickagent_reloads_total{result="error"}') - rerr0))
nedit=$(wc -l <"$W/edits.tsv")
emiss=$(awk '$3 < 0' "$W/edits.tsv" | wc -l)
epart=$(awk -v r="$RULES" '$4 != r' "$W/edits.tsv" | wc -l)
emax=$(awk 'BEGIN {m = 0} $3 > m {m = $3} END {print m}' "$W/edits.tsv")
nrest=$(wc -l <"$W/restarts.tsv")
# range COLUMN: "min–max s" of a column of restarts.tsv.
range() { awk -v c="$1" '{print $c}' "$W/restarts.tsv" | sort -g | awk '{v[NR] = $1} END {if (NR) printf "%s–%s s", v[1], v[NR]; else print "-"}'; }
rback=$(awk '$4 < 0' "$W/restarts.tsv" | wc -l)
# Warnings and errors the agent logged, by message.
grep -E 'level=(WARN|ERROR)' "$W/agent.log" | sed 's/.*level=\([A-Z]*\) msg="\([^"]*\)".*/\1 \2/' |
  sort | uniq -c | sort -rn >"$W/warnings.txt" || true

# The criteria: "1|0 description" lines.
b() { "$@" && echo 1 || echo 0; }
{
  echo "$rss_ok RSS flat: last median ≤ first median + ${RSS_GROWTH} %"
  echo "$(b test "$unexpl" = 0 -a "$nfail" = "$mfail") 0 unexplained failed cycles (and log = metric)"
  echo "$(b test "$rback" = 0) the agent cycling again within 30 s of every restart"
  echo "$(b test "$nprobe" -gt 0 -a "$nclosed" = "$nprobe" -a "$naud" = "$nclosed") every probe closed by an audited kick"
  echo "$(b test "$klog" = "$kaud" -a "$kaud" = "$kall" -a "$noint" = 0 -a "$noout" = 0) an audit line for every kick, each after its intent; every intent has an outcome"
  echo "$(b test "$other" = 0 -a "$awerr" = 0 -a "$adrop" = 0 -a "$ajson" = 1) nothing else audited or kicked; no audit write error; every audit line JSON"
  echo "$(b test "$rok" = "$nedit" -a "$rerr" = 0 -a "$emiss" = 0 -a "$epart" = 0) every edit reloaded whole, none failed"
  echo "$alive agent alive to the end"
} >"$W/criteria.txt"
{
  echo "## Soak: Dovecot $VER ($I), $SESSIONS sessions, $RULES rules, interval $INTERVAL"
  echo
  echo "kickagent $kver; GOMEMLIMIT ${GOMEMLIMIT:-unset}; $(date -u '+%Y-%m-%d %H:%M UTC'); load at start $load0, at end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "\`SOAK_SECS=$SOAK_SECS VER=$VER SESSIONS=$SESSIONS RULES=$RULES INTERVAL=$INTERVAL RESTART_EVERY=$RESTART_EVERY EDIT_EVERY=$EDIT_EVERY PROBE_EVERY=$PROBE_EVERY bench/soak.sh\`"
  echo
  echo "| Measure | Figure |"
  echo "|---|---|"
  echo "| Duration | ${dur} s; synthetic sessions registered in ${synth_s} s at start |"
  echo "| Cycles | $((ok1 - ok0)) ok, $mfail failed (kickagent_cycles_total); mean cycle $cdur s |"
  echo "| Failed cycles in the agent log | $nfail: $((nfail - unexpl)) within a restart window, $unexpl unexplained |"
  echo "| Dovecot restarts | $nrest: instance.sh start $(range 3); the agent's next good cycle $(range 4) after; re-registering the sessions $(range 5) |"
  echo "| RSS (VmRSS, every ${RSS_EVERY} s) | first ${RSS_WINDOW} s median $rm1 MB ($rn1 samples), last ${RSS_WINDOW} s median $rm2 MB ($rn2), max $rmax MB ($rna samples) |"
  echo "| Probes ($PROBE_USER, IMAP) closed within ${PROBE_TIMEOUT} s | $nclosed / $nprobe ($pmed after login); $naud of the closed with a kick-intent record from their address; last outcome recorded: $pout |"
  echo "| Kicks | agent log $klog, audit kicked $kaud, kicks_total{result=kicked} $kall (soak-probe $kmet); kicked without an earlier intent: $noint; intents without an outcome: $noout |"
  echo "| Audit records | $(cat "$W/audit-results.txt"); for other sessions than the probes: $other; write errors $awerr, dropped $adrop; $([ "$ajson" = 1 ] && echo "every line JSON" || echo "**not JSON: $(head -c 200 "$W/audit-jq.err")**") |"
  echo "| Edits → reloads | $nedit edits ($(awk '$2 == "rename"' "$W/edits.tsv" | wc -l) rename, $(awk '$2 == "in-place"' "$W/edits.tsv" | wc -l) in place), reloads ok $rok, failed $rerr; slowest reload seen after ${emax} s, $emiss not within 10 s; $epart with other than $RULES rules loaded after |"
  echo "| Agent | $([ "$alive" = 1 ] && echo "alive at the end, exited 0 on SIGTERM" || echo "**died or failed to stop**") |"
  echo
  echo "| Criterion | |"
  echo "|---|---|"
  while read -r ok d; do echo "| $d | $([ "$ok" = 1 ] && echo met || echo '**FAILED**') |"; done <"$W/criteria.txt"
  if [ -s "$W/warnings.txt" ]; then
    echo
    echo "Agent warnings and errors (count, level, message):"
    echo
    echo '```'
    cat "$W/warnings.txt"
    echo '```'
  fi
} | tee "$W/summary.md"
if grep -q '^0 ' "$W/criteria.txt"; then
  log "FAILED: $(sed -n 's/^0 //p' "$W/criteria.txt" | paste -sd ';')"
  exit 1
fi
log "all criteria met"
