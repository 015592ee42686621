#!/bin/sh
# atomic.sh OUT COMMAND [ARGS...] — runs COMMAND with its stdout going to OUT, written
# atomically: to a temporary name next to OUT, renamed when COMMAND succeeded, removed
# when it failed or was interrupted. Exit status of COMMAND. For the pipelines' stdout
# captures (scores.tsv, shard lists, example excerpts).
set -u
out=${1:?usage: atomic.sh OUT COMMAND [ARGS...]}; shift
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
trap 'exit 130' INT TERM
"$@" > "$tmp" || exit $?
mv -f "$tmp" "$out"
