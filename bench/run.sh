#!/usr/bin/env bash
# Benchmarks of kickagent against doveadm on real Dovecot 2.3 and 2.4, and the Go
# micro-benchmarks of internal/anvil. Writes the results section of BENCHMARKS.md (text
# outside the <!-- results --> markers is kept). Needs root and test/dovecot/install.sh.
#
# Uses only the benchmark instances b23 and b24 of test/dovecot/instance.sh (restarted
# here, stopped at the end); the integration-test instances are never touched.
#
#   bench/run.sh
#
# Knobs (environment): ROUNDS=11 (who rounds per version), SESSIONS=100000 (synthetic
# sessions), SEED=1, KICK_N=1000 (real IMAP sessions), KICK_ROUNDS=3, KICK_SYNTH=1 (also
# kick the KICK_N real sessions among SESSIONS synthetic ones), MICRO=1 (go test -bench),
# OUT=BENCHMARKS.md, REV= (build kickagent from this commit instead of the work tree).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-11} SESSIONS=${SESSIONS:-100000} SEED=${SEED:-1}
KICK_N=${KICK_N:-1000} KICK_ROUNDS=${KICK_ROUNDS:-3} KICK_SYNTH=${KICK_SYNTH:-1}
MICRO=${MICRO:-1} OUT=${OUT:-BENCHMARKS.md}
inst=test/dovecot/instance.sh
W=$(mktemp -d /tmp/kickagent-bench.XXXXXX)
cleanup() {
  "$inst" stop b23 >&2 || true
  "$inst" stop b24 >&2 || true
  rm -rf "$W"
}
trap cleanup EXIT
log() { echo "$(date +%T) bench: $*" >&2; }
die() { log "$*"; exit 1; }

# kickagent (and the micro-benchmarks) come from the work tree, or with REV=<commit> from
# that commit (git archive into a temporary directory; the work tree is not touched).
src=.
kver="work tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
[ -z "$(git status --porcelain -- cmd internal go.mod 2>/dev/null)" ] || kver="$kver + uncommitted changes"
if [ -n "${REV:-}" ]; then
  src=$W/src
  mkdir -p "$src"
  git archive "$REV" | tar -x -C "$src"
  kver="commit $(git rev-parse --short "$REV")"
fi
log "building kickagent ($kver) and bench/cmd/*"
(cd "$src" && go build -o "$W/kickagent" ./cmd/kickagent)
for c in synth rawdump kickbench; do go build -o "$W/$c" "./bench/cmd/$c"; done
load_start=$(uptime)

# ---- Go micro-benchmarks (before any Dovecot instance runs) ----
if [ "$MICRO" = 1 ]; then
  log "go test -bench ./internal/anvil/ (count=5)"
  (cd "$src" && go test -run='^$' -bench=. -benchmem -count=5 ./internal/anvil/) >"$W/micro.txt"
  bs=$(command -v benchstat || echo "$HOME/go/bin/benchstat")
  if [ -x "$bs" ]; then (cd "$W" && "$bs" internal/anvil=micro.txt) >"$W/micro-stat.txt"; else grep -E '^(goos|goarch|cpu|Benchmark)' "$W/micro.txt" >"$W/micro-stat.txt"; fi
fi

# instance VAR NAME: loads NAME's env file into associative array VAR.
declare -A E23 E24
instance() {
  local -n e=$1
  local k v
  while IFS='=' read -r k v; do v=${v#\'} e[$k]=${v%\'}; done < <("$inst" env "$2")
}

# ---- who: 100k synthetic sessions, interleaved rounds ----
: >"$W/who.tsv"
: >"$W/rows.txt"
for ver in 23 24; do
  log "starting b$ver, registering $SESSIONS synthetic sessions"
  "$inst" start "b$ver" >&2
  instance "E$ver" "b$ver"
  declare -n e=E$ver
  "$W/synth" -inst "b$ver" -n "$SESSIONS" -seed "$SEED" >&2
  A=${e[KA_ANVIL]}
  read -ra DOVEADM <<<"${e[KA_DOVEADM]}"
  declare -A cmd=(
    [ka1]="$W/kickagent who -1 -a $A"
    [dov1]="${DOVEADM[*]} who -1"
    [raw]="$W/rawdump -q -v $ver $A"
    [ka]="$W/kickagent who -a $A"
    [dov]="${DOVEADM[*]} who"
  )
  # Check once that both list the same rows (and warm the caches).
  for k in ka1 dov1 ka dov; do
    ${cmd[$k]} >"$W/out.$k" || die "${cmd[$k]} failed"
  done
  r_ka1=$(($(wc -l <"$W/out.ka1") - 1)) r_dov1=$(($(wc -l <"$W/out.dov1") - 1))
  r_ka=$(($(wc -l <"$W/out.ka") - 1)) r_dov=$(($(wc -l <"$W/out.dov") - 1))
  same=no
  cmp -s <(awk 'NR > 1 {$1 = $1; print}' "$W/out.ka1" | sort) <(awk 'NR > 1 {$1 = $1; print}' "$W/out.dov1" | sort) && same=yes
  [ "$r_ka1" = "$r_dov1" ] && [ "$r_ka" = "$r_dov" ] && [ "$r_ka1" -ge "$SESSIONS" ] ||
    die "b$ver row counts differ: kickagent -1 $r_ka1, doveadm -1 $r_dov1, kickagent $r_ka, doveadm $r_dov"
  echo "$ver $r_ka1 $r_dov1 $r_ka $r_dov $same $("$W/rawdump" -v "$ver" "$A" | tr -d ,) $(wc -c <"$W/out.ka1") $(wc -c <"$W/out.dov1") $(wc -c <"$W/out.ka") $(wc -c <"$W/out.dov")" >>"$W/rows.txt"
  rm -f "$W"/out.*
  names=(ka1 dov1 raw ka dov)
  log "b$ver: $ROUNDS rounds of ${names[*]} (order rotates)"
  for ((r = 0; r < ROUNDS; r++)); do
    for ((j = 0; j < ${#names[@]}; j++)); do
      k=${names[$(((r + j) % ${#names[@]}))]}
      t0=${EPOCHREALTIME/./}
      ${cmd[$k]} >/dev/null || die "${cmd[$k]} failed"
      t1=${EPOCHREALTIME/./}
      echo "$ver $k $((t1 - t0))" >>"$W/who.tsv"
    done
  done
  unset -n e
  unset cmd
  [ "$ver" = 23 ] && "$inst" stop b23 >&2
done

# ---- kick: KICK_N real IMAP sessions on 2.4 ----
# kickrun SCENARIO TOOL ARGS...: one kickbench round; appends its key=value line.
kickrun() {
  local sc=$1 tool=$2 line
  shift 2
  line=$("$W/kickbench" -inst b24 -n "$KICK_N" -- "$@") || die "kickbench $tool failed"
  log "  $sc $tool: $line"
  echo "sc=$sc tool=$tool $line" >>"$W/kick.txt"
}
: >"$W/kick.txt"
log "restarting b24 (drops the synthetic sessions) for the kick benchmark"
"$inst" start b24 >&2
A=${E24[KA_ANVIL]}
read -ra DOVEADM <<<"${E24[KA_DOVEADM]}"
# Dovecot 2.4.1's doveadm kick crashes when given more than one user mask (seen as exit 139);
# recorded here on the still empty b24, so the kicks below select by network only.
multimask=$( ("${DOVEADM[@]}" kick alice bob >/dev/null 2>&1; echo $?) 2>/dev/null)
[ "$multimask" != 68 ] || multimask=0 # 68: nothing to kick, the normal answer here
# kickrounds SCENARIO: KICK_ROUNDS rounds of both tools, alternating which goes first.
kickrounds() {
  local r
  for ((r = 0; r < KICK_ROUNDS; r++)); do
    log "kick round $((r + 1))/$KICK_ROUNDS ($1): $KICK_N real sessions, network $net"
    if ((r % 2 == 0)); then
      kickrun "$1" kickagent "$W/kickagent" kick -a "$A" "$net"
      kickrun "$1" doveadm "${DOVEADM[@]}" kick "$net"
    else
      kickrun "$1" doveadm "${DOVEADM[@]}" kick "$net"
      kickrun "$1" kickagent "$W/kickagent" kick -a "$A" "$net"
    fi
  done
}
net=127.0.0.0/16 # kickbench's clients are 127.0.1.1 ...
kickrounds clean
if [ "$KICK_SYNTH" = 1 ]; then
  "$W/synth" -inst b24 -n "$SESSIONS" -seed "$SEED" >&2
  inside=$(($("$W/kickagent" who -1 -a "$A" "$net" | wc -l) - 1))
  if [ "$inside" = 0 ]; then
    kickrounds synth
  else
    log "skipping the kick among synthetic sessions: $inside of them are in $net (try another SEED)"
  fi
fi
load_end=$(uptime)

# ---- report ----
# wstat VER CMD: "min median" in seconds, and the sorted runs.
wstat() {
  awk -v v="$1" -v k="$2" '$1 == v && $2 == k {print $3 / 1e6}' "$W/who.tsv" | sort -g |
    awk '{a[NR] = $1} END {m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
      printf "%.3f %.3f", a[1], m; for (i = 1; i <= NR; i++) printf " %.3f", a[i]; print ""}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
# kstat SCENARIO TOOL KEY: median of KEY over the rounds.
kstat() {
  sed -n "s/^sc=$1 tool=$2 .*$3=\([0-9.-]*\).*/\1/p" "$W/kick.txt" | sort -g |
    awk '{a[NR] = $1} END {printf "%.3f", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
kall() { sed -n "s/^sc=$1 tool=$2 .*$3=\([0-9.-]*\).*/\1/p" "$W/kick.txt" | tr '\n' ' ' | sed 's/ $//'; }

{
  echo "<!-- results: written by bench/run.sh; everything between these markers is replaced -->"
  echo "## Results"
  echo
  echo "Reproduce: \`bench/run.sh\` (as root, after \`test/dovecot/install.sh\`; 15–25 minutes, most of it logging $KICK_N sessions in $((KICK_ROUNDS * 4)) times)."
  echo
  echo "| Machine | |"
  echo "|---|---|"
  echo "| CPU | $(nproc) × $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1) |"
  echo "| Memory | $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) |"
  echo "| Kernel | $(uname -srm) |"
  echo "| Dovecot | $(dovecot --version) (host) / $(chroot "${E24[KA_CHROOT]}" dovecot --version) (chroot) |"
  echo "| Go | $(go env GOVERSION) |"
  echo "| kickagent | $kver |"
  echo "| Date | $(date -u '+%Y-%m-%d %H:%M UTC') |"
  echo "| Load at start | ${load_start#*load average: } |"
  echo "| Load at end | ${load_end#*load average: } |"
  echo
  echo "### Listing $SESSIONS synthetic sessions"
  echo
  echo "\`testrig.SyntheticMix($SESSIONS, $SEED)\` registered in anvil (2.3: \`StripFor23\`). $ROUNDS rounds per"
  echo "version; each round runs the five commands once, in an order that rotates, stdout to /dev/null;"
  echo "wall time of the whole process (bash \`EPOCHREALTIME\`). On 2.4, doveadm runs as"
  echo "\`chroot … doveadm -c CONF\` (its own base_dir). Times on these 2-core machines are bimodal:"
  echo "compare minimums (the floor each reaches) and medians."
  echo
  echo "| Dovecot | Command | min (s) | median (s) | all runs, sorted (s) |"
  echo "|---|---|---|---|---|"
  for ver in 23 24; do
    for k in ka1 dov1 raw ka dov; do
      case $k in
      ka1) d='`kickagent who -1`' ;; dov1) d='`doveadm who -1`' ;; raw) d='raw dump read (`bench/cmd/rawdump`)' ;;
      ka) d='`kickagent who`' ;; dov) d='`doveadm who`' ;;
      esac
      read -r mn md rest <<<"$(wstat $ver $k)"
      echo "| ${ver:0:1}.${ver:1} | $d | $mn | $md | $rest |"
    done
  done
  echo
  echo "| Dovecot | ratio | on min | on median |"
  echo "|---|---|---|---|"
  for ver in 23 24; do
    read -r a1 b1 _ <<<"$(wstat $ver ka1)"
    read -r a2 b2 _ <<<"$(wstat $ver dov1)"
    read -r a3 b3 _ <<<"$(wstat $ver raw)"
    read -r a4 b4 _ <<<"$(wstat $ver ka)"
    read -r a5 b5 _ <<<"$(wstat $ver dov)"
    echo "| ${ver:0:1}.${ver:1} | kickagent who -1 / doveadm who -1 | $(ratio "$a1" "$a2") | $(ratio "$b1" "$b2") |"
    echo "| ${ver:0:1}.${ver:1} | kickagent who -1 / raw dump | $(ratio "$a1" "$a3") | $(ratio "$b1" "$b3") |"
    echo "| ${ver:0:1}.${ver:1} | kickagent who / doveadm who | $(ratio "$a4" "$a5") | $(ratio "$b4" "$b5") |"
    echo "| ${ver:0:1}.${ver:1} | kickagent who / raw dump | $(ratio "$a4" "$a3") | $(ratio "$b4" "$b3") |"
  done
  echo
  echo "Rows and sizes (checked once before the rounds):"
  echo
  echo "| Dovecot | rows -1 kickagent / doveadm | same rows (-1, blanks squeezed, sorted) | rows aggregated kickagent / doveadm | dump bytes | output bytes -1 kickagent / doveadm | output bytes aggregated kickagent / doveadm |"
  echo "|---|---|---|---|---|---|---|"
  while read -r ver k1 d1 k d same bytes _ lines _ o1 o2 o3 o4; do
    echo "| ${ver:0:1}.${ver:1} | $k1 / $d1 | $same | $k / $d | $bytes ($lines lines) | $o1 / $o2 | $o3 / $o4 |"
  done <"$W/rows.txt"
  echo
  echo "### Kicking $KICK_N real IMAP sessions (Dovecot 2.4)"
  echo
  echo "$KICK_N IMAP sessions logged in with \`testrig.DialIMAP\` (users alice … \"john doe\" round-robin,"
  echo "source addresses 127.0.1.1 … 127.0.4.250; one imap process each), then one kick command"
  echo "selecting exactly them; repeated $KICK_ROUNDS times per tool, tools alternating first."
  echo "*command* is the kick command's wall time (kickagent's includes its confirming dumps;"
  echo "doveadm returns when anvil has answered); *last EOF* is when the last client saw the server"
  echo "close; *anvil empty* is when a dump taken after the command no longer lists any of them."
  echo "Medians over the rounds (all rounds in brackets)."
  echo
  echo "| Background | Tool | command (s) | kicks/s (command) | last EOF (s) | anvil empty (s) | clients closed per round | left in anvil | exit |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for sc in clean synth; do
    grep -q "^sc=$sc " "$W/kick.txt" || continue
    bg="none"
    [ "$sc" = synth ] && bg="$SESSIONS synthetic"
    for tool in kickagent doveadm; do
      c=$(kstat $sc $tool cmd_s)
      echo "| $bg | $tool kick $net | $c [$(kall $sc $tool cmd_s)] | $(awk -v n="$KICK_N" -v c="$c" 'BEGIN {printf "%.0f", n / c}') | $(kstat $sc $tool last_eof_s) | $(kstat $sc $tool anvil_empty_s) | $(kall $sc $tool closed) | $(kall $sc $tool left) | $(kall $sc $tool exit) |"
    done
  done
  echo
  [ "$multimask" = 0 ] || echo "Not used: \`doveadm kick\` with two user masks (\`doveadm kick alice bob\`) exits $multimask on this Dovecot 2.4 (139 = SIGSEGV), even with no sessions; so both tools select by network."
  echo
  echo "Opening the sessions took $(sed -n 's/.* open_s=\([0-9.]*\).*/\1/p' "$W/kick.txt" | sort -g | awk '{a[NR]=$1} END {printf "%.0f–%.0f s", a[1], a[NR]}') per round (not timed as part of the kick)."
  if [ -s "$W/micro-stat.txt" ]; then
    echo
    echo "### Go micro-benchmarks"
    echo
    echo "\`go test -run='^\$' -bench=. -benchmem -count=5 ./internal/anvil/\`, summarized by benchstat"
    echo "(100,000-session dumps generated by \`anviltest\`; ClientDump reads them from a fake anvil"
    echo "over a UNIX socket, so it is dial + handshake + read + parse without Dovecot)."
    echo
    echo '```'
    cat "$W/micro-stat.txt"
    echo '```'
  fi
  echo "<!-- /results -->"
} >"$W/results.md"

if [ -f "$OUT" ] && grep -q '^<!-- results' "$OUT" && grep -q '^<!-- /results -->' "$OUT"; then
  awk -v f="$W/results.md" '/^<!-- results/ {while ((getline l < f) > 0) print l; skip = 1; next}
    /^<!-- \/results -->/ {skip = 0; next} !skip' "$OUT" >"$W/out.md"
  cp "$W/out.md" "$OUT"
else
  { echo "# Benchmarks"; echo; cat "$W/results.md"; } >"$OUT"
fi
log "wrote $OUT"
