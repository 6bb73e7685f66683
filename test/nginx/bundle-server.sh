#!/usr/bin/env bash
# A bundle server for kickagent's tests: nginx from Debian's packages serving
# OPA bundle files from $BUNDLE_DIR/www/bundles/ on 127.0.0.1:$BUNDLE_PORT.
#
#   bundle-server.sh install             fetch nginx into $KA_ROOT/nginx/pkg (needs apt, as root)
#   bundle-server.sh start               install if needed, start nginx (pid in $BUNDLE_DIR/nginx.pid)
#   bundle-server.sh stop                stop the nginx this script started, by its recorded pid
#   bundle-server.sh env                 print BUNDLE_URL_BASE, BUNDLE_WWW, BUNDLE_PID_FILE
#   bundle-server.sh publish SRC NAME    copy SRC to $BUNDLE_DIR/www/bundles/NAME atomically
#
# nginx is unpacked (apt-get download + dpkg -x), not installed: installing the
# package would enable and start the system unit on port 80 on every address
# and write /etc/nginx. Unpacked, it runs only as the process started here,
# with every path under its prefix. Its libraries (libssl3, libpcre2, zlib,
# libcrypt) are in a base Debian 12.
#
# publish gives each new file an mtime strictly later than the one it
# replaces: nginx's ETag is hex(mtime)-hex(size), so two bundles of equal size
# published within one second would share an ETag and an agent polling with
# If-None-Match would get 304 and miss the second (test/nginx/PUBLISHING.md).
#
# nginx's workers run as nobody when started as root: BUNDLE_DIR and its
# parents must be traversable by others, or nginx answers 403.
#
# KA_ROOT defaults as in test/dovecot/instance.sh; BUNDLE_DIR defaults to
# $KA_ROOT/nginx/srv and BUNDLE_PORT to 18481, so tests can run their own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KA_ROOT=${KA_ROOT:-$here/../../.dovecot}
mkdir -p "$KA_ROOT/nginx"
KA_ROOT=$(cd "$KA_ROOT" && pwd)
PKG=$KA_ROOT/nginx/pkg
BUNDLE_DIR=${BUNDLE_DIR:-$KA_ROOT/nginx/srv}
BUNDLE_PORT=${BUNDLE_PORT:-18481}
NGINX=$PKG/usr/sbin/nginx
PIDFILE=$BUNDLE_DIR/nginx.pid

die() { echo "bundle-server.sh: $*" >&2; exit 1; }

install_nginx() {
  [ -x "$NGINX" ] && return 0
  command -v apt-get >/dev/null || die "apt-get missing: cannot fetch nginx"
  local dl
  dl=$(mktemp -d)
  # A package list may be stale on a fresh machine: update once, retry.
  if ! (cd "$dl" && apt-get download -qq nginx nginx-common >/dev/null 2>&1); then
    apt-get update -qq >/dev/null
    (cd "$dl" && apt-get download -qq nginx nginx-common >/dev/null)
  fi
  mkdir -p "$PKG"
  for deb in "$dl"/*.deb; do dpkg -x "$deb" "$PKG"; done
  rm -rf "$dl"
  [ -x "$NGINX" ] || die "no nginx binary after unpacking into $PKG"
}

running() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

write_conf() {
  mkdir -p "$BUNDLE_DIR"/{www/bundles,logs,tmp}
  cat > "$BUNDLE_DIR/nginx.conf" <<CONF
# Written by test/nginx/bundle-server.sh; regenerated on each start.
worker_processes 1;
pid $BUNDLE_DIR/logs/nginx-own.pid; # nginx's own; stop uses $PIDFILE, recorded at start
error_log $BUNDLE_DIR/logs/error.log warn;
events { worker_connections 64; }
http {
  access_log $BUNDLE_DIR/logs/access.log;
  client_body_temp_path $BUNDLE_DIR/tmp/body;
  proxy_temp_path $BUNDLE_DIR/tmp/proxy;
  fastcgi_temp_path $BUNDLE_DIR/tmp/fastcgi;
  uwsgi_temp_path $BUNDLE_DIR/tmp/uwsgi;
  scgi_temp_path $BUNDLE_DIR/tmp/scgi;
  server {
    listen 127.0.0.1:$BUNDLE_PORT;
    root $BUNDLE_DIR/www;
    # etag is nginx's default; named here because the agents depend on it.
    location /bundles/ { default_type application/gzip; etag on; }
  }
}
CONF
}

start() {
  install_nginx
  if running; then echo "bundle server already running (pid $(cat "$PIDFILE"))"; return 0; fi
  write_conf
  # -g 'daemon off;': nginx stays our child's process, so the pid we record
  # is the master's and stop signals exactly it.
  "$NGINX" -p "$BUNDLE_DIR" -c "$BUNDLE_DIR/nginx.conf" -e "$BUNDLE_DIR/logs/error.log" -g 'daemon off;' \
    >>"$BUNDLE_DIR/logs/stdout.log" 2>&1 </dev/null &
  echo $! > "$PIDFILE.start"
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$BUNDLE_PORT") 2>/dev/null; then
      mv "$PIDFILE.start" "$PIDFILE"
      echo "bundle server on http://127.0.0.1:$BUNDLE_PORT/bundles/ (pid $(cat "$PIDFILE"))"
      return 0
    fi
    kill -0 "$(cat "$PIDFILE.start")" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 5 "$BUNDLE_DIR/logs/error.log" >&2 || true
  kill "$(cat "$PIDFILE.start")" 2>/dev/null || true
  rm -f "$PIDFILE.start"
  die "nginx did not come up on 127.0.0.1:$BUNDLE_PORT"
}

stop() {
  [ -s "$PIDFILE" ] || { echo "bundle server not running"; return 0; }
  local pid
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    kill -QUIT "$pid" # graceful: the workers finish their requests
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid"
  fi
  rm -f "$PIDFILE"
  echo "bundle server stopped"
}

publish() {
  local src=$1 name=$2
  [ -f "$src" ] || die "publish: $src is not a file"
  case $name in */*|.*|"") die "publish: NAME must be a plain file name" ;; esac
  local dir=$BUNDLE_DIR/www/bundles dst tmp old now
  mkdir -p "$dir"
  dst=$dir/$name
  tmp=$(mktemp "$dir/.$name.XXXXXX")
  cp "$src" "$tmp"
  chmod 0644 "$tmp"
  # The ETag fix: a strictly later mtime than the file replaced.
  now=$(date +%s)
  if [ -e "$dst" ]; then
    old=$(stat -c %Y "$dst")
    [ "$now" -gt "$old" ] || now=$((old + 1))
  fi
  touch -d "@$now" "$tmp"
  mv -f "$tmp" "$dst"
  echo "published $dst mtime=$now size=$(stat -c %s "$dst")"
}

case ${1:-} in
  install) install_nginx ;;
  start) start ;;
  stop) stop ;;
  env) printf 'BUNDLE_URL_BASE=http://127.0.0.1:%s/bundles\nBUNDLE_WWW=%s\nBUNDLE_PID_FILE=%s\n' "$BUNDLE_PORT" "$BUNDLE_DIR/www/bundles" "$PIDFILE" ;;
  publish) [ $# -eq 3 ] || die "usage: publish SRC_FILE NAME"; publish "$2" "$3" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
