#!/usr/bin/env bash
# pipeline.sh — the whole pipeline (pipelines/repro.mk) end to end on a tiny generated
# corpus with configs/tiny.yaml and the byte tokenizer, then checks that every artifact
# exists and parses: the split manifest, the rater checkpoints (safetensors header), the
# scores files (one line per train_b example, as dr-cat --examples counts them), the
# filtered shards (readable by dr-cat, as many examples as the filter says it kept), the
# metrics logs (flat JSON objects, one per line), the examples, the plots and report.md
# with both success-criteria lines. Then: a second make has nothing to do, compare.sh
# reads the logs, and each checker is shown to reject a broken copy of its artifact.
# Runs in well under a minute on 2 cores.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${BIN:-bin}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dr-pipeline.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
ok()  { printf 'ok    %s\n' "$1"; }
bad() { printf 'FAIL  %s\n' "$1"; fail=1; }
check() {  # check NAME COMMAND...: the command must succeed
    local name=$1; shift
    if "$@" > "$tmp/check.log" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/      /' "$tmp/check.log" | tail -n 8; fi
}
refute() {  # refute NAME COMMAND...: the command must FAIL (a checker on a broken artifact)
    local name=$1; shift
    if "$@" > /dev/null 2>&1; then bad "$name (the checker accepted a broken artifact)"; else ok "$name"; fi
}

for t in dr-tokenize dr-split dr-meta dr-score dr-filter dr-train dr-cat; do
    [ -x "$BIN/$t" ] || { echo "pipeline.sh: $BIN/$t is missing (run make)"; exit 1; }
done

# ---- run it ---------------------------------------------------------------------------
tests/data/gen_corpus.sh "$tmp/data" 300
OUT=$tmp/out
MK=(make --no-print-directory -f pipelines/repro.mk BIN="$BIN" CONFIG=configs/tiny.yaml CORPUS="$tmp/data/corpus.jsonl"
    OUT="$OUT" TOKENIZER=byte VAL_SOURCES=story VAL_FRAC=0.2)
t0=$SECONDS
if "${MK[@]}" > "$tmp/make.log" 2>&1; then
    ok "make -f pipelines/repro.mk (tiny corpus, tiny.yaml): $((SECONDS - t0)) s"
else
    bad "make -f pipelines/repro.mk failed"; tail -n 40 "$tmp/make.log"; exit 1
fi
grep -q "report: $OUT/report.md" "$tmp/make.log" && ok "make prints where the report is" || bad "make does not print where the report is"

MANIFEST=$OUT/splits-prose/manifest.tsv
SEQ_LEN=$(pipelines/cfg.sh data.seq_len configs/tiny.yaml)

# ---- checkers (each returns non-zero on a missing or malformed artifact) ---------------
check_manifest() {  # every split present, every path a readable shard
    local m=$1 dir; dir=$(dirname "$m")
    [ -s "$m" ] || { echo "$m: missing or empty"; return 1; }
    awk -F '\t' '!/^#/ && NF != 2 { print FILENAME ":" NR ": not split<TAB>path"; bad = 1 } END { exit bad }' "$m" || return 1
    for s in train_a val train_b; do
        grep -q "^$s	" "$m" || { echo "$m: no $s shard"; return 1; }
    done
    grep -v '^#' "$m" | while IFS=$'\t' read -r _ p; do
        case $p in /*) ;; *) p=$dir/$p ;; esac
        [ -s "$p" ] || { echo "$m: $p: missing"; exit 1; }
    done
}
check_safetensors() {  # FILE [TENSOR...]: 8-byte length + JSON header naming the tensors
    local f=$1; shift
    [ -s "$f" ] || { echo "$f: missing"; return 1; }
    local n size hdr
    n=$(od -An -tu8 -N8 "$f" | tr -d ' ')
    size=$(wc -c < "$f")
    [ -n "$n" ] && [ "$n" -gt 1 ] && [ $((8 + n)) -le "$size" ] || { echo "$f: bad header length '$n' (file $size bytes)"; return 1; }
    hdr=$(dd if="$f" bs=1 skip=8 count="$n" 2>/dev/null)
    case $hdr in '{'*'}'*) ;; *) echo "$f: header is not a JSON object"; return 1 ;; esac
    case $hdr in *'"__metadata__"'*) ;; *) echo "$f: no __metadata__"; return 1 ;; esac
    for t in "$@"; do case $hdr in *"\"$t\""*) ;; *) echo "$f: no tensor $t"; return 1 ;; esac; done
    # the largest data_offsets end must be the data size
    echo "$hdr" | awk -v size="$size" -v n="$n" '{
        s = $0; max = 0
        while (match(s, /"data_offsets":[ ]*\[[ ]*[0-9]+[ ]*,[ ]*[0-9]+[ ]*\]/)) {
            o = substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
            sub(/.*,[ ]*/, "", o); sub(/[ ]*\]/, "", o); if (o + 0 > max) max = o + 0
        }
        if (8 + n + max != size) { print "data ends at " 8 + n + max " but the file has " size " bytes"; exit 1 }
    }'
}
check_scores() {  # FILE N_EXAMPLES: header, N lines of id<TAB>score<TAB>source<TAB>n_tokens
    local f=$1 n=$2
    [ -s "$f" ] || { echo "$f: missing"; return 1; }
    [ "$(head -n 1 "$f")" = "$(printf 'example_id\tscore\tsource\tn_tokens')" ] || { echo "$f: bad header"; return 1; }
    awk -F '\t' -v want="$n" 'NR > 1 {
            if (NF != 4 || $1 !~ /^[0-9a-f]+:[0-9]+$/ || index($1, ":") != 17 || $2 !~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/ || $4 !~ /^[0-9]+$/) {
                print FILENAME ":" NR ": malformed: " $0; exit 1 }
            if (seen[$1]++) { print FILENAME ":" NR ": duplicate id " $1; exit 1 }
            rows++ }
        END { if (rows != want) { print FILENAME ": " rows " rows, expected " want; exit 1 } }' "$f"
}
check_jsonl() {  # FILE KEY...: every line a flat JSON object, every KEY on some line
    local f=$1; shift
    [ -s "$f" ] || { echo "$f: missing or empty"; return 1; }
    local v='(null|true|false|-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|"([^"\\]|\\.)*")'
    local k='"[A-Za-z_][A-Za-z0-9_]*"[ ]*:[ ]*'
    if grep -Evn "^\{[ ]*$k$v([ ]*,[ ]*$k$v)*[ ]*\}$" "$f" | head -n 3 | grep .; then
        echo "$f: lines above are not flat JSON objects"; return 1
    fi
    for key in "$@"; do grep -q "\"$key\"[ ]*:" "$f" || { echo "$f: no \"$key\""; return 1; }; done
}
check_png() { [ -s "$1" ] && [ "$(od -An -c -N4 "$1" | tr -d ' ')" = '211PNG' ] || { echo "$1: not a PNG"; return 1; }; }
check_examples() {  # FILE N: N "### id score S source X" blocks
    [ -s "$1" ] || { echo "$1: missing"; return 1; }
    local n; n=$(grep -Ec '^### [0-9a-f]{16}:[0-9]+ score -?[0-9.eE+-]+ source ' "$1")
    [ "$n" -eq "$2" ] || { echo "$1: $n examples, expected $2"; return 1; }
}
check_report() {  # both criteria stated with PASS/FAIL and numbers
    local f=$1
    [ -s "$f" ] || { echo "$f: missing"; return 1; }
    grep -Eq '^- \*\*Criterion 1 .*: (PASS|FAIL)\.\*\* .*[0-9]' "$f" || { echo "$f: no criterion 1 line with PASS/FAIL"; return 1; }
    grep -Eq '^- \*\*Criterion 2 .*: (PASS|FAIL)\.\*\* .*[0-9]' "$f" || { echo "$f: no criterion 2 line with PASS/FAIL"; return 1; }
    for sec in '## Meta-training' '## Final training' '## What the rater keeps' '## Highest- and lowest-scored'; do
        grep -q "^$sec" "$f" || { echo "$f: no section '$sec'"; return 1; }
    done
}
check_filtered() {  # NAME: dr-cat reads the kept shards; as many examples as the summary says
    local name=$1 want got
    [ -s "$OUT/filter/$name.paths" ] || { echo "$OUT/filter/$name.paths: missing"; return 1; }
    want=$(awk '/^kept /{ print $2; exit }' "$OUT/filter/$name.summary")
    [ -n "$want" ] || { echo "$OUT/filter/$name.summary: no 'kept N of M' line"; return 1; }
    got=$("$BIN/dr-cat" --examples --seq-len "$SEQ_LEN" $(cat "$OUT/filter/$name.paths") | wc -l) || return 1
    [ "$got" -eq "$want" ] || { echo "$name: dr-cat reads $got examples, the filter kept $want"; return 1; }
}

# ---- the artifacts ----------------------------------------------------------------------
check "manifest: train_a, val, train_b shards" check_manifest "$MANIFEST"
N_B=$("$BIN/dr-cat" --examples --seq-len "$SEQ_LEN" --split train_b "$MANIFEST" | wc -l)
[ "$N_B" -gt 0 ] && ok "train_b has $N_B examples (dr-cat --examples)" || bad "dr-cat --examples on train_b"
RT="rater.wte.weight rater.head.out.weight"
check "rater.safetensors parses" check_safetensors "$OUT/meta/rater.safetensors" $RT
check "rater.ema.safetensors parses" check_safetensors "$OUT/meta/rater.ema.safetensors" $RT
check "meta/metrics.jsonl: JSON lines with l_val, l_val_uniform" check_jsonl "$OUT/meta/metrics.jsonl" meta_step l_val l_val_uniform score_mean
check "score/datarater.tsv: one line per train_b example" check_scores "$OUT/score/datarater.tsv" "$N_B"
check "score/ppl.tsv: one line per train_b example" check_scores "$OUT/score/ppl.tsv" "$N_B"
for f in datarater random ppl; do
    check "filter/$f: shards readable by dr-cat, count = kept" check_filtered "$f"
done
RUNS=$(sed -n 's/^RUNS=//p' "$OUT/run.env")
for r in $RUNS; do
    check "train/$r.jsonl: JSON lines with step, tokens, l_val" check_jsonl "$OUT/train/$r.jsonl" step tokens l_val
    check "train/$r.safetensors parses (GPT-2 names)" check_safetensors "$OUT/train/$r.safetensors" transformer.wte.weight transformer.ln_f.weight
done
check "examples/top.txt: 5 examples" check_examples "$OUT/examples/top.txt" 5
check "examples/bottom.txt: 5 examples" check_examples "$OUT/examples/bottom.txt" 5
check "report.md: both criteria with PASS/FAIL and numbers" check_report "$OUT/report.md"
if command -v gnuplot > /dev/null 2>&1; then
    for p in meta_lval meta_scores val_curves score_hist; do check "plots/$p.png" check_png "$OUT/plots/$p.png"; done
    for p in meta_lval val_curves score_hist; do
        grep -q "(plots/$p.png)" "$OUT/report.md" && ok "report.md shows $p.png" || bad "report.md does not show $p.png"
    done
fi

# ---- properties of the pipeline ---------------------------------------------------------
check "a second make has nothing to do (make -q)" "${MK[@]}" -q "$OUT/report.md"
check "compare.sh reads the logs" sh -c "sh pipelines/compare.sh $OUT/train/*.jsonl | grep -q '^baseline '"
check "DEVICE=cuda picks configs/gpu.yaml and runs/gpu (make demo DEVICE=cuda)" sh -c "make --no-print-directory -f pipelines/repro.mk DEVICE=cuda help | grep -q 'now: CONFIG=configs/gpu.yaml OUT=runs/gpu '"
check "ablations.mk: every ablation has a command" sh -c "make --no-print-directory -n -f pipelines/ablations.mk BIN=$BIN CONFIG=configs/tiny.yaml CORPUS=$tmp/data/corpus.jsonl REPRO_OUT=$OUT AOUT=$tmp/abl TOKENIZER=byte VAL_SOURCES=story VAL_FRAC=0.2 | grep -c 'ablations.sh\\|META_SET=\\|KEEP=0' | grep -qx 13"
rm -f "$OUT/report.md"
check "report alone is rebuilt from the files" sh -c "\"\$@\" > /dev/null 2>&1 && test -s $OUT/report.md" _ "${MK[@]}"

check "report without gnuplot (GNUPLOT=none): same criteria, no images" sh -c \
    "GNUPLOT=none sh pipelines/report.sh $OUT 2>/dev/null && ! grep -q '](plots/' $OUT/report.md && grep -q '^- \*\*Criterion 2' $OUT/report.md"

# ---- the checkers reject broken artifacts -------------------------------------------------
mkdir -p "$tmp/broken"
sed '$d' "$OUT/score/datarater.tsv" > "$tmp/broken/scores.tsv"
refute "check_scores rejects a scores file with a line missing" check_scores "$tmp/broken/scores.tsv" "$N_B"
sed '2s/\t[^\t]*\t/\tnan-ish\t/' "$OUT/score/datarater.tsv" > "$tmp/broken/scores2.tsv"
refute "check_scores rejects a non-numeric score" check_scores "$tmp/broken/scores2.tsv" "$N_B"
sed '1s/}$/,/' "$OUT/meta/metrics.jsonl" > "$tmp/broken/metrics.jsonl"
refute "check_jsonl rejects a truncated JSON line" check_jsonl "$tmp/broken/metrics.jsonl" l_val
head -c 2000 "$OUT/meta/rater.safetensors" > "$tmp/broken/rater.safetensors"
refute "check_safetensors rejects a truncated checkpoint" check_safetensors "$tmp/broken/rater.safetensors" $RT
grep -v 'Criterion 2' "$OUT/report.md" > "$tmp/broken/report.md"
refute "check_report rejects a report without criterion 2" check_report "$tmp/broken/report.md"
refute "check_manifest rejects a missing manifest" check_manifest "$tmp/broken/nothing.tsv"

echo "pipeline test: $((SECONDS - t0)) s"
exit $fail
