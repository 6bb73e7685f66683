#!/usr/bin/env bash
# Builds the man pages kickagent.8 and kickagent-rules.5 into OUTDIR with
# go-md2man. One source each, so they cannot drift: kickagent(8) is
# docs/man/kickagent.8.md plus every command's --help text as the binary
# prints it; kickagent-rules(5) is docs/man/kickagent-rules.5.md plus
# CONFIGURATION.md.   Usage: packaging/man.sh KICKAGENT_BINARY OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 out=$2
command -v go-md2man >/dev/null || { echo "man.sh: go-md2man missing (apt-get install go-md2man)" >&2; exit 1; }
mkdir -p "$out"

# The commands of "kickagent --help", in its order.
commands=$("$bin" --help | sed -n 's/^  kickagent \([a-z-]*\).*/\1/p' | awk '!seen[$0]++')
[ -n "$commands" ] || { echo "man.sh: no commands in $bin --help" >&2; exit 1; }
{
  # The header up to SEE ALSO/FILES stays first; the commands follow DESCRIPTION.
  sed '/^# FILES$/,$d' docs/man/kickagent.8.md
  echo "# COMMANDS"
  echo
  for c in $commands; do
    echo "### kickagent $c"
    echo
    # --help is usage on stdout, exit 0 (help for version: the synopsis line).
    "$bin" "$c" --help 2>&1 | sed 's/^/    /'
    echo
  done
  sed -n '/^# FILES$/,$p' docs/man/kickagent.8.md
} > "$out/kickagent.8.md"

{
  cat docs/man/kickagent-rules.5.md
  echo
  # CONFIGURATION.md without its title; ## becomes a section (.SH), ### stays a
  # subsection. Lines inside code fences (YAML comments start with #) stay.
  awk 'NR==1 && /^# /{next}
       /^```/{f=!f}
       !f && /^## /{sub(/^#/, "")}
       {print}' CONFIGURATION.md
} > "$out/kickagent-rules.5.md"

go-md2man -in "$out/kickagent.8.md" -out "$out/kickagent.8"
go-md2man -in "$out/kickagent-rules.5.md" -out "$out/kickagent-rules.5"
