#!/usr/bin/env bash
# A real CrowdSec Local API (LAPI) for kickagent's tests: Debian 12's crowdsec package,
# unpacked (never installed, its postinst never runs) and started LAPI-only, offline.
#   lapi.sh start                 fetch+unpack once, (re)write the config, register cscli's
#                                 machine and the bouncer, start the LAPI, wait until it answers
#   lapi.sh stop                  stops the LAPI this script started (its recorded pid only)
#   lapi.sh status                exit 0 if it runs and answers
#   lapi.sh env                   prints CROWDSEC_URL, CROWDSEC_KEY_FILE, CROWDSEC_CSCLI
#   lapi.sh decisions-add ARGS    cscli decisions add ARGS   (e.g. --ip 192.0.2.1 --duration 1m)
#   lapi.sh decisions-delete ARGS cscli decisions delete ARGS (e.g. --ip 192.0.2.1, -v USER)
#   lapi.sh cscli ARGS            any cscli command against this LAPI
# Files live in $KA_ROOT/crowdsec (KA_ROOT as for test/dovecot/instance.sh). The LAPI listens
# on 127.0.0.1:$KA_CROWDSEC_PORT (default 18480). It is kept offline on purpose: no
# online_client in the config and -no-capi, so nothing is sent to CrowdSec's Central API.
# The bouncer key is a fixed test key, written to a 0600 file: kickagent reads keys from files.
# Run as root on Debian 12 (apt-get download needs the bookworm package lists).
set -euo pipefail
# crowdsec must not inherit the caller's descriptors (a test's output pipe would
# stay open for as long as the LAPI lives, and go test would wait for EOF).
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  [ "$fd" -gt 2 ] 2>/dev/null && [ "$fd" != 255 ] && eval "exec $fd>&-" 2>/dev/null || true
done
here=$(cd "$(dirname "$0")" && pwd)
KA_ROOT=${KA_ROOT:-$here/../../.dovecot}
mkdir -p "$KA_ROOT/crowdsec"
R=$(cd "$KA_ROOT/crowdsec" && pwd)
case $R in *[[:space:]\'\"]*) echo "lapi.sh: KA_ROOT must not contain spaces or quotes" >&2; exit 1 ;; esac
PORT=${KA_CROWDSEC_PORT:-18480}
case $PORT in '' | *[!0-9]*) echo "lapi.sh: KA_CROWDSEC_PORT must be a number" >&2; exit 1 ;; esac
PKG=$R/pkg                    # the unpacked crowdsec and libsqlite3-0 packages
CONF=$R/etc/config.yaml
PIDFILE=$R/crowdsec.pid
KEYFILE=$R/bouncer.key
BOUNCER=kickagent-test
KEY=0123456789abcdef0123456789abcdef # test-only, fixed so that reruns agree
MACHINE=kickagent-rig
URL=http://127.0.0.1:$PORT/

die() { echo "lapi.sh: $*" >&2; exit 1; }

# The binaries link libsqlite3, which a minimal Debian 12 lacks: it is unpacked next to them.
run_bin() { LD_LIBRARY_PATH=$PKG/usr/lib/x86_64-linux-gnu "$PKG/usr/bin/$1" "${@:2}"; }
cscli() { run_bin cscli -c "$CONF" --color no "$@"; }

# fetch: apt-get download + dpkg -x, once; the unpacked tree is the cache.
fetch() {
  [ -x "$PKG/usr/bin/crowdsec" ] && [ -e "$PKG/.complete" ] && return 0
  local dl=$R/deb
  rm -rf "$dl" "$PKG.tmp" && mkdir -p "$dl" "$PKG.tmp"
  # apt-get update only if the package lists do not know crowdsec yet.
  if ! (cd "$dl" && apt-get download crowdsec libsqlite3-0 >"$dl/apt.log" 2>&1); then
    [ "$(id -u)" = 0 ] || die "apt-get download failed and only root can apt-get update; see $dl/apt.log"
    echo "lapi.sh: apt-get update (package lists do not know crowdsec)" >&2
    apt-get update >>"$dl/apt.log" 2>&1 || die "apt-get update failed; see $dl/apt.log"
    (cd "$dl" && apt-get download crowdsec libsqlite3-0 >>"$dl/apt.log" 2>&1) ||
      die "apt-get download crowdsec libsqlite3-0 failed; see $dl/apt.log"
  fi
  local deb
  for deb in "$dl"/*.deb; do dpkg -x "$deb" "$PKG.tmp" || die "dpkg -x $deb failed"; done
  [ -x "$PKG.tmp/usr/bin/crowdsec" ] || die "no usr/bin/crowdsec in the downloaded package"
  touch "$PKG.tmp/.complete"
  rm -rf "$PKG" && mv "$PKG.tmp" "$PKG"
}

# configure: the whole config under $R, rewritten on every start (idempotent).
configure() {
  mkdir -p "$R/etc" "$R/data" "$R/log" "$R/hub"
  cp "$PKG/etc/crowdsec/profiles.yaml" "$PKG/etc/crowdsec/simulation.yaml" "$R/etc/"
  # No online_client block: the LAPI stays offline. index_path: the package's offline
  # hub index, without which cscli lapi status refuses to run.
  cat >"$CONF.tmp" <<EOF
common:
  daemonize: false
  log_media: file
  log_level: info
  log_dir: $R/log/
  working_dir: $R
config_paths:
  config_dir: $R/etc/
  data_dir: $R/data/
  simulation_path: $R/etc/simulation.yaml
  hub_dir: $R/hub/
  index_path: $PKG/usr/share/crowdsec/hub/.index.json
  notification_dir: $R/etc/notifications/
  plugin_dir: $PKG/usr/lib/crowdsec/plugins/
cscli:
  output: human
  color: no
db_config:
  log_level: info
  type: sqlite
  db_path: $R/data/crowdsec.db
  use_wal: true
  flush:
    max_items: 5000
    max_age: 7d
plugin_config:
  user: nobody
  group: nogroup
api:
  client:
    insecure_skip_verify: false
    credentials_path: $R/etc/local_api_credentials.yaml
  server:
    log_level: info
    listen_uri: 127.0.0.1:$PORT
    profiles_path: $R/etc/profiles.yaml
    trusted_ips:
      - "127.0.0.1"
      - "::1"
prometheus:
  enabled: false
EOF
  mv "$CONF.tmp" "$CONF"
}

# running_pid: the recorded pid, if that process is our crowdsec (same config path).
running_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-c $CONF " || return 1
  echo "$pid"
}

# answers: GET /health over bash's /dev/tcp (curl is not on a minimal Debian).
# A subshell, so that a failed connect cannot end the script and fd 3 closes with it.
answers() (
  exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 1
  printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r -t 2 line <&3 || exit 1
  case $line in "HTTP/1."?" 200"*) exit 0 ;; *) exit 1 ;; esac
) 2>/dev/null

write_env() {
  cat >"$R/env.tmp" <<EOF
CROWDSEC_URL=$URL
CROWDSEC_KEY_FILE=$KEYFILE
CROWDSEC_CSCLI="LD_LIBRARY_PATH=$PKG/usr/lib/x86_64-linux-gnu $PKG/usr/bin/cscli -c $CONF"
EOF
  mv "$R/env.tmp" "$R/env"
}

start() {
  fetch
  if pid=$(running_pid); then
    answers || die "crowdsec (pid $pid) runs but $URL does not answer; see $R/log/"
    write_env
    echo "lapi.sh: already running (pid $pid) on $URL"
    return 0
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT on loopback is taken by another process; set KA_CROWDSEC_PORT"
  fi
  configure
  # cscli writes the db directly; no LAPI needed for these two.
  cscli machines add "$MACHINE" --auto --force -f "$R/etc/local_api_credentials.yaml" >"$R/log/cscli-setup.log" 2>&1 ||
    die "cscli machines add failed; see $R/log/cscli-setup.log"
  if ! cscli bouncers list -o json 2>>"$R/log/cscli-setup.log" | grep -q "\"name\": \"$BOUNCER\""; then
    cscli bouncers add "$BOUNCER" -k "$KEY" >>"$R/log/cscli-setup.log" 2>&1 ||
      die "cscli bouncers add failed; see $R/log/cscli-setup.log"
  fi
  (umask 077 && printf '%s\n' "$KEY" >"$KEYFILE.tmp" && mv "$KEYFILE.tmp" "$KEYFILE")
  # -no-cs: LAPI only (no log acquisition); -no-capi: never talk to the Central API.
  LD_LIBRARY_PATH=$PKG/usr/lib/x86_64-linux-gnu setsid "$PKG/usr/bin/crowdsec" -c "$CONF" -no-cs -no-capi \
    </dev/null >>"$R/log/stdout.log" 2>&1 &
  echo $! >"$PIDFILE"
  local i
  for i in $(seq 1 150); do
    if ! running_pid >/dev/null; then
      tail -n 20 "$R/log/stdout.log" "$R/log/crowdsec.log" "$R/log/crowdsec_api.log" >&2 2>/dev/null || true
      die "crowdsec exited during startup (logs above, in $R/log/)"
    fi
    if answers && cscli lapi status >/dev/null 2>&1; then
      write_env
      echo "lapi.sh: LAPI up (pid $(cat "$PIDFILE")) on $URL after $((i * 200)) ms; key file $KEYFILE"
      return 0
    fi
    sleep 0.2
  done
  die "LAPI did not answer on $URL within 30 s; see $R/log/ (still running: lapi.sh stop)"
}

stop() {
  local pid i
  if ! pid=$(running_pid); then
    echo "lapi.sh: not running"
    rm -f "$PIDFILE"
    return 0
  fi
  kill -TERM "$pid"
  for i in $(seq 1 50); do
    running_pid >/dev/null || { rm -f "$PIDFILE"; echo "lapi.sh: stopped (pid $pid)"; return 0; }
    sleep 0.2
  done
  echo "lapi.sh: pid $pid ignored SIGTERM for 10 s; SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

need_running() { running_pid >/dev/null || die "the LAPI is not running (lapi.sh start)"; }

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
start) start ;;
stop) stop ;;
status)
  need_running
  answers || die "crowdsec runs but $URL does not answer" ;;
env)
  [ -e "$R/env" ] || write_env
  cat "$R/env" ;;
decisions-add) need_running && cscli decisions add "$@" ;;
decisions-delete) need_running && cscli decisions delete "$@" ;;
cscli) need_running && cscli "$@" ;;
*) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
