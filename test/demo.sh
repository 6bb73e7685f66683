#!/usr/bin/env bash
# The main job, against throwaway real Dovecot: installs Dovecot 2.3 and 2.4
# (test/dovecot/install.sh), starts instances v23 and v24 on loopback, logs
# in live IMAP/POP3 sessions, and shows kickagent who / kick next to doveadm.
# Run as root. Stop the instances afterwards with: test/dovecot/instance.sh stop-all
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
test/dovecot/install.sh
go build -o .dovecot/kickagent ./cmd/kickagent
ka=.dovecot/kickagent
for v in v23 v24; do test/dovecot/instance.sh start "$v" >/dev/null; done

sessions=()
for v in v23 v24; do
  sessions+=("$v:alice@127.0.0.2/imap" "$v:alice@127.0.0.3/pop3" "$v:bob@::1/imap"
             "$v:jane@127.0.0.4/imap" "$v:jano@127.0.0.5/pop3" "$v:james@127.0.0.6/imap"
             "$v:john doe@127.0.0.7/imap")
done
go build -o .dovecot/demo-hold ./test/demo
.dovecot/demo-hold -for 10m "${sessions[@]}" > .dovecot/demo-hold.log 2>&1 &
holder=$!
trap 'kill $holder 2>/dev/null || true' EXIT
for i in $(seq 100); do grep -q holding .dovecot/demo-hold.log && break; sleep 0.1; done
grep -q holding .dovecot/demo-hold.log || { cat .dovecot/demo-hold.log; exit 1; }

run() { echo; echo "\$ $*"; "$@" || echo "(exit $?)"; }
for v in v23 v24; do
  # shellcheck disable=SC1090
  . ".dovecot/inst/$v/env"
  echo; echo "================ Dovecot $KA_VERSION ($v, anvil $KA_ANVIL)"
  run $ka who -a "$KA_ANVIL"
  run $ka who -1 -a "$KA_ANVIL"
  run $KA_DOVEADM who -1
  run $ka who --json -a "$KA_ANVIL" ::1
  run $ka kick --dry-run -a "$KA_ANVIL" 'ALI*'
  run $ka kick -a "$KA_ANVIL" 'jan?'
  run $ka who -1 -a "$KA_ANVIL"
done
echo
echo "The instances keep running; stop them with: test/dovecot/instance.sh stop-all"
