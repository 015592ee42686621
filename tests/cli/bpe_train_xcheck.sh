#!/usr/bin/env bash
# bpe_train_xcheck.sh — dr-tokenize --train-bpe against an independent trainer written
# from docs/formats.md §1.3 alone (tests/cli/bpe_train_xcheck.py): on plain English,
# text where many pair counts tie (byte-value order and id order differ), Unicode and
# emoji, long runs of one character (overlapping pairs), invalid UTF-8 with
# --invalid-utf8 keep and replace, and corpora with fewer possible merges than N,
# encoder.json and vocab.bpe must be equal byte for byte, the ids of the corpus
# (dr-tokenize --tokenizer bpe, dr-cat --ids) equal the reference's encoding, and the
# "only M merges" refusal name the same M. Training with --threads 1 and 2 must agree.
# Needs a python3 with `regex`; without it the test fails, it is never skipped.
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-cat
PY=tests/cli/bpe_train_xcheck.py
T=$BIN/dr-tokenize

python3() {   # the first python3 that has `regex` (found once: the real interpreter, not a shim)
    if [ -z "${XCHECK_PY:-}" ]; then
        local p
        for p in "$(type -P python3)" /usr/bin/python3; do
            if [ -x "$p" ] && XCHECK_PY=$("$p" -c 'import regex, sys; print(sys.executable)' 2>/dev/null) &&
               [ -x "$XCHECK_PY" ]; then break; fi
            XCHECK_PY=
        done
        if [ -z "$XCHECK_PY" ]; then
            echo "bpe_train_xcheck.sh: no python3 with the regex module (scripts/install-deps.sh installs python3-regex)" >&2
            return 1
        fi
    fi
    "$XCHECK_PY" "$@"
}
if ! python3 -c 'import regex'; then
    fail "python3 with regex is needed"
    finish
    exit 1
fi
export XCHECK_PY
export -f python3

# xcheck NAME N [dr-tokenize input options...] [-- reference options...]
xcheck() {
    local name=$1 n=$2; shift 2
    local opts=() ref=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    ref=("$@")
    local c=$TMP/$name.corpus
    check "$name: reference trains" python3 "$PY" train "$c" "$n" "$TMP/$name.ref" "${ref[@]}"
    check "$name: dr-tokenize --train-bpe $n" bash -c "'$T' --train-bpe $n ${opts[*]} --threads 2 -o '$TMP/$name.v' '$c' >/dev/null 2>'$TMP/$name.err' || { cat '$TMP/$name.err' >&2; exit 1; }"
    check "$name: encoder.json byte for byte" cmp "$TMP/$name.ref/encoder.json" "$TMP/$name.v/encoder.json"
    check "$name: vocab.bpe byte for byte" cmp "$TMP/$name.ref/vocab.bpe" "$TMP/$name.v/vocab.bpe"
    check "$name: --threads 1 gives the same files" bash -c "'$T' --train-bpe $n ${opts[*]} --threads 1 -o '$TMP/$name.v1' '$c' >/dev/null 2>&1 &&
        cmp '$TMP/$name.v/encoder.json' '$TMP/$name.v1/encoder.json' && cmp '$TMP/$name.v/vocab.bpe' '$TMP/$name.v1/vocab.bpe'"
    check "$name: tokenize with the trained vocabulary" bash -c "'$T' --tokenizer bpe --vocab-dir '$TMP/$name.v' ${opts[*]} -o '$TMP/$name.s' '$c' >/dev/null 2>&1 &&
        '$BIN/dr-cat' --ids '$TMP/$name.s' >'$TMP/$name.ids'"
    check "$name: ids equal the reference's encoding" python3 "$PY" check "$TMP/$name.v" "$c" "$TMP/$name.ids" "${ref[@]}"
}

check "generate the corpora" python3 "$PY" gen-all "$TMP"
xcheck english 420 --format jsonl
xcheck ties 300 --format jsonl
xcheck unicode 370 --format jsonl
xcheck runs 300 --format jsonl
xcheck splits 262 --format jsonl
xcheck invalid 290 --lines --invalid-utf8 keep -- --lines --keep
cp "$TMP/invalid.corpus" "$TMP/invalid_r.corpus"
xcheck invalid_r 280 --lines --invalid-utf8 replace -- --lines

# every merge the corpus allows, and one more: the same M from both, nothing written
few() {  # few N: prints the reference's line, or "ok"
    python3 "$PY" train "$TMP/few.corpus" "$1" "$TMP/few.ref$1" && echo ok
}
m=$(few 100000 | sed -n 's/^the corpus gives only \([0-9]*\) merges.*/\1/p')
check "few: the reference finds the merge count" test -n "$m"
m=${m:-0}
check "few: N = 257 + $m trains" test "$(few $((257 + m)))" = ok
xcheck few $((257 + m)) --format jsonl
expect_error "few: N = 258 + $m is refused with the same count" \
    "^dr-tokenize: --train-bpe $((258 + m)): the corpus gives only $m merges \($((257 + m)) tokens\)" \
    "$T" --train-bpe $((258 + m)) --format jsonl -o "$TMP/few.none" "$TMP/few.corpus"
check "... and writes nothing" test ! -e "$TMP/few.none"
finish
