#!/usr/bin/env bash
# CPU profiles (pprof) of kickagent's hot paths at 100,000 synthetic sessions on real Dovecot
# 2.3 and 2.4: the aggregated `who` on 2.3, one agent cycle with 1,000 YAML rules and with the
# example Rego policy (steady) on 2.4, and a cold Rego evaluation (BenchmarkRegoCold100k).
# Writes the profiles section of BENCHMARKS.md (between its <!-- profiles --> markers) and
# keeps the raw profiles in PROFDIR. Needs root and test/dovecot/install.sh; uses the benchmark
# instances b23/b24 of test/dovecot/instance.sh (restarted here, stopped at the end), so it must
# not run beside bench/run.sh.
#
#   bench/profile.sh            # knobs: SESSIONS=100000 SEED=1 ROUNDS=15 OUT=BENCHMARKS.md PROFDIR=
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
SESSIONS=${SESSIONS:-100000} SEED=${SEED:-1} ROUNDS=${ROUNDS:-15} OUT=${OUT:-BENCHMARKS.md}
inst=test/dovecot/instance.sh
W=$(mktemp -d /tmp/kickagent-prof.XXXXXX)
P=${PROFDIR:-$W/prof}
mkdir -p "$P"
cleanup() {
  "$inst" stop b23 >&2 || true
  "$inst" stop b24 >&2 || true
  rm -rf "$W"
}
trap cleanup EXIT
log() { echo "$(date +%T) profile: $*" >&2; }

log "building kickagent and bench/cmd/{synth,cycle}"
go build -o "$W/kickagent" ./cmd/kickagent
for c in synth cycle; do go build -o "$W/$c" "./bench/cmd/$c"; done
anvil() { "$inst" env "$1" | sed -n "s/^KA_ANVIL='\(.*\)'$/\1/p"; }
for v in 23 24; do
  "$inst" stop "b$v" >&2 || true
  "$inst" start "b$v" >&2
  "$W/synth" -inst "b$v" -n "$SESSIONS" -seed "$SEED" >&2
done
"$W/cycle" gen -kind mix -rules 1000 -n "$SESSIONS" -seed "$SEED" -o "$W/mix1000.yaml"

log "kickagent who on b23, $ROUNDS runs"
for ((i = 0; i < ROUNDS; i++)); do
  KICKAGENT_CPUPROFILE="$P/who23.$i.pprof" "$W/kickagent" who -a "$(anvil b23)" >/dev/null
done
log "agent cycles on b24: 1000 YAML rules, Rego policy steady"
CYCLE_CPUPROFILE="$P/cycle-yaml.pprof" "$W/cycle" yaml -inst b24 -rounds "$ROUNDS" "$W/mix1000.yaml" >"$W/cycle-yaml.md"
CYCLE_STEADY_CPUPROFILE="$P/cycle-rego.pprof" "$W/cycle" rego -inst b24 -policy policy -cold 1 -steady "$ROUNDS" -churn 1000 >"$W/cycle-rego.md"
log "BenchmarkRegoCold100k"
go test -c -o "$W/engine.test" ./internal/engine/
# (from the package's directory, as go test runs it: the benchmark reads ../../policy)
(cd internal/engine && "$W/engine.test" -test.run '^$' -test.bench 'RegoCold100k$' -test.count 3 -test.cpuprofile "$P/rego-cold.pprof") >"$W/rego-cold.txt"

# top BIN PROFILES...: our functions by cumulative time, then the flat top (any package).
top() {
  local bin=$1
  shift
  echo "By cumulative time, kickagent's own functions:"
  echo
  echo '```'
  go tool pprof -top -cum -nodecount=400 "$bin" "$@" 2>/dev/null | awk '/^ *flat/ {print; next} /kickagent\/|main\./ && n++ < 22'
  echo '```'
  echo
  echo "Flat (where the time is spent, any package):"
  echo
  echo '```'
  go tool pprof -top -nodecount=12 "$bin" "$@" 2>/dev/null | sed -n '/^Duration\|^Showing nodes/p; /^ *flat/,$p'
  echo '```'
}
{
  echo "<!-- profiles: written by bench/profile.sh; everything between these markers is replaced -->"
  echo "## Profiles"
  echo
  echo "Reproduce: \`bench/profile.sh\` (as root, after \`test/dovecot/install.sh\`; a few minutes). $SESSIONS synthetic"
  echo "sessions (\`testrig.SyntheticMix\`) in real Dovecot 2.3 and 2.4; commit $(git rev-parse --short HEAD),"
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) × $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)."
  echo
  echo "### \`kickagent who\` (aggregated), Dovecot 2.3, $ROUNDS runs (\`KICKAGENT_CPUPROFILE\`)"
  echo
  top "$W/kickagent" "$P"/who23.*.pprof
  echo
  echo "### One agent cycle, 1,000 YAML rules (mix1000.yaml), Dovecot 2.4, $ROUNDS cycles (\`bench/cmd/cycle yaml\`)"
  echo
  sed -n '/^| cycle\|^| raw/p' "$W/cycle-yaml.md" | sed 's/^/    /'
  echo
  top "$W/cycle" "$P/cycle-yaml.pprof"
  echo
  echo "### Agent cycles, example Rego policy, steady (1000 new sessions per cycle), Dovecot 2.4: the $ROUNDS steady cycles only"
  echo
  sed -n '/^| cycle\|^| raw/p' "$W/cycle-rego.md" | sed 's/^/    /'
  echo
  top "$W/cycle" "$P/cycle-rego.pprof"
  echo
  echo "### Cold Rego evaluation of $SESSIONS sessions (\`BenchmarkRegoCold100k\`, 3 runs)"
  echo
  echo '```'
  grep '^Benchmark' "$W/rego-cold.txt"
  echo '```'
  echo
  top "$W/engine.test" "$P/rego-cold.pprof"
  echo "<!-- /profiles -->"
} >"$W/profiles.md"

if grep -q '^<!-- profiles' "$OUT" && grep -q '^<!-- /profiles -->' "$OUT"; then
  awk -v f="$W/profiles.md" '/^<!-- profiles/ {while ((getline l < f) > 0) print l; skip = 1; next}
    /^<!-- \/profiles -->/ {skip = 0; next} !skip' "$OUT" >"$W/out.md"
  cp "$W/out.md" "$OUT"
else
  { echo; cat "$W/profiles.md"; } >>"$OUT"
fi
log "wrote $OUT"
