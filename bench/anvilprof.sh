#!/usr/bin/env bash
# Anvil during a dump (issue 15), on real Dovecot 2.3 (b23) and 2.4 (b24) holding SESSIONS
# synthetic sessions:
#  1. bench/cmd/anvilprof: perf trace attached to anvil around one CONNECT-DUMP read by
#     bench/cmd/rawdump with each strategy in STRATEGIES (plain, paced, wait=D): how long anvil
#     stays away from its event loop, its write(2) calls and their time.
#  2. perf record of anvil over PROF_DUMPS dumps (per strategy in PROF_STRATEGIES): where its
#     CPU goes (flat, by symbol). No --symfs for 2.4: perf reads the chroot's binaries by the
#     host paths /proc/PID/maps shows. Functions internal to a library (libc's string
#     functions, libdovecot's static ones) stay addresses where the binary has no .symtab.
#
#   flock /work/b.lock bench/anvilprof.sh      # as root, after test/dovecot/install.sh
#
# Knobs: SESSIONS=100000 SEED=1 RUNS=7 VERSIONS="23 24" OUT=- (markdown; or a file)
# STRATEGIES="plain paced wait=2ms wait=5ms wait=10ms wait=20ms"
# PROF_DUMPS=20 PROF_STRATEGIES="plain paced wait=20ms". Uses only b23/b24 (restarted,
# stopped at the end); run it under the benchmark lock.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-100000} SEED=${SEED:-1} RUNS=${RUNS:-7} VERSIONS=${VERSIONS:-"23 24"} OUT=${OUT:--}
STRATEGIES=${STRATEGIES:-"plain paced wait=2ms wait=5ms wait=10ms wait=20ms"}
PROF_DUMPS=${PROF_DUMPS:-20} PROF_STRATEGIES=${PROF_STRATEGIES:-"plain paced wait=20ms"}
inst=test/dovecot/instance.sh
W=$(mktemp -d /tmp/kickagent-anvilprof.XXXXXX)
started=()
cleanup() {
  local v
  for v in "${started[@]}"; do "$inst" stop "b$v" >&2 || true; done
  if [[ " ${started[*]} " == *" 24 "* ]]; then "$inst" release >&2 || true; fi
  rm -rf "$W"
}
trap cleanup EXIT
log() { echo "$(date +%T) anvilprof: $*" >&2; }
die() { log "$*"; exit 1; }
env_of() { "$inst" env "b$1" | sed -n "s/^$2='\(.*\)'$/\1/p"; }

log "building bench/cmd/{synth,rawdump,anvilprof}"
for c in synth rawdump anvilprof; do go build -o "$W/$c" "./bench/cmd/$c"; done
# rargs STRATEGY: rawdump's flags for it.
rargs() {
  case $1 in plain) ;; paced) echo -pace ;; wait=*) echo "-wait ${1#wait=}" ;; *) die "strategy $1?" ;; esac
}
{
  echo "Reproduce: \`flock /work/b.lock bench/anvilprof.sh\` (KA_ROOT set). $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, shared"
  echo "(load at start: $(cut -d' ' -f1-3 /proc/loadavg)); $SESSIONS synthetic sessions (\`testrig.SyntheticMix($SESSIONS, $SEED)\`)."
} >"$W/section.md"
for ver in $VERSIONS; do
  log "starting b$ver, registering $SESSIONS synthetic sessions"
  "$inst" start "b$ver" >&2
  started+=("$ver")
  "$W/synth" -inst "b$ver" -n "$SESSIONS" -seed "$SEED" >&2
  A=$(env_of "$ver" KA_ANVIL)
  pid=$(pgrep -P "$(cat "$(env_of "$ver" KA_BASE_DIR)/master.pid")" -x anvil) || die "b$ver: no anvil"
  "$W/rawdump" -v "$ver" "$A" >"$W/size.txt"
  log "b$ver: anvil $pid, $(cat "$W/size.txt"); tracing $RUNS dumps per strategy: $STRATEGIES"
  # shellcheck disable=SC2086 # one argument per strategy
  "$W/anvilprof" -pid "$pid" -sock "$A" -v "$ver" -runs "$RUNS" -each $STRATEGIES >"$W/trace$ver.md" 2>"$W/trace$ver.log" ||
    die "anvilprof: $(tail -3 "$W/trace$ver.log")"
  for s in $PROF_STRATEGIES; do
    log "b$ver: perf record over $PROF_DUMPS dumps, $s"
    perf record -q -F 2999 -p "$pid" -o "$W/perf$ver.data" 2>"$W/perf.log" &
    ppid=$!
    sleep 1
    t0=${EPOCHREALTIME/./}
    # shellcheck disable=SC2046 # rargs gives flags
    for ((i = 0; i < PROF_DUMPS; i++)); do "$W/rawdump" -q $(rargs "$s") -v "$ver" "$A"; done
    t1=${EPOCHREALTIME/./}
    sleep 0.5
    kill -INT "$ppid"
    wait "$ppid" || true
    perf report -i "$W/perf$ver.data" --stdio --no-children --sort dso,sym --percent-limit 0.7 2>/dev/null |
      grep -v '^$' | grep -v '^# *$' | grep -v '^# \(To display\|Total Lost\|Samples\|Event count\)' >"$W/prof$ver-$s.txt" || true
    echo "$s $(((t1 - t0) / 1000))" >>"$W/prof$ver-times.txt"
  done
  {
    echo
    echo "### Dovecot ${ver:0:1}.${ver:1}: $(cat "$W/size.txt") per dump"
    echo
    echo "\`anvilprof -pid ANVIL -sock SOCK -v $ver -runs $RUNS $STRATEGIES\` (medians of $RUNS traced dumps per"
    echo "strategy, rotating order; \`perf trace -e read,write,writev,sendmsg,epoll_wait,epoll_pwait,accept,accept4 -p ANVIL\`):"
    echo
    cat "$W/trace$ver.md"
    echo
    echo "Every run:"
    echo
    echo '```'
    cat "$W/trace$ver.log"
    echo '```'
    for s in $PROF_STRATEGIES; do
      echo
      echo "Where anvil's CPU goes, $PROF_DUMPS dumps read $s back to back ($(awk -v s="$s" '$1 == s {print $2}' "$W/prof$ver-times.txt") ms):"
      echo "\`perf record -F 2999 -p ANVIL\`; \`perf report --no-children --sort dso,sym\` (entries ≥ 0.7%):"
      echo
      echo '```'
      cat "$W/prof$ver-$s.txt"
      echo '```'
    done
  } >>"$W/section.md"
  "$inst" stop "b$ver" >&2
  [ "$ver" != 24 ] || "$inst" release >&2
done
if [ "$OUT" = - ]; then cat "$W/section.md"; else cp "$W/section.md" "$OUT"; fi
log "done"
