#!/usr/bin/env bash
# Fleet propagation: from a bundle publish, and from one `cscli decisions
# add`, to the last closed session on three hosts (v23, v24, v24proxy),
# with 1 s bundle polls and 1 s CrowdSec pulls. Runs TestFleet RUNS times
# (default 5) and prints each time and the medians. Needs the integration
# instances v23 v24 v24proxy and the LAPI running (as test/run.sh starts
# them) and root (nginx from apt-get download).
#   RUNS=5 bench/fleet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for i in $(seq "$runs"); do
  KICKAGENT_IT=1 go test -count=1 -run '^TestFleet$' -v ./test/integration/ >"$out" 2>&1 || { tail -n 40 "$out"; exit 1; }
  b=$(sed -n 's/.*bundle r2 published → last of [0-9]* sessions closed in \(.*\)$/\1/p' "$out")
  c=$(sed -n 's/.*cscli decisions add --ip → last of [0-9]* sessions closed in \(.*\)$/\1/p' "$out")
  echo "run $i: bundle $b, crowdsec $c"
done | tee /dev/stderr | awk '
  function secs(d) { gsub(/,/, "", d); if (d ~ /ms$/) { sub(/ms$/, "", d); return d / 1000 } sub(/s,?$/, "", d); return d + 0 }
  { b[NR] = secs($4); c[NR] = secs($6) }
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END { printf "median over %d runs: bundle publish → last close %.2f s; cscli decision → last close %.2f s\n", NR, median(b, NR), median(c, NR) }'
