#!/usr/bin/env bash
# score_filter.sh — dr-score and dr-filter end to end on the toy problem
# (tests/data/gen_toy.sh: clean a..p cycles and corrupt random characters; Val clean),
# with a rater meta-trained by dr-meta (a few seconds) and an LM trained by dr-train:
#  - scores.tsv: header, one line per example in shard order (the loader's, as dr-cat
#    --examples lists them), window lengths, sources; the same bytes for
#    OMP_NUM_THREADS=1 and 2, for a manifest on stdin, and with -o;
#  - --lm: the mean of the scores over Val equals dr-train --eval-only's l_val;
#  - --keep 0.6 keeps round(0.6·N) (60% ± one example), exactly the top-scored windows,
#    in shard order; --per-batch keeps exactly the top ceil(keep·b) of every batch (also at
#    0.28·25 = 7.000000000000001 in double: 7);
#    --random with a seed is reproducible byte for byte (another seed: another sample);
#    --keep-middle and --cdf keep what they say; --invert keeps mostly corrupt examples;
#  - the filtered shards pass the shard reader's checks (dr-cat reads every block) and
#    dr-train trains on them; a second, smaller output removes the first one's extra shards;
#  - bad input: scores that do not match the shards (missing, extra and duplicate ids,
#    non-numeric and NaN scores) and keep fractions outside (0, 1] are refused with one
#    line (naming the offending line) and no output shard; a file size limit (ulimit -f)
#    is one error line and no file left; an option naming a file given twice is refused.
# Fails (never skips) when a tool is missing: dr-meta included.
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-split dr-meta dr-score dr-filter dr-cat dr-train

# The toy meta-training of tests/unit/test_meta_sanity.c (a rater with AUROC ≈ 1 in
# 10 meta-steps of 2 members), single-threaded.
TOY="--set experiment.threads=1 --set experiment.seed=3 --set data.seq_len=32 --set data.batch_size=16
 --set data.prefetch=0 --set lm.n_layer=1 --set lm.d_model=32 --set lm.n_head=2 --set lm.vocab_size=0
 --set lm.lr=3e-3 --set lm.schedule=constant --set lm.weight_decay=0 --set rater.n_layer=1
 --set rater.d_model=32 --set rater.n_head=2 --set rater.lr=1e-2 --set rater.weight_decay=0
 --set meta.rounds=10 --set meta.population_K=2 --set meta.T=4 --set meta.val_batches=2
 --set meta.checkpoint_every=2 --set meta.reset_every=8 --set meta.ema=0.9"
# thread count from OMP_NUM_THREADS
ANY="$TOY --set experiment.threads=0"

tests/data/gen_toy.sh 600 400 1 > "$TMP/toy.jsonl"
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$TMP/shards" "$TMP/toy.jsonl" >/dev/null 2>&1 \
    || { echo "dr-tokenize failed" >&2; exit 1; }
"$BIN/dr-split" --val 0.3 --train-b 0.35 --val-sources clean --seed 1 -o "$TMP/splits" "$TMP/shards" \
    > "$TMP/manifest.tsv" 2>/dev/null || { echo "dr-split failed" >&2; exit 1; }
M=$TMP/manifest.tsv
"$BIN/dr-meta" $TOY -o "$TMP/rater.safetensors" "$M" 2>"$TMP/meta.err" \
    || { cat "$TMP/meta.err" >&2; echo "dr-meta failed" >&2; exit 1; }
R=$TMP/rater.safetensors

# ---- dr-score ------------------------------------------------------------------------
OMP_NUM_THREADS=1 "$BIN/dr-score" --rater "$R" $ANY --split train_b "$M" > "$TMP/s1.tsv" 2> "$TMP/s1.err"
check "dr-score exits 0" [ $? -eq 0 ]
OMP_NUM_THREADS=2 "$BIN/dr-score" --rater "$R" $ANY --split train_b "$M" > "$TMP/s2.tsv" 2> "$TMP/s2.err"
check "scores: the same bytes for OMP_NUM_THREADS=1 and 2" cmp -s "$TMP/s1.tsv" "$TMP/s2.tsv"
OMP_NUM_THREADS=2 "$BIN/dr-score" --rater "$R" $ANY --split train_b "$M" > "$TMP/s2b.tsv" 2>/dev/null
check "scores: the same bytes on a second run" cmp -s "$TMP/s2.tsv" "$TMP/s2b.tsv"
# no --config: the rater's own training windows (its recorded data section), not the
# defaults' 1024 tokens (scores no later step could use, with a warning)
"$BIN/dr-score" --rater "$R" --split train_b "$M" > "$TMP/snc.tsv" 2> "$TMP/snc.err"
check "dr-score without --config: the scores of its training config" cmp -s "$TMP/s1.tsv" "$TMP/snc.tsv"
check "... and the summary says so" grep -q "no --config: windows of the model's own training data.seq_len" "$TMP/snc.err"
"$BIN/dr-score" --rater "$R" $TOY --split train_b - < "$M" > "$TMP/s3.tsv" 2>/dev/null
check "scores: a manifest on stdin gives the same bytes" cmp -s "$TMP/s1.tsv" "$TMP/s3.tsv"
"$BIN/dr-score" --rater "$R" $TOY -o "$TMP/s4.tsv" "$TMP/splits/train_b" > "$TMP/s4.out" 2>/dev/null
check "scores: -o FILE (and the shards directory) gives the same bytes, nothing on stdout" \
    bash -c "cmp -s '$TMP/s1.tsv' '$TMP/s4.tsv' && [ ! -s '$TMP/s4.out' ]"
# -o - is stdout (it wrote a file named '-')
"$BIN/dr-score" --rater "$R" $TOY -o - --split train_b "$M" > "$TMP/s5.tsv" 2>/dev/null
check "scores: -o - is stdout, no file named '-'" bash -c "cmp -s '$TMP/s1.tsv' '$TMP/s5.tsv' && [ ! -e ./- ]"
check "dr-score reports examples/s and FLOPs on stderr" grep -qE 'examples/s.*FLOPs' "$TMP/s2.err"
S=$TMP/s1.tsv
check "scores: header line" [ "$(head -n 1 "$S")" = "$(printf 'example_id\tscore\tsource\tn_tokens')" ]

# one line per example, in the loader's shard order (dr-cat --examples lists the windows)
"$BIN/dr-cat" --examples --ids --seq-len 32 --split train_b "$M" > "$TMP/ex.ids"
N=$(wc -l < "$TMP/ex.ids")
check "scores: one line per example ($N)" [ "$(tail -n +2 "$S" | wc -l)" -eq "$N" ]
# rows.tsv: row, id, score, source, n_tokens, window token ids
paste <(tail -n +2 "$S") "$TMP/ex.ids" | awk -F'\t' -v OFS='\t' '
    { if ($1 != $5) { print "line " NR ": score id " $1 " vs example " $5 > "/dev/stderr"; bad = 1 }
      n = split($6, t, " "); if (n != $4) { print "line " NR ": n_tokens " $4 " vs " n > "/dev/stderr"; bad = 1 }
      print NR, $1, $2, $3, $4, $6 }
    END { exit bad }' > "$TMP/rows.tsv"
check "scores: ids in shard order, n_tokens = window length" [ "${PIPESTATUS[0]}${PIPESTATUS[1]}" = "00" ]
check "scores: sources are clean/corrupt" bash -c "cut -f4 '$TMP/rows.tsv' | sort -u | tr '\n' ' ' | grep -qx 'clean corrupt '"
# --batch beyond the data: a batch never holds more than its shard's examples, so
# --batch 300000 is the same batches (and bytes) as --batch N, without activations for
# 300000 examples (it was refused: "out of memory: ... 26.00 GB of model and activation buffers")
"$BIN/dr-score" --rater "$R" $TOY --batch "$N" --split train_b "$M" > "$TMP/sbN.tsv" 2>/dev/null
"$BIN/dr-score" --rater "$R" $TOY --batch 300000 --split train_b "$M" > "$TMP/sbig.tsv" 2> "$TMP/sbig.err"
check "scores: --batch 300000 over $N examples runs, the same bytes as --batch $N" \
    bash -c "cmp -s '$TMP/sbN.tsv' '$TMP/sbig.tsv' && [ -s '$TMP/sbig.tsv' ]"
# --batch changes at most the last bits (BLAS blocking), never a score: --batch 1 (each
# example alone, no padding) against the default, relative 1e-5
"$BIN/dr-score" --rater "$R" $TOY --batch 1 --split train_b "$M" > "$TMP/sb1.tsv" 2>/dev/null
check "scores: --batch 1 and the default agree to float precision, same ids/sources/n_tokens" \
    awk -F'\t' 'NR == FNR { z[FNR] = $2; k[FNR] = $1 FS $3 FS $4; next }
        FNR > 1 { if (k[FNR] != $1 FS $3 FS $4) exit 1; d = z[FNR] - $2; if (d < 0) d = -d;
                  m = $2 < 0 ? -$2 : $2; if (d > 1e-5 * (m > 1e-3 ? m : 1e-3)) exit 1; n++ }
        END { exit !(n > 0 && n == FNR - 1) }' "$TMP/sb1.tsv" "$S"
# --device cuda on a machine without an NVIDIA driver: one line that says so (not the CUDA
# runtime's "driver version is insufficient", which reads like an old driver)
if [ ! -e /proc/driver/nvidia/version ] && [ ! -e /dev/nvidiactl ]; then
    "$BIN/dr-score" --rater "$R" $TOY --device cuda --split train_b "$M" > "$TMP/scuda.out" 2> "$TMP/scuda.err"
    st=$?
    check "--device cuda without a driver: status 1, one line naming the missing driver (or the CPU-only build)" \
        bash -c "[ $st -eq 1 ] && [ \$(wc -l < '$TMP/scuda.err') -eq 1 ] && grep -qE 'no NVIDIA driver|no CUDA backend' '$TMP/scuda.err' && [ ! -s '$TMP/scuda.out' ]"
    # the config chose it: the message names experiment.device, not an option not given
    expect_error "experiment.device cuda without a driver names the key" "^dr-score: experiment\.device cuda: (no NVIDIA driver|this build has no CUDA backend)" \
        "$BIN/dr-score" --rater "$R" $TOY --set experiment.device=cuda --split train_b "$M"
    "$BIN/dr-score" --rater "$R" $TOY --device auto --split train_b "$M" > "$TMP/sauto.tsv" 2>/dev/null
    check "--device auto without a GPU: the CPU's bytes" cmp -s "$TMP/sauto.tsv" "$S"
fi
awk -F'\t' '{ s[$4] += $3; n[$4]++ } END { printf "mean rater score: clean %.3f, corrupt %.3f\n", s["clean"]/n["clean"], s["corrupt"]/n["corrupt"] }' "$TMP/rows.tsv"
check "the toy rater scores clean above corrupt" \
    awk -F'\t' '{ s[$4] += $3; n[$4]++ } END { exit !(s["clean"]/n["clean"] > s["corrupt"]/n["corrupt"] + 1) }' "$TMP/rows.tsv"

# ---- dr-score --lm: score = mean token loss; their mean over Val is dr-train's l_val ---
"$BIN/dr-train" $TOY --steps 20 --set train.eval_batches=0 -o "$TMP/lm.safetensors" "$M" 2>/dev/null
check "dr-train (the LM to score with)" [ -s "$TMP/lm.safetensors" ]
"$BIN/dr-score" --lm "$TMP/lm.safetensors" $TOY --split val "$M" > "$TMP/ppl.tsv" 2>/dev/null
LV=$("$BIN/dr-train" $TOY --set train.eval_batches=0 --eval-only "$TMP/lm.safetensors" "$M" 2>/dev/null \
     | grep -o '"l_val":[^,]*' | cut -d: -f2)
MEAN=$(tail -n +2 "$TMP/ppl.tsv" | awk -F'\t' '{ s += $2; n++ } END { printf "%.9g", s / n }')
echo "--lm: mean score over Val $MEAN, dr-train --eval-only l_val $LV"
check "--lm: mean score over Val = l_val (rel 1e-5)" \
    awk -v a="$MEAN" -v b="$LV" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d / b < 1e-5) }'
# train.eval_batches = 3: 3 of the nb Val batches of 16 (shard order) spread evenly over the
# split, batch floor(j·nb/3), not the first 3: l_val = the mean score of their examples
L3=$("$BIN/dr-train" $TOY --set train.eval_batches=3 --eval-only "$TMP/lm.safetensors" "$M" 2>/dev/null \
     | grep -o '"l_val":[^,]*' | cut -d: -f2)
mean_of_batches() {  # FIRST(1 = the first E batches, 0 = spread)
    tail -n +2 "$TMP/ppl.tsv" | awk -F'\t' -v E=3 -v B=16 -v first="$1" '{ x[NR - 1] = $2 }
        END { nb = int((NR + B - 1) / B)
              for (j = 0; j < E; j++) { k = first ? j : int(j * nb / E)
                  for (i = k * B; i < k * B + B && i < NR; i++) { s += x[i]; n++ } }
              printf "%.9g", s / n }'
}
M3=$(mean_of_batches 0); F3=$(mean_of_batches 1)
echo "eval_batches 3: l_val $L3; mean score of the spread batches $M3, of the first 3 $F3"
check "eval_batches 3: l_val = the mean score of 3 batches spread over Val (rel 1e-5), not of the first 3" \
    awk -v a="$M3" -v b="$L3" -v f="$F3" 'BEGIN { d = a - b; if (d < 0) d = -d; e = f - b; if (e < 0) e = -e
                                                 exit !(b > 0 && d / b < 1e-5 && d <= e) }'
"$BIN/dr-score" --lm "$TMP/lm.safetensors" $TOY --split train_b "$M" > "$TMP/ppl_b.tsv" 2>/dev/null
check "--lm: corrupt examples have the higher loss" \
    awk -F'\t' 'NR > 1 { s[$3] += $2; n[$3]++ } END { exit !(s["corrupt"]/n["corrupt"] > s["clean"]/n["clean"]) }' "$TMP/ppl_b.tsv"

# ---- dr-filter -----------------------------------------------------------------------
# The windows of a filtered output, in order (each kept example is one document there).
windows_of() { "$BIN/dr-cat" --examples --ids --seq-len 32 "$1" | cut -f2; }
# Exact duplicate documents share an id, and dr-filter gives an id's scores to its
# examples from the lowest up, in shard order (docs/deploy.md): the expectations below
# use the scores as it assigns them (rows.tsv's third column), else a duplicate whose
# copies' scores differ in the last bits (their batch slots in dr-score) can cross a
# cut differently than expected. gen_toy.sh's clean documents repeat.
T=$(printf '\t')
paste <(sort -t"$T" -k2,2 -k3,3g "$TMP/rows.tsv" | cut -f3) <(sort -t"$T" -k2,2 -k1,1n "$TMP/rows.tsv") \
    | awk -F'\t' -v OFS='\t' '{ print $2, $3, $1, $5, $6, $7 }' | sort -t"$T" -k1,1n > "$TMP/rows.aligned"
check "rows: every row kept, each id's scores the same multiset" \
    bash -c "[ \"\$(cut -f1,2 '$TMP/rows.aligned')\" = \"\$(cut -f1,2 '$TMP/rows.tsv')\" ] &&
             cmp -s <(cut -f2,3 '$TMP/rows.aligned' | sort) <(cut -f2,3 '$TMP/rows.tsv' | sort)"
mv "$TMP/rows.aligned" "$TMP/rows.tsv"
# The expected windows of the kept rows (row numbers on stdin), in shard order.
windows_of_rows() { sort -n | awk -F'\t' 'NR == FNR { k[$1] = 1; next } ($1 in k) { print $6 }' - "$TMP/rows.tsv"; }
# rows by score, best first, ties by shard order
ranked() { sort -t"$(printf '\t')" -k3,3gr -k1,1n "$TMP/rows.tsv"; }

# --keep 0.6: round(0.6·N) examples, exactly the top ones, in shard order
"$BIN/dr-filter" --scores "$S" --keep 0.6 $TOY -o "$TMP/top" --split train_b "$M" > "$TMP/top.paths" 2> "$TMP/top.err"
check "--keep 0.6 exits 0" [ $? -eq 0 ]
K=$(awk -v n="$N" 'BEGIN { printf "%d", 0.6 * n + 0.5 }')
KEPT=$(windows_of "$TMP/top" | wc -l)
echo "--keep 0.6: kept $KEPT of $N"
check "--keep 0.6 keeps 60% ± one example ($KEPT of $N)" \
    awk -v k="$KEPT" -v n="$N" 'BEGIN { d = k - 0.6 * n; exit !(d <= 1 && d >= -1) }'
check "--keep 0.6 keeps exactly the top-scored windows, in shard order" \
    cmp -s <(ranked | head -n "$K" | cut -f1 | windows_of_rows) <(windows_of "$TMP/top")
check "--keep prints the shard paths on stdout" bash -c "[ \"\$(cat '$TMP/top.paths')\" = '$TMP/top/filtered-00000.drs' ]"
check "--keep summary: examples and tokens kept" grep -qE "^kept $K of $N examples \([0-9.]+%\), [0-9]+ of [0-9]+ tokens" "$TMP/top.err"
check "--keep summary: kept fraction per source" bash -c "grep -qE '^clean +[0-9]+ +[0-9]+ +[0-9.]+%' '$TMP/top.err' && grep -qE '^corrupt +[0-9]+ +[0-9]+ +[0-9.]+%' '$TMP/top.err'"

# --min-score S: every example scored >= S, decided per example. The summary of a --keep
# run names the cut; where no tie straddles it, the S that keeps the same examples.
# KT: the first count from round(0.6·N) up whose last kept score is above the next one.
KT=$(ranked | cut -f3 | awk -v k0="$K" 'NR > k0 && prev > $1 + 0 { print NR - 1; exit } { prev = $1 + 0 }')
ST=$(ranked | sed -n "${KT}p" | cut -f3)          # its lowest kept score, as the file has it
FT=$(awk -v k="$KT" -v n="$N" 'BEGIN { printf "%.17g", k / n }')
"$BIN/dr-filter" --scores "$S" --keep "$FT" $TOY -o "$TMP/kt" "$TMP/splits/train_b" >/dev/null 2>"$TMP/kt.err"
HINT=$(sed -n 's/^score cut: lowest kept \([^,]*\), highest dropped [^:]*: --min-score \([^ ]*\) keeps the same examples$/\1 \2/p' "$TMP/kt.err")
echo "--keep $FT ($KT of $N): summary's cut line: $(grep '^score cut: ' "$TMP/kt.err")"
check "--keep summary: the cut, and the --min-score that keeps the same examples" \
    awk -v h="$HINT" -v s="$ST" 'BEGIN { split(h, a, " "); exit !(a[1] == a[2] && a[1] + 0 == s + 0) }'
"$BIN/dr-filter" --scores "$S" --min-score "${HINT#* }" $TOY -o "$TMP/ms" "$TMP/splits/train_b" > "$TMP/ms.paths" 2>"$TMP/ms.err"
check "--min-score exits 0" [ $? -eq 0 ]
check "--min-score (the summary's) writes the same shard bytes as that --keep" cmp -s "$TMP/kt/filtered-00000.drs" "$TMP/ms/filtered-00000.drs"
check "--min-score keeps exactly the examples scored >= S, in shard order" \
    cmp -s <(awk -F'\t' -v s="$ST" '$3 + 0 >= s + 0 { print $1 }' "$TMP/rows.tsv" | windows_of_rows) <(windows_of "$TMP/ms")
check "--min-score summary: the cut, no hint" grep -qx "score cut: lowest kept ${HINT#* }, highest dropped [^:]*" "$TMP/ms.err"
"$BIN/dr-filter" --scores "$S" --min-score "$ST" --invert $TOY -o "$TMP/msi" "$TMP/splits/train_b" >/dev/null 2>&1
check "--invert --min-score keeps exactly the rest (scored < S)" \
    cmp -s <(awk -F'\t' -v s="$ST" '$3 + 0 < s + 0 { print $1 }' "$TMP/rows.tsv" | windows_of_rows) <(windows_of "$TMP/msi")
# a corpus in parts, one run per part with one S (what xargs -P or a Slurm array would
# run): the same examples, ids and order as one run over all the parts
"$BIN/dr-filter" --scores "$S" --keep 1 --shard-size 0.003 --prefix part $TOY -o "$TMP/parts" "$TMP/splits/train_b" > "$TMP/parts.paths" 2>/dev/null
check "parts: several shards ($(wc -l < "$TMP/parts.paths"))" [ "$(wc -l < "$TMP/parts.paths")" -gt 2 ]
"$BIN/dr-score" --rater "$R" $TOY -o "$TMP/parts.tsv" "$TMP/parts" 2>/dev/null
"$BIN/dr-filter" --scores "$TMP/parts.tsv" --keep "$FT" $TOY -o "$TMP/pall" "$TMP/parts" >/dev/null 2>"$TMP/pall.err"
PS=$(sed -n 's/^score cut: .*: --min-score \([^ ]*\) keeps the same examples$/\1/p' "$TMP/pall.err")
ok=1; j=0
while read -r part; do
    b=$(basename "$part" .drs)
    "$BIN/dr-score" --rater "$R" $TOY -o "$TMP/$b.tsv" "$part" 2>/dev/null || ok=0
    "$BIN/dr-filter" --scores "$TMP/$b.tsv" --min-score "$PS" --prefix "$b" $TOY -o "$TMP/pmin" "$part" \
        >/dev/null 2>"$TMP/$b.err" || ok=0
    j=$((j + 1))
done < "$TMP/parts.paths"
echo "parts: $j runs with --min-score $PS; kept per part: $(cat "$TMP"/part-*.err | sed -n 's/^kept \([0-9]*\) of.*/\1/p' | tr '\n' ' ')"
check "parts: every per-part run exits 0 (some may keep nothing), with the S of the joined run" \
    bash -c "[ '$ok' = 1 ] && [ -n '$PS' ]"
check "parts: per-part --min-score keeps what one --keep run over all parts keeps (ids, windows, order)" \
    cmp -s <("$BIN/dr-cat" --examples --ids --seq-len 32 "$TMP/pall") <("$BIN/dr-cat" --examples --ids --seq-len 32 "$TMP/pmin")
# --documents mean --keep 0.5: documents (their windows' scores averaged, weighted by the
# windows' tokens) ranked, the top round(0.5·D) written whole with their own ids, in order
"$BIN/dr-filter" --scores "$S" --documents mean --keep 0.5 $TOY -o "$TMP/docs" "$TMP/splits/train_b" \
    > /dev/null 2>"$TMP/docs.err"
check "--documents mean exits 0" [ $? -eq 0 ]
awk -F'\t' -v OFS='\t' '{ split($2, a, ":") }
    a[2] == 0 { if (n) printf "%d\t%s\t%.17g\n", d, id, num / den; d++; id = a[1]; num = den = 0; n = 1 }
    { num += $5 * $3; den += $5 } END { printf "%d\t%s\t%.17g\n", d, id, num / den }' "$TMP/rows.tsv" > "$TMP/docs.ref"
D=$(wc -l < "$TMP/docs.ref"); KD=$(awk -v n="$D" 'BEGIN { printf "%d", 0.5 * n + 0.5 }')
check "--documents: the summary counts documents ($KD of $D)" grep -q "^kept $KD of $D documents" "$TMP/docs.err"
check "--documents mean --keep 0.5 keeps the top documents by mean score, whole, in order" \
    cmp -s <(sort -t"$T" -k3,3gr -k1,1n "$TMP/docs.ref" | head -n "$KD" | sort -n | cut -f2) \
           <("$BIN/dr-cat" --list "$TMP/docs" | cut -f1)
check "--documents: each kept document is the original, byte for byte" \
    bash -c "'$BIN/dr-cat' --jsonl '$TMP/docs' | sort -u | comm -23 - <('$BIN/dr-cat' --jsonl '$TMP/splits/train_b' | sort -u) | grep -q . && exit 1 || exit 0"
DR_RESIDENT_TOKENS=0 "$BIN/dr-filter" --scores "$S" --documents mean --keep 0.5 $TOY -o "$TMP/docs0" \
    "$TMP/splits/train_b" > /dev/null 2>&1
check "--documents: the same shards when documents are read from the shards as needed (DR_RESIDENT_TOKENS=0)" \
    cmp -s "$TMP/docs/filtered-00000.drs" "$TMP/docs0/filtered-00000.drs"
expect_error "--documents median is refused" "mean, min, max or first" \
    "$BIN/dr-filter" --scores "$S" --documents median --keep 0.5 $TOY -o "$TMP/docsbad" "$TMP/splits/train_b"
# nothing above S: success, no shard, no path; an earlier run's shards removed
"$BIN/dr-filter" --scores "$S" --keep 1 $TOY -o "$TMP/none" "$TMP/splits/train_b" >/dev/null 2>&1
"$BIN/dr-filter" --scores "$S" --min-score 1e300 $TOY -o "$TMP/none" "$TMP/splits/train_b" > "$TMP/none.paths" 2>"$TMP/none.err"
check "--min-score above every score: exits 0" [ $? -eq 0 ]
check "... prints no path, leaves no shard, says so" \
    bash -c "[ ! -s '$TMP/none.paths' ] && [ -z \"\$(ls -A '$TMP/none')\" ] && grep -q '^kept 0 of $N examples' '$TMP/none.err' &&
             grep -q '^score cut: highest dropped .*, none kept\$' '$TMP/none.err' && grep -q '^removed 1 shard' '$TMP/none.err'"
for bad in "--min-score 0 --keep 0.5:give one policy" "--min-score 0 --random 0.5:give one policy" \
           "--min-score 0 --fraction 0.5:not by fraction" "--min-score nan:is not a number" "--min-score 1e999:is not a number"; do
    expect_error "refused: ${bad%%:*}" "${bad#*:}" "$BIN/dr-filter" --scores "$S" ${bad%%:*} $TOY -o "$TMP/msbad" "$TMP/splits/train_b"
    check "... and no output directory" [ ! -e "$TMP/msbad" ]
done

# progress on stderr, not a terminal (DR_PROGRESS_INTERVAL=0: a line at every update):
# reading the scores and matching them to the examples as they are read (MB of the
# file), selecting, writing the kept examples; then the summary as before, and the same
# shards
DR_PROGRESS_INTERVAL=0 "$BIN/dr-filter" --scores "$S" --keep 0.6 $TOY -o "$TMP/topp" --split train_b "$M" \
    > "$TMP/topp.paths" 2> "$TMP/topp.err"
check "progress: scores lines, in MB of the file" grep -qE "^scores: ([0-9.]+)/\\1 MB \(100\.0%\), .* elapsed, ETA [0-9:]+, $N lines\$" "$TMP/topp.err"
check "progress: select lines" grep -qE "^select: $N/$N examples \(100\.0%\), " "$TMP/topp.err"
check "progress: write lines, in kept examples" grep -qE "^write: $K/$K examples \(100\.0%\), .*, 1 shard\$" "$TMP/topp.err"
check "progress: then the summary as before" \
    cmp -s <(grep -v '^\(scores\|select\|write\): ' "$TMP/topp.err") "$TMP/top.err"
check "progress: a short run at the default interval prints none" \
    bash -c "! grep -q '^\(scores\|select\|write\): ' '$TMP/top.err'"
check "progress: the same shards" cmp -s "$TMP/top/filtered-00000.drs" "$TMP/topp/filtered-00000.drs"

# the output is a valid set of shards: every block read and checked, and trainable
check "dr-cat reads the filtered shards" bash -c "'$BIN/dr-cat' --jsonl '$TMP/top' > '$TMP/top.jsonl' && [ \$(wc -l < '$TMP/top.jsonl') -eq $K ]"
check "dr-train trains on the filtered shards" \
    "$BIN/dr-train" $TOY --steps 3 --train "$TMP/top" --val "$M" --val-split val -o "$TMP/ftrain.safetensors" 2>/dev/null

# --per-batch B --keep F: exactly the top ceil(F·b) = ⌈F·b − 1e-9⌉ of every batch (docs/deploy.md);
# 0.28·25 = 7.000000000000001 in double: 7 of each 25, not 8
for BF in 10:0.35 25:0.28; do
    PB=${BF%:*} PF=${BF#*:}
    rm -rf "$TMP/pb"
    "$BIN/dr-filter" --scores "$S" --per-batch $PB --keep $PF $TOY -o "$TMP/pb" "$TMP/splits/train_b" >/dev/null 2>&1
    check "--per-batch $PB --keep $PF exits 0" [ $? -eq 0 ]
    awk -F'\t' -v OFS='\t' -v B=$PB '{ print int(($1 - 1) / B), $1, $3 }' "$TMP/rows.tsv" | sort -t"$(printf '\t')" -k1,1n -k3,3gr -k2,2n \
        | awk -F'\t' -v n="$N" -v B=$PB -v F=$PF '{ g = $1; b = (g + 1) * B <= n ? B : n - g * B
                                 k = b * F; k -= 1e-9; k = (k == int(k)) ? k : int(k) + 1
                                 if (++c[g] <= k) print $2 }' > "$TMP/pb.rows"
    check "--per-batch $PB --keep $PF keeps exactly the top ceil(F·b) of every batch ($(wc -l < "$TMP/pb.rows") examples)" \
        cmp -s <(windows_of_rows < "$TMP/pb.rows") <(windows_of "$TMP/pb")
done
check "--per-batch 25 --keep 0.28 keeps 7 of the first 25" [ "$(head -n 25 "$TMP/rows.tsv" | cut -f1 | grep -cxFf - "$TMP/pb.rows")" -eq 7 ]

# --random: reproducible with a seed, another seed another sample, round(F·N) kept
for d in r1 r2 r3; do
    seed=5; [ $d = r3 ] && seed=6
    "$BIN/dr-filter" --scores "$S" --random 0.3 --seed $seed $TOY -o "$TMP/$d" "$TMP/splits/train_b" >/dev/null 2>&1
done
check "--random with a seed: the same shard bytes twice" cmp -s "$TMP/r1/filtered-00000.drs" "$TMP/r2/filtered-00000.drs"
check "--random with another seed: another sample" bash -c "! cmp -s '$TMP/r1/filtered-00000.drs' '$TMP/r3/filtered-00000.drs'"
check "--random 0.3 keeps round(0.3·N)" [ "$(windows_of "$TMP/r1" | wc -l)" -eq "$(awk -v n="$N" 'BEGIN { printf "%d", 0.3 * n + 0.5 }')" ]

# --keep-middle 0.5: the middle half by score
"$BIN/dr-filter" --scores "$S" --keep-middle 0.5 $TOY -o "$TMP/mid" "$TMP/splits/train_b" >/dev/null 2>&1
KM=$(awk -v n="$N" 'BEGIN { printf "%d", 0.5 * n + 0.5 }')
check "--keep-middle 0.5 keeps the middle round(N/2) by score" \
    cmp -s <(ranked | tail -n +$(( (N - KM) / 2 + 1 )) | head -n "$KM" | cut -f1 | windows_of_rows) <(windows_of "$TMP/mid")
# --fraction F with no policy option: the config's policy (filter = the top fraction) with F
"$BIN/dr-filter" --scores "$S" --fraction 0.3 $TOY -o "$TMP/frac" "$TMP/splits/train_b" >/dev/null 2>"$TMP/frac.err"
"$BIN/dr-filter" --scores "$S" --keep 0.3 $TOY -o "$TMP/frac_keep" "$TMP/splits/train_b" >/dev/null 2>&1
check "--fraction alone: the config's policy with F, not deploy.keep" grep -q "policy from the config: deploy.policy = filter, --fraction = 0.3" "$TMP/frac.err"
check "--fraction alone keeps what --keep F keeps" bash -c "cmp -s <('$BIN/dr-cat' --ids '$TMP/frac') <('$BIN/dr-cat' --ids '$TMP/frac_keep')"
check "... which is not deploy.keep's selection" bash -c "! cmp -s <('$BIN/dr-cat' --ids '$TMP/frac') <('$BIN/dr-cat' --ids '$TMP/top')"

# --cdf: about the keep fraction, favouring high scores, reproducible
"$BIN/dr-filter" --scores "$S" --cdf --keep 0.5 --seed 2 $TOY -o "$TMP/cdf" "$TMP/splits/train_b" >/dev/null 2>"$TMP/cdf.err"
"$BIN/dr-filter" --scores "$S" --cdf --fraction 0.5 --seed 2 $TOY -o "$TMP/cdf2" "$TMP/splits/train_b" >/dev/null 2>&1
check "--cdf: reproducible" cmp -s "$TMP/cdf/filtered-00000.drs" "$TMP/cdf2/filtered-00000.drs"
KC=$(windows_of "$TMP/cdf" | wc -l)
check "--cdf --keep 0.5 keeps about half ($KC of $N)" awk -v k="$KC" -v n="$N" 'BEGIN { exit !(k > 0.4 * n && k < 0.6 * n) }'

# --invert with the toy rater: keeps mostly corrupt examples
"$BIN/dr-filter" --scores "$S" --keep 0.4 --invert $TOY -o "$TMP/inv" "$TMP/splits/train_b" >/dev/null 2>&1
"$BIN/dr-cat" --list "$TMP/inv" | cut -f2 | sort | uniq -c > "$TMP/inv.src"
C_IN=$(awk -F'\t' '$4 == "corrupt"' "$TMP/rows.tsv" | wc -l)
C_INV=$(awk '$2 == "corrupt" { print $1 }' "$TMP/inv.src"); C_INV=${C_INV:-0}
N_INV=$(awk '{ s += $1 } END { print s }' "$TMP/inv.src")
echo "--invert --keep 0.4: $C_INV of $N_INV kept examples are corrupt (input: $C_IN of $N)"
check "--invert with the toy rater keeps mostly corrupt examples (> 90%)" \
    awk -v c="$C_INV" -v n="$N_INV" 'BEGIN { exit !(n > 0 && c / n > 0.9) }'

# a second, smaller output into the same directory leaves only its own shards
"$BIN/dr-filter" --scores "$S" --keep 1 --shard-size 0.002 $TOY -o "$TMP/re" "$TMP/splits/train_b" > "$TMP/re1.paths" 2>/dev/null
check "--shard-size: several shards ($(wc -l < "$TMP/re1.paths"))" [ "$(wc -l < "$TMP/re1.paths")" -gt 2 ]
check "--keep 1 keeps every example, in order, over several shards" cmp -s <(cut -f6 "$TMP/rows.tsv") <(windows_of "$TMP/re")
"$BIN/dr-filter" --scores "$S" --keep 0.1 $TOY -o "$TMP/re" "$TMP/splits/train_b" > "$TMP/re2.paths" 2>"$TMP/re2.err"
check "a rerun removes the earlier run's extra shards" \
    bash -c "[ \$(ls '$TMP/re' | wc -l) -eq 1 ] && grep -q 'removed' '$TMP/re2.err'"

# ---- bad input -------------------------------------------------------------------------
# (each refused with one line, no output shard: the output directory stays empty)
no_output() { [ -z "$(ls -A "$TMP/badout" 2>/dev/null)" ] || fail "$1: wrote $(ls "$TMP/badout")"; }
FILTER=("$BIN/dr-filter" --scores "$TMP/bad.tsv" --keep 0.5 $TOY -o "$TMP/badout" "$TMP/splits/train_b")
ID7=$(sed -n 7p "$S" | cut -f1)
ID9=$(awk -F'\t' '$4 == "corrupt" { print $2; exit }' "$TMP/rows.tsv")    # a unique (random) window
L9=$(awk -F'\t' -v id="$ID9" '$1 == id { print NR; exit }' "$S")
sed 7d "$S" > "$TMP/bad.tsv"
expect_error "scores: a missing id" "no score for example $ID7" "${FILTER[@]}"; no_output "missing id"
{ cat "$S"; printf '0123456789abcdef:0\t1.5\tclean\t33\n'; } > "$TMP/bad.tsv"
expect_error "scores: an extra id" ":$((N + 2)): example 0123456789abcdef:0 is not in the shards" "${FILTER[@]}"; no_output "extra id"
{ cat "$S"; grep "^$ID9	" "$S"; } > "$TMP/bad.tsv"
expect_error "scores: a duplicate id" ":$((N + 2)): duplicate example id $ID9 \(first at line $L9\)" "${FILTER[@]}"; no_output "duplicate id"
# the duplicate is the line past the shards' count, even when its lower score took the
# example (before: the first line was named, as a duplicate of itself)
{ cat "$S"; grep "^$ID9	" "$S" | awk -F'\t' -v OFS='\t' '{ $2 = $2 - 1; print }'; } > "$TMP/bad.tsv"
expect_error "scores: a duplicate id with a lower score" ":$((N + 2)): duplicate example id $ID9 \(first at line $L9\)" "${FILTER[@]}"; no_output "lower duplicate"
awk -F'\t' -v OFS='\t' 'NR == 5 { $2 = "abc" } 1' "$S" > "$TMP/bad.tsv"
expect_error "scores: a non-numeric score" ":5: score 'abc' is not a number" "${FILTER[@]}"; no_output "non-numeric"
awk -F'\t' -v OFS='\t' 'NR == 6 { $2 = "nan" } 1' "$S" > "$TMP/bad.tsv"
expect_error "scores: a NaN score" ":6: score 'nan' is not finite" "${FILTER[@]}"; no_output "NaN"
awk -F'\t' -v OFS='\t' 'NR == 6 { $2 = "inf" } 1' "$S" > "$TMP/bad.tsv"
expect_error "scores: an infinite score" ":6: score 'inf' is not finite" "${FILTER[@]}"; no_output "inf"
awk -F'\t' -v OFS='\t' 'NR == 8 { $4 = 99 } 1' "$S" > "$TMP/bad.tsv"
expect_error "scores: a wrong token count" ":8: example [0-9a-f]{16}:[0-9]+ has [0-9]+ tokens in the shards at data.seq_len 32, not 99: the scores were made with another data.seq_len" "${FILTER[@]}"; no_output "n_tokens"
tail -n +2 "$S" > "$TMP/bad.tsv"
expect_error "scores: no header" ":1: expected the header" "${FILTER[@]}"; no_output "header"
# an id as dr-score writes it: "…:01" is not the id "…:1" (join or sort would not match them)
awk -F'\t' -v OFS='\t' 'NR == 9 { sub(/:/, ":0", $1) } 1' "$S" > "$TMP/bad.tsv"
expect_error "scores: a window index with a leading zero" ":9: bad example id '[0-9a-f]{16}:0[0-9]+'" "${FILTER[@]}"
no_output "leading zero"
# numbers are read strictly (as %g, awk or Python print them): no leading space, hex or
# '+' (strtod/strtoul took them); inf/nan in any spelling are refused as not finite
for c in "5|2| 0.5|is not a number" "5|2|0x10|is not a number" "5|2|+1.5|is not a number" "5|2|.5|is not a number" \
         "5|2|1.5 |is not a number" "5|2|1e|is not a number" "5|2|-Infinity|is not finite" "5|2|-nan|is not finite" \
         "5|2|1e400|is beyond the float range" "5|4|+20|is not a count" "5|4| 20|is not a count" "5|4|0x14|is not a count"; do
    IFS='|' read -r ln col val why <<< "$c"
    awk -F'\t' -v OFS='\t' -v l="$ln" -v c="$col" -v v="$val" 'NR == l { $c = v } 1' "$S" > "$TMP/bad.tsv"
    what=$([ "$col" = 2 ] && echo score || echo n_tokens)
    expect_error "scores: $what '$val'" ":$ln: $what '$(printf '%s' "$val" | sed 's/[.+]/\\&/g')' $why" "${FILTER[@]}"; no_output "$what '$val'"
done
# the largest float as %.9g prints it (3.40282347e+38, just above FLT_MAX as a double) is a
# score; the next decimal that rounds past it (3.4028236e+38) is refused
awk -F'\t' -v OFS='\t' 'NR == 5 { $2 = "3.40282347e+38" } NR == 6 { $2 = "-3.40282347e+38" } 1' "$S" > "$TMP/fmax.tsv"
check "scores: 3.40282347e+38 (FLT_MAX as %.9g) accepted" \
    "$BIN/dr-filter" --scores "$TMP/fmax.tsv" --keep 0.5 $TOY -o "$TMP/fmax" "$TMP/splits/train_b"
awk -F'\t' -v OFS='\t' 'NR == 5 { $2 = "3.4028236e+38" } 1' "$S" > "$TMP/bad.tsv"
expect_error "scores: 3.4028236e+38 (rounds past the largest float)" ":5: score '3\.4028236e\+38' is beyond the float range" "${FILTER[@]}"
no_output "3.4028236e+38"
# what %.17g, awk and Python print is accepted: the same shards as the file itself
awk -F'\t' -v OFS='\t' 'NR > 1 { $2 = sprintf("%.17g", $2) } 1' "$S" > "$TMP/g17.tsv"
"$BIN/dr-filter" --scores "$S" --keep 0.5 $TOY -o "$TMP/ref" "$TMP/splits/train_b" >/dev/null 2>&1
"$BIN/dr-filter" --scores "$TMP/g17.tsv" --keep 0.5 $TOY -o "$TMP/g17" "$TMP/splits/train_b" >/dev/null 2>&1
check "scores printed with %.17g: accepted, the same shards" cmp -s "$TMP/ref/filtered-00000.drs" "$TMP/g17/filtered-00000.drs"
# empty lines at the very end are ignored (an editor's, `echo >>`); elsewhere refused
{ cat "$S"; printf '\n\r\n\n'; } > "$TMP/trail.tsv"
"$BIN/dr-filter" --scores "$TMP/trail.tsv" --keep 0.5 $TOY -o "$TMP/trail" "$TMP/splits/train_b" >/dev/null 2>&1
check "scores: empty lines at the end are ignored" cmp -s "$TMP/ref/filtered-00000.drs" "$TMP/trail/filtered-00000.drs"
# an editor's byte-order mark and CRLF line ends: the same shards (the header was refused)
{ printf '\xef\xbb\xbf'; sed 's/$/\r/' "$S"; } > "$TMP/bom.tsv"
"$BIN/dr-filter" --scores "$TMP/bom.tsv" --keep 0.5 $TOY -o "$TMP/bom" "$TMP/splits/train_b" >/dev/null 2>&1
check "scores with a UTF-8 BOM and CRLF: the same shards" cmp -s "$TMP/ref/filtered-00000.drs" "$TMP/bom/filtered-00000.drs"
{ head -n 4 "$S"; echo; tail -n +5 "$S"; echo; } > "$TMP/bad.tsv"
expect_error "scores: an empty line before the end" ":5: expected 4 tab-separated fields" "${FILTER[@]}"; no_output "empty line"
"$BIN/dr-score" --rater "$R" $TOY --split val "$M" > "$TMP/bad.tsv" 2>/dev/null
expect_error "scores of other shards" "example [0-9a-f]{16}:[0-9]+ is not in the shards" "${FILTER[@]}"; no_output "other shards"
# the message names the scores' seq_len when only one gives the window its length
expect_error "scores made with a smaller seq_len" "tokens in the shards at data.seq_len 64, not 33: the scores were made with data.seq_len 32 .*--set data.seq_len=32" \
    "$BIN/dr-filter" --scores "$S" --keep 0.5 $TOY --set data.seq_len=64 -o "$TMP/badout" "$TMP/splits/train_b"
expect_error "scores made with a larger seq_len" "tokens in the shards at data.seq_len 16, not 33: the scores were made with data.seq_len 32 .*--set data.seq_len=32" \
    "$BIN/dr-filter" --scores "$S" --keep 0.5 $TOY --set data.seq_len=16 -o "$TMP/badout" "$TMP/splits/train_b"
for f in 0 -0.1 1.5 nan; do
    for p in --keep --random --keep-middle; do
        expect_error "$p $f" "$p: (keep fraction .* is outside \(0, 1\]|'$f' is not a number)" \
            "$BIN/dr-filter" --scores "$S" $p "$f" $TOY -o "$TMP/badout" "$TMP/splits/train_b"
    done
    expect_error "--per-batch with --fraction $f" "fraction" \
        "$BIN/dr-filter" --scores "$S" --per-batch 8 --fraction "$f" $TOY -o "$TMP/badout" "$TMP/splits/train_b"
done
# the value as given: %g printed 1.0000001 as "keep fraction 1 is outside (0, 1]"
for p in --keep --random --keep-middle --fraction; do
    expect_error "$p 1.0000001 named as given" "$p: keep fraction 1\.0000001 is outside \(0, 1\]$" \
        "$BIN/dr-filter" --scores "$S" $p 1.0000001 $TOY -o "$TMP/badout" "$TMP/splits/train_b"
done
# the shard paths are printed one per line (as dr-tokenize's): a newline in -o or --prefix
# made two lines of one path
expect_error "dr-filter -o with a newline" "-o '.*badout.*': holds a newline or carriage return" \
    "$BIN/dr-filter" --scores "$S" --keep 0.5 $TOY -o "$TMP/badout
x" "$TMP/splits/train_b"
expect_error "dr-filter --prefix with a carriage return" "--prefix 'a.*b': holds a newline or carriage return" \
    "$BIN/dr-filter" --scores "$S" --keep 0.5 $TOY --prefix "$(printf 'a\rb')" -o "$TMP/badout" "$TMP/splits/train_b"
checks=$((checks + 1)); [ -z "$(ls -d "$TMP"/badout* 2>/dev/null)" ] || fail "a refused -o or --prefix left an output"
expect_error "--per-batch with deploy.keep 0" "deploy.keep" \
    "$BIN/dr-filter" --scores "$S" --per-batch 8 $TOY --set deploy.keep=0 -o "$TMP/badout" "$TMP/splits/train_b"
expect_error "two policies" "one policy" "$BIN/dr-filter" --scores "$S" --random 0.5 --keep-middle 0.5 $TOY -o "$TMP/badout" "$TMP/splits/train_b"
expect_error "deploy.policy online is not a dr-filter policy" "deploy.policy = online is a dr-train mode" \
    "$BIN/dr-filter" --scores "$S" $TOY --set deploy.policy=online -o "$TMP/badout" "$TMP/splits/train_b"
# no policy option: the config's deploy section, here deploy.policy per_batch = --per-batch
"$BIN/dr-filter" --scores "$S" $TOY --set deploy.policy=per_batch --set deploy.batch=8 --set deploy.keep=0.5 \
    -o "$TMP/cfgpol" "$TMP/splits/train_b" >/dev/null 2>&1
"$BIN/dr-filter" --scores "$S" $TOY --per-batch 8 --keep 0.5 -o "$TMP/optpol" "$TMP/splits/train_b" >/dev/null 2>&1
check "deploy.policy per_batch = --per-batch B --keep F" cmp -s "$TMP/cfgpol/filtered-00000.drs" "$TMP/optpol/filtered-00000.drs"
# … and that comparison can fail: the default policy (filter = --keep 0.5) keeps other examples
"$BIN/dr-filter" --scores "$S" $TOY --keep 0.5 -o "$TMP/toppol" "$TMP/splits/train_b" >/dev/null 2>&1
check "--per-batch 8 and --keep 0.5 keep different examples here" \
    bash -c "! cmp -s '$TMP/toppol/filtered-00000.drs' '$TMP/optpol/filtered-00000.drs'"
rm -rf "$TMP/cfgpol" "$TMP/optpol" "$TMP/toppol"
no_output "fractions"
expect_error "dr-score: both --rater and --lm" "exactly one of --rater and --lm" \
    "$BIN/dr-score" --rater "$R" --lm "$TMP/lm.safetensors" $TOY "$M"
expect_error "dr-score: an LM given as --rater" "lm.safetensors" "$BIN/dr-score" --rater "$TMP/lm.safetensors" $TOY "$M"
expect_error "dr-score: a missing checkpoint" "nope.safetensors" "$BIN/dr-score" --rater "$TMP/nope.safetensors" $TOY "$M"
expect_error "dr-score: no shards of the split" "$(basename "$M"): no shards of split 'nope' \(its splits: train_a, val, train_b\)$" "$BIN/dr-score" --rater "$R" $TOY --split nope "$M"
expect_error "dr-score -o: an error leaves no file" "no shards of split" \
    "$BIN/dr-score" --rater "$R" $TOY --split nope -o "$TMP/never.tsv" "$M"
check "dr-score -o: no file after an error" [ ! -e "$TMP/never.tsv" ]
# a corpus of more shards than `ulimit -n` allows files: the readers share a budget of
# open files (half the limit), so the scores are those of a run without the limit
"$BIN/dr-tokenize" --tokenizer byte --source-field source --shard-size 0.001 -o "$TMP/many" "$TMP/toy.jsonl" \
    > "$TMP/many.paths" 2>/dev/null || fail "dr-tokenize --shard-size 0.001"
check "the many-shard corpus has over 100 shards" [ "$(wc -l < "$TMP/many.paths")" -gt 100 ]
"$BIN/dr-score" --lm "$TMP/lm.safetensors" $TOY "$TMP/many" > "$TMP/many_free.tsv" 2>/dev/null
# shellcheck disable=SC2086
score_limited() { (ulimit -n 40 && "$BIN/dr-score" --lm "$TMP/lm.safetensors" $TOY "$TMP/many" 2>/dev/null) |
                  cmp -s - "$TMP/many_free.tsv"; }
# shellcheck disable=SC2086
filter_limited() { (ulimit -n 40 && "$BIN/dr-filter" --scores "$TMP/many_free.tsv" --keep 0.5 $TOY \
                    -o "$TMP/many_kept" "$TMP/many" >/dev/null 2>&1); }
check "dr-score under ulimit -n 40 over $(wc -l < "$TMP/many.paths") shards equals the run without the limit" score_limited
check "... and dr-filter runs under it too" filter_limited
# a file size limit (ulimit -f): a write error naming the file, not death by SIGXFSZ
# (before: status 153, no message, x.tsv.tmp.<pid> or filtered-00000.drs.tmp.<pid> left)
with_fsize() { local blocks=$1; shift; bash -c 'ulimit -f "$0"; exec "$@"' "$blocks" "$@"; }
expect_error "dr-score -o under ulimit -f" "fz\.tsv: writing the scores failed: File too large" \
    with_fsize 16 "$BIN/dr-score" --rater "$R" $TOY -o "$TMP/fz.tsv" "$TMP/splits/train_b"
expect_error "dr-score to stdout under ulimit -f" "\(stdout\): writing the scores failed: File too large" \
    bash -c 'ulimit -f 16; exec "$@" > "$0"' "$TMP/fz-stdout.tsv" "$BIN/dr-score" --rater "$R" $TOY "$TMP/splits/train_b"
expect_error "dr-filter under ulimit -f" "fzdir/filtered-00000\.drs: write failed: File too large" \
    with_fsize 8 "$BIN/dr-filter" --scores "$S" --keep 1 $TOY -o "$TMP/fzdir" "$TMP/splits/train_b"
check "ulimit -f: no -o file, no output directory left" \
    bash -c "[ -z \"\$(ls -d '$TMP'/fz.tsv* '$TMP/fzdir' 2>/dev/null)\" ]"
# an option naming a file given twice: refused (before: the last one silently won)
expect_error "dr-filter --scores twice" "option --scores given twice" \
    "$BIN/dr-filter" --scores "$S" --scores "$TMP/ppl_b.tsv" --keep 0.5 $TOY -o "$TMP/badout" "$TMP/splits/train_b"
expect_error "dr-filter -o twice" "option -o given twice" \
    "$BIN/dr-filter" --scores "$S" --keep 0.5 $TOY -o "$TMP/badout" -o "$TMP/badout2" "$TMP/splits/train_b"
expect_error "dr-score --rater twice" "option --rater given twice" \
    "$BIN/dr-score" --rater "$R" --rater "$TMP/lm.safetensors" $TOY "$TMP/splits/train_b"
no_output "options twice"
# --seed takes experiment.seed's whole range (u64): the same sample as the config's seed
# (before: above 2^63 - 1 refused)
"$BIN/dr-filter" --scores "$S" --random 0.3 --seed 18446744073709551615 $TOY -o "$TMP/sbig" "$TMP/splits/train_b" >/dev/null 2>&1
"$BIN/dr-filter" --scores "$S" --random 0.3 $TOY --set experiment.seed=18446744073709551615 -o "$TMP/sbig2" "$TMP/splits/train_b" >/dev/null 2>&1
check "--seed 18446744073709551615 = experiment.seed 18446744073709551615" \
    cmp -s "$TMP/sbig/filtered-00000.drs" "$TMP/sbig2/filtered-00000.drs"
expect_error "--seed -1" "--seed: '-1' is not an integer in \[0, 18446744073709551615\]" \
    "$BIN/dr-filter" --scores "$S" --random 0.3 --seed -1 $TOY -o "$TMP/badout" "$TMP/splits/train_b"
for tool in dr-score dr-filter; do
    check "$tool --help shows usage and an example" bash -c "'$BIN/$tool' --help | grep -q '^usage:' && '$BIN/$tool' --help | grep -q 'example'"
    check "$tool --version" bash -c "'$BIN/$tool' --version | grep -q '^$tool [0-9]'"
done
finish
