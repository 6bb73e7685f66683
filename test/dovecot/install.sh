#!/usr/bin/env bash
# Installs the two Dovecot generations the tests run against:
#   2.3: Debian 12's packages on the host;
#   2.4: Debian 13 (trixie) packages in a debootstrap chroot under $KA_ROOT/trixie.
# Both get dovecot-sqlite (the p23/p24 instances' SQL passdb), the host also sqlite3 (the
# tool instance.sh passwd uses). Idempotent: a finished chroot is marked and reused, and
# an existing one gets packages added later (dovecot-sqlite) installed into it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KA_ROOT=${KA_ROOT:-$here/../../.dovecot}
mkdir -p "$KA_ROOT"
KA_ROOT=$(cd "$KA_ROOT" && pwd)

need_apt=()
for p in dovecot-imapd dovecot-pop3d dovecot-sqlite sqlite3 debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_apt+=("$p")
done
# shellcheck source=../lib/mirror.sh
. "$here/../lib/mirror.sh"
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # The package's own dovecot service is not ours and must not start (it would
  # take ports 143/110 and /run/dovecot): policy-rc.d answering 101 forbids
  # invoke-rc.d to start services while apt runs; an existing one is restored.
  prc=/usr/sbin/policy-rc.d
  [ -e "$prc" ] && mv "$prc" "$prc.kickagent-saved"
  trap 'rm -f "$prc"; [ -e "$prc.kickagent-saved" ] && mv "$prc.kickagent-saved" "$prc"' EXIT
  printf '#!/bin/sh\nexit 101\n' > "$prc"; chmod 755 "$prc"
  apt-get update -qq
  # dpkg's conffile chatter goes to a log, shown only on failure.
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >"$KA_ROOT/apt.log" 2>&1 ||
    { tail -n 30 "$KA_ROOT/apt.log" >&2; exit 1; }
  rm -f "$prc"; [ -e "$prc.kickagent-saved" ] && mv "$prc.kickagent-saved" "$prc"
  trap - EXIT
fi
dovecot --version | grep -q '^2\.3\.' || { echo "install.sh: host dovecot is not 2.3: $(dovecot --version)" >&2; exit 1; }

# The Debian mirror the machine already uses, or KA_DEBIAN_MIRROR.
mirror() { debian_mirror || exit 1; }

chroot_dir=$KA_ROOT/trixie

# chroot_add_packages PKG...: installs into an existing chroot what it lacks (a chroot built
# before a package joined debootstrap's --include). Only adds: the chroot is never rebuilt,
# and instances running in it keep running. apt there needs /proc, name resolution and a
# Debian mirror in its sources.list; a /proc mounted here is unmounted again.
chroot_add_packages() {
  local p need=() mounted_proc="" prc=$chroot_dir/usr/sbin/policy-rc.d
  for p in "$@"; do
    chroot "$chroot_dir" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  if ! mountpoint -q "$chroot_dir/proc"; then mount -t proc proc "$chroot_dir/proc"; mounted_proc=1; fi
  cp -L /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
  # debootstrap wrote the mirror it used; a chroot without one gets the host's.
  debian_mirror "$chroot_dir" >/dev/null 2>&1 || echo "deb $(mirror) trixie main" >"$chroot_dir/etc/apt/sources.list"
  # As on the host: no service may start inside the chroot while apt runs.
  [ -e "$prc" ] && mv "$prc" "$prc.kickagent-saved"
  printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod 755 "$prc"
  local rc=0
  { chroot "$chroot_dir" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    chroot "$chroot_dir" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$KA_ROOT/apt-chroot.log" 2>&1 || rc=$?
  rm -f "$prc"; [ -e "$prc.kickagent-saved" ] && mv "$prc.kickagent-saved" "$prc"
  [ -z "$mounted_proc" ] || umount "$chroot_dir/proc"
  if [ $rc -ne 0 ]; then tail -n 30 "$KA_ROOT/apt-chroot.log" >&2; echo "install.sh: apt-get install ${need[*]} in $chroot_dir failed" >&2; exit 1; fi
}
if [ ! -f "$chroot_dir/.kickagent-ready" ]; then
  # Never delete through the /proc and /dev mounts instance.sh makes in the chroot.
  for m in proc dev; do
    if mountpoint -q "$chroot_dir/$m"; then echo "install.sh: $chroot_dir/$m is mounted; run instance.sh stop-all first" >&2; exit 1; fi
  done
  rm -rf --one-file-system "$chroot_dir"
  debootstrap --variant=minbase --include=dovecot-core,dovecot-imapd,dovecot-pop3d,dovecot-sqlite \
    trixie "$chroot_dir" "$(mirror)" >"$KA_ROOT/debootstrap.log" 2>&1 || {
      tail -n 30 "$KA_ROOT/debootstrap.log" >&2; exit 1; }
  touch "$chroot_dir/.kickagent-ready"
fi
chroot_add_packages dovecot-sqlite
chroot "$chroot_dir" dovecot --version | grep -q '^2\.4\.' || { echo "install.sh: chroot dovecot is not 2.4" >&2; exit 1; }
echo "dovecot 2.3: $(dovecot --version)"
echo "dovecot 2.4: $(chroot "$chroot_dir" dovecot --version)"
