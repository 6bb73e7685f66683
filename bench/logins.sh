#!/usr/bin/env bash
# What the agent costs Dovecot's logins (issue 15): IMAP login latency (connect → LOGIN's tagged
# OK, bench/cmd/policyload logins) on real Dovecot 2.3 (b23) and 2.4 (b24) holding SESSIONS
# synthetic sessions, without the agent and with it, and anvil's CPU time per agent cycle.
#
#   flock /work/b.lock bench/logins.sh            # as root, after test/dovecot/install.sh
#   BEFORE=/tmp/old/kickagent bench/logins.sh     # adds the case "before": that binary
#
# Cases, interleaved over ROUNDS rounds (the order rotates each round), one run per version:
#   none        no agent
#   defaults    kickagent run with its defaults (5 s interval) on a realistic rule set
#   interval1s  the same with --interval 1s
#   before      the defaults case with the kickagent binary $BEFORE (only when BEFORE is set)
#   raw-S       for each S in RAW (plain, paced, wait=D): no agent, a bench/cmd/rawdump loop with
#               that read strategy, one dump every RAW_INTERVAL (5 s): what a reader alone costs
# The rule set, in the agent's --rules-dir: three network blocks (kickagent block) of networks
# that hold no login source, a reset (kickagent reset --no-cache-flush) of a user without
# sessions, and a drain of a dest host no session goes to (the drain job's rule, kept as an
# operator's file: a drain job's own file is deleted by the agent once it has nothing to kick,
# which would change the rules during the measurement). `kickagent plan` must select nothing:
# no case kicks anything, so every difference is the agent's dumps.
# Each agent runs WARM seconds past its first cycle before the logins start (steady state).
# Logins: N per case per round at RATE/s, each from its own 127.S.x.y (S differs per case and
# round). Anvil's CPU: utime+stime of anvil (/proc/PID/stat, 10 ms ticks) over the logins; the
# none case's rate (logins cost anvil CPU too) is subtracted and the rest divided by the agent's
# cycles in that time (kickagent_cycles_total).
#
# Knobs: SESSIONS=100000 SEED=1 ROUNDS=3 RATE=20 N=400 WARM=10 VERSIONS="23 24" BEFORE=
# RAW= (e.g. "paced wait=20ms") RAW_INTERVAL=5
# OUT=- (markdown section; a file name writes it there) DATA= (keep the raw latencies there).
# Needs KA_ROOT as test/dovecot/instance.sh does. Uses only b23/b24 (restarted, stopped at the
# end); run it under the benchmark lock.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-100000} SEED=${SEED:-1} ROUNDS=${ROUNDS:-3} RATE=${RATE:-20} N=${N:-400}
WARM=${WARM:-10} VERSIONS=${VERSIONS:-"23 24"} BEFORE=${BEFORE:-} OUT=${OUT:--}
RAW=${RAW:-} RAW_INTERVAL=${RAW_INTERVAL:-5}
inst=test/dovecot/instance.sh
W=$(mktemp -d /tmp/kickagent-logins.XXXXXX)
D=${DATA:-$W/data}
mkdir -p "$D"
apid= # an agent this script started and has not stopped yet
started=()
cleanup() {
  [ -z "$apid" ] || { kill "$apid" 2>/dev/null && wait "$apid"; } || true
  local v
  for v in "${started[@]}"; do "$inst" stop "b$v" >&2 || true; done
  if [[ " ${started[*]} " == *" 24 "* ]]; then "$inst" release >&2 || true; fi
  rm -rf "$W"
}
trap cleanup EXIT
log() { echo "$(date +%T) logins: $*" >&2; }
die() { log "$*"; exit 1; }
[ -z "$BEFORE" ] || [ -x "$BEFORE" ] || die "BEFORE=$BEFORE is not an executable"

log "building kickagent (work tree at $(git rev-parse --short HEAD)) and bench/cmd/{synth,policyload,rawdump}"
go build -o "$W/kickagent" ./cmd/kickagent
for c in synth policyload rawdump; do go build -o "$W/$c" "./bench/cmd/$c"; done
hz=$(getconf CLK_TCK)
cases=(none defaults interval1s)
[ -z "$BEFORE" ] || cases+=(before)
for s in $RAW; do
  case $s in plain | paced | wait=*) cases+=("raw-$s") ;; *) die "RAW: unknown strategy $s (plain, paced, wait=D)" ;; esac
done

# anvil_pid VERSION: the anvil child of that instance's master.
anvil_pid() {
  local m
  m=$(cat "$(env_of "$1" KA_BASE_DIR)/master.pid")
  pgrep -P "$m" -x anvil
}
env_of() { "$inst" env "b$1" | sed -n "s/^$2='\(.*\)'$/\1/p"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # ticks
# cycles PORT: all cycles the agent ran (any result), and the failed ones.
cycles() {
  curl -s "http://127.0.0.1:$1/metrics" |
    awk '/^kickagent_cycles_total\{/ {n += $2; if ($1 !~ /result="ok"/) f += $2} END {printf "%d %d\n", n, f}'
}

# start_agent BIN LOG ARGS...: starts an agent, waits for its first cycle; sets apid and port.
start_agent() {
  local bin=$1 lg=$2 i
  shift 2
  "$bin" run -a "$A" --rules-dir "$R" --state-dir "$W/state" --metrics 127.0.0.1:0 "$@" 2>"$lg" &
  apid=$!
  port=
  for ((i = 0; i < 100; i++)); do
    port=$(sed -n 's/.*msg="metrics listening".*addr=127.0.0.1:\([0-9]*\).*/\1/p' "$lg")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || die "agent did not start: $(cat "$lg")"
  for ((i = 0; i < 300; i++)); do
    read -r n _ < <(cycles "$port")
    ((n >= 1)) && return 0
    sleep 0.1
  done
  die "agent: no first cycle: $(tail -3 "$lg")"
}
stop_agent() {
  kill "$apid"
  wait "$apid" || true
  apid=
}
# start_raw STRATEGY: a loop of rawdump reads (the agent's dumps without the agent); counts them
# in $W/raw.count. Sets apid.
start_raw() {
  local f=()
  case $1 in paced) f=(-pace) ;; wait=*) f=(-wait "${1#wait=}") ;; esac
  : >"$W/raw.count"
  while :; do
    "$W/rawdump" -q "${f[@]}" -v "$ver" "$A" || true
    echo >>"$W/raw.count"
    sleep "$RAW_INTERVAL"
  done &
  apid=$!
}
# counts: the cycles (or raw dumps) so far and the failed ones.
counts() {
  case $k in
  none) echo 0 0 ;;
  raw-*) echo "$(wc -l <"$W/raw.count") 0" ;;
  *) cycles "$port" ;;
  esac
}

: >"$D/cases.tsv" # ver case round p99 max errors secs anvil_ticks cycles failed_cycles
src=70
for ver in $VERSIONS; do
  log "starting b$ver, registering $SESSIONS synthetic sessions"
  "$inst" start "b$ver" >&2
  started+=("$ver")
  "$W/synth" -inst "b$ver" -n "$SESSIONS" -seed "$SEED" >&2
  A=$(env_of "$ver" KA_ANVIL)
  apv=$(anvil_pid "$ver") || die "b$ver: no anvil process"
  # The rule set (fresh per version: the drain check reads this anvil).
  R=$W/rules$ver
  rm -rf "$R" "$W/state" && mkdir -p "$R" "$W/state"
  for net in 192.0.2.0/24 203.0.113.0/24 2001:db8:bad::/48; do
    "$W/kickagent" block "$net" --rules-dir "$R" --reason "bench: no login comes from here" >&2
  done
  "$W/kickagent" reset nobody-reset@example.invalid --no-cache-flush --rules-dir "$R" >&2
  "$W/kickagent" drain --dest 10.9.9.9 -a "$A" --rules-dir "$W/drainjob$ver" >&2 || true
  dj=$(ls "$W/drainjob$ver"/*.yaml) || die "no drain rule written"
  grep -v '^# Managed by kickagent' "$dj" >"$R/50-drain-maintenance.yaml"
  "$W/kickagent" check --rules "$R" >&2 || die "the rule set does not load"
  sel=$("$W/kickagent" plan --rules "$R" -a "$A" --json | wc -l)
  [ "$sel" = 0 ] || die "the rule set selects $sel sessions on b$ver: pick other networks"
  ls "$R" >"$D/rules$ver.txt"
  for ((r = 0; r < ROUNDS; r++)); do
    for ((j = 0; j < ${#cases[@]}; j++)); do
      k=${cases[$(((r + j) % ${#cases[@]}))]}
      src=$((src + 1))
      case $k in
      none) ;;
      defaults) start_agent "$W/kickagent" "$D/agent-$ver-$k-$r.log" ;;
      interval1s) start_agent "$W/kickagent" "$D/agent-$ver-$k-$r.log" --interval 1s ;;
      before) start_agent "$BEFORE" "$D/agent-$ver-$k-$r.log" ;;
      raw-*) start_raw "${k#raw-}" ;;
      esac
      [ "$k" = none ] || sleep "$WARM"
      c0=0 f0=0 c1=0 f1=0
      read -r c0 f0 < <(counts)
      t0=$(cpu "$apv") s0=${EPOCHREALTIME/./}
      rc=0
      "$W/policyload" logins -inst "b$ver" -rate "$RATE" -n "$N" -src "$src" -json \
        -raw "$D/lat-$ver-$k-$r.txt" >"$D/res-$ver-$k-$r.json" || rc=$?
      t1=$(cpu "$apv") s1=${EPOCHREALTIME/./}
      read -r c1 f1 < <(counts)
      [ "$k" = none ] || stop_agent
      ((rc <= 1)) || die "policyload failed ($rc)"
      [ -d "/proc/$apv" ] || die "b$ver: anvil $apv is gone"
      read -r p99 mx errs < <(jq -r '"\(.latency.p99_ms) \(.latency.max_ms) \(.errors)"' "$D/res-$ver-$k-$r.json")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ver" "$k" "$r" "$p99" "$mx" "$errs" \
        "$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.3f", (b - a) / 1e6}')" $((t1 - t0)) $((c1 - c0)) $((f1 - f0)) >>"$D/cases.tsv"
      log "b$ver round $((r + 1)) $k: p99 $p99 ms, max $mx ms, errors $errs, anvil $((t1 - t0)) ticks, cycles $((c1 - c0))"
      sleep 1
    done
  done
  "$inst" stop "b$ver" >&2
  [ "$ver" != 24 ] || "$inst" release >&2
done

# ---- report ----
# pooled VER CASE: "p50 p90 p99 max n" over all rounds' logins (nearest rank, as policyload).
pooled() {
  cat "$D"/lat-"$1"-"$2"-*.txt | sort -g | awk '{a[NR] = $1}
    function r(q,  i) {i = int(q * NR + 0.999999); if (i < 1) i = 1; return a[i]}
    END {printf "%.1f %.1f %.1f %.1f %d\n", r(0.5), r(0.9), r(0.99), a[NR], NR}'
}
# rmed VER CASE COL: median over rounds of a cases.tsv column.
rmed() {
  awk -F'\t' -v v="$1" -v k="$2" -v c="$3" '$1 == v && $2 == k {print $c}' "$D/cases.tsv" | sort -g |
    awk '{a[NR] = $1} END {printf "%.1f", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
rsum() { awk -F'\t' -v v="$1" -v k="$2" -v c="$3" '$1 == v && $2 == k {s += $c} END {printf "%s", s + 0}' "$D/cases.tsv"; }
{
  echo "Reproduce: \`flock /work/b.lock bench/logins.sh\` (KA_ROOT set; BEFORE=/path/to/old/kickagent adds \`before\`)."
  echo "kickagent at $(git rev-parse --short HEAD); $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, shared (load at start: $(cut -d' ' -f1-3 /proc/loadavg))."
  echo "$SESSIONS synthetic sessions (\`testrig.SyntheticMix($SESSIONS, $SEED)\`); $ROUNDS rounds, cases in rotating order;"
  echo "$N IMAP logins per case and round at $RATE/s, each from its own 127.x.y.z (latency: scheduled"
  echo "send → LOGIN's tagged OK); the agent ran $WARM s past its first cycle first. Rules ($(tr '\n' ' ' <"$D/rules$(echo "$VERSIONS" | cut -d' ' -f1).txt")):"
  echo "three blocks, a reset of a user without sessions, a drain of a dest host nobody uses; they select nothing."
  echo
  echo "| Dovecot | case | p50 | p90 | p99 | max | median of rounds' p99 | median of rounds' max | p99 / none | added at p99 (ms) | added at max (ms) | errors | cycles | failed cycles | anvil CPU per cycle (ms) | goal (≤ +10% p99, ≤ +5 ms max) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for ver in $VERSIONS; do
    read -r _ _ n99 nmax _ <<<"$(pooled "$ver" none)"
    # anvil's CPU per second of logins without the agent
    nrate=$(awk -F'\t' -v v="$ver" '$1 == v && $2 == "none" {t += $8; s += $7} END {printf "%.6f", s ? t / s : 0}' "$D/cases.tsv")
    for k in "${cases[@]}"; do
      read -r p50 p90 p99 mx _ <<<"$(pooled "$ver" "$k")"
      cyc=$(rsum "$ver" "$k" 9)
      per=—
      [ "$k" = none ] || per=$(awk -F'\t' -v v="$ver" -v k="$k" -v r="$nrate" -v hz="$hz" \
        '$1 == v && $2 == k {t += $8 - r * $7; c += $9} END {if (c) printf "%.1f", t / c / hz * 1000; else printf "—"}' "$D/cases.tsv")
      goal=—
      if [ "$k" != none ]; then
        goal=$(awk -v a="$p99" -v b="$n99" -v m="$(rmed "$ver" "$k" 5)" -v nm="$(rmed "$ver" none 5)" \
          'BEGIN {print (a <= 1.10 * b && m - nm <= 5) ? "met" : "missed"}')
      fi
      echo "| ${ver:0:1}.${ver:1} | $k | $p50 | $p90 | $p99 | $mx | $(rmed "$ver" "$k" 4) | $(rmed "$ver" "$k" 5) | $(awk -v a="$p99" -v b="$n99" 'BEGIN {printf "%.2f", a / b}') | $(awk -v a="$p99" -v b="$n99" 'BEGIN {printf "%+.1f", a - b}') | $(awk -v a="$mx" -v b="$nmax" 'BEGIN {printf "%+.1f", a - b}') | $(rsum "$ver" "$k" 6) | ${cyc} | $(rsum "$ver" "$k" 10) | $per | $goal |"
    done
  done
  echo
  echo "Latencies in ms, pooled over the rounds ($N × $ROUNDS logins per row; nearest-rank percentiles). The goal"
  echo "compares the pooled p99 with none's and the median of the rounds' max with none's. Anvil CPU per"
  echo "cycle: anvil's utime+stime during the logins minus none's rate × the time, over the agent's cycles in"
  echo "that time (10 ms ticks: read it as ± 10 ms / cycles). Every round (p99, max ms; anvil ticks; cycles):"
  echo
  echo '```'
  awk -F'\t' '{printf "%s %-10s round %d: p99 %6.1f max %6.1f errors %s %5.1f s anvil %3d ticks cycles %d\n", $1, $2, $3 + 1, $4, $5, $6, $7, $8, $9}' "$D/cases.tsv"
  echo '```'
} >"$W/section.md"
if [ "$OUT" = - ]; then cat "$W/section.md"; else cp "$W/section.md" "$OUT"; fi
log "done"
