#!/usr/bin/env bash
# Builds kickagent_VERSION_ARCH.deb and kickagent-VERSION.ARCH.rpm into
# OUTDIR (default packaging/dist) with nfpm.
#   VERSION: default from git describe (v1.2.3 -> 1.2.3), else 0.0.0+<commit>
#   stamped into the binary (kickagent version) with -ldflags -X main.version.
# NFPM_CONFIG: another nfpm file (test/package.sh builds an upgrade with one).
# Needs go, go-md2man and nfpm (test/package.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
out=${1:-packaging/dist}
if [ -z "${VERSION:-}" ]; then
	VERSION=$(git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//; s/-\([0-9]*\)-g/+\1.g/') ||
		true
	[ -n "$VERSION" ] || VERSION=0.0.0+$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
fi
export VERSION ARCH=${ARCH:-$(go env GOARCH)}
rm -rf packaging/build && mkdir -p packaging/build/man "$out"
CGO_ENABLED=0 GOARCH=$ARCH go build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
	-o packaging/build/kickagent ./cmd/kickagent
packaging/man.sh packaging/build/kickagent packaging/build/man
gzip -9n packaging/build/man/kickagent.8 packaging/build/man/kickagent-rules.5
nfpm package -f "${NFPM_CONFIG:-packaging/nfpm.yaml}" -p deb -t "$out"
nfpm package -f "${NFPM_CONFIG:-packaging/nfpm.yaml}" -p rpm -t "$out"
echo "$VERSION"
