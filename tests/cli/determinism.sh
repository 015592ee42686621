#!/usr/bin/env bash
# determinism.sh — the reproducibility promises that the other CLI tests do not check:
# "same inputs + seed + thread count give the same bytes" (README), and each output the
# docs call independent of the thread count, the read-ahead or the input order, compared
# byte for byte (cmp) outside the documented wall-clock fields (the logs' "seconds" and
# "step_seconds", the states' "seconds"); where a setting is recorded in a file's header
# (the config of a model or rater), its tensors are compared:
#  - dr-tokenize: GPT-2 and trained-BPE shards for --threads 1, 2 and 3 (the byte
#    tokenizer is tokenize.sh's); --train-bpe: the same vocabulary from the documents in
#    reverse order and from the corpus cut into files given in another order
#    (docs/formats.md §1.3; --threads 1 vs 2 is bpe_train_xcheck.sh's);
#  - dr-split --threads 1, 2 and 4 with --dedup and --val-sources over several output
#    shards: the same files and stdout (its --help: "same bytes either way");
#  - dr-meta, 2 threads, K = 3 with staggered resets and uniform shadows: two runs, and
#    --stop-at + --resume against one run: rater, EMA, state and metrics; threads=0 with
#    OMP_NUM_THREADS=2 = threads=2; data.prefetch 2 = 0; the rater's init (mode detach)
#    the same for 1 and 2 threads (docs/deploy.md "Randomness", docs/meta.md §3.1);
#  - dr-score --lm for 1, 2 and 3 threads, and --rater for 1 and 3 threads over several
#    shards, per-shard runs on 2 threads joined = one run on 1 thread (docs/deploy.md
#    "Threads and determinism", docs/scale-out.md §6; OMP_NUM_THREADS 1 vs 2 for the
#    rater is score_filter.sh's); dr-score and dr-train (prefetch 0 and 2) streamed from
#    33–41 shards (DR_RESIDENT_TOKENS=0, each reader's decoded block dropped when 8 other
#    shards were read since) = the corpus held in memory;
#  - dr-filter: every policy twice, several output shards; --seed defaults to
#    experiment.seed for --random and --cdf; --random ignores --invert;
#  - dr-train on 2 threads with read-ahead and length buckets, plain, --weights and
#    --rater --online-keep: two runs (model, state, log), data.prefetch 0 = 2,
#    --stop-at + --resume = one run (curated_train.sh and train.sh resume on 1 thread);
#    the data order (tokens per logged step) the same for 1 and 2 threads; threads=0 with
#    OMP_NUM_THREADS=2 = threads=2.
# Controls (another seed gives other bytes) show that each comparison can fail.
# dr-train and dr-meta results DO depend on the thread count (README: "+ thread count";
# docs/scale-out.md §3: the clip norm's reduction), so those are not compared across it.
# About 16 s on 2 cores (21 s beside another busy process).
source "$(dirname "$0")/helpers.bash" dr-tokenize dr-split dr-cat dr-meta dr-score dr-filter dr-train
set -o pipefail
# every run from one copy of bin/: a build relinking bin/ during the test would make two
# runs two builds (docs/scale-out.md §7, "Compare runs of one build")
cp -a "$BIN" "$TMP/bin"
BIN=$TMP/bin

# ---- comparisons (each fails on a missing or empty file) ---------------------------------
header() { local n; n=$(od -An -t u8 -N 8 "$1" | tr -d ' '); head -c $((8 + n)) "$1" | tail -c +9; }
tensors() { local n; n=$(od -An -t u8 -N 8 "$1" | tr -d ' '); tail -c +$((9 + n)) "$1"; }
no_seconds() { sed 's/,"seconds":[^,}]*//; s/,"step_seconds":[^,}]*//' "$1"; }
# a state file without its elapsed seconds: dr-meta's "seconds":"…", dr-train's \"seconds\":…
state_no_seconds() {
    header "$1" | sed 's/"seconds":"[^"]*"//; s/\\"seconds\\":[-0-9.e+]*//; s/ *$//'
    echo
    tensors "$1"
}
both() { [ -s "$1" ] && [ -s "$2" ]; }
same_bytes() { both "$1" "$2" && cmp -s "$1" "$2"; }
same_tensors() { both "$1" "$2" && cmp -s <(tensors "$1") <(tensors "$2"); }
same_log() { both "$1" "$2" && cmp -s <(no_seconds "$1") <(no_seconds "$2"); }
same_state() { both "$1" "$2" && cmp -s <(state_no_seconds "$1") <(state_no_seconds "$2"); }
same_dir() {  # the same file names, each the same bytes (at least one file)
    [ -n "$(ls "$1")" ] && [ "$(ls "$1")" = "$(ls "$2")" ] || return 1
    local f; for f in "$1"/*; do cmp -s "$f" "$2/${f##*/}" || return 1; done
}

# ---- dr-tokenize ---------------------------------------------------------------------------
tests/data/gen_corpus.sh "$TMP/c" 1500 >/dev/null
C=$TMP/c/corpus.jsonl
tok() {  # tok OUT THREADS options…
    local out=$1 th=$2; shift 2
    "$BIN/dr-tokenize" --threads "$th" --shard-size 0.02 --source-field source -o "$out" "$@" "$C" >/dev/null 2>&1
}
if [ -n "${DR_DATA:-}" ] && [ -d "$DR_DATA/gpt2" ]; then
    tok "$TMP/g1" 1 --tokenizer gpt2; tok "$TMP/g2" 2 --tokenizer gpt2; tok "$TMP/g3" 3 --tokenizer gpt2
    check "dr-tokenize gpt2: several shards" test "$(ls "$TMP/g1" | wc -l)" -ge 3
    check "dr-tokenize gpt2: the same shards for --threads 1 and 2" same_dir "$TMP/g1" "$TMP/g2"
    check "dr-tokenize gpt2: the same shards for --threads 1 and 3" same_dir "$TMP/g1" "$TMP/g3"
else
    echo "dr-tokenize gpt2: skipped (no data/gpt2: make vocab)"
fi
# --train-bpe: a multiset of documents; the toy problem's random text gives many merges
tests/data/gen_toy.sh 150 150 3 > "$TMP/bt.jsonl"
cat "$TMP/bt.jsonl" "$C" > "$TMP/bpe.jsonl"
tac "$TMP/bpe.jsonl" > "$TMP/bpe_rev.jsonl"
split -d -n l/3 "$TMP/bpe.jsonl" "$TMP/bpe_part."
bpe() { local out=$1 th=$2; shift 2; "$BIN/dr-tokenize" --train-bpe 900 --threads "$th" --format jsonl -o "$out" "$@" >/dev/null 2>&1; }
bpe "$TMP/v" 2 "$TMP/bpe.jsonl"
bpe "$TMP/v_rev" 2 "$TMP/bpe_rev.jsonl"
bpe "$TMP/v_parts" 1 "$TMP/bpe_part.02" "$TMP/bpe_part.00" "$TMP/bpe_part.01"
bpe "$TMP/v_other" 2 "$C"
check "--train-bpe: documents in reverse order give the same vocabulary" same_dir "$TMP/v" "$TMP/v_rev"
check "--train-bpe: the corpus in 3 files, in another order, gives the same vocabulary" same_dir "$TMP/v" "$TMP/v_parts"
check "--train-bpe control: another corpus gives another vocab.bpe" eval '! same_bytes "$TMP/v/vocab.bpe" "$TMP/v_other/vocab.bpe"'
tok "$TMP/b1" 1 --tokenizer bpe --vocab-dir "$TMP/v"; tok "$TMP/b2" 2 --tokenizer bpe --vocab-dir "$TMP/v"
tok "$TMP/b3" 3 --tokenizer bpe --vocab-dir "$TMP/v"
check "dr-tokenize bpe: the same shards for --threads 1 and 2" same_dir "$TMP/b1" "$TMP/b2"
check "dr-tokenize bpe: the same shards for --threads 1 and 3" same_dir "$TMP/b1" "$TMP/b3"

# ---- dr-split --threads ----------------------------------------------------------------------
mkdir -p "$TMP/sin"
$MKSHARD --random 12000 --seed 1 --max-len 60 --sources web,books,mail "$TMP/sin/a.drs"
$MKSHARD --random 9000 --seed 2 --max-len 60 --first-id 12000 --dup-every 7 --sources mail,web "$TMP/sin/b.drs"
cp "$TMP/sin/a.drs" "$TMP/sin/z.drs"                      # a copy: duplicates across shards
dsplit() {  # dsplit OUT THREADS [options]
    local out=$1 th=$2; shift 2
    "$BIN/dr-split" --val 0.1 --train-b 0.3 --seed 5 --dedup --val-sources web,books --shard-size 0.05 \
        --threads "$th" "$@" -o "$out" "$TMP/sin" 2>/dev/null | sed "s|$out/||" > "$out.stdout"
}
for th in 1 2 4; do dsplit "$TMP/sp$th" $th; done
dsplit "$TMP/sp_seed" 2 --seed 6
check "dr-split: several shards per split" test "$(ls "$TMP/sp1/train_a" | wc -l)" -ge 3
for th in 2 4; do
    check "dr-split --threads 1 vs $th: the same manifest on stdout" same_bytes "$TMP/sp1.stdout" "$TMP/sp$th.stdout"
    check "dr-split --threads 1 vs $th: the same manifest.tsv" same_bytes "$TMP/sp1/manifest.tsv" "$TMP/sp$th/manifest.tsv"
    for d in train_a val train_b; do
        check "dr-split --threads 1 vs $th: the same bytes in $d/" same_dir "$TMP/sp1/$d" "$TMP/sp$th/$d"
    done
done
check "dr-split control: another --seed gives other shards" eval '! same_dir "$TMP/sp1/val" "$TMP/sp_seed/val"'

# ---- the toy pipeline's data -------------------------------------------------------------------
tests/data/gen_toy.sh 600 400 1 > "$TMP/toy.jsonl"
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$TMP/toysh" "$TMP/toy.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.3 --train-b 0.3 --val-sources clean --seed 1 -o "$TMP/toysp" "$TMP/toysh" >/dev/null 2>&1
M=$TMP/toysp/manifest.tsv
CFG=(--config configs/tiny.yaml --set experiment.device=cpu)

# ---- dr-meta -----------------------------------------------------------------------------------
META=("${CFG[@]}" --set meta.rounds=5 --set meta.population_K=3 --set meta.reset_every=2
      --set meta.track_uniform=true --set rater.lr=1e-2)
meta() { local out=$1; shift; "$BIN/dr-meta" "${META[@]}" "$@" -o "$TMP/$out.safetensors" --log "$TMP/$out.jsonl" "$M" >/dev/null 2>&1; }
meta ma --set experiment.threads=2
meta mb --set experiment.threads=2
check "dr-meta, 2 threads, run twice: the same rater" same_bytes "$TMP/ma.safetensors" "$TMP/mb.safetensors"
check "dr-meta, 2 threads, run twice: the same EMA" same_bytes "$TMP/ma.ema.safetensors" "$TMP/mb.ema.safetensors"
check "dr-meta, 2 threads, run twice: the same state" same_state "$TMP/ma.safetensors.state" "$TMP/mb.safetensors.state"
check "dr-meta, 2 threads, run twice: the same metrics" same_log "$TMP/ma.jsonl" "$TMP/mb.jsonl"
meta ms --set experiment.threads=2 --stop-at 3
meta ms --set experiment.threads=2 --resume
check "dr-meta, 2 threads, --stop-at 3 + --resume: the rater of one run" same_bytes "$TMP/ma.safetensors" "$TMP/ms.safetensors"
check "dr-meta, 2 threads, --stop-at 3 + --resume: the EMA of one run" same_bytes "$TMP/ma.ema.safetensors" "$TMP/ms.ema.safetensors"
check "dr-meta, 2 threads, --stop-at 3 + --resume: the state of one run" same_state "$TMP/ma.safetensors.state" "$TMP/ms.safetensors.state"
check "dr-meta, 2 threads, --stop-at 3 + --resume: the metrics of one run" same_log "$TMP/ma.jsonl" "$TMP/ms.jsonl"
OMP_NUM_THREADS=2 meta momp --set experiment.threads=0
check "dr-meta: threads=0 with OMP_NUM_THREADS=2 = threads=2 (rater tensors)" same_tensors "$TMP/ma.safetensors" "$TMP/momp.safetensors"
check "dr-meta: threads=0 with OMP_NUM_THREADS=2 = threads=2 (metrics)" same_log "$TMP/ma.jsonl" "$TMP/momp.jsonl"
meta mpf --set experiment.threads=2 --set data.prefetch=2
check "dr-meta: data.prefetch 2 = 0 (rater tensors)" same_tensors "$TMP/ma.safetensors" "$TMP/mpf.safetensors"
check "dr-meta: data.prefetch 2 = 0 (metrics)" same_log "$TMP/ma.jsonl" "$TMP/mpf.jsonl"
meta mseed --set experiment.threads=2 --set experiment.seed=1
check "dr-meta control: another seed gives another rater" eval '! same_tensors "$TMP/ma.safetensors" "$TMP/mseed.safetensors"'
meta det1 --set experiment.threads=1 --set meta.mode=detach --set meta.rounds=1
meta det2 --set experiment.threads=2 --set meta.mode=detach --set meta.rounds=1
check "dr-meta: the rater's init (mode detach) is the same for 1 and 2 threads" same_tensors "$TMP/det1.safetensors" "$TMP/det2.safetensors"
R=$TMP/ma.ema.safetensors

# ---- dr-score ----------------------------------------------------------------------------------
score() { local out=$1; shift; "$BIN/dr-score" "${CFG[@]}" "$@" > "$TMP/$out.tsv" 2>"$TMP/$out.err"; }

# ---- dr-train ----------------------------------------------------------------------------------
# scores for --weights (and dr-filter below); dr-score --lm is checked after training an LM
score sw --rater "$R" --set experiment.threads=2 --split train_b "$M"
TRAIN=("${CFG[@]}" --steps 24 --set train.log_every=4 --set train.eval_every=8 --set train.checkpoint_every=8
       --set data.prefetch=2 --set data.bucket_by_length=true --train-split train_b)
train() { local out=$1; shift; "$BIN/dr-train" "${TRAIN[@]}" "$@" -o "$TMP/$out.safetensors" --log "$TMP/$out.jsonl" "$M" >/dev/null 2>&1; }
for mode in plain weights online; do
    case $mode in
        plain) X=() ;;
        weights) X=(--weights "$TMP/sw.tsv") ;;
        online) X=(--rater "$R" --online-keep 0.5) ;;
    esac
    train "t_$mode" "${X[@]}" --set experiment.threads=2
    train "t_${mode}_b" "${X[@]}" --set experiment.threads=2
    check "dr-train $mode, 2 threads, run twice: the same model" same_bytes "$TMP/t_$mode.safetensors" "$TMP/t_${mode}_b.safetensors"
    check "dr-train $mode, 2 threads, run twice: the same state" same_state "$TMP/t_$mode.safetensors.state" "$TMP/t_${mode}_b.safetensors.state"
    check "dr-train $mode, 2 threads, run twice: the same log" same_log "$TMP/t_$mode.jsonl" "$TMP/t_${mode}_b.jsonl"
    train "t_${mode}_p0" "${X[@]}" --set experiment.threads=2 --set data.prefetch=0
    check "dr-train $mode: data.prefetch 0 = 2 (model tensors)" same_tensors "$TMP/t_$mode.safetensors" "$TMP/t_${mode}_p0.safetensors"
    check "dr-train $mode: data.prefetch 0 = 2 (log)" same_log "$TMP/t_$mode.jsonl" "$TMP/t_${mode}_p0.jsonl"
    check "dr-train $mode: data.prefetch 0 = 2 (state)" same_state "$TMP/t_$mode.safetensors.state" "$TMP/t_${mode}_p0.safetensors.state"
    train "t_${mode}_r" "${X[@]}" --set experiment.threads=2 --stop-at 10
    train "t_${mode}_r" "${X[@]}" --set experiment.threads=2 --resume
    check "dr-train $mode, 2 threads, --stop-at 10 + --resume: the model of one run" same_bytes "$TMP/t_$mode.safetensors" "$TMP/t_${mode}_r.safetensors"
    check "dr-train $mode, 2 threads, --stop-at 10 + --resume: the state of one run" same_state "$TMP/t_$mode.safetensors.state" "$TMP/t_${mode}_r.safetensors.state"
    check "dr-train $mode, 2 threads, --stop-at 10 + --resume: the log of one run" same_log "$TMP/t_$mode.jsonl" "$TMP/t_${mode}_r.jsonl"
    train "t_${mode}_1" "${X[@]}" --set experiment.threads=1
    check "dr-train $mode: the same data order (tokens of every logged step) for 1 and 2 threads" \
        eval 'both "$TMP/t_${mode}_1.jsonl" "$TMP/t_$mode.jsonl" &&
              cmp -s <(grep -o "\"step\":[0-9]*,\"tokens\":[0-9]*" "$TMP/t_${mode}_1.jsonl") \
                     <(grep -o "\"step\":[0-9]*,\"tokens\":[0-9]*" "$TMP/t_$mode.jsonl")'
done
OMP_NUM_THREADS=2 train t_omp --set experiment.threads=0
check "dr-train: threads=0 with OMP_NUM_THREADS=2 = threads=2 (model tensors)" same_tensors "$TMP/t_plain.safetensors" "$TMP/t_omp.safetensors"
check "dr-train: threads=0 with OMP_NUM_THREADS=2 = threads=2 (log)" same_log "$TMP/t_plain.jsonl" "$TMP/t_omp.jsonl"
train t_seed --set experiment.threads=2 --set experiment.seed=1
check "dr-train control: another seed gives another model" eval '! same_tensors "$TMP/t_plain.safetensors" "$TMP/t_seed.safetensors"'
check "dr-train control: --weights trains another model than plain" eval '! same_tensors "$TMP/t_plain.safetensors" "$TMP/t_weights.safetensors"'

# ---- dr-score, now with the LM -------------------------------------------------------------------
LM=$TMP/t_plain.safetensors
for th in 1 2 3; do score lm$th --lm "$LM" --set experiment.threads=$th --batch 7 --split train_b "$M"; done
score lm2b --lm "$LM" --set experiment.threads=2 --batch 7 --split train_b "$M"
check "dr-score --lm: $(($(wc -l < "$TMP/lm1.tsv") - 1)) scores" test "$(wc -l < "$TMP/lm1.tsv")" -gt 1000
check "dr-score --lm: 2 threads used" grep -q "2 threads" "$TMP/lm2.err"
check "dr-score --lm: the same bytes for 1 and 2 threads" same_bytes "$TMP/lm1.tsv" "$TMP/lm2.tsv"
check "dr-score --lm: the same bytes for 1 and 3 threads" same_bytes "$TMP/lm1.tsv" "$TMP/lm3.tsv"
check "dr-score --lm: the same bytes on a second run" same_bytes "$TMP/lm2.tsv" "$TMP/lm2b.tsv"
score lm_seed --lm "$TMP/t_seed.safetensors" --set experiment.threads=2 --batch 7 --split train_b "$M"
check "dr-score control: another LM gives other scores" eval '! same_bytes "$TMP/lm2.tsv" "$TMP/lm_seed.tsv"'
# the rater over several shards (the toy shards cut small): 1 vs 3 threads, and per shard on 2 threads
"$BIN/dr-tokenize" --tokenizer byte --source-field source --shard-size 0.02 -o "$TMP/toy5" "$TMP/toy.jsonl" >/dev/null 2>&1
score rs1 --rater "$R" --set experiment.threads=1 --batch 7 "$TMP/toy5"
score rs3 --rater "$R" --set experiment.threads=3 --batch 7 "$TMP/toy5"
check "dr-score --rater: several shards" test "$(ls "$TMP/toy5" | wc -l)" -ge 4
check "dr-score --rater, several shards: the same bytes for 1 and 3 threads" same_bytes "$TMP/rs1.tsv" "$TMP/rs3.tsv"
mkdir -p "$TMP/parts"
for s in "$TMP/toy5"/*.drs; do
    "$BIN/dr-score" "${CFG[@]}" --rater "$R" --set experiment.threads=2 --batch 7 -o "$TMP/parts/$(basename "$s" .drs).tsv" "$s" 2>/dev/null
done
{ head -n 1 "$TMP/rs1.tsv"; for f in "$TMP/parts"/*.tsv; do tail -n +2 "$f"; done; } > "$TMP/rs_joined.tsv"
check "dr-score --rater: per-shard runs on 2 threads, joined = one run on 1 thread" same_bytes "$TMP/rs1.tsv" "$TMP/rs_joined.tsv"
# streamed from many shards (DR_RESIDENT_TOKENS=0): each reading thread keeps the decoded
# blocks of its last 8 shards only and decodes the others again; the same bytes as the
# corpus held in memory
"$BIN/dr-tokenize" --tokenizer byte --source-field source --shard-size 0.005 -o "$TMP/toy41" "$TMP/toy.jsonl" >/dev/null 2>&1
check "41 shards" test "$(ls "$TMP/toy41" | wc -l)" -eq 41
score rs_res --rater "$R" --set experiment.threads=2 "$TMP/toy41"
DR_RESIDENT_TOKENS=0 score rs_str --rater "$R" --set experiment.threads=2 "$TMP/toy41"
check "dr-score --rater, 41 shards streamed = held in memory" same_bytes "$TMP/rs_res.tsv" "$TMP/rs_str.tsv"
"$BIN/dr-split" --val 0.3 --train-b 0.3 --val-sources clean --seed 1 --shard-size 0.002 -o "$TMP/sp33" "$TMP/toysh" >/dev/null 2>&1
check "33 train_b shards" test "$(grep -c '^train_b' "$TMP/sp33/manifest.tsv")" -eq 33
STR=("${CFG[@]}" --steps 30 --set experiment.threads=2 --set train.eval_every=10 --train-split train_b "$TMP/sp33/manifest.tsv")
for pf in 0 2; do
    "$BIN/dr-train" "${STR[@]}" --set data.prefetch=$pf -o "$TMP/str_res$pf.safetensors" >/dev/null 2>&1
    DR_RESIDENT_TOKENS=0 "$BIN/dr-train" "${STR[@]}" --set data.prefetch=$pf -o "$TMP/str_str$pf.safetensors" >/dev/null 2>&1
    check "dr-train, 33 shards shuffled, data.prefetch $pf: streamed = held in memory" same_bytes "$TMP/str_res$pf.safetensors" "$TMP/str_str$pf.safetensors"
done

# ---- dr-filter -----------------------------------------------------------------------------------
S=$TMP/sw.tsv
filt() { local out=$1; shift; rm -rf "${TMP:?}/$out"; "$BIN/dr-filter" --scores "$S" "${CFG[@]}" --shard-size 0.01 "$@" --split train_b -o "$TMP/$out" "$M" >/dev/null 2>"$TMP/$out.err"; }
for pol in "--keep 0.6" "--per-batch 8 --keep 0.6" "--cdf --keep 0.6" "--keep-middle 0.5" "--random 0.4" \
           "--keep 0.6 --invert" "--per-batch 5 --keep 0.5 --invert" "--cdf --keep 0.3 --invert" "--keep-middle 0.3 --invert"; do
    read -ra P <<<"$pol"
    filt fa "${P[@]}"; filt fb "${P[@]}"
    check "dr-filter $pol: the same shards and summary twice" eval 'same_dir "$TMP/fa" "$TMP/fb" && same_bytes "$TMP/fa.err" "$TMP/fb.err"'
done
check "dr-filter: several output shards" test "$(ls "$TMP/fa" | wc -l)" -ge 3
for pol in "--random 0.4" "--cdf --keep 0.6"; do
    read -ra P <<<"$pol"
    filt d0 "${P[@]}"; filt s0 "${P[@]}" --seed 0; filt d5 "${P[@]}" --set experiment.seed=5
    filt s5 "${P[@]}" --seed 5; filt s6 "${P[@]}" --seed 6
    check "dr-filter $pol: no --seed = --seed experiment.seed (0)" same_dir "$TMP/d0" "$TMP/s0"
    check "dr-filter $pol: experiment.seed=5 = --seed 5" same_dir "$TMP/d5" "$TMP/s5"
    check "dr-filter $pol control: --seed 6 draws another selection" eval '! same_dir "$TMP/s5" "$TMP/s6"'
done
filt rn --random 0.4 --seed 5; filt ri --random 0.4 --seed 5 --invert
check "dr-filter --random: --invert changes nothing" same_dir "$TMP/rn" "$TMP/ri"
# docs/deploy.md: "Lines may come in any order (sort, join …); they are matched by id".
# dr-score gives the copies of a duplicate document scores that differ in the last bits
# (their batch slots); an id's scores go to its examples lowest first, so a sorted file
# keeps the same examples (when the n-th line went to the n-th example, it did not)
{ head -n 1 "$S"; tail -n +2 "$S" | LC_ALL=C sort; } > "$TMP/sorted.tsv"
order_free() {
    local pol P
    for pol in "--keep 0.5" "--keep 0.6" "--per-batch 8 --keep 0.6" "--keep-middle 0.5" "--cdf --keep 0.5"; do
        read -ra P <<<"$pol"
        filt oa "${P[@]}"; S=$TMP/sorted.tsv filt ob "${P[@]}"
        same_dir "$TMP/oa" "$TMP/ob" || { echo "  dr-filter $pol: another selection from the sorted scores" >&2; return 1; }
    done
}
check "dr-filter: a sorted scores.tsv (duplicate documents) keeps the same examples" order_free
# dr-cat --scores: equal scores in example-id order, not line order (every score tied:
# the order is the tie rule alone; the file forwards and backwards)
awk -F'\t' -v OFS='\t' 'NR == 1 { print; next } { $2 = "0.5"; print }' "$S" > "$TMP/tied.tsv"
{ head -n 1 "$TMP/tied.tsv"; tail -n +2 "$TMP/tied.tsv" | tac; } > "$TMP/tied_rev.tsv"
cat_order_free() {
    local w
    for w in --top --bottom; do
        "$BIN/dr-cat" --scores "$TMP/tied.tsv" $w 40 --seq-len 32 --split train_b "$M" > "$TMP/cat_a.txt" 2>/dev/null &&
            "$BIN/dr-cat" --scores "$TMP/tied_rev.tsv" $w 40 --seq-len 32 --split train_b "$M" > "$TMP/cat_b.txt" 2>/dev/null &&
            [ -s "$TMP/cat_a.txt" ] && cmp -s "$TMP/cat_a.txt" "$TMP/cat_b.txt" || return 1
    done
}
check "dr-cat --scores --top/--bottom: tied scores print in the same order whatever the line order" cat_order_free

finish
