#!/bin/sh
# tee-stderr.sh FILE COMMAND [ARGS...] — runs COMMAND, showing its stderr and keeping a
# copy in FILE (written atomically when COMMAND succeeded). For dr-filter's summary.
set -u
file=${1:?usage: tee-stderr.sh FILE COMMAND [ARGS...]}; shift
tmp="$file.tmp.$$"
trap 'rm -f "$tmp"' EXIT
trap 'exit 130' INT TERM
"$@" 2> "$tmp"; rc=$?
cat "$tmp" >&2
[ $rc -eq 0 ] || exit $rc
mv -f "$tmp" "$file"
