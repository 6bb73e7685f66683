#!/usr/bin/env bash
# Throwaway Dovecot instances for kickagent's tests.
#   instance.sh start NAME   (re)start NAME from scratch; waits until anvil and IMAP/POP3 accept
#   instance.sh stop NAME    doveadm stop; waits for the master; kills only that master if stuck
#   instance.sh stop-all     stops every instance, then unmounts the chroot's /proc and /dev
#   instance.sh release      unmounts the chroot's /proc and /dev if no 2.4 instance runs
#   instance.sh env NAME     prints $KA_ROOT/inst/NAME/env
#   instance.sh passwd NAME USER NEWPASS   sets USER's password in p23/p24's SQLite db
#                            (no cache flush: the auth cache still knows the old one)
# NAME: v23 v23shared v23proxy (Dovecot 2.3, host) | v24 v24proxy v24proxyhp (2.4, chroot);
# b23 b24: benchmark instances (bench/run.sh), apart from the ones integration tests use;
# demo23 demo24: test/demo.sh's (ports 321xx, 323xx), apart from both.
# p23 p24: SQLite passdb (users.db in the instance dir) with the auth cache on.
# h23 h24: IMAP hibernation after 1 s in IDLE (idle clients move to one imap-hibernate process).
# Backends (not proxies) get the auth policy settings when KA_POLICY_URL is set at start
# (see policy_conf): p23 p24 for the tests, demo23 demo24 for test/demo.sh.
# 2.3 files live in $KA_ROOT/inst/NAME; 2.4 files in $KA_ROOT/trixie/ka/NAME (the env file
# is always $KA_ROOT/inst/NAME/env). Users alice bob carol jane jano james dave eve "john doe",
# password "pass". Run test/dovecot/install.sh first.
set -euo pipefail
# Dovecot must not inherit the caller's descriptors: a test's output pipe or
# a lock held across a test run would stay open for as long as the master
# lives (go test then waits for EOF, the lock is never released).
for fd in /proc/$$/fd/*; do
  fd=${fd##*/}
  [ "$fd" -gt 2 ] 2>/dev/null && [ "$fd" != 255 ] && eval "exec $fd>&-" 2>/dev/null || true
done
here=$(cd "$(dirname "$0")" && pwd)
KA_ROOT=${KA_ROOT:-$here/../../.dovecot}
mkdir -p "$KA_ROOT/inst"
KA_ROOT=$(cd "$KA_ROOT" && pwd)
case $KA_ROOT in *[[:space:]\'\"]*) echo "instance.sh: KA_ROOT must not contain spaces or quotes" >&2; exit 1 ;; esac
T=$KA_ROOT/trixie
USERS=(alice bob carol jane jano james dave eve "john doe")
ALL=(v23 v23shared v24 v24proxy v24proxyhp v23proxy b23 b24 demo23 demo24 p23 p24 h23 h24)

die() { echo "instance.sh: $*" >&2; exit 1; }

NOPENALTY=$'service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}'

# HIB23: an imap process hands a client that has been in IDLE for 1 s to imap-hibernate,
# which holds the socket (anvil lists the session under imap-hibernate's pid) and asks
# imap-master for a new imap process when the client speaks. The imap process runs as
# vmail and connects to imap-hibernate (group dovecot: imap's extra_groups); imap-hibernate
# runs as dovecot and connects to imap-master (owned by root unless told otherwise).
HIB23=$'imap_hibernate_timeout = 1s\nservice imap {\n  extra_groups = $default_internal_group\n  unix_listener imap-master {\n    user = $default_internal_user\n  }\n}\nservice imap-hibernate {\n  unix_listener imap-hibernate {\n    mode = 0660\n    group = $default_internal_group\n  }\n}'
# HIB24: 2.4's defaults give imap-hibernate to the dovecot group and imap that extra
# group; imap-master's owner is dovecot only in the Pro edition (imap-settings.c).
HIB24=$'imap_hibernate_timeout = 1s\nservice imap {\n  unix_listener imap-master {\n    user = $SET:default_internal_user\n  }\n}'

# def NAME: sets VER KIND IMAP POP3 BACKEND EXTRA and the paths of that instance.
def() {
  NAME=$1 BACKEND="" EXTRA=""
  case $NAME in
  v23) VER=2.3 KIND=backend IMAP=31143 POP3=31110 ;;
  v23shared) VER=2.3 KIND=backend IMAP=31243 POP3=31210
    EXTRA=$'service imap {\n  client_limit = 10\n  process_limit = 1\n  service_count = 0\n}' ;;
  v24) VER=2.4 KIND=backend IMAP=31343 POP3=31310 ;;
  v24proxy) VER=2.4 KIND=proxy IMAP=31443 POP3=31410 BACKEND=v24 ;;
  v24proxyhp) VER=2.4 KIND=proxy IMAP=31543 POP3=31510 BACKEND=v24
    EXTRA=$'service imap-login {\n  restart_request_count = unlimited\n  process_min_avail = 1\n}\nservice pop3-login {\n  restart_request_count = unlimited\n  process_min_avail = 1\n}' ;;
  v23proxy) VER=2.3 KIND=proxy IMAP=31643 POP3=31610 BACKEND=v23 ;;
  b23) VER=2.3 KIND=backend IMAP=31743 POP3=31710 ;;
  b24) VER=2.4 KIND=backend IMAP=31843 POP3=31810 # room for 1000 real IMAP sessions
    EXTRA=$'default_client_limit = 5000\ndefault_vsz_limit = 1G\nmail_max_userip_connections = 2000\nservice imap {\n  process_limit = 1100\n}\nservice imap-login {\n  process_limit = 1100\n  restart_request_count = unlimited\n  process_min_avail = 2\n}' ;;
  # demo23 demo24: test/demo.sh's, apart from the tests' so that test/run.sh
  # (which stops what it started) leaves a running demo alone.
  demo23) VER=2.3 KIND=backend IMAP=32143 POP3=32110 ;;
  demo24) VER=2.4 KIND=backend IMAP=32343 POP3=32310 ;;
  # p23 p24: anvil's auth penalty (a per-IP delay of up to 15 s after failed logins) is
  # off, so that the brute-force tests' failures from one address take seconds, not minutes.
  p23) VER=2.3 KIND=sql IMAP=33143 POP3=33110 EXTRA=$NOPENALTY ;;
  p24) VER=2.4 KIND=sql IMAP=33343 POP3=33310 EXTRA=$NOPENALTY ;;
  h23) VER=2.3 KIND=backend IMAP=34143 POP3=34110 EXTRA=$HIB23 ;;
  h24) VER=2.4 KIND=backend IMAP=34343 POP3=34310 EXTRA=$HIB24 ;;
  *) die "unknown instance '$NAME' (known: ${ALL[*]})" ;;
  esac
  ENVDIR=$KA_ROOT/inst/$NAME
  if [ "$VER" = 2.4 ]; then
    CDIR=/ka/$NAME HDIR=$T/ka/$NAME CHROOT=$T
    DOVEADM="chroot $T doveadm -c $CDIR/dovecot.conf"
  else
    CDIR=$KA_ROOT/inst/$NAME HDIR=$CDIR CHROOT=""
    DOVEADM="doveadm -c $CDIR/dovecot.conf"
  fi
  CONF=$CDIR/dovecot.conf BASE=$HDIR/run DB=""
  [ "$KIND" = sql ] && DB=$HDIR/users.db
  return 0
}

dc() { if [ -n "$CHROOT" ]; then chroot "$CHROOT" "$@"; else "$@"; fi; }

# master_pid: prints the pid from master.pid if that process is this instance's dovecot master.
master_pid() {
  local pid
  pid=$(cat "$BASE/master.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$CONF" || return 1
  echo "$pid"
}

mount_chroot() {
  [ -f "$T/.kickagent-ready" ] || die "no 2.4 chroot at $T; run test/dovecot/install.sh"
  mountpoint -q "$T/proc" || mount -t proc proc "$T/proc"
  mountpoint -q "$T/dev" || mount --bind /dev "$T/dev"
}

ensure_vmail() {
  id vmail >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin vmail
  if [ "$VER" = 2.4 ] && ! chroot "$T" id vmail >/dev/null 2>&1; then
    chroot "$T" useradd --system --no-create-home --shell /usr/sbin/nologin vmail
  fi
}

# passwd_line USER [PROTO]: one passwd-file line for the current instance. Alt names cannot
# hold spaces (passwd-file splits extra fields on spaces), so "john doe" gets john_doe-alt.
passwd_line() {
  local u=$1 proto=${2:-} alt=${1// /_}-alt ext="" port
  case $u in alice|jane|james) ext=" user_ext=$alt@ext.example" ;; esac
  case $VER/$KIND in
  2.3/backend) echo "$u:{PLAIN}pass::::::" ;;
  2.4/backend) echo "$u:{PLAIN}pass::::::userdb_user_alt=$alt${ext/ user_/ userdb_user_}" ;;
  2.3/proxy)
    port=$B_POP3; [ "$proto" = imap ] && port=$B_IMAP
    echo "$u:{PLAIN}pass::::::proxy=y host=127.0.0.1 port=$port user_alt=$alt$ext" ;;
  2.4/proxy) echo "$u:{PLAIN}pass::::::proxy=y host=127.0.0.1 port=%{protocol|if('eq','imap','$B_IMAP','$B_POP3')} user_alt=$alt$ext" ;;
  esac
}

# sql_quote S: S as an SQL string literal.
sql_quote() { local q="'"; printf "'%s'" "${1//$q/$q$q}"; }

# write_db: users.db with every user, password "pass" (PLAIN) and the alt name.
write_db() {
  local u
  {
    echo "CREATE TABLE users (username TEXT PRIMARY KEY, password TEXT NOT NULL, user_alt TEXT NOT NULL);"
    for u in "${USERS[@]}"; do
      echo "INSERT INTO users VALUES ($(sql_quote "$u"), 'pass', $(sql_quote "${u// /_}-alt"));"
    done
  } | sqlite3 "$DB"
  chmod 644 "$DB"
  # 2.3 reads the SQL settings from a file named by the passdb's args.
  if [ "$VER" = 2.3 ]; then
    cat >"$HDIR/sql.conf.ext" <<EOF
driver = sqlite
connect = $CDIR/users.db
default_pass_scheme = PLAIN
password_query = SELECT username AS user, password FROM users WHERE username = '%u'
EOF
  fi
}

# policy_conf: the auth policy settings, only when KA_POLICY_URL is set. Request
# attributes are Dovecot's defaults for that version plus user, passdb_user (empty until
# the passdb has answered: it tells the after-authentication allow request from the
# one before) and, on 2.4, user_alt (empty before authentication too).
# KA_POLICY_SOCKET (2.4 only, a host path inside the chroot) sends the requests to a
# UNIX socket instead: 2.4's HTTP client takes it as a proxy, so the request line
# carries the absolute URL (POST http://host/?command=allow HTTP/1.1).
policy_conf() {
  [ -n "${KA_POLICY_URL:-}" ] || return 0
  # Only the backend and sql templates have the @POLICY@ line: say so rather than ignore it.
  [ "$KIND" != proxy ] || die "$NAME: KA_POLICY_URL is for backends (the proxy templates have no auth policy settings)"
  # The values go into dovecot.conf (through awk -v, which reads backslashes as escapes)
  # and the env file (single-quoted).
  case ${KA_POLICY_URL}${KA_POLICY_HEADER:-}${KA_POLICY_SOCKET:-} in
  *[\'\\$'\n'\"]*) die "KA_POLICY_URL, KA_POLICY_HEADER and KA_POLICY_SOCKET must not contain quotes, backslashes or newlines" ;;
  esac
  local ms=${KA_POLICY_TIMEOUT_MS:-2000} rof=${KA_POLICY_REJECT_ON_FAIL:-no} sock=${KA_POLICY_SOCKET:-}
  if [ -n "$sock" ]; then
    [ "$VER" = 2.4 ] || die "KA_POLICY_SOCKET: Dovecot 2.3's auth policy client speaks only TCP"
    case $sock in "$T"/*) sock=${sock#"$T"} ;; *) die "KA_POLICY_SOCKET must be under $T (the 2.4 chroot)" ;; esac
  fi
  case $ms in ''|*[!0-9]*) die "KA_POLICY_TIMEOUT_MS must be a number of milliseconds, not '$ms'" ;; esac
  case $rof in yes|no) ;; *) die "KA_POLICY_REJECT_ON_FAIL must be yes or no, not '$rof'" ;; esac
  echo "auth_policy_server_url = $KA_POLICY_URL"
  # Dovecot refuses to start without a nonce; a fixed one keeps pwhash comparable across runs.
  echo "auth_policy_hash_nonce = kickagent-test-nonce"
  echo "auth_policy_reject_on_fail = $rof"
  [ -z "${KA_POLICY_HEADER:-}" ] || echo "auth_policy_server_api_header = $KA_POLICY_HEADER"
  if [ "$VER" = 2.3 ]; then
    echo "auth_policy_server_timeout_msecs = $ms"
    echo "auth_policy_request_attributes = login=%{requested_username} pwhash=%{hashed_password} remote=%{rip} device_id=%{client_id} protocol=%s session_id=%{session} user=%{user} passdb_user=%{passdb:user}"
  else
    cat <<EOF
auth_policy {
  http_client_request_absolute_timeout = $ms ms${sock:+
  http_client_proxy_socket_path = $sock}
}
auth_policy_request_attributes {
  login = %{requested_username}
  pwhash = %{hashed_password}
  remote = %{remote_ip}
  device_id = %{client_id}
  protocol = %{protocol}
  session_id = %{session}
  fail_type = %{fail_type}
  user = %{user}
  passdb_user = %{passdb:user}
  user_alt = %{passdb:user_alt}
}
EOF
  fi
}

write_files() {
  local u p sock
  sock="$BASE/token-login/imap-urlauth-xxxxxx" # longest socket path Dovecot makes, plus margin
  [ ${#sock} -lt 100 ] || die "UNIX socket paths under $BASE would exceed 100 bytes; set a shorter KA_ROOT"
  if [ "$KIND" = proxy ]; then
    B_IMAP=$( (def "$BACKEND"; echo "$IMAP") ) B_POP3=$( (def "$BACKEND"; echo "$POP3") )
  fi
  rm -rf "$HDIR"
  mkdir -p "$HDIR/run" "$HDIR/state" "$HDIR/home" "$ENVDIR"
  local policy
  policy=$(policy_conf)
  sed -e "s|@NAME@|$NAME|g" -e "s|@DIR@|$CDIR|g" -e "s|@IMAP_PORT@|$IMAP|g" -e "s|@POP3_PORT@|$POP3|g" \
    "$here/conf/${VER/./}-$KIND.conf.in" |
    awk -v extra="$EXTRA" -v policy="$policy" '$0 == "@EXTRA@" {print extra; next} $0 == "@POLICY@" {print policy; next} {print}' \
    >"$HDIR/dovecot.conf"
  if [ "$KIND" = sql ]; then
    write_db
  elif [ "$VER/$KIND" = 2.3/proxy ]; then
    for p in imap pop3; do
      for u in "${USERS[@]}"; do passwd_line "$u" "$p"; done >"$HDIR/passwd-$p"
    done
  else
    for u in "${USERS[@]}"; do passwd_line "$u"; done >"$HDIR/passwd"
  fi
  [ "$KIND" = sql ] || chmod 644 "$HDIR"/passwd*
  dc chown vmail:vmail "$CDIR/home"
  cat >"$ENVDIR/env" <<EOF
KA_NAME='$NAME'
KA_VERSION='$VER'
KA_DIR='$HDIR'
KA_CHROOT='$CHROOT'
KA_BASE_DIR='$BASE'
KA_ANVIL='$BASE/anvil'
KA_IPC='$BASE/ipc'
KA_IMAP_PORT='$IMAP'
KA_POP3_PORT='$POP3'
KA_CONF='$CONF'
KA_DOVEADM='$DOVEADM'
KA_LOG='$HDIR/dovecot.log'
KA_BACKEND='$BACKEND'
KA_AUTH_MASTER='$BASE/auth-master'
KA_DB='$DB'
KA_POLICY_URL='${KA_POLICY_URL:-}'
KA_POLICY_SOCKET='${KA_POLICY_SOCKET:-}'
EOF
}

tcp_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

healthy() {
  master_pid >/dev/null && [ -S "$BASE/anvil" ] && $DOVEADM who >/dev/null 2>&1 &&
    tcp_open 127.0.0.1 "$IMAP" && tcp_open ::1 "$IMAP" && tcp_open 127.0.0.1 "$POP3" && tcp_open ::1 "$POP3"
}

start() {
  def "$1"
  policy_conf >/dev/null # bad KA_POLICY_* settings fail here, before any instance stops
  if [ -n "$BACKEND" ]; then (def "$BACKEND"; healthy) || "$0" start "$BACKEND"; fi
  [ "$VER" = 2.4 ] && mount_chroot
  ensure_vmail
  stop "$NAME"
  write_files
  dc dovecot -c "$CONF" </dev/null >/dev/null 2>&1 || { tail -n 20 "$HDIR/dovecot.log" >&2 2>/dev/null; die "$NAME: dovecot failed to start"; }
  local i
  for i in $(seq 100); do
    healthy && { echo "$NAME: running (imap $IMAP, pop3 $POP3, pid $(master_pid))"; return 0; }
    sleep 0.1
  done
  tail -n 20 "$HDIR/dovecot.log" >&2 2>/dev/null || true
  die "$NAME: not answering after 10 s"
}

stop() {
  def "$1"
  local pid i kids
  pid=$(master_pid) || { rm -f "$BASE/master.pid"; return 0; }
  kids=$(ps -o pid= --ppid "$pid" | tr -s ' \n' ' ')
  $DOVEADM stop >/dev/null 2>&1 || true
  for i in $(seq 100); do
    [ -d "/proc/$pid" ] || { echo "$NAME: stopped"; return 0; }
    sleep 0.1
  done
  echo "$NAME: master $pid still alive after 10 s; killing it and its children" >&2
  for i in $kids; do
    [ "$(ps -o ppid= -p "$i" 2>/dev/null | tr -d ' ')" = "$pid" ] && kill -KILL "$i" 2>/dev/null || true
  done
  kill -KILL "$pid" 2>/dev/null || true
}

stop_all() {
  local n
  for n in "${ALL[@]}"; do stop "$n"; done
  release
}

# release unmounts the chroot's /proc and /dev once no 2.4 instance runs.
release() {
  local n
  for n in v24 v24proxy v24proxyhp b24 demo24 p24 h24; do (def "$n"; ! master_pid >/dev/null) || return 0; done
  [ -d "$T" ] || return 0
  # A dovecot child still exiting can hold the mount for a moment: retry,
  # then detach it lazily rather than leave /proc mounted after a run.
  local m i
  for m in dev proc; do
    for i in 1 2 3 4 5; do mountpoint -q "$T/$m" || break; umount "$T/$m" 2>/dev/null || sleep 0.2; done
    if mountpoint -q "$T/$m"; then umount -l "$T/$m"; fi
  done
}

# passwd_cmd NAME USER NEWPASS: changes the password in the db only; Dovecot's auth
# cache is left alone, so a cached login goes on working until it is flushed.
passwd_cmd() {
  def "$1"
  [ "$KIND" = sql ] || die "$NAME has no SQL passdb (passwd works on p23 p24)"
  [ -f "$DB" ] || die "$NAME: no $DB; start the instance first"
  local n
  n=$(sqlite3 "$DB" "UPDATE users SET password = $(sql_quote "$3") WHERE username = $(sql_quote "$2"); SELECT changes();")
  [ "$n" = 1 ] || die "$NAME: no user '$2' in $DB"
}

case ${1:-} in
start) [ $# -eq 2 ] || die "usage: start NAME"; start "$2" ;;
stop) [ $# -eq 2 ] || die "usage: stop NAME"; stop "$2" ;;
stop-all) stop_all ;;
release) release ;;
env) [ $# -eq 2 ] || die "usage: env NAME"; def "$2"; cat "$ENVDIR/env" ;;
passwd) [ $# -eq 4 ] || die "usage: passwd NAME USER NEWPASS"; passwd_cmd "$2" "$3" "$4" ;;
*) die "usage: instance.sh start NAME | stop NAME | stop-all | release | env NAME | passwd NAME USER NEWPASS" ;;
esac
