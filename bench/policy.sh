#!/usr/bin/env bash
# Benchmarks of kickagent's auth policy endpoint (issue 14): the latency of Dovecot's policy
# requests at a fixed rate, and Dovecot's own login latency with and without the endpoint.
# Writes the section "Auth policy endpoint" of BENCHMARKS.md between its <!-- policy -->
# markers (text outside them is kept). Needs root and test/dovecot/install.sh.
#
#   LOCK=/work/it.lock bench/policy.sh
#
# 1. Requests: `kickagent run --auth-policy 127.0.0.1:0` (anvil: p23's, which holds no
#    session; the agent's 5 s cycles run meanwhile) answers bench/cmd/policyload http at RATE
#    requests/s for SECS s (after WARMUP), open loop, at most CONNS keep-alive connections,
#    for four cases: (0) no rules (`rules: []`: the floor of HTTP, parsing and the load
#    generator), (a) 1,000 YAML rules (bench/cmd/cycle gen -kind mix, plus one brute-force
#    rule), (b) the example Rego policy (policy/: blocked networks, drain, password resets;
#    all judge logins), (c) both, (g) both with GOGC=400 (the agent's garbage collector runs
#    a quarter as often). ROUNDS rounds; within a round the order rotates; a fresh agent per
#    run. Then one more run of (c) with KICKAGENT_CPUPROFILE (PROFILE=0 skips it).
# 2. Logins: p23 and p24 (VERSIONS) restarted for every run, either without auth policy
#    settings or with KA_POLICY_URL pointing at an agent running case (c) on that instance's
#    anvil; LOGIN_N IMAP logins at LOGIN_RATE/s (policyload logins: connect, LOGIN, LOGOUT,
#    each from its own 127.x.y.z), LOGIN_ROUNDS rounds alternating which case goes first.
#
# Uses only the instances p23 and p24 (test/dovecot/instance.sh), restarted here and stopped
# at the end. LOCK, if set, is a file held with flock(1) for the whole run, so that
# integration tests using p23/p24 (which take the same lock) wait instead of colliding.
#
# Knobs (environment): ROUNDS=5 RATE=1000 SECS=20 WARMUP=2s CONNS=100 (Dovecot 2.3's policy
# client allows 100) PROFILE=1
# LOGIN_ROUNDS=3 LOGIN_RATE=20 LOGIN_N=200 VERSIONS="23 24" OUT=BENCHMARKS.md (OUT= prints the
# section instead) KEEP=1 (keep the work directory, with the raw latencies and profiles).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5} RATE=${RATE:-1000} SECS=${SECS:-20} WARMUP=${WARMUP:-2s} CONNS=${CONNS:-100}
PROFILE=${PROFILE:-1} LOGIN_ROUNDS=${LOGIN_ROUNDS:-3} LOGIN_RATE=${LOGIN_RATE:-20} LOGIN_N=${LOGIN_N:-200}
VERSIONS=${VERSIONS:-"23 24"} OUT=${OUT-BENCHMARKS.md} KEEP=${KEEP:-0} LOCK=${LOCK:-}
inst=test/dovecot/instance.sh
W=$(mktemp -d /tmp/kickagent-policy.XXXXXX)
apid= # the agent this script started and has not stopped yet
started=()
cleanup() {
  [ -z "$apid" ] || kill "$apid" 2>/dev/null || true
  local n
  for n in "${started[@]}"; do "$inst" stop "$n" >&2 || true; done
  if [ "$KEEP" = 1 ]; then echo "work directory kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
log() { echo "$(date +%T) policy: $*" >&2; }
die() { log "$*"; exit 1; }

if [ -n "$LOCK" ]; then
  exec 9>>"$LOCK"
  log "waiting for $LOCK"
  flock 9
fi

kver="work tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
[ -z "$(git status --porcelain -- cmd internal go.mod 2>/dev/null)" ] || kver="$kver + uncommitted changes"
log "building kickagent ($kver), bench/cmd/policyload and bench/cmd/cycle"
go build -o "$W/kickagent" ./cmd/kickagent
go build -o "$W/policyload" ./bench/cmd/policyload
go build -o "$W/cycle" ./bench/cmd/cycle
load_start=$(uptime)
t_start=$SECONDS

# ---- rules ----
R=$W/rules
mkdir -p "$R"
"$W/cycle" gen -kind mix -rules 1000 -o "$R/rules.yaml"
# A brute-force rule, as a deployment with the endpoint would have: every failed report
# is counted (per IP; the random addresses rarely reach the threshold within a run).
cat >>"$R/rules.yaml" <<'YAML'
  - name: brute-force
    failed_logins: 20
    within: 10m
    per: ip
    block_for: 1h
YAML
echo 'rules: []' >"$R/empty.yaml"
"$W/kickagent" check --rules "$R/rules.yaml" >/dev/null || die "the generated rules do not load"
"$W/kickagent" check --rules "$R/empty.yaml" >/dev/null || die "rules: [] does not load"
"$W/kickagent" check --policy policy >/dev/null || die "policy/ does not load"
nrules=$(grep -c '^  - name:' "$R/rules.yaml")
nrules=$((nrules - 1)) # the brute-force rule is counted apart
# Login names: the rig's users, 10 users the rules name (refused), 100 no rule names.
{
  printf '%s\n' alice bob carol jane jano james dave eve "john doe"
  sed -n 's/^    users: \["\(.*\)"\]$/\1/p' "$R/rules.yaml" | awk 'NR <= 10'
  for i in $(seq -w 1 100); do echo "user$i@example.org"; done
} >"$W/users.txt"
nusers=$(wc -l <"$W/users.txt")
declare -A CASE=(
  [0]="--rules $R/empty.yaml"
  [a]="--rules $R/rules.yaml"
  [b]="--policy policy"
  [c]="--rules $R/rules.yaml --policy policy"
  [g]="--rules $R/rules.yaml --policy policy"
)
declare -A CASE_ENV=([g]="GOGC=400")
declare -A CASE_NAME=(
  [0]="(0) no rules (rules: [])"
  [a]="(a) $nrules YAML rules + brute force"
  [b]="(b) example Rego policy (policy/)"
  [c]="(c) both"
  [g]="(g) both, GOGC=400"
)

# instance_start NAME [POLICY_URL]: (re)starts p23/p24, with auth policy settings if a URL
# is given (none otherwise, whatever this shell's environment says).
instance_start() {
  KA_POLICY_URL=${2:-} KA_POLICY_HEADER='' KA_POLICY_TIMEOUT_MS='' KA_POLICY_REJECT_ON_FAIL='' KA_POLICY_SOCKET='' \
    "$inst" start "$1" >&2
  [[ " ${started[*]} " == *" $1 "* ]] || started+=("$1")
}
anvil_of() { "$inst" env "$1" | sed -n "s/^KA_ANVIL='\{0,1\}\([^']*\)'\{0,1\}$/\1/p"; }

# agent_start LABEL ANVIL CASE [ENV...]: starts the agent; sets apid, aport (auth policy) and
# mport (metrics) once its rules are loaded and the endpoint listens.
agent_start() {
  local label=$1 anvil=$2 c=$3 i
  shift 3
  # shellcheck disable=SC2086 # CASE holds flags
  env "$@" "$W/kickagent" run -a "$anvil" ${CASE[$c]} --auth-policy 127.0.0.1:0 --metrics 127.0.0.1:0 \
    --state-dir off --audit-log "$W/audit-$label.log" --interval 5s 2>"$W/agent-$label.log" &
  apid=$!
  aport='' mport=''
  for ((i = 0; i < 200; i++)); do
    if grep -q 'msg="rules loaded"' "$W/agent-$label.log" 2>/dev/null; then
      aport=$(sed -n 's/.*msg="auth policy listening" addr=127.0.0.1:\([0-9]*\).*/\1/p' "$W/agent-$label.log")
      mport=$(sed -n 's/.*msg="metrics listening" addr=127.0.0.1:\([0-9]*\).*/\1/p' "$W/agent-$label.log")
      [ -n "$aport" ] && [ -n "$mport" ] && return 0
    fi
    kill -0 "$apid" 2>/dev/null || break
    sleep 0.05
  done
  die "agent $label did not start: $(tail -5 "$W/agent-$label.log")"
}
agent_stop() {
  kill "$apid"
  wait "$apid" || true
  apid=
}
# metric PREFIX: the sum of the agent's samples whose name (with labels) starts with PREFIX.
metric() { curl -s "http://127.0.0.1:$mport/metrics" | awk -v p="$1" 'index($1, p) == 1 {s += $2} END {printf "%.0f", s}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$apid/stat"; }

# ---- 1. requests at RATE/s ----
log "starting p23 (no auth policy; its anvil serves the agents' cycles)"
instance_start p23
A23=$(anvil_of p23)
[ -S "$A23" ] || die "p23's anvil socket $A23 is missing"
hz=$(getconf CLK_TCK)
: >"$W/http.tsv"
names=(0 a b c g)
for ((r = 0; r < ROUNDS; r++)); do
  for ((j = 0; j < ${#names[@]}; j++)); do
    c=${names[$(((r + j) % ${#names[@]}))]}
    # shellcheck disable=SC2086 # CASE_ENV holds VAR=value words
    agent_start "$c$r" "$A23" "$c" ${CASE_ENV[$c]:-}
    t0=$(cpu_ticks)
    rc=0
    "$W/policyload" http -url "http://127.0.0.1:$aport/" -rate "$RATE" -d "${SECS}s" -warmup "$WARMUP" \
      -conns "$CONNS" -users "@$W/users.txt" -json -raw "$W/raw-$c$r.txt" >"$W/http-$c$r.json" || rc=$?
    t1=$(cpu_ticks)
    reqs=$(metric kickagent_auth_policy_request_seconds_count)
    fast=$(metric 'kickagent_auth_policy_request_seconds_bucket{le="0.001"}')
    ssum=$(curl -s "http://127.0.0.1:$mport/metrics" | awk '$1 == "kickagent_auth_policy_request_seconds_sum" {print $2}')
    agent_stop
    [ "$rc" -le 1 ] || die "policyload failed ($c, round $r)"
    echo "$c $r $reqs $fast $ssum $((t1 - t0))" >>"$W/http.tsv"
    log "round $((r + 1))/$ROUNDS ${CASE_NAME[$c]}: $(jq -r '"p50 \(.latency.p50_ms) p99 \(.latency.p99_ms) max \(.latency.max_ms) ms, errors \(.errors)"' "$W/http-$c$r.json")"
  done
done
if [ "$PROFILE" = 1 ]; then
  log "profile: case (c), $SECS s, KICKAGENT_CPUPROFILE"
  agent_start prof "$A23" c "KICKAGENT_CPUPROFILE=$W/cpu.pprof"
  "$W/policyload" http -url "http://127.0.0.1:$aport/" -rate "$RATE" -d "${SECS}s" -warmup "$WARMUP" \
    -conns "$CONNS" -users "@$W/users.txt" -json >"$W/http-prof.json" || true
  agent_stop
  go tool pprof -top -nodecount=30 "$W/kickagent" "$W/cpu.pprof" 2>/dev/null >"$W/prof-flat.txt" || true
  go tool pprof -top -cum -nodecount=30 "$W/kickagent" "$W/cpu.pprof" 2>/dev/null >"$W/prof-cum.txt" || true
fi

# ---- 2. Dovecot logins with and without the endpoint ----
: >"$W/login.tsv"
for ver in $VERSIONS; do
  n=p$ver
  log "$n: warm-up start and $((LOGIN_N / 4)) logins (not counted)"
  instance_start "$n"
  "$W/policyload" logins -inst "$n" -rate "$LOGIN_RATE" -n $((LOGIN_N / 4)) -src 60 >/dev/null ||
    die "$n: warm-up logins failed"
  A=$(anvil_of "$n")
  for ((r = 0; r < LOGIN_ROUNDS; r++)); do
    order=(none policy)
    ((r % 2 == 0)) || order=(policy none)
    for c in "${order[@]}"; do
      if [ "$c" = policy ]; then
        agent_start "$n-$r" "$A" c
        instance_start "$n" "http://127.0.0.1:$aport/"
      else
        instance_start "$n"
      fi
      rc=0
      "$W/policyload" logins -inst "$n" -rate "$LOGIN_RATE" -n "$LOGIN_N" -src $((61 + r)) -json \
        -raw "$W/lraw-$ver-$c-$r.txt" >"$W/login-$ver-$c-$r.json" || rc=$?
      asked=0
      if [ "$c" = policy ]; then
        asked=$(metric 'kickagent_auth_policy_requests_total{')
        agent_stop
        # Proof that the endpoint sat on the logins' path: two allows and a report each.
        ((asked >= 3 * LOGIN_N)) || die "$n round $r: the agent answered $asked policy requests for $LOGIN_N logins"
      fi
      [ "$rc" = 0 ] || die "$n round $r ($c): logins failed: $(jq -c .error_samples "$W/login-$ver-$c-$r.json")"
      echo "$ver $c $r $asked" >>"$W/login.tsv"
      log "$n round $((r + 1))/$LOGIN_ROUNDS $c: $(jq -r '"p50 \(.latency.p50_ms) p99 \(.latency.p99_ms) max \(.latency.max_ms) ms"' "$W/login-$ver-$c-$r.json")"
    done
  done
  "$inst" stop "$n" >&2
done
"$inst" stop p23 >&2 || true
load_end=$(uptime)
t_total=$((SECONDS - t_start))

# ---- report ----
# med: the median of the numbers on stdin.
med() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "-"; else printf "%.3f", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# jq over the rounds of case c: every value of FILTER, one a line.
jall() { local c=$1 f=$2 r; for ((r = 0; r < ROUNDS; r++)); do jq -r "$f" "$W/http-$c$r.json"; done; }
# pooled FILES...: p50 p90 p99 max of the latencies in FILES (nearest rank).
pooled() {
  cat "$@" | sort -g | awk '{a[NR] = $1} END {
    split("0.5 0.9 0.99", q, " ")
    for (i = 1; i <= 3; i++) { k = int(q[i] * NR + 0.999999); if (k < 1) k = 1; printf "%.3f ", a[k] }
    printf "%.3f %d\n", a[NR], NR }'
}
cpu="$(awk -F: '/^model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)"
mem="$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
chroot24=$("$inst" env p24 2>/dev/null | sed -n "s/^KA_CHROOT='\(.*\)'$/\1/p" || true)
dv24=$( ([ -n "$chroot24" ] && chroot "$chroot24" dovecot --version) 2>/dev/null || echo '?')
{
  echo "<!-- policy: written by bench/policy.sh; everything between these markers is replaced -->"
  echo "## Auth policy endpoint"
  echo
  echo "Reproduce: \`LOCK=/work/it.lock bench/policy.sh\` (as root, after \`test/dovecot/install.sh\`; knobs in the"
  echo "script's header; this run: ROUNDS=$ROUNDS RATE=$RATE SECS=$SECS WARMUP=$WARMUP CONNS=$CONNS"
  echo "LOGIN_ROUNDS=$LOGIN_ROUNDS LOGIN_RATE=$LOGIN_RATE LOGIN_N=$LOGIN_N VERSIONS=\"$VERSIONS\")."
  echo
  echo "| Machine | |"
  echo "|---|---|"
  echo "| CPU | $(nproc) × $cpu |"
  echo "| Memory | $mem |"
  echo "| Kernel | $(uname -sr) $(uname -m) |"
  echo "| Dovecot | p23 $(dovecot --version) (host) / p24 $dv24 (chroot) |"
  echo "| Go | $(go env GOVERSION) |"
  echo "| kickagent | $kver |"
  echo "| Date | $(date -u '+%Y-%m-%d %H:%M') UTC |"
  echo "| Load at start | ${load_start##*average: } |"
  echo "| Load at end | ${load_end##*average: } |"
  echo
  echo "Total run time: $((t_total / 60)) min $((t_total % 60)) s. The load generator runs on the same two cores."
  echo
  echo "### Policy requests at $RATE/s ($SECS s a run, $ROUNDS rounds, open loop)"
  echo
  echo "\`policyload http -rate $RATE -d ${SECS}s -warmup $WARMUP -conns $CONNS -users @users.txt\` against"
  echo "\`kickagent run -a P23_ANVIL CASE --auth-policy 127.0.0.1:0 --metrics 127.0.0.1:0 --state-dir off"
  echo "--audit-log FILE --interval 5s\`. Latency: from each request's scheduled send time to its answer"
  echo "read (a stall delays every request behind it and counts); *from send*: from when the request's"
  echo "goroutine started (the sends never wait for answers, so server stalls count there too; what it"
  echo "leaves out is the generator's own lateness, *generator lag*). Mix: modelled on logins (90% good:"
  echo "allow, allow, report success; 10% failed: allow, failed report), 2.4 bodies, $nusers login names"
  echo "(10 named by YAML rules), client addresses by default \`policyload\` weights. p50/p99 columns:"
  echo "median over the rounds (min–max); max: the worst of all rounds. Server: the agent's own"
  echo "\`kickagent_auth_policy_request_seconds\` (handler only), mean and share within 1 ms; CPU: the"
  echo "agent's user+system time per request (its 5 s cycles included)."
  echo
  echo "| Case | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | from send: p50 / p99 (ms) | generator lag p99 (ms) | errors | refused / allow requests | server mean (ms) | server ≤ 1 ms | agent CPU per request (µs) | p99 ≤ 1 ms |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for c in "${names[@]}"; do
    p50=$(jall "$c" .latency.p50_ms | med) p90=$(jall "$c" .latency.p90_ms | med) p99=$(jall "$c" .latency.p99_ms | med)
    p50r=$(jall "$c" .latency.p50_ms | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {print a "–" b}')
    p99r=$(jall "$c" .latency.p99_ms | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {print a "–" b}')
    mx=$(jall "$c" .latency.max_ms | sort -g | tail -1)
    s50=$(jall "$c" .from_send.p50_ms | med) s99=$(jall "$c" .from_send.p99_ms | med) lag99=$(jall "$c" .lag.p99_ms | med)
    errs=$(jall "$c" .errors | awk '{s += $1} END {print s}')
    refused=$(jall "$c" '.answers.refused // 0' | awk '{s += $1} END {print s}')
    allows=$(jall "$c" '(.answers.refused // 0) + (.answers.allowed // 0)' | awk '{s += $1} END {print s}')
    read -r smean sfast scpu < <(awk -v c="$c" -v hz="$hz" '$1 == c {n += $3; f += $4; s += $5; t += $6}
      END {printf "%.3f %.1f%% %.0f\n", s / n * 1000, 100 * f / n, t / hz / n * 1e6}' "$W/http.tsv")
    verdict=$(awk -v v="$p99" 'BEGIN {print v <= 1 ? "met" : "**not met**"}')
    echo "| ${CASE_NAME[$c]} | $p50 ($p50r) | $p90 | $p99 ($p99r) | $mx | $s50 / $s99 | $lag99 | $errs | $refused / $allows | $smean | $sfast | $scpu | $verdict |"
  done
  echo
  echo "Every run, p50 / p99 / max (ms), in the order they ran:"
  echo
  for ((r = 0; r < ROUNDS; r++)); do
    line="round $((r + 1)):"
    for ((j = 0; j < ${#names[@]}; j++)); do
      c=${names[$(((r + j) % ${#names[@]}))]}
      line="$line ($c) $(jq -r '"\(.latency.p50_ms) / \(.latency.p99_ms) / \(.latency.max_ms)"' "$W/http-$c$r.json");"
    done
    echo "- ${line%;}"
  done
  echo
  echo "All requests of a case pooled (p50 p90 p99 max, ms; n), from the scheduled time; from the send:"
  echo
  for c in "${names[@]}"; do
    echo "- ${CASE_NAME[$c]}: $(pooled "$W"/raw-"$c"[0-9]*.txt); $(pooled "$W"/raw-"$c"[0-9]*.txt.send)"
  done
  echo
  echo "Load generator: the largest delay of a send behind its schedule, per run (ms): $(for c in "${names[@]}"; do jall "$c" .late_dispatch_max_ms; done | sort -g | tr '\n' ' ' | sed 's/ $//')."
  echo
  echo "### Dovecot login latency with and without the endpoint"
  echo
  echo "\`policyload logins -inst pNN -rate $LOGIN_RATE -n $LOGIN_N\`: connect → greeting → LOGIN → tagged OK (the"
  echo "latency, from the scheduled start) → LOGOUT, each login from its own 127.x.y.z, the rig's 9 users"
  echo "in turn (the first login of each asks the SQL passdb, the others hit the auth cache). *none*: the instance started"
  echo "without auth policy settings; *policy*: started with \`KA_POLICY_URL\` pointing at an agent of case (c)"
  echo "on its anvil (two allow requests and a report per login, checked on the agent's"
  echo "\`kickagent_auth_policy_requests_total\`). The instance restarts before every run; $LOGIN_ROUNDS rounds,"
  echo "alternating which goes first; figures pooled over the rounds (nearest rank), then the median of"
  echo "the rounds' p50 and p99."
  echo
  echo "| Dovecot | case | logins | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | rounds' p50 (median) | rounds' p99 (median) | errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for ver in $VERSIONS; do
    for c in none policy; do
      read -r l50 l90 l99 lmax ln < <(pooled "$W"/lraw-"$ver"-"$c"-*.txt)
      r50=$(for ((r = 0; r < LOGIN_ROUNDS; r++)); do jq -r .latency.p50_ms "$W/login-$ver-$c-$r.json"; done | med)
      r99=$(for ((r = 0; r < LOGIN_ROUNDS; r++)); do jq -r .latency.p99_ms "$W/login-$ver-$c-$r.json"; done | med)
      errs=$(for ((r = 0; r < LOGIN_ROUNDS; r++)); do jq -r .errors "$W/login-$ver-$c-$r.json"; done | awk '{s += $1} END {print s}')
      echo "| p$ver | $c | $ln | $l50 | $l90 | $l99 | $lmax | $r50 | $r99 | $errs |"
      echo "$ver $c $l50 $l99 $lmax" >>"$W/login-sum.txt"
    done
  done
  echo
  echo "| Dovecot | policy / none, p50 | p99 | max | added at p50 (ms) |"
  echo "|---|---|---|---|---|"
  for ver in $VERSIONS; do
    awk -v v="$ver" '$1 == v && $2 == "none" {n50 = $3; n99 = $4; nmax = $5} $1 == v && $2 == "policy" {p50 = $3; p99 = $4; pmax = $5}
      END {printf "| p%s | %.2f | %.2f | %.2f | %.3f |\n", v, p50 / n50, p99 / n99, pmax / nmax, p50 - n50}' "$W/login-sum.txt"
  done
  if [ "$PROFILE" = 1 ] && [ -s "$W/prof-flat.txt" ]; then
    echo
    echo "### CPU profile of the agent, case (c), $SECS s at $RATE/s"
    echo
    echo "\`KICKAGENT_CPUPROFILE=FILE kickagent run …\`; \`go tool pprof -top\` (flat, then cumulative; the"
    echo "run: $(jq -r '"p50 \(.latency.p50_ms) p99 \(.latency.p99_ms) max \(.latency.max_ms) ms"' "$W/http-prof.json"))."
    echo
    echo '```'
    sed -n '1,/^ *flat/p' "$W/prof-flat.txt" | grep -v '^File:\|^Build ID:\|^Type:\|^Time:' || true
    sed -n '/^ *flat/,$p' "$W/prof-flat.txt" | tail -n +2 | head -25
    echo '```'
    echo
    echo '```'
    sed -n '/^ *flat/,$p' "$W/prof-cum.txt" | head -31
    echo '```'
  fi
  echo "<!-- /policy -->"
} >"$W/section.md"

if [ -z "$OUT" ]; then
  cat "$W/section.md"
elif grep -q '^<!-- policy: written by bench/policy.sh' "$OUT"; then
  awk -v f="$W/section.md" '
    /^<!-- policy: written by bench\/policy.sh/ {while ((getline l < f) > 0) print l; skip = 1; next}
    skip && /^<!-- \/policy -->/ {skip = 0; next}
    !skip' "$OUT" >"$W/out.md"
  cp "$W/out.md" "$OUT"
  log "wrote the section \"Auth policy endpoint\" of $OUT"
else
  { echo; cat "$W/section.md"; } >>"$OUT"
  log "appended the section \"Auth policy endpoint\" to $OUT"
fi
