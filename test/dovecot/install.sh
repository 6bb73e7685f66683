#!/usr/bin/env bash
# Installs the two Dovecot generations the tests run against:
#   2.3: Debian 12's packages on the host;
#   2.4: Debian 13 (trixie) packages in a debootstrap chroot under $KA_ROOT/trixie.
# Idempotent: a finished chroot is marked and reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KA_ROOT=${KA_ROOT:-$here/../../.dovecot}
mkdir -p "$KA_ROOT"
KA_ROOT=$(cd "$KA_ROOT" && pwd)

need_apt=()
for p in dovecot-imapd dovecot-pop3d debootstrap; do
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
if [ ! -f "$chroot_dir/.kickagent-ready" ]; then
  # Never delete through the /proc and /dev mounts instance.sh makes in the chroot.
  for m in proc dev; do
    if mountpoint -q "$chroot_dir/$m"; then echo "install.sh: $chroot_dir/$m is mounted; run instance.sh stop-all first" >&2; exit 1; fi
  done
  rm -rf --one-file-system "$chroot_dir"
  debootstrap --variant=minbase --include=dovecot-core,dovecot-imapd,dovecot-pop3d \
    trixie "$chroot_dir" "$(mirror)" >"$KA_ROOT/debootstrap.log" 2>&1 || {
      tail -n 30 "$KA_ROOT/debootstrap.log" >&2; exit 1; }
  touch "$chroot_dir/.kickagent-ready"
fi
chroot "$chroot_dir" dovecot --version | grep -q '^2\.4\.' || { echo "install.sh: chroot dovecot is not 2.4" >&2; exit 1; }
echo "dovecot 2.3: $(dovecot --version)"
echo "dovecot 2.4: $(chroot "$chroot_dir" dovecot --version)"
