#!/usr/bin/env bash
# The project's test command (README "Tests"): installs what it needs
# (Dovecot 2.3 from Debian 12, Dovecot 2.4 in a Debian 13 chroot, staticcheck),
# starts throwaway Dovecot instances on loopback, and runs vet, staticcheck,
# unit tests, integration tests against real Dovecot, and bounded fuzzing.
# Run as root. FUZZTIME (default 1000000x: a million inputs per target, 10-30 s
# here) bounds each fuzz target; a duration such as 20s works too.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-1000000x}

echo "== prerequisites and Go (before the long steps)"
# shellcheck source=lib/go.sh
. test/lib/go.sh
ka_prereqs curl gcc libc6-dev systemd
ka_go
ka_root
test/lib/mirror_test.sh
test/lib/go_test.sh

echo "== installing Dovecot 2.3 and 2.4, and a C compiler (-race; the cgo oracle of internal/match/dovecotref)"
test/dovecot/install.sh
command -v gcc >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; }
export CGO_ENABLED=1
command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2

echo "== gofmt, go vet, staticcheck"
unformatted=$(gofmt -l cmd internal test 2>/dev/null || true)
[ -z "$unformatted" ] || { echo "gofmt needed: $unformatted"; exit 1; }
go vet ./...
staticcheck ./...

echo "== systemd unit"
command -v systemd-analyze >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }
unitdir=$(mktemp -d)
go build -o "$unitdir/kickagent" ./cmd/kickagent
sed "s#/usr/bin/kickagent#$unitdir/kickagent#g" systemd/kickagent.service > "$unitdir/kickagent.service"
# --man=no: the man pages are not on the host; test/package.sh verifies the
# unit where the package installed them.
systemd-analyze verify --man=no "$unitdir/kickagent.service"
# The unit's exposure must not regress (2.3 before issue 12's hardening, 2.0
# after it; 2.2 since issue 16 added CAP_NET_ADMIN and AF_NETLINK, which
# closing one connection inside a shared process needs).
# systemd 252 (Debian 12) scores offline units; older ones cannot.
if systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
  systemd-analyze security --offline=true --threshold=22 "$unitdir/kickagent.service" >/dev/null ||
    { systemd-analyze security --offline=true "$unitdir/kickagent.service" | tail -n 20; echo "unit exposure above 2.2"; exit 1; }
fi
rm -rf "$unitdir"

echo "== packages: .deb/.rpm built, the .deb installed, upgraded and purged in a throwaway chroot"
test/package.sh

echo "== starting Dovecot instances"
instances="v23 v23shared v23proxy v24 v24proxy v24proxyhp h23 h24"
# Stop exactly the instances this run started; p23 and p24 (SQL passdb, auth
# cache, auth policy) are started by their tests, each with its own settings.
trap 'for n in $instances p23 p24; do test/dovecot/instance.sh stop "$n" >/dev/null 2>&1 || true; done
      test/dovecot/instance.sh release >/dev/null 2>&1 || true
      test/crowdsec/lapi.sh stop >/dev/null 2>&1 || true' EXIT
for n in $instances; do
  test/dovecot/instance.sh start "$n"
done
echo "== starting a CrowdSec Local API (offline; internal/crowdsec and the fleet tests pull from it)"
test/crowdsec/lapi.sh start

echo "== Prometheus rules, their unit tests, the dashboard's queries, promtool check metrics on a live /metrics"
test/promtool.sh

echo "== go test -race (unit + integration against real Dovecot, incl. the differential test against doveadm)"
KICKAGENT_IT=1 go test -race -count=1 -p 1 -timeout 40m ./...

echo "== fuzzing, $FUZZTIME per target"
# A count, not a duration, by default: with a duration Go's fuzz coordinator
# can end a clean run with "context deadline exceeded" when the time runs out
# while a worker is mid-input (golang/go#75804; CI failed twice in a row on
# FuzzUnescape so). A count has no deadline to race. For a duration one retry
# tells that race apart from a real failure, which the retry reproduces from
# the input saved under testdata/fuzz.
fuzz() {
  local out
  if out=$(go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" "$1" 2>&1); then echo "$out" | tail -n 2; return 0; fi
  echo "$out" | tail -n 15
  if echo "$out" | grep -q 'context deadline exceeded' && ! echo "$out" | grep -q 'Failing input written'; then
    echo "fuzz $2: deadline flake, retrying once"
    go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" "$1" 2>&1 | tail -n 2
    return "${PIPESTATUS[0]}"
  fi
  return 1
}
# Every fuzz target in the tree, so a new one cannot be forgotten here.
targets=$(grep -rl --include='*_test.go' '^func Fuzz' cmd internal | sort)
[ -n "$targets" ] || { echo "no fuzz targets found"; exit 1; }
nfuzz=0
for f in $targets; do
  for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
    fuzz "./$(dirname "$f")" "$name"
    nfuzz=$((nfuzz + 1))
  done
done
echo "fuzzed $nfuzz targets"
echo "== all tests passed"
