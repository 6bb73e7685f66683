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

# _ka_go_ver GO: the version of that go binary itself (no toolchain switch).
_ka_go_ver() { (cd / && GOTOOLCHAIN=local "$1" version 2>/dev/null) | awk '{print $3}' | sed 's/^go//; s/[^0-9.].*//'; }

# _ka_use GO: puts GO's directory first on PATH (and $HOME/go/bin for tools).
_ka_use() { PATH=$(dirname "$1"):$HOME/go/bin:$PATH; export PATH; }

# ka_go: puts a Go on PATH that builds this module. In order: a go (on PATH,
# /usr/local/go/bin, Debian's /usr/lib/go-1.2x) at least go.mod's "go" line;
# a go >= 1.21, which fetches the toolchain go.mod names through the module
# proxy (GOTOOLCHAIN=auto); else Debian's golang-1.22-go from
# bookworm-backports (Debian 12's golang-go is 1.19, too old to switch
# toolchains), then the same download. KA_GO_CANDIDATES replaces the list
# searched (tests).
ka_go() {
  local want v g out auto="" tried=()
  want=$(sed -n 's/^go \([0-9.]*\).*/\1/p' go.mod)
  [ -n "$want" ] || ka_die "no go line in go.mod"
  # shellcheck disable=SC2086 # the default list is globbed on purpose
  for g in ${KA_GO_CANDIDATES:-$(command -v go) /usr/local/go/bin/go /usr/lib/go-1.2[1-9]/bin/go}; do
    [ -x "$g" ] || continue
    v=$(_ka_go_ver "$g"); tried+=("$g is go$v")
    if _ka_ver_ge "$v" "$want"; then _ka_use "$g"; return 0; fi
    if [ -z "$auto" ] && _ka_ver_ge "$v" 1.21; then auto=$g; fi
  done
  if [ -z "$auto" ]; then
    if _ka_backports_go; then
      auto=/usr/lib/go-1.22/bin/go; tried+=("$auto (bookworm-backports) is go$(_ka_go_ver "$auto")")
    else
      tried+=("golang-1.22-go from bookworm-backports: not installable")
    fi
  fi
  if [ -n "$auto" ]; then
    [ "${GOTOOLCHAIN:-auto}" != local ] || ka_die "$auto is older than go.mod's go$want and GOTOOLCHAIN=local forbids fetching go$want"
    _ka_use "$auto"
    # Set explicitly: a distribution's go.env may default to local.
    export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
    echo "setup: $auto fetches the go.mod toolchain (go$want or later) through $(GOTOOLCHAIN=local go env GOPROXY)"
    # go version in the module switches to (and downloads) the toolchain.
    if out=$(go version 2>&1) && _ka_ver_ge "$(go env GOVERSION | sed 's/^go//; s/[^0-9.].*//')" "$want"; then
      echo "setup: $out"; return 0
    fi
    tried+=("$auto fetching the toolchain: $out")
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

# ka_root exports KA_ROOT, where the Dovecot instances live: <repo>/.dovecot,
# unless the clone is somewhere other users cannot reach (a clone in /root,
# mode 0700): Dovecot 2.3's auth runs as the dovecot user and must read its
# passwd file there, so KA_ROOT is then /var/lib/kickagent-test. A KA_ROOT
# from the environment is kept.
ka_root() {
  if [ -z "${KA_ROOT:-}" ]; then
    KA_ROOT=$PWD/.dovecot
    if ! _ka_reachable "$KA_ROOT"; then
      KA_ROOT=/var/lib/kickagent-test
      echo "setup: $PWD is not reachable by other users (Dovecot's auth runs as user dovecot); the instances live in KA_ROOT=$KA_ROOT"
    fi
  fi
  export KA_ROOT
}

# _ka_reachable PATH: every directory above PATH lets others traverse it.
_ka_reachable() {
  local d=$1 m
  while [ "$d" != / ]; do
    d=$(dirname "$d")
    m=$(stat -c %A "$d") || return 1
    case ${m:9:1} in x|t) ;; *) return 1 ;; esac
  done
}
