#!/usr/bin/env bash
# Proves the packages (README "Install"): builds the .deb and .rpm with
# nfpm, checks the .rpm's file list and conffiles with rpm, then installs the
# .deb into a throwaway copy of the Debian 13 chroot of the tests (never the
# shared one: it runs the test Dovecot instances) and checks there:
# kickagent check of the installed config, systemd-analyze verify of the
# installed unit, that the installed defaults kick nothing, an upgrade over
# an edited conffile (kept), and a purge (config, job files, state, binary
# gone); the same in a minimal Debian 12 root (made once with debootstrap,
# kept in KA_ROOT/bookworm-minbase; PACKAGE_BOOKWORM=DIR|no). Installs what it
# needs (go-md2man, rpm, make, man-db, debootstrap, nfpm). Run as root: ~20 s with a
# warm Go cache and both roots present. KA_ROOT (default .dovecot) holds the
# Debian 13 chroot of the tests (test/dovecot/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/mirror.sh
. test/lib/mirror.sh
export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
NFPM_VERSION=v2.48.0
KA_ROOT=${KA_ROOT:-$PWD/.dovecot}
src_chroot=$KA_ROOT/trixie

need_apt=""
command -v go-md2man >/dev/null || need_apt="$need_apt go-md2man"
command -v rpm >/dev/null || need_apt="$need_apt rpm"
command -v systemd-analyze >/dev/null || need_apt="$need_apt systemd"
command -v make >/dev/null || need_apt="$need_apt make"
# systemd-analyze verify runs man for the unit's man: Documentation (a
# minimal Debian has no man).
command -v man >/dev/null || need_apt="$need_apt man-db"
command -v debootstrap >/dev/null || need_apt="$need_apt debootstrap"
if [ -n "$need_apt" ]; then
	apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_apt >/dev/null
fi
command -v nfpm >/dev/null || go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
[ -x "$src_chroot/usr/bin/dpkg" ] || { echo "package.sh: no Debian chroot at $src_chroot (run test/dovecot/install.sh)" >&2; exit 1; }

work=$(mktemp -d /tmp/kickagent-package.XXXXXX)
root=""
cleanup() {
	# Nothing is mounted in the copy; remove it whole.
	rm -rf "$work"
}
trap cleanup EXIT

fails=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { # check NAME COMMAND...
	local name=$1
	shift
	if "$@" >"$work/out" 2>&1; then pass "$name"; else fail "$name"; sed 's/^/     /' "$work/out" | tail -n 20; fi
}
inroot() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

echo "== building the packages"
base=$(git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//; s/-\([0-9]*\)-g/+\1.g/' || true)
# A tree without .git (git archive, as test/fresh.sh copies it) has no commit.
[ -n "$base" ] || base=0.0.0+$(git rev-parse --short=12 HEAD 2>/dev/null || echo tree)
v1=$base v2=$base.1
VERSION=$v1 packaging/build.sh "$work/v1" >/dev/null
# The upgrade changes the shipped rules.yaml, so that dpkg must choose
# between it and the operator's edit (an unchanged conffile is kept anyway).
sed "s#src: systemd/rules.yaml#src: $work/rules-v2.yaml#" packaging/nfpm.yaml >"$work/nfpm-v2.yaml"
{ cat systemd/rules.yaml; echo "# v2: changed by the package"; } >"$work/rules-v2.yaml"
VERSION=$v2 NFPM_CONFIG=$work/nfpm-v2.yaml packaging/build.sh "$work/v2" >/dev/null
deb1=$(ls "$work"/v1/*.deb) deb2=$(ls "$work"/v2/*.deb) rpm1=$(ls "$work"/v1/*.rpm)
echo "built $(basename "$deb1") $(basename "$deb2") $(basename "$rpm1")"

echo "== the .rpm"
rpm -qpl "$rpm1" >"$work/rpm.list" 2>/dev/null
for f in /usr/bin/kickagent /usr/lib/systemd/system/kickagent.service /etc/kickagent/kickagent.yaml \
	/etc/kickagent/rules.yaml /etc/kickagent/rules.d /etc/logrotate.d/kickagent /var/lib/kickagent \
	/usr/share/man/man8/kickagent.8.gz /usr/share/man/man5/kickagent-rules.5.gz \
	/usr/share/doc/kickagent/examples/rules.example.yaml /usr/share/bash-completion/completions/kickagent \
	/usr/share/zsh/site-functions/_kickagent; do
	grep -qx "$f" "$work/rpm.list" || { fail "rpm lacks $f"; continue; }
done
check "rpm conffiles are the config, rules and logrotate files" \
	bash -c "[ \"\$(rpm -qpc '$rpm1' 2>/dev/null | sort | tr '\n' ' ')\" = '/etc/kickagent/kickagent.yaml /etc/kickagent/rules.yaml /etc/logrotate.d/kickagent ' ]"
check "rpm version is $v1" bash -c "[ \"\$(rpm -qp --qf '%{VERSION}' '$rpm1' 2>/dev/null)\" = '$v1' ]"

echo "== make install puts the same files at the same paths as the .deb"
# make install builds ./kickagent; a binary that was there before stays.
had_bin=no
[ -e kickagent ] && had_bin=yes
make install DESTDIR="$work/destdir" GO=go >/dev/null
[ "$had_bin" = yes ] || rm -f kickagent
# Man pages are compressed in the package only.
(cd "$work/destdir" && find . \( -type f -o -type d -empty \) | sed 's/^\.//' | sort) >"$work/make.list"
dpkg-deb -c "$deb1" | awk '{print $NF}' | sed 's/^\.//; s#/$##; s/\.gz$//' | sort >"$work/deb.all"
# The .deb lists every directory; keep its files, and the directories
# make install leaves empty.
grep -vxF -f <(sed 's#/[^/]*$##' "$work/deb.all" | sort -u) "$work/deb.all" >"$work/deb.list" || true
check "make install and the .deb install the same paths" diff -u "$work/deb.list" "$work/make.list"

# prove_deb SRC LABEL: the .deb in a throwaway copy of the chroot SRC.
prove_deb() {
	local src=$1 label=$2
	echo "== the .deb in a throwaway copy of $src ($label)"
	root=$work/root-$label
	mkdir "$root"
	# One file system only (no /proc or /dev contents); not the instances' /ka.
	tar -C "$src" --one-file-system --exclude=./ka --exclude='./proc/*' --exclude='./sys/*' \
		--exclude='./dev/*' --exclude='./run/*' --exclude='./tmp/*' -cf - . | tar -C "$root" -xf -
	# No package may start a service here (there is no systemd anyway).
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 0755 "$root/usr/sbin/policy-rc.d"
	cp "$deb1" "$deb2" "$root/tmp/"
	cp cmd/kickagent/testdata/plan/example24.snap.json rules.example.yaml "$root/tmp/"

	check "dpkg -i $(basename "$deb1")" inroot dpkg -i "/tmp/$(basename "$deb1")"
	check "kickagent version is $v1" bash -c "chroot '$root' /usr/bin/kickagent version | grep -qF 'kickagent $v1 '"
	check "kickagent check -c /etc/kickagent/kickagent.yaml" inroot kickagent check -c /etc/kickagent/kickagent.yaml
	# The chroot has no systemd: the host's verifies the installed unit, with
	# the installed binary, and finds the man pages it documents (MANPATH) in
	# the copy; the file:// documentation must be installed too.
	sed "s#/usr/bin/kickagent#$root/usr/bin/kickagent#g" "$root/usr/lib/systemd/system/kickagent.service" >"$work/kickagent.service"
	check "systemd-analyze verify of the installed unit (its man pages installed)" \
		env MANPATH="$root/usr/share/man" systemd-analyze verify "$work/kickagent.service"
	check "the unit's file:// documentation installed" bash -c \
		"for d in \$(sed -n 's#^Documentation=.*file://\\([^ ]*\\).*#\\1#p' '$root/usr/lib/systemd/system/kickagent.service'); do test -s '$root'\$d || { echo \"missing \$d\"; exit 1; }; done"
	check "installed config is dry_run: true" grep -qx 'dry_run: true' "$root/etc/kickagent/kickagent.yaml"
	# The same snapshot: the example rules kick, the installed defaults do not.
	check "example rules would kick on the snapshot" bash -c \
		"chroot '$root' kickagent plan --rules /tmp/rules.example.yaml --snapshot /tmp/example24.snap.json --now 2026-01-01T00:00:00Z | grep -Eq '^[1-9][0-9]* of [0-9]+ sessions would be kicked'"
	check "installed defaults kick nothing on the snapshot" bash -c \
		"chroot '$root' kickagent plan -c /etc/kickagent/kickagent.yaml --snapshot /tmp/example24.snap.json | grep -Eq '^0 of [1-9][0-9]* sessions would be kicked, 0 decisions'"
	check "man pages name every command" bash -c '
		for c in $(chroot "$0" kickagent --help | sed -n "s/^  kickagent \([a-z-]*\).*/\1/p" | sort -u); do
			zcat "$0/usr/share/man/man8/kickagent.8.gz" | grep -q "^\\.SS kickagent $c\$" || { echo "kickagent.8 lacks $c"; exit 1; }
		done
		zcat "$0/usr/share/man/man5/kickagent-rules.5.gz" | grep -q "allow list"' "$root"
	check "bash completion parses and completes" bash -c \
		"bash -n '$root/usr/share/bash-completion/completions/kickagent' && source '$root/usr/share/bash-completion/completions/kickagent' && COMP_WORDS=(kickagent dr) COMP_CWORD=1 && _kickagent && [ \"\${COMPREPLY[*]}\" = drain ]"
	check "zsh completion installed" test -s "$root/usr/share/zsh/vendor-completions/_kickagent"

	echo "== $label: upgrade over an edited conffile, then purge"
	echo "# edited by the operator" >>"$root/etc/kickagent/rules.yaml"
	check "a block job file written" inroot kickagent block 192.0.2.0/24 --reason package-test -c /etc/kickagent/kickagent.yaml
	check "dpkg -i $(basename "$deb2") (upgrade, --force-confold)" \
		inroot dpkg -i --force-confold "/tmp/$(basename "$deb2")"
	check "kickagent version is $v2" bash -c "chroot '$root' /usr/bin/kickagent version | grep -qF 'kickagent $v2 '"
	check "the edited rules.yaml kept" grep -qx '# edited by the operator' "$root/etc/kickagent/rules.yaml"
	check "the package's new rules.yaml offered beside it" grep -q '# v2: changed by the package' "$root/etc/kickagent/rules.yaml.dpkg-dist"
	check "kickagent check after the upgrade" inroot kickagent check -c /etc/kickagent/kickagent.yaml
	check "dpkg --purge kickagent" inroot dpkg --purge kickagent
	check "purge removed /etc/kickagent, /var/lib/kickagent, the binary and the unit" bash -c \
		"! test -e '$root/etc/kickagent' && ! test -e '$root/var/lib/kickagent' && ! test -e '$root/usr/bin/kickagent' && ! test -e '$root/usr/lib/systemd/system/kickagent.service'"
	rm -rf "$root"
}

prove_deb "$src_chroot" trixie

# Debian 12, the release the README targets (and Dovecot 2.3's): a minimal
# debootstrap root, made once (~70 s) and kept for later runs. PACKAGE_BOOKWORM=no
# skips it (no mirror reachable); KA_DEBIAN_MIRROR (or DEBIAN_MIRROR) overrides
# the mirror taken from the host's apt sources.
bookworm=${PACKAGE_BOOKWORM:-$KA_ROOT/bookworm-minbase}
if [ "$bookworm" != no ]; then
	if [ ! -f "$bookworm/.kickagent-ready" ]; then
		# The mirror the host's apt uses (test/lib/mirror.sh: every sources
		# format; KA_DEBIAN_MIRROR, or DEBIAN_MIRROR as before, overrides it).
		mirror=${DEBIAN_MIRROR:-$(debian_mirror)} ||
			{ echo "package.sh: set KA_DEBIAN_MIRROR or PACKAGE_BOOKWORM=no" >&2; exit 1; }
		echo "== debootstrap --variant=minbase bookworm $bookworm ($mirror)"
		rm -rf --one-file-system "$bookworm"
		debootstrap --variant=minbase bookworm "$bookworm" "$mirror" >"$work/debootstrap.log" 2>&1 ||
			{ tail -n 20 "$work/debootstrap.log"; fail "debootstrap bookworm"; }
		[ "$fails" -gt 0 ] || touch "$bookworm/.kickagent-ready"
	fi
	[ -f "$bookworm/.kickagent-ready" ] && prove_deb "$bookworm" bookworm
fi

if [ "$fails" -gt 0 ]; then
	echo "== package: $fails check(s) FAILED"
	exit 1
fi
echo "== package: all checks passed"
