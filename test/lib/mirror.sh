# shellcheck shell=bash
# debian_mirror prints the Debian archive mirror this machine's apt uses, so
# debootstrap and the backports suite come from the same place (no host name
# is baked in). KA_DEBIAN_MIRROR overrides the detection. Understood:
#   deb http://host/debian/ bookworm main          (trailing slash)
#   deb [arch=amd64 signed-by=...] http://host/debian bookworm main
#   deb mirror+file:/etc/apt/mirrors/debian.list bookworm main  (first URL in that file)
#   deb822 *.sources with URIs: (any case, indented, several URIs, continuation lines)
# The security archive (…/debian-security) is never picked.
# Usage: debian_mirror [ROOT]   (ROOT: where etc/apt lives, default /; for tests)
debian_mirror() {
  local root=${1:-} u f
  if [ -n "${KA_DEBIAN_MIRROR:-}" ]; then echo "${KA_DEBIAN_MIRROR%/}"; return 0; fi
  for u in $(_apt_uris "$root"); do
    case $u in
    mirror+file:*) f=${u#mirror+file:}
      u=$(sed -n 's/^[[:space:]]*\([a-z]*:\/\/[^[:space:]]*\).*/\1/p' "$root$f" 2>/dev/null | head -n1) ;;
    mirror+*|tor+*) u=${u#*+} ;;
    esac
    u=${u%%/}; u=${u%/}
    case $u in http://*/debian|https://*/debian|ftp://*/debian|file:/*/debian) echo "$u"; return 0 ;; esac
  done
  echo "no Debian mirror (a URI ending in /debian) found in $root/etc/apt/sources.list{,.d/*.list,.d/*.sources}; set KA_DEBIAN_MIRROR=http://…/debian" >&2
  return 1
}

# _apt_uris prints every archive URI of the one-line and deb822 sources, one a line.
_apt_uris() {
  local root=$1 f
  for f in "$root"/etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: a field's value may go on in indented continuation lines.
    awk '/^[[:space:]]*#/ {next}
      /^[[:space:]]*$/ {inuri=0; next}
      /^[[:space:]]*[A-Za-z][A-Za-z0-9-]*:([[:space:]]|$)/ {
        inuri = tolower($0) ~ /^[[:space:]]*uris:/; sub(/^[^:]*:/, "")}
      inuri {for (i=1; i<=NF; i++) print $i}' "$f"
  done
  for f in "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1=="deb" {print $2}'
  done
}
