#!/usr/bin/env bash
# Proves the README's fresh-machine path: builds a minimal Debian 12 root
# (debootstrap --variant=minbase bookworm, nothing else), copies the committed
# tree in (git archive HEAD), and inside it, chrooted with /proc, /sys and
# /dev mounted, runs the README's first command (test/demo.sh, to its end)
# and then the second (test/run.sh). Everything under DIR is unmounted
# afterwards; the demo is stopped (test/demo.sh stop).
#   test/fresh.sh [--demo-only] [DIR]     (DIR default /var/tmp/kickagent-fresh; recreated)
# Run as root. The chroot shares the host's network: the demo needs ports
# 32143 32110 32343 32310, 9869 and 9871 (its auth policy listener) free, the
# tests 31110-31643 (the v* instances), 33110-33343 (p23, p24) and 9868: stop
# the host's test instances first
# (test/dovecot/instance.sh stop-all), or use --demo-only. Needs network
# access to the Debian mirror (KA_DEBIAN_MIRROR overrides) and the module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
demo_only=false
if [ "${1:-}" = --demo-only ]; then demo_only=true; shift; fi
DIR=${1:-/var/tmp/kickagent-fresh}
[ "$(id -u)" = 0 ] || { echo "fresh.sh: run as root" >&2; exit 1; }
# shellcheck source=lib/mirror.sh
. test/lib/mirror.sh
mirror=$(debian_mirror)

# busy PORT...: fails fast when a port the chroot's Dovecot needs is taken.
busy() {
  local p
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "fresh.sh: port $p is in use on loopback (the chroot shares the host network); see the header" >&2; exit 1
    fi
  done
}
busy 32143 32110 32343 32310 9869 9871
$demo_only || busy 31143 31110 31243 31210 31343 31310 31443 31410 31543 31510 31643 31610 33143 33110 33343 33310 9868

# unmount_all: every mount under DIR, deepest first (the nested 2.4 chroot's too).
unmount_all() {
  local m
  for m in $(awk -v d="$DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}
cleanup() {
  if [ -x "$DIR/root/kickagent/test/demo.sh" ] && mountpoint -q "$DIR/proc"; then
    chroot "$DIR" /bin/bash -c 'cd /root/kickagent && test/demo.sh stop' >/dev/null 2>&1 || true
  fi
  unmount_all
}
trap cleanup EXIT

t0=$(date +%s)
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
unmount_all
rm -rf --one-file-system "$DIR"
echo "== debootstrap --variant=minbase bookworm $DIR $mirror"
debootstrap --variant=minbase bookworm "$DIR" "$mirror" > "$DIR.debootstrap.log" 2>&1 ||
  { tail -n 30 "$DIR.debootstrap.log" >&2; exit 1; }
echo "   $(( $(date +%s) - t0 )) s"
mkdir -p "$DIR/root/kickagent"
git archive HEAD | tar -x -C "$DIR/root/kickagent"
cp /etc/resolv.conf "$DIR/etc/resolv.conf"
# Local CAs (a TLS-inspecting proxy's, as on this project's build machines)
# go in as a site's image would have them; ca-certificates adds them at install.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  mkdir -p "$DIR/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$DIR/usr/local/share/ca-certificates/"
fi
mount -t proc proc "$DIR/proc"
mount -t sysfs sysfs "$DIR/sys"
mount --bind /dev "$DIR/dev"
mount --bind /dev/pts "$DIR/dev/pts" # apt logs through a pty

# inroot CMD: runs CMD in the fresh root as a new user's root shell would, passing
# only the settings a user might have chosen.
inroot() {
  chroot "$DIR" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    ${GOPROXY:+GOPROXY=$GOPROXY} ${GOFLAGS:+GOFLAGS=$GOFLAGS} ${KA_DEBIAN_MIRROR:+KA_DEBIAN_MIRROR=$KA_DEBIAN_MIRROR} \
    /bin/bash -c "cd /root/kickagent && $1"
}
t1=$(date +%s)
echo "== test/demo.sh (the README's first command)"
inroot test/demo.sh
echo "== demo: $(( $(date +%s) - t1 )) s"
inroot 'test/demo.sh stop'
if ! $demo_only; then
  t2=$(date +%s)
  echo "== test/run.sh (the README's second command)"
  inroot test/run.sh
  echo "== tests: $(( $(date +%s) - t2 )) s"
fi
echo "== fresh.sh passed in $(( $(date +%s) - t0 )) s"
