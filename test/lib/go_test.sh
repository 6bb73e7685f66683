#!/usr/bin/env bash
# Unit test of ka_go (test/lib/go.sh) with fake go binaries: which Go it
# picks, when it lets the toolchain be downloaded, and that it fails fast
# naming what it tried. Run by test/run.sh; no network, no apt.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 n=0
want=$(sed -n 's/^go \([0-9.]*\).*/\1/p' go.mod)

# fake DIR VERSION [SWITCHED]: a go reporting VERSION, or SWITCHED once
# GOTOOLCHAIN allows a switch (as a real go >= 1.21 does after the download).
fake() {
  mkdir -p "$tmp/$1"
  cat > "$tmp/$1/go" <<EOT
#!/bin/sh
v=$2
[ "\${GOTOOLCHAIN:-auto}" != local ] && [ -n "${3:-}" ] && v=${3:-}
case "\$1 \${2:-}" in
"version "*) echo "go version go\$v linux/amd64" ;;
"env GOVERSION") echo "go\$v" ;;
"env GOPROXY") echo "https://proxy.example" ;;
*) exit 2 ;;
esac
EOT
  chmod +x "$tmp/$1/go"
}
# check NAME WANT_RC WANT_GO CANDIDATES... : runs ka_go (backports stubbed to
# fail) and compares its exit code and the go it put first on PATH.
check() {
  local name=$1 wrc=$2 wgo=$3 rc=0 got; shift 3
  got=$(KA_GO_CANDIDATES="$*" bash -c '. test/lib/go.sh; _ka_backports_go() { return 1; }
    ka_go >/dev/null; command -v go' 2>"$tmp/$name.err") || rc=$?
  n=$((n + 1))
  if [ "$rc" != "$wrc" ] || { [ "$wrc" = 0 ] && [ "$got" != "$wgo" ]; }; then
    echo "FAIL $name: rc $rc go '$got', want rc $wrc go '$wgo'"; cat "$tmp/$name.err"; fails=$((fails + 1))
  fi
}
fake new "$want"
fake old 1.19.8
fake mid 1.22.12 "$want"
fake midoffline 1.22.12
check new-enough 0 "$tmp/new/go" "$tmp/new/go"
check old-then-new 0 "$tmp/new/go" "$tmp/old/go" "$tmp/new/go"
check mid-downloads 0 "$tmp/mid/go" "$tmp/old/go" "$tmp/mid/go"
check only-old 1 "" "$tmp/old/go"
grep -q "Tried: $tmp/old/go is go1.19.8;golang-1.22-go from bookworm-backports: not installable" "$tmp/only-old.err" ||
  { echo "FAIL only-old: message: $(cat "$tmp/only-old.err")"; fails=$((fails + 1)); }
check download-fails 1 "" "$tmp/midoffline/go"
grep -q "fetching the toolchain" "$tmp/download-fails.err" || { echo "FAIL download-fails: message"; fails=$((fails + 1)); }
GOTOOLCHAIN=local check local-forbids 1 "" "$tmp/mid/go"
grep -q "GOTOOLCHAIN=local forbids" "$tmp/local-forbids.err" || { echo "FAIL local-forbids: message"; fails=$((fails + 1)); }
check none 1 "" "$tmp/nonexistent/go"

echo "go_test: $n cases, $fails failed"
[ "$fails" -eq 0 ]
