#!/usr/bin/env bash
# Before/after of issue 15's two measures, two builds side by side in one run on real Dovecot:
#   - the agent's CPU per cycle (utime+stime from /proc/PID/stat over the cycles counted by
#     kickagent_cycles_total, as bench/run.sh measures it): `kickagent run --dry-run --interval 5s
#     --rules mix1000.yaml` on b24 holding SESSIONS synthetic sessions, with the systemd unit's
#     GOMEMLIMIT/GOGC and with Go's defaults; RUNS runs of RUN_SECS seconds per build and setting,
#     the builds alternating;
#   - the aggregated `kickagent who` against `doveadm who` on b23 (2.3), ROUNDS rounds of
#     kickagent before, kickagent after, doveadm and the paced raw read, in an order that rotates
#     (as bench/run.sh times them: wall time of the process).
# Checked once: both builds print the same aggregated `who` and decide the same in a dry run.
# Prints a markdown section. Needs root and test/dovecot/install.sh; uses only b23 and b24 and
# refuses to run if either already runs; stops, on exit, the ones it started.
#
#   bench/cpu.sh BEFORE          # knobs: SESSIONS=100000 SEED=1 ROUNDS=11 RUNS=3 RUN_SECS=30
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
export KA_ROOT=${KA_ROOT:-$PWD/.dovecot}
BEFORE=${1:-}
SESSIONS=${SESSIONS:-100000} SEED=${SEED:-1} ROUNDS=${ROUNDS:-11} RUNS=${RUNS:-3} RUN_SECS=${RUN_SECS:-30}
[ -n "$BEFORE" ] || { echo "usage: bench/cpu.sh BEFORE" >&2; exit 64; }
inst=test/dovecot/instance.sh
W=$(mktemp -d /tmp/kickagent-cpu.XXXXXX)
started=() apid=
cleanup() {
  local i
  [ -z "$apid" ] || kill "$apid" 2>/dev/null || true
  for i in "${started[@]}"; do "$inst" stop "$i" >&2 || true; done
  [[ " ${started[*]} " != *" b24 "* ]] || "$inst" release >&2 || true
  rm -rf "$W"
}
trap cleanup EXIT
log() { echo "$(date +%T) cpu: $*" >&2; }
die() { log "$*"; exit 1; }

declare -A desc
build() {
  local src=.
  desc[$1]="work tree at $(git rev-parse --short HEAD)"
  [ -z "$(git status --porcelain -- cmd internal go.mod go.sum)" ] || desc[$1]+=" + uncommitted changes"
  if [ -n "${2:-}" ]; then
    src=$W/src-$1
    mkdir -p "$src"
    git archive "$2" | tar -x -C "$src"
    desc[$1]="commit $(git rev-parse --short "$2")"
  fi
  log "building $1: ${desc[$1]}"
  (cd "$src" && go build -o "$W/ka-$1" ./cmd/kickagent)
}
build before "$BEFORE"
build after
for c in synth rawdump cycle; do go build -o "$W/$c" "./bench/cmd/$c"; done
"$W/cycle" gen -kind mix -rules 1000 -n "$SESSIONS" -seed "$SEED" -o "$W/mix1000.yaml"
mapfile -t unitenv < <(sed -n 's/^Environment=\(GOMEMLIMIT=.*\|GOGC=.*\)$/\1/p' systemd/kickagent.service)

running() {
  local b p
  b=$(sed -n "s/^KA_BASE_DIR='\(.*\)'$/\1/p" "$KA_ROOT/inst/$1/env" 2>/dev/null) || return 1
  p=$(cat "$b/master.pid" 2>/dev/null) || return 1
  [ -n "$p" ] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q dovecot
}
envof() { "$inst" env "$1" | sed -n "s/^$2='\(.*\)'$/\1/p"; }
for i in b23 b24; do ! running $i || die "$i already runs; not touching it"; done
load_start=$(uptime)

# ---- b23: aggregated who ----
started+=(b23)
"$inst" start b23 >&2
"$W/synth" -inst b23 -n "$SESSIONS" -seed "$SEED" >&2
A=$(envof b23 KA_ANVIL)
read -ra DOVEADM <<<"$(envof b23 KA_DOVEADM)"
"$W/ka-before" who -a "$A" >"$W/who.before" || die "before: who failed"
"$W/ka-after" who -a "$A" >"$W/who.after" || die "after: who failed"
"${DOVEADM[@]}" who >"$W/who.dov" || die "doveadm who failed"
whosame=no
cmp -s "$W/who.before" "$W/who.after" && whosame=yes
whorows="$(($(wc -l <"$W/who.before") - 1)) / $(($(wc -l <"$W/who.after") - 1)) / $(($(wc -l <"$W/who.dov") - 1))"
declare -A cmd=([before]="$W/ka-before who -a $A" [after]="$W/ka-after who -a $A" [dov]="${DOVEADM[*]} who" [rawp]="$W/rawdump -pace -q -v 23 $A")
names=(before after dov rawp)
log "b23: $ROUNDS rounds of ${names[*]}"
: >"$W/who.tsv"
for ((r = 0; r < ROUNDS; r++)); do
  for ((j = 0; j < ${#names[@]}; j++)); do
    k=${names[$(((r + j) % ${#names[@]}))]}
    t0=${EPOCHREALTIME/./}
    ${cmd[$k]} >/dev/null || die "${cmd[$k]} failed"
    t1=${EPOCHREALTIME/./}
    echo "$k $((t1 - t0))" >>"$W/who.tsv"
  done
done
"$inst" stop b23 >&2
started=()

# ---- b24: the agent's CPU per cycle ----
started+=(b24)
"$inst" start b24 >&2
"$W/synth" -inst b24 -n "$SESSIONS" -seed "$SEED" >&2
A=$(envof b24 KA_ANVIL)
for t in before after; do
  "$W/ka-$t" run --once --dry-run --metrics off -a "$A" --rules "$W/mix1000.yaml" --audit-log - 2>/dev/null |
    sed 's/^{"time":"[^"]*",/{/' | sort >"$W/once.$t" || die "$t: run --once failed"
done
oncesame=no
cmp -s "$W/once.before" "$W/once.after" && oncesame=yes
oncerows="$(wc -l <"$W/once.before") / $(wc -l <"$W/once.after")"
# agentrun TAG SETTING [ENV...]: one agent; appends "TAG SETTING cycles cpu_ticks hwm_kB" to cpu.tsv.
agentrun() {
  local tag=$1 set=$2 port u0 s0 c0 u1 s1 c1 i hwm
  shift 2
  env "$@" "$W/ka-$tag" run -a "$A" --rules "$W/mix1000.yaml" --dry-run --interval 5s --metrics 127.0.0.1:0 2>"$W/agent.log" &
  apid=$!
  for ((i = 0; i < 100; i++)); do
    port=$(sed -n 's/.*msg="metrics listening".*addr=127.0.0.1:\([0-9]*\).*/\1/p' "$W/agent.log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || die "agent did not start: $(cat "$W/agent.log")"
  cycles() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^kickagent_cycles_total\{result="ok"\}/ {print $2}'; }
  # Counted from the end of the first cycle (or the one after, if the poll missed it).
  for ((i = 0; i < 600; i++)); do
    [ "$(cycles)" -ge 1 ] 2>/dev/null && break
    sleep 0.1
  done
  [ "$(cycles)" -ge 1 ] 2>/dev/null || die "agent: no first cycle: $(tail -3 "$W/agent.log")"
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$apid/stat")
  c0=$(cycles)
  sleep "$RUN_SECS"
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$apid/stat")
  c1=$(cycles)
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$apid/status")
  kill "$apid"
  wait "$apid" || true
  apid=
  echo "$tag $set $((c1 - c0)) $((u1 - u0 + s1 - s0)) $hwm" >>"$W/cpu.tsv"
}
: >"$W/cpu.tsv"
log "b24: $RUNS runs of $RUN_SECS s per build, unit settings (${unitenv[*]}) and Go defaults"
for ((r = 0; r < RUNS; r++)); do
  first=before second=after
  ((r % 2 == 0)) || first=after second=before
  for t in $first $second; do agentrun "$t" unit "${unitenv[@]}"; done
  for t in $second $first; do agentrun "$t" default; done
done
load_end=$(uptime)

hz=$(getconf CLK_TCK)
# wstat KEY: "median min max n" of who.tsv in seconds.
wstat() {
  awk -v k="$1" '$1 == k {print $2 / 1e6}' "$W/who.tsv" | sort -g |
    awk '{a[NR] = $1} END {printf "%.3f %.3f %.3f %d\n", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2, a[1], a[NR], NR}'
}
# cstat TAG SETTING: "cpu_per_cycle(all runs pooled) per-run list cycles max_hwm_MB".
cstat() {
  awk -v t="$1" -v s="$2" -v hz="$hz" '$1 == t && $2 == s {c += $3; u += $4; l = l sprintf(" %.3f", $3 ? $4 / hz / $3 : 0); if ($5 > h) h = $5}
    END {printf "%.3f %d %d%s\n", c ? u / hz / c : 0, c, h / 1024, l}' "$W/cpu.tsv"
}
read -r bm bmin bmax bn <<<"$(wstat before)"
read -r am amin amax an <<<"$(wstat after)"
read -r dm dmin dmax dn <<<"$(wstat dov)"
read -r pm pmin pmax pn <<<"$(wstat rawp)"
r() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "Reproduce: \`SESSIONS=$SESSIONS ROUNDS=$ROUNDS RUNS=$RUNS RUN_SECS=$RUN_SECS bench/cpu.sh $BEFORE\` (as root, after \`test/dovecot/install.sh\`)."
echo "Before: ${desc[before]}; after: ${desc[after]}. $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) × $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1);"
echo "load ${load_start#*load average: } at start, ${load_end#*load average: } at end."
echo
echo "Aggregated \`who\` on Dovecot 2.3 (b23, $SESSIONS sessions), $ROUNDS rounds, wall time of the process:"
echo
echo "| Command | median (s) | min–max (s) | n | median / doveadm who |"
echo "|---|---|---|---|---|"
echo "| \`kickagent who\`, before | $bm | $bmin–$bmax | $bn | $(r "$bm" "$dm") |"
echo "| \`kickagent who\`, after | $am | $amin–$amax | $an | $(r "$am" "$dm") |"
echo "| \`doveadm who\` | $dm | $dmin–$dmax | $dn | 1.00 |"
echo "| paced raw dump read (floor) | $pm | $pmin–$pmax | $pn | $(r "$pm" "$dm") |"
echo
echo "Rows before / after / doveadm: $whorows; before and after print the same: $whosame."
echo
echo "Agent CPU per cycle on Dovecot 2.4 (b24, $SESSIONS sessions, mix1000.yaml, dry run, 5 s interval), $RUNS runs of"
echo "$RUN_SECS s per build and setting after the first cycle; CPU per cycle is all runs' CPU over all their cycles:"
echo
echo "| Setting | build | CPU per cycle (s) | cycles | per run (s) | VmHWM max (MB) |"
echo "|---|---|---|---|---|---|"
for s in unit default; do
  for t in before after; do
    read -r c n h l <<<"$(cstat $t $s)"
    label="systemd unit (${unitenv[*]})"
    [ $s = unit ] || label="Go defaults"
    echo "| $label | $t | $c | $n | $l | $h |"
  done
done
echo
echo "Decisions of \`run --once --dry-run --audit-log -\` before / after: $oncerows lines; identical: $oncesame."
