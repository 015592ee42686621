#!/usr/bin/env bash
# shard_parallel.sh — the embarrassingly parallel steps of docs/scale-out.md, checked:
#  - dr-score of each shard on its own (two at a time, xargs -P 2), the per-shard files
#    concatenated without their repeated headers, equals one dr-score run over all the
#    shards BYTE FOR BYTE (rater and LM scores; --batch sizes that do not divide the shards'
#    example counts, so batches would straddle shards if dr-score let them);
#  - dr-tokenize of a corpus cut into parts (one run per part, in parallel, each with its
#    own --prefix) gives the same examples, in the same order, as one run over the whole
#    corpus (the shards differ in their boundaries only);
#  - dr-filter --keep of all shards at once keeps exactly the examples whose scores rank in
#    the global top fraction of the concatenated scores (it is not run per shard: its
#    selection is global; the docs say why); dr-filter --min-score S run on each shard alone
#    (xargs -P 2), S the cut of the joined scores found with sort as docs/scale-out.md does,
#    keeps the same examples in the same order, and the --keep run's summary names that S.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
CFG=(--config configs/tiny.yaml)

# ---- a corpus in 11 small shards, a rater and an LM -----------------------------------
tests/data/gen_corpus.sh "$tmp" 600 >/dev/null
"$BIN/dr-tokenize" --tokenizer byte --source-field source --shard-size 0.02 -o "$tmp/shards" \
    "$tmp/corpus.jsonl" >/dev/null 2>&1
n_shards=$(ls "$tmp/shards" | wc -l)
[ "$n_shards" -ge 4 ] || fail "expected several shards, got $n_shards"
"$BIN/dr-split" --val 0.2 --seed 1 -o "$tmp/splits" "$tmp/shards" > "$tmp/manifest.tsv" 2>/dev/null
"$BIN/dr-meta" "${CFG[@]}" --set meta.rounds=1 -o "$tmp/rater.safetensors" "$tmp/manifest.tsv" 2>/dev/null
"$BIN/dr-train" "${CFG[@]}" --steps 5 -o "$tmp/lm.safetensors" "$tmp/manifest.tsv" 2>/dev/null

# ---- dr-score: per shard, in parallel, then concatenated = one run --------------------
# join_scores OUT PART...: the first part's header, then every part's rows, in order.
join_scores() {
    local out=$1; shift
    { head -n 1 "$1"; for f in "$@"; do tail -n +2 "$f"; done; } > "$out"
}
for run in "rater 7" "rater 32" "lm 5"; do
    set -- $run
    model="--$1 $tmp/$1.safetensors" batch=$2
    {
        # shellcheck disable=SC2086
        "$BIN/dr-score" $model "${CFG[@]}" --batch $batch "$tmp/shards" > "$tmp/one.tsv" 2>/dev/null
        rm -rf "$tmp/parts"; mkdir "$tmp/parts"
        # shellcheck disable=SC2086
        ls "$tmp/shards"/*.drs | xargs -P 2 -I{} sh -c \
            '"$0" $1 --config configs/tiny.yaml --batch $2 -o "$3/$(basename "{}" .drs).tsv" "{}" 2>/dev/null' \
            "$BIN/dr-score" "$model" $batch "$tmp/parts"
        [ "$(ls "$tmp/parts" | wc -l)" -eq "$n_shards" ] || fail "a per-shard dr-score run failed"
        join_scores "$tmp/joined.tsv" "$tmp/parts"/*.tsv
        [ "$(wc -l < "$tmp/one.tsv")" -gt 1000 ] || fail "too few scores"
        cmp "$tmp/one.tsv" "$tmp/joined.tsv" ||
            fail "dr-score $model --batch $batch: per-shard runs concatenated differ from one run"
    }
done
echo "dr-score: $n_shards shards scored separately = one run, byte for byte (rater --batch 7 and 32, LM --batch 5)"

# ---- dr-tokenize: parts of the corpus in parallel = one run ----------------------------
split -d -n l/3 "$tmp/corpus.jsonl" "$tmp/part."          # part.00 part.01 part.02, whole lines
ls "$tmp"/part.0? | xargs -P 2 -I{} sh -c \
    '"$0" --tokenizer byte --source-field source --format jsonl --shard-size 0.02 \
         --prefix "p$(basename "{}" | cut -d. -f2)" -o "$1" "{}" >/dev/null 2>&1' \
    "$BIN/dr-tokenize" "$tmp/shards-par"
"$BIN/dr-cat" --examples --ids --seq-len 32 "$tmp/shards" > "$tmp/ex-one.txt"
"$BIN/dr-cat" --examples --ids --seq-len 32 "$tmp/shards-par" > "$tmp/ex-par.txt"
cmp "$tmp/ex-one.txt" "$tmp/ex-par.txt" || fail "dr-tokenize by parts: the examples differ from one run"
echo "dr-tokenize: 3 parts tokenized separately give the one run's $(wc -l < "$tmp/ex-one.txt") examples"

# ---- dr-filter: global top fraction of the joined scores -------------------------------
"$BIN/dr-score" --rater "$tmp/rater.safetensors" "${CFG[@]}" "$tmp/shards" > "$tmp/scores.tsv" 2>/dev/null
"$BIN/dr-filter" --scores "$tmp/scores.tsv" --keep 0.5 "${CFG[@]}" -o "$tmp/kept" "$tmp/shards" \
    >/dev/null 2>"$tmp/filter.err" || { cat "$tmp/filter.err"; fail "dr-filter"; }
n=$(($(wc -l < "$tmp/scores.tsv") - 1))
keep=$(awk -v n="$n" 'BEGIN { printf "%d", n * 0.5 + 0.5 }')
kept=$("$BIN/dr-cat" --examples --ids --seq-len 32 "$tmp/kept" | wc -l)
[ "$kept" -eq "$keep" ] || fail "dr-filter --keep 0.5 of $n examples kept $kept, expected $keep"
echo "dr-filter: one run over all $n_shards shards keeps the global top $keep of $n"

# ---- dr-filter --min-score: one run per shard, in parallel (docs/scale-out.md's recipe) --
# S = the round(0.5·N)-th best of the joined scores; each shard scored and filtered on its
# own with it: the examples of the one global --keep run (S is not tied) in the same order
S=$(tail -n +2 "$tmp/scores.tsv" | cut -f2 | sort -g -r | sed -n "${keep}p")
ties=$(tail -n +2 "$tmp/scores.tsv" | cut -f2 | awk -v s="$S" '$1 + 0 == s + 0' | wc -l)
[ "$ties" -eq 1 ] || fail "the toy scores tie at the cut ($ties examples score $S): pick another fraction"
mkdir "$tmp/scores.d"
ls "$tmp/shards"/*.drs | xargs -P 2 -I{} sh -c \
    'b=$(basename "{}" .drs); "$0/dr-score" --rater "$1/rater.safetensors" --config configs/tiny.yaml \
         -o "$1/scores.d/$b.tsv" "{}" 2>/dev/null &&
     "$0/dr-filter" --scores "$1/scores.d/$b.tsv" --min-score "$2" --config configs/tiny.yaml --prefix "$b" \
         -o "$1/kept-min" "{}" >/dev/null 2>"$1/scores.d/$b.err"' "$BIN" "$tmp" "$S" ||
    fail "a per-shard dr-score or dr-filter --min-score run failed: $(cat "$tmp"/scores.d/*.err)"
"$BIN/dr-cat" --examples --ids --seq-len 32 "$tmp/kept" > "$tmp/kept-one.txt"
"$BIN/dr-cat" --examples --ids --seq-len 32 "$tmp/kept-min" > "$tmp/kept-min.txt"
cmp "$tmp/kept-one.txt" "$tmp/kept-min.txt" ||
    fail "dr-filter --min-score $S per shard differs from one --keep 0.5 run over all shards"
grep -q -- "--min-score $S keeps the same examples" "$tmp/filter.err" ||
    fail "the --keep run's summary does not name --min-score $S: $(grep '^score cut' "$tmp/filter.err")"
echo "dr-filter: --min-score $S on each of $n_shards shards alone keeps the global run's $keep examples"
echo "shard_parallel: ok"
