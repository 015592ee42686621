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
check "compare.sh explains its dashes: a run whose offset exceeds the budget, a count past a run's end" sh -c \
    "sh pipelines/compare.sh --md --at 1,99999999 --offset datarater=1e15 $OUT/train/baseline.jsonl $OUT/train/datarater.jsonl > $tmp/cmp.md &&
     grep -q '^| datarater | - | - | - | - | ' $tmp/cmp.md && grep -q '^\`-\` for datarater: the run has no Val loss that early: .*--offset' $tmp/cmp.md &&
     grep -q '^\`-\` for baseline, datarater: the run stopped before it reached that count' $tmp/cmp.md"
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

# ---- re-running after a change: exactly the right steps, nothing stale --------------------
# (each check below failed before its fix; they change $OUT, so they come last)
sig() { sed -E 's/"(seconds|step_seconds)":[-0-9.eE+]+,?//g' "$1"; }   # a log without its timings

# N_EXAMPLES is a setting of the examples step
"${MK[@]}" N_EXAMPLES=3 "$OUT/examples/top.txt" > /dev/null 2>&1
check "N_EXAMPLES=3 re-run: examples/top.txt has 3 examples" check_examples "$OUT/examples/top.txt" 3

# -n and status must not rewrite the parameter stamps; status names what a change redoes
cp "$OUT/filter/params" "$tmp/filter.params"
"${MK[@]}" -n KEEP=0.5 > /dev/null 2>&1
check "make -n KEEP=0.5 leaves filter/params as it was" cmp "$tmp/filter.params" "$OUT/filter/params"
check "status KEEP=0.5: the filters are 'redo', the splits 'done'" sh -c "\"\$@\" status KEEP=0.5 > $tmp/status.txt 2>&1 &&
    grep -qx 'redo  *$OUT/filter/datarater.paths' $tmp/status.txt && grep -qx 'done  *$MANIFEST' $tmp/status.txt" _ "${MK[@]}"

# a step that fails after a settings change keeps the record of its last success: going back
# to the old settings redoes nothing (the record was written as make read the makefile, so a
# failed TRAIN_SET=… run left every final run 'redo'); an attempt interrupted at the new
# settings is resumed at them, and its finished run records them
"${MK[@]}" status > "$tmp/status0.txt" 2>&1
cp "$OUT/train/params" "$tmp/train.params"
mkdir -p "$tmp/bin-fail" "$tmp/bin-stop"
for t in dr-tokenize dr-split dr-meta dr-score dr-filter dr-cat; do ln -sf "$ROOT/$BIN/$t" "$tmp/bin-fail/$t"; ln -sf "$ROOT/$BIN/$t" "$tmp/bin-stop/$t"; done
printf '#!/bin/sh\necho "dr-train: failing on purpose" >&2; exit 1\n' > "$tmp/bin-fail/dr-train"
printf '#!/bin/sh\n"%s" "$@" --stop-at 4; exit 1\n' "$ROOT/$BIN/dr-train" > "$tmp/bin-stop/dr-train"
chmod +x "$tmp/bin-fail/dr-train" "$tmp/bin-stop/dr-train"
"${MK[@]}" BIN="$tmp/bin-fail" TRAIN_SET=train.log_every=3 "$OUT/train/baseline.done" > "$tmp/fail.log" 2>&1 && bad "a failing dr-train: make succeeded"
check "a failed run with TRAIN_SET=…: train/params as it was" cmp "$tmp/train.params" "$OUT/train/params"
check "... and back at the old settings every step is 'done', as before" sh -c "\"\$@\" status > $tmp/status4.txt 2>&1 && diff $tmp/status0.txt $tmp/status4.txt" _ "${MK[@]}"
check "... while at the new ones the final runs are 'redo'" sh -c "\"\$@\" status TRAIN_SET=train.log_every=3 > $tmp/status5.txt 2>&1 &&
    grep -qx 'redo  *$OUT/train/baseline.done' $tmp/status5.txt && grep -qx 'done  *$OUT/filter/datarater.paths' $tmp/status5.txt" _ "${MK[@]}"
"${MK[@]}" BIN="$tmp/bin-stop" TRAIN_SET=train.log_every=3 "$OUT/train/baseline.done" > "$tmp/stop.log" 2>&1 && bad "an interrupted dr-train: make succeeded"
"${MK[@]}" TRAIN_SET=train.log_every=3 "$OUT/train/baseline.done" > "$tmp/resume.log" 2>&1 || { bad "make after the interrupted attempt failed"; tail -n 5 "$tmp/resume.log"; }
check "the attempt interrupted at step 4 is resumed at the new settings" sh -c "grep -q -- '--resume' $tmp/resume.log &&
    grep -q '\"step\":3,' $OUT/train/baseline.jsonl && grep -q '\"step\":6,' $OUT/train/baseline.jsonl"
check "... and its success records them" grep -q 'train_set=train.log_every=3 ' "$OUT/train/params"
"${MK[@]}" "$OUT/train/baseline.done" > /dev/null 2>&1 || bad "make back at the old settings failed"
check "back at the old settings: the old record, baseline redone afresh" sh -c "cmp $tmp/train.params $OUT/train/params &&
    ! grep -q '\"step\":3,' $OUT/train/baseline.jsonl"

# VAL_SOURCES naming no source of the corpus fails before anything is stamped (a failed
# split step used to leave every later step marked 'redo'), naming the corpus' sources
"${MK[@]}" status > "$tmp/status1.txt" 2>&1
check "VAL_SOURCES=nosuch: refused, naming the sources there are" sh -c "! \"\$@\" VAL_SOURCES=nosuch > $tmp/vs.log 2>&1 &&
    grep -q \"no source of .* matches VAL_SOURCES='nosuch'.*its sources: .*story\" $tmp/vs.log" _ "${MK[@]}"
check "SET with a mistyped key: refused before anything runs" sh -c "! \"\$@\" SET=lm.lrr=1 > $tmp/set.log 2>&1 &&
    grep -q \"repro.mk: CONFIG=.* unknown key 'lm.lrr' (did you mean lm.lr?)\" $tmp/set.log" _ "${MK[@]}"
check "KEEP=1.5 and VAL_FRAC=1: refused" sh -c "! \"\$@\" KEEP=1.5 > /dev/null 2>&1 && ! \"\$@\" VAL_FRAC=1 > /dev/null 2>&1" _ "${MK[@]}"
check "... and no step's status changed" sh -c "\"\$@\" status > $tmp/status2.txt 2>&1 && diff $tmp/status1.txt $tmp/status2.txt" _ "${MK[@]}"
check "VAL_SOURCES as a comma list" sh -c "pipelines/sources.sh $tmp/data/corpus.jsonl 'nosuch,story' | grep -qx story"
# a corpus replaced by other content with an older mtime (cp -p, rsync -a): the tokenizing
# step is redone (its corpus.id), not only what make's mtimes see
cp -p "$tmp/data/corpus.jsonl" "$tmp/corpus.keep"
head -n 200 "$tmp/corpus.keep" > "$tmp/data/corpus.jsonl"; touch -d 2001-01-01 "$tmp/data/corpus.jsonl"
check "a corpus replaced under an older mtime: status says the shards are 'redo'" sh -c "\"\$@\" status > $tmp/status3.txt 2>&1 &&
    grep -q '^redo .*shards.list' $tmp/status3.txt" _ "${MK[@]}"
cp -p "$tmp/corpus.keep" "$tmp/data/corpus.jsonl"
"${MK[@]}" > /dev/null 2>&1 || bad "make after restoring the corpus failed"

# a step redone because its inputs changed starts afresh: resuming the finished run's state
# kept the old model (dr-train 'resuming at step 20'); and the online run, which deploys
# the rater, is redone when RATER_USE picks other weights. Against a fresh run:
"${MK[@]}" RATER_USE=last > "$tmp/rater_last.log" 2>&1 || { bad "make RATER_USE=last failed"; tail -n 5 "$tmp/rater_last.log"; }
"${MK[@]}" PREP="$OUT" META_DIR="$OUT/meta" OUT="$tmp/fresh" RATER_USE=last "$tmp/fresh/train/datarater.done" "$tmp/fresh/train/online.done" > "$tmp/fresh.log" 2>&1 \
    || { bad "fresh run RATER_USE=last failed"; tail -n 5 "$tmp/fresh.log"; }
for r in datarater online; do
    check "RATER_USE=last re-run: $r's LM is that of a fresh run" cmp "$OUT/train/$r.safetensors" "$tmp/fresh/train/$r.safetensors"
done
check "RATER_USE=last re-run: no --resume of a finished run" sh -c "! grep -q -- '--resume' $tmp/rater_last.log"

# another config file whose mtime is older than the outputs (a copy with cp -p, a checkout):
# its content is what counts
sed 's/^  steps: 20/  steps: 10/' configs/tiny.yaml > "$tmp/tiny10.yaml"; touch -d 2000-01-01 "$tmp/tiny10.yaml"
"${MK[@]}" CONFIG="$tmp/tiny10.yaml" "$OUT/train/baseline.done" > /dev/null 2>&1
check "an older CONFIG file with train.steps 10: baseline redone with 10 steps" sh -c "tail -n 1 $OUT/train/baseline.jsonl | grep -q '\"step\":10,'"

# another corpus (older than the shards): tokenized again, not split from the old shards
tests/data/gen_corpus.sh "$tmp/data2" 120 > /dev/null; touch -d 2000-01-01 "$tmp/data2/corpus.jsonl"
"${MK[@]}" CORPUS="$tmp/data2/corpus.jsonl" "$MANIFEST" > /dev/null 2>&1
check "an older CORPUS: the shards are made from it (120 documents in)" grep -q '^# input: .* 120 documents' "$MANIFEST"

# ---- what the pipeline refuses ---------------------------------------------------------------
mkdir -p "$tmp/cwd"
( cd "$tmp/cwd" && make --no-print-directory -f "$ROOT/pipelines/repro.mk" BIN="$ROOT/$BIN" CONFIG="$ROOT/configs/tiny.yaml" \
    CORPUS="$tmp/data/corpus.jsonl" OUT="$tmp/sp ace" TOKENIZER=byte > "$tmp/space.log" 2>&1 ) \
    && bad "OUT with a space: make succeeded" || ok "OUT with a space: make fails"
check "OUT with a space: the error names OUT, nothing made in the current directory" \
    sh -c "grep -q \"OUT='$tmp/sp ace'\" $tmp/space.log && [ -z \"\$(ls -A $tmp/cwd)\" ] && [ ! -e '$tmp/sp ace' ]"
check "OUT empty: clean-runs refuses (it was rm -rf /meta /score …)" sh -c "! make --no-print-directory -n -f pipelines/repro.mk CONFIG=configs/tiny.yaml OUT= clean-runs 2>&1 | grep -q 'rm -rf /meta'"
mkdir -p "$tmp/bin-nocat"
for t in dr-tokenize dr-split dr-meta dr-score dr-filter dr-train; do ln -s "$ROOT/$BIN/$t" "$tmp/bin-nocat/$t"; done
"${MK[@]}" BIN="$tmp/bin-nocat" OUT="$tmp/nocat" > "$tmp/nocat.log" 2>&1 && bad "BIN without dr-cat: make succeeded"
check "BIN without dr-cat: refused before the first step, naming dr-cat" sh -c "grep -q 'dr-cat' $tmp/nocat.log && [ ! -e $tmp/nocat/shards-byte/shards.list ]"

# ablations.mk with DEVICE=cuda ablates the GPU run (configs/gpu.yaml, runs/gpu), as repro.mk's defaults
check "ablations.mk DEVICE=cuda: main run CONFIG=configs/gpu.yaml OUT=runs/gpu" sh -c \
    "make --no-print-directory -n -f pipelines/ablations.mk DEVICE=cuda MAKE=true prep | grep -q 'CONFIG=configs/gpu.yaml .*OUT=runs/gpu '"

# ---- report.sh on an unfinished run -------------------------------------------------------
# the datarater run interrupted (no .done) with its last line cut: criterion 2 is not
# evaluated from its truncated log ("l_val":4.9 read as 4.9 passed it)
mkdir -p "$tmp/keep"; mv "$OUT/train/datarater.done" "$tmp/keep/"; cp "$OUT/train/datarater.jsonl" "$tmp/keep/"
{ sed '$d' "$tmp/keep/datarater.jsonl"; tail -n 1 "$tmp/keep/datarater.jsonl" | sed 's/\("l_val":[0-9]\.[0-9]\).*/\1/'; } > "$OUT/train/datarater.jsonl"
GNUPLOT=none sh pipelines/report.sh "$OUT" > /dev/null 2>&1
check "report.sh, datarater unfinished: criterion 2 NOT EVALUATED, the run 'not finished'" sh -c \
    "grep -q '^- \*\*Criterion 2 .*: NOT EVALUATED\.\*\*' $OUT/report.md && grep -q '^| datarater | (not finished' $OUT/report.md"
want=$(sed '$d' "$OUT/train/datarater.jsonl" | grep '"l_val"' | tail -n 1 | sed 's/.*"l_val":\([-0-9.eE+]*\).*/\1/' | xargs printf '%.4f')
check "compare.sh ignores a cut last line (final = the last complete eval, $want)" sh -c \
    "sh pipelines/compare.sh $OUT/train/datarater.jsonl 2>/dev/null | awk '\$1 == \"datarater\" { print \$(NF - 1); exit }' | grep -qx $want"
mv "$tmp/keep/datarater.done" "$tmp/keep/datarater.jsonl" "$OUT/train/"
# a baseline that ends above its step-0 Val loss (diverged) learned nothing: criterion 2 is
# not evaluated from it (a diverged run at 1208 nats once made 'DataRater at 623' a PASS)
cp "$OUT/train/baseline.jsonl" "$tmp/keep/"
{ sed '$d' "$tmp/keep/baseline.jsonl"; tail -n 1 "$tmp/keep/baseline.jsonl" | sed 's/"l_val":[-0-9.eE+]*/"l_val":999.5/'; } > "$OUT/train/baseline.jsonl"
GNUPLOT=none sh pipelines/report.sh "$OUT" > /dev/null 2>&1
check "report.sh, a baseline that diverged: criterion 2 NOT EVALUATED (learned nothing)" \
    grep -q '^- \*\*Criterion 2 .*: NOT EVALUATED (the baseline run learned nothing: its Val loss went from [0-9.]* at the start to 999.5;' "$OUT/report.md"
mv "$tmp/keep/baseline.jsonl" "$OUT/train/"
# a run that repeats its data more than 4 times is named under the table of final runs
cp "$OUT/train/baseline.jsonl" "$tmp/keep/"
{ sed '$d' "$tmp/keep/baseline.jsonl"; tail -n 1 "$tmp/keep/baseline.jsonl" | sed 's/"tokens":[0-9]*/"tokens":300000/'; } > "$OUT/train/baseline.jsonl"
GNUPLOT=none sh pipelines/report.sh "$OUT" > /dev/null 2>&1
check "report.sh: the epochs of each run's data, and a note on a baseline that saw its data 11 times" sh -c \
    "grep -q '^| baseline | [0-9.]* |  | 300000 | 11 | ' $OUT/report.md && grep -q '^| random | .* | 0\.[0-9]* | ' $OUT/report.md &&
     grep -q '^\*\*Note: baseline saw its training data more than 4 times (up to 11.[0-9] epochs)' $OUT/report.md"
mv "$tmp/keep/baseline.jsonl" "$OUT/train/"
# criterion 1 gives the mean gain's standard error and says when a PASS is within noise:
# gains +3, −1, +3, −1 (e-4 nats) over the last half: mean 1e-4, standard error 1.2e-4
cp "$OUT/meta/metrics.jsonl" "$tmp/keep/"
for g in 5e-4 5e-4 5e-4 5e-4 3e-4 -1e-4 3e-4 -1e-4; do sed -n 1p "$tmp/keep/metrics.jsonl" | sed "s/\"l_val_gain\":[-0-9.eE+]*/\"l_val_gain\":$g/"; done \
    | awk '{ sub(/"meta_step":[0-9]+,"step":[0-9]+/, "\"meta_step\":" NR ",\"step\":" NR); print }' > "$OUT/meta/metrics.jsonl"
GNUPLOT=none sh pipelines/report.sh "$OUT" > /dev/null 2>&1
check "report.sh, criterion 1 within noise: PASS, mean 0.0001, 'within twice its standard error 0.00012'" grep -q \
    '^- \*\*Criterion 1 .*: PASS\.\*\* .*meta-steps 5–8 (the last half of 8) = 0.0001 nats (> 0 required; but within twice its standard error 0.00012: not distinguishable from no gain;' "$OUT/report.md"
mv "$tmp/keep/metrics.jsonl" "$OUT/meta/"
# report.sh killed (SIGTERM) while writing report.md leaves no temporary file
mkdir -p "$tmp/fakebin"
printf '#!/bin/sh\nwhile [ ! -s "%s" ]; do sleep 0.05; done\nkill -TERM "$(cat "%s")"; sleep 0.3\nexec /bin/date "$@"\n' "$tmp/report.pid" "$tmp/report.pid" > "$tmp/fakebin/date"
chmod +x "$tmp/fakebin/date"
PATH="$tmp/fakebin:$PATH" GNUPLOT=none sh pipelines/report.sh "$OUT" > /dev/null 2>&1 & echo $! > "$tmp/report.pid"; wait $!
check "report.sh after SIGTERM: no report.md.tmp.* left" sh -c "[ -z \"\$(ls $OUT | grep 'report\.md\.tmp')\" ]"

echo "pipeline test: $((SECONDS - t0)) s"
exit $fail
