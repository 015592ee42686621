#!/bin/sh
# sources.sh CORPUS.jsonl 'PATTERN ...' — prints, comma-separated, the distinct "source"
# values of a JSON-lines corpus that match any of the shell patterns (e.g.
# 'sotu moby-dick brown-*' or 'sotu,moby-dick'), in byte order. Used by repro.mk to build dr-split's
# --val-sources list. Reads sources.tsv next to the corpus when there is one (data.mk
# writes it), else scans the corpus.
set -eu
corpus=${1:?usage: sources.sh CORPUS.jsonl 'PATTERN ...'}
patterns=${2:?usage: sources.sh CORPUS.jsonl 'PATTERN ...'}
list() {
    tsv=$(dirname "$corpus")/sources.tsv
    if [ -f "$tsv" ] && [ "$tsv" -nt "$corpus" ]; then
        awk -F '\t' 'NR > 1 && $1 != "" { print $1 }' "$tsv"
    else
        LC_ALL=C sed -n 's/.*"source"[ \t]*:[ \t]*"\([^"\\]*\)".*/\1/p' "$corpus"
    fi | LC_ALL=C sort -u
}
# patterns are separated by spaces or commas (the manifest and the report print the
# list comma-separated); a source name may hold spaces
patterns=$(printf '%s' "$patterns" | tr ',' ' ')
out=
set -f
while IFS= read -r s; do
    for p in $patterns; do
        case $s in $p) out="$out${out:+,}$s"; break ;; esac
    done
done <<EOF
$(list)
EOF
printf '%s\n' "$out"
