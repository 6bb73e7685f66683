# shellcheck shell=bash
# Set-up shared by test/demo.sh and test/run.sh on a fresh Debian 12, as root:
# ka_prereqs installs the few Debian packages the build needs and ka_go finds
# or installs a Go that builds the project. Both run before the long apt and
# debootstrap steps, so a missing piece fails in seconds, not after minutes.
# Source from the repository root. GOFLAGS, GOPROXY and GOTOOLCHAIN from the
# environment are respected (GOTOOLCHAIN=local forbids the download).

ka_die() { echo "setup: $*" >&2; exit 1; }

# ka_prereqs [PKG...]: root, apt, and git, ca-certificates, procps (go's VCS stamping
# needs git; the module proxy is HTTPS; instance.sh uses ps) plus the packages named.
ka_prereqs() {
  [ "$(id -u)" = 0 ] || ka_die "run as root (it installs Debian packages and runs Dovecot)"
  command -v apt-get >/dev/null || ka_die "apt-get not found: this set-up is for Debian 12"
  local need=() p
  for p in git ca-certificates procps "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  echo "setup: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || ka_die "apt-get update failed (is a Debian mirror reachable?)"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    ka_die "apt-get install ${need[*]} failed"
}

# _ka_ver_ge A B: version A >= B (dotted numbers, "go" prefix ignored).
_ka_ver_ge() {
  local a=${1#go} b=${2#go}
  [ "$(printf '%s\n%s\n' "$b" "$a" | sort -V | head -n1)" = "$b" ]
}

# _ka_go_ver: the version of the go on PATH without a toolchain switch.
_ka_go_ver() { GOTOOLCHAIN=local go env GOVERSION 2>/dev/null | sed 's/^go//; s/[^0-9.].*//'; }

# ka_go: puts a Go on PATH that builds this module. In order: a go (also
# /usr/local/go/bin) at least go.mod's "go" line; a go >= 1.21, which fetches
# the toolchain go.mod names through the module proxy (GOTOOLCHAIN=auto);
# else Debian's golang-1.22-go from bookworm-backports (Debian 12's golang-go
# is 1.19, too old to switch toolchains), then the same download.
ka_go() {
  export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
  local want tried=() v
  want=$(sed -n 's/^go \([0-9.]*\).*/\1/p' go.mod)
  [ -n "$want" ] || ka_die "no go line in go.mod"
  if command -v go >/dev/null; then
    v=$(_ka_go_ver)
    tried+=("$(command -v go) is go$v")
    _ka_ver_ge "$v" "$want" && return 0
  fi
  if ! { [ -n "${v:-}" ] && _ka_ver_ge "$v" 1.21; }; then
    _ka_backports_go || tried+=("golang-1.22-go from bookworm-backports: not installable")
    if [ -x /usr/lib/go-1.22/bin/go ]; then
      export PATH=/usr/lib/go-1.22/bin:$PATH
      v=$(_ka_go_ver); tried+=("/usr/lib/go-1.22/bin/go is go$v")
    fi
  fi
  if [ -n "${v:-}" ] && _ka_ver_ge "$v" 1.21; then
    [ "${GOTOOLCHAIN:-auto}" != local ] || ka_die "go$v is older than go.mod's go$want and GOTOOLCHAIN=local forbids fetching it"
    echo "setup: go$v fetches the go.mod toolchain (go$want or later) through $(GOTOOLCHAIN=local go env GOPROXY)"
    # go version in the module switches to (and downloads) the toolchain.
    # Set explicitly: a distribution's go.env may default to local.
    export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
    if v=$(go version 2>&1) && _ka_ver_ge "$(go env GOVERSION | sed 's/^go//; s/[^0-9.].*//')" "$want"; then
      echo "setup: $v"; return 0
    fi
    tried+=("toolchain download: $v")
  fi
  ka_die "no Go >= $want. Tried: $(IFS=';'; echo "${tried[*]}"). Install Go $want (https://go.dev/dl) into /usr/local/go, or make GOPROXY reachable"
}

# _ka_backports_go installs golang-1.22-go from bookworm-backports, adding
# that suite from the configured Debian mirror when apt does not know it.
_ka_backports_go() {
  [ -x /usr/lib/go-1.22/bin/go ] && return 0
  local m
  # shellcheck source=mirror.sh
  . test/lib/mirror.sh
  if ! apt-cache policy 2>/dev/null | grep -q 'bookworm-backports'; then
    m=$(debian_mirror) || return 1
    echo "setup: adding bookworm-backports from $m (/etc/apt/sources.list.d/kickagent-backports.list)"
    echo "deb $m bookworm-backports main" > /etc/apt/sources.list.d/kickagent-backports.list
  fi
  echo "setup: apt-get install -t bookworm-backports golang-1.22-go"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -t bookworm-backports golang-1.22-go >/dev/null
}
