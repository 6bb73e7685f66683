#!/usr/bin/env bash
# Unit test of debian_mirror (test/lib/mirror.sh) on sample apt sources, one
# fake root per case. Run by test/run.sh; exits non-zero on the first mismatch.
set -euo pipefail
. "$(dirname "$0")/mirror.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 n=0

# check NAME WANT: WANT is the expected mirror, or "ERR" for a refusal.
check() {
  local got
  got=$(debian_mirror "$tmp/$1" 2>/dev/null) || got=ERR
  n=$((n + 1))
  if [ "$got" != "$2" ]; then echo "FAIL $1: got '$got', want '$2'"; fails=$((fails + 1)); fi
}
# root NAME FILE CONTENT: writes FILE (relative to etc/apt) under a fresh root.
root() { mkdir -p "$(dirname "$tmp/$1/etc/apt/$2")"; printf '%s\n' "$3" > "$tmp/$1/etc/apt/$2"; }

root slash sources.list 'deb http://ftp.de.debian.org/debian/ bookworm main'
check slash http://ftp.de.debian.org/debian
root opts sources.list 'deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian bookworm main'
check opts http://m.example/debian
root security sources.list $'deb http://security.debian.org/debian-security bookworm-security main\n# deb http://commented.example/debian bookworm main\ndeb http://deb.debian.org/debian bookworm main'
check security http://deb.debian.org/debian
root srconly sources.list 'deb-src http://src.example/debian bookworm main'
check srconly ERR
root mirrorfile sources.list 'deb mirror+file:/etc/apt/mirrors/debian.list bookworm main'
printf '# comment\nhttp://first.example/debian/\thttp://second.example/debian\n' > "$tmp/mirrorfile/etc/apt/mirrors.list"
mkdir -p "$tmp/mirrorfile/etc/apt/mirrors"; mv "$tmp/mirrorfile/etc/apt/mirrors.list" "$tmp/mirrorfile/etc/apt/mirrors/debian.list"
check mirrorfile http://first.example/debian
root deb822 sources.list.d/debian.sources $'Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb\nURIs: http://d822.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main'
check deb822 http://d822.example/debian
root indented sources.list.d/debian.sources $'Types: deb\n  URIs: https://ind.example/debian\nSuites: bookworm'
check indented https://ind.example/debian
root lowercase sources.list.d/x.sources $'types: deb\nuris:\n https://cont.example/pub/debian\nsuites: bookworm'
check lowercase https://cont.example/pub/debian
root mirror822 sources.list.d/x.sources $'Types: deb\nURIs: mirror+file:/etc/apt/mirrors/d.list\nSuites: bookworm'
mkdir -p "$tmp/mirror822/etc/apt/mirrors"; echo 'http://m822.example/debian' > "$tmp/mirror822/etc/apt/mirrors/d.list"
check mirror822 http://m822.example/debian
root none sources.list ''
check none ERR
KA_DEBIAN_MIRROR=http://override.example/debian/ check none http://override.example/debian

echo "mirror_test: $n cases, $fails failed"
[ "$fails" -eq 0 ]
