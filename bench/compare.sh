#!/usr/bin/env bash
# Before/after benchmark of a change: `kickagent who -1` and one agent cycle with 1,000 YAML rules
# at SESSIONS synthetic sessions on real Dovecot 2.3 and 2.4, two builds side by side in one run
# (issue 11). Writes the before/after section of BENCHMARKS.md (between its <!-- compare -->
# markers; the rest of the file is kept). Needs root and test/dovecot/install.sh.
#
#   bench/compare.sh BEFORE [AFTER]      e.g. bench/compare.sh 12cba96
#
# BEFORE (or env BEFORE): a commit. AFTER (or env AFTER): a commit; default the work tree.
# Commits are built from `git archive` in a temporary directory (the work tree is not touched).
# Knobs (environment): SESSIONS=100000 (at least 1000), ROUNDS=9, SEED=1, CYCLES=3 (cycles of one in-process agent
# per round: bench/cmd/cycle yaml -rounds CYCLES), OUT=BENCHMARKS.md.
#
# Each round runs, for one build and then the other (the first alternates between rounds):
#   who   kickagent who -1 -a SOCK >/dev/null                           (process wall time)
#   once  kickagent run --once --dry-run --metrics off -a SOCK --rules mix1000.yaml   (as bench/run.sh)
#   cycle bench/cmd/cycle yaml -rounds CYCLES mix1000.yaml, its median (agent.Step, as bench/run.sh;
#         2.4 only: bench/cmd/cycle reads 2.4's anvil only)
# and between the two builds the floor: bench/cmd/rawdump, plain and paced (as kickagent reads 2.3).
#
# Uses only the benchmark instances b23 and b24 of test/dovecot/instance.sh; refuses to run if
# either already runs (bench/run.sh or bench/profile.sh may be using it) and stops, on exit, the
# ones it started.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
export KA_ROOT=${KA_ROOT:-$PWD/.dovecot} # the same rig for instance.sh and for binaries built elsewhere
BEFORE=${1:-${BEFORE:-}} AFTER=${2:-${AFTER:-}}
SESSIONS=${SESSIONS:-100000} ROUNDS=${ROUNDS:-9} SEED=${SEED:-1} CYCLES=${CYCLES:-3} OUT=${OUT:-BENCHMARKS.md}
[ -n "$BEFORE" ] || { echo "usage: bench/compare.sh BEFORE [AFTER]" >&2; exit 64; }
# cycle gen needs distinct networks and users for its 1,000 rules; with too few sessions it never ends.
[ "$SESSIONS" -ge 1000 ] || { echo "compare.sh: SESSIONS must be at least 1000" >&2; exit 64; }
cmdline="SESSIONS=$SESSIONS ROUNDS=$ROUNDS CYCLES=$CYCLES SEED=$SEED bench/compare.sh $BEFORE${AFTER:+ $AFTER}"
inst=test/dovecot/instance.sh
W=$(mktemp -d /tmp/kickagent-compare.XXXXXX)
started=()
cleanup() {
  local i
  for i in "${started[@]}"; do "$inst" stop "$i" >&2 || true; done
  rm -rf "$W"
}
trap cleanup EXIT
log() { echo "$(date +%T) compare: $*" >&2; }
die() { log "$*"; exit 1; }

# build TAG [REV]: kickagent and bench/cmd/cycle of REV (else the work tree) into $W/TAG/;
# sets desc[TAG].
declare -A desc
build() {
  local src=.
  desc[$1]="work tree at $(git rev-parse --short HEAD)"
  [ -z "$(git status --porcelain -- cmd internal bench/cmd go.mod go.sum)" ] || desc[$1]+=" + uncommitted changes"
  if [ -n "${2:-}" ]; then
    src=$W/src-$1
    mkdir -p "$src"
    git archive "$2" | tar -x -C "$src"
    desc[$1]="commit $(git rev-parse --short "$2")"
  fi
  log "building $1: ${desc[$1]}"
  mkdir -p "$W/$1"
  (cd "$src" && go build -o "$W/$1/kickagent" ./cmd/kickagent && go build -o "$W/$1/cycle" ./bench/cmd/cycle)
}
build before "$BEFORE"
build after "$AFTER"
for c in synth rawdump cycle; do go build -o "$W/$c" "./bench/cmd/$c"; done # version-independent tools
"$W/cycle" gen -kind mix -rules 1000 -n "$SESSIONS" -seed "$SEED" -o "$W/mix1000.yaml"

# running NAME: whether NAME's dovecot master runs (master.pid names a live dovecot).
running() {
  local b p
  b=$(sed -n "s/^KA_BASE_DIR='\(.*\)'$/\1/p" "$KA_ROOT/inst/$1/env" 2>/dev/null) || return 1
  p=$(cat "$b/master.pid" 2>/dev/null) || return 1
  [ -n "$p" ] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q dovecot
}
# tm VER TAG MEAS CMD...: runs CMD (output discarded), appends "VER TAG MEAS microseconds exit".
tm() {
  local v=$1 t=$2 m=$3 t0 t1 rc=0
  shift 3
  t0=${EPOCHREALTIME/./}
  "$@" >/dev/null 2>&1 || rc=$?
  t1=${EPOCHREALTIME/./}
  echo "$v $t $m $((t1 - t0)) $rc" >>"$W/times"
}
# one VER TAG: the measurements of build TAG.
one() {
  local k=$W/$2/kickagent s
  tm "$1" "$2" who "$k" who -1 -a "$A"
  tm "$1" "$2" once "$k" run --once --dry-run --metrics off -a "$A" --rules "$W/mix1000.yaml"
  [ "$1" = 24 ] || return 0 # bench/cmd/cycle reads 2.4 only (as in bench/run.sh)
  s=$("$W/$2/cycle" yaml -inst "b$1" -rounds "$CYCLES" -noheader "$W/mix1000.yaml" |
    awk -F'|' '$2 ~ /^ cycle,/ {print $6 * 1e6; exit}') || die "b$1: $2's bench/cmd/cycle failed"
  [ -n "$s" ] || die "b$1: $2's bench/cmd/cycle printed no cycle row"
  echo "$1 $2 cycle ${s%.*} 0" >>"$W/times"
}

load_start=$(uptime)
t_start=$SECONDS
: >"$W/times"
: >"$W/checks"
for i in b23 b24; do ! running $i || die "$i already runs (bench/run.sh or bench/profile.sh?); not touching it"; done
for ver in 23 24; do
  started+=("b$ver")
  "$inst" start "b$ver" >&2
  A=$("$inst" env "b$ver" | sed -n "s/^KA_ANVIL='\(.*\)'$/\1/p")
  "$W/synth" -inst "b$ver" -n "$SESSIONS" -seed "$SEED" >&2
  # Once: whether both builds list the same rows and decide the same (dry-run audit, time removed).
  for t in before after; do
    "$W/$t/kickagent" who -1 -a "$A" >"$W/who.$t" || die "b$ver: $t: who -1 failed"
    "$W/$t/kickagent" run --once --dry-run --metrics off -a "$A" --rules "$W/mix1000.yaml" --audit-log - 2>/dev/null |
      sed 's/^{"time":"[^"]*",/{/' | sort >"$W/once.$t" || die "b$ver: $t: run --once failed"
  done
  sw=no so=no
  cmp -s "$W/who.before" "$W/who.after" && sw=yes
  cmp -s "$W/once.before" "$W/once.after" && so=yes
  echo "| ${ver:0:1}.${ver:1} | $(($(wc -l <"$W/who.before") - 1)) / $(($(wc -l <"$W/who.after") - 1)) | $sw | $(wc -l <"$W/once.before") / $(wc -l <"$W/once.after") | $so |" >>"$W/checks"
  log "b$ver: $ROUNDS rounds (who -1, run --once$([ $ver = 23 ] || echo ", cycle x $CYCLES") per build; raw reads between)"
  for ((r = 0; r < ROUNDS; r++)); do
    first=before second=after
    ((r % 2 == 0)) || first=after second=before
    one "$ver" "$first"
    tm "$ver" floor raw "$W/rawdump" -q -v "$ver" "$A"
    tm "$ver" floor rawp "$W/rawdump" -pace -q -v "$ver" "$A"
    one "$ver" "$second"
  done
  "$inst" stop "b$ver" >&2
  started=() # one instance at a time
done
load_end=$(uptime)
t_rounds=$((SECONDS - t_start)) t_total=$SECONDS

# stat VER TAG MEAS: "median min max n exits" in seconds.
stat() {
  awk -v v="$1" -v t="$2" -v m="$3" '$1 == v && $2 == t && $3 == m {print $4 / 1e6, $5}' "$W/times" | sort -g |
    awk '{a[NR] = $1; if ($2) e = e " " $2} END {printf "%.3f %.3f %.3f %d %s\n",
      NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2, a[1], a[NR], NR, e ? "exit" e : "0"}'
}
{
  echo "<!-- compare: written by bench/compare.sh; everything between these markers is replaced -->"
  echo "## Before/after (issue 11)"
  echo
  echo "Reproduce: \`$cmdline\` (as root, after \`test/dovecot/install.sh\`)."
  echo "Before: ${desc[before]}; after: ${desc[after]}. $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) × $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1),"
  echo "Go $(go env GOVERSION); load ${load_start#*load average: } at start, ${load_end#*load average: } at end;"
  echo "run time $((t_total / 60)) min $((t_total % 60)) s ($((t_rounds / 60)) min $((t_rounds % 60)) s without the builds)."
  echo
  echo "\`testrig.SyntheticMix($SESSIONS, $SEED)\` in b23 (2.3, \`StripFor23\`) and b24 (2.4). $ROUNDS rounds; each runs the"
  echo "measurements of one build, the raw reads, then those of the other (which goes first alternates)."
  echo "*who -1*: \`kickagent who -1 -a SOCK\` to /dev/null; *run --once*: \`kickagent run --once --dry-run --metrics off"
  echo "-a SOCK --rules mix1000.yaml\` (process start, rule load, one cycle); both wall time of the process."
  echo "*agent cycle*: the median cycle of \`bench/cmd/cycle yaml -rounds $CYCLES mix1000.yaml\` (\`agent.Step\` of one agent, in"
  echo "process, each build's own; 2.4 only, as in \`bench/run.sh\`), one value per round. mix1000.yaml is"
  echo "\`bench/cmd/cycle gen -kind mix -rules 1000\`, as in \`bench/run.sh\`. The floor: \`bench/cmd/rawdump\` (plain; paced"
  echo "as kickagent reads 2.3) in the same rounds."
  echo
  echo "| Dovecot | Measurement | before median (s) | after median (s) | after / before | before min–max (s) | after min–max (s) | n | exit codes |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for ver in 23 24; do
    ms="who once cycle"
    [ $ver = 24 ] || ms="who once"
    for m in $ms; do
      # shellcheck disable=SC2016 # backquotes are markdown
      case $m in who) d='`kickagent who -1`' ;; once) d='`kickagent run --once`, 1000 YAML rules' ;; cycle) d='agent cycle, 1000 YAML rules (in process)' ;; esac
      read -r bm bmin bmax bn be <<<"$(stat $ver before "$m")"
      read -r am amin amax an ae <<<"$(stat $ver after "$m")"
      echo "| ${ver:0:1}.${ver:1} | $d | $bm | $am | $(awk -v a="$am" -v b="$bm" 'BEGIN {printf "%.2f", a / b}') | $bmin–$bmax | $amin–$amax | $bn / $an | $be / $ae |"
    done
    for m in raw rawp; do
      # shellcheck disable=SC2016
      case $m in raw) d='floor (one for both): raw dump read' ;; rawp) d='floor (one for both): paced raw dump read' ;; esac
      read -r fm fmin fmax fn fe <<<"$(stat $ver floor $m)"
      echo "| ${ver:0:1}.${ver:1} | $d | $fm | — | — | $fmin–$fmax | — | $fn | $fe |"
    done
  done
  echo
  echo "Checked once before the rounds: the output of \`who -1\`, and the decisions of \`run --once --dry-run --audit-log -\`"
  echo "(one JSON line each; time removed, sorted)."
  echo
  echo "| Dovecot | who -1 rows before / after | identical output | run --once decisions before / after | identical |"
  echo "|---|---|---|---|---|"
  cat "$W/checks"
  echo "<!-- /compare -->"
} >"$W/compare.md"
cat "$W/compare.md"

if [ -f "$OUT" ] && grep -q '^<!-- compare' "$OUT" && grep -q '^<!-- /compare -->' "$OUT"; then
  awk -v f="$W/compare.md" '/^<!-- compare/ {while ((getline l < f) > 0) print l; skip = 1; next}
    /^<!-- \/compare -->/ {skip = 0; next} !skip' "$OUT" >"$W/out.md"
  cp "$W/out.md" "$OUT"
else
  { echo; cat "$W/compare.md"; } >>"$OUT"
fi
log "wrote $OUT"
