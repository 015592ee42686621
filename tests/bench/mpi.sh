#!/usr/bin/env bash
# bench/mpi.sh — what spreading the population over MPI ranks buys (docs/scale-out.md):
# seconds per dr-meta meta-step, population K = 2, on this machine:
#   (a) one process, 1 thread      (c) 2 ranks × 1 thread (one member each)
#   (b) one process, 2 threads
# and the ratios a/c (the speed-up from ranks alone) and b/c (ranks vs threads on the same
# 2 cores). The raters of (a) and (c) must be bit-identical; that is checked too.
# Config: configs/cpu.yaml's models (LM 4 layers d128, rater 2 layers d64) on windows of
# 64 tokens, batch 8, T = 4, 4 meta-steps on the test corpus; a meta-step's time is
# (seconds at step 4 − at step 1) / 3, so start-up and the first step are not counted.
# Ranks are not pinned (--bind-to none), as the one process is not. Other load on the
# cores changes every number (the header line shows the load average). Prints numbers,
# never pass/fail.
# The three runs use one copy of bin/ taken at the start: in a working tree where other
# builds relink bin/dr-meta while the bench runs, (a) and (c) would otherwise run two
# builds, whose raters differ by rounding (~1e-7) whenever an op changed: the explanation
# found for issue #8's "1 run in 15 differs" (120 2-rank runs on one build: all identical).
# BENCH_MPI_ROUNDS=N changes the number of meta-steps (>= 2).
set -u
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
if ! command -v mpirun >/dev/null 2>&1; then echo "mpi: skipped: no MPI (mpirun not found)"; exit 0; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
R=${BENCH_MPI_ROUNDS:-4}
cp -a "$BIN" "$tmp/bin" || { echo "mpi: cannot copy $BIN"; exit 0; }
BIN=$tmp/bin   # one build for every run (above)

tests/data/gen_corpus.sh "$tmp" 600 >/dev/null
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$tmp/shards" "$tmp/corpus.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.15 --seed 1 -o "$tmp/splits" "$tmp/shards" > "$tmp/manifest.tsv" 2>/dev/null
CFG=(--config configs/cpu.yaml --set meta.population_K=2 --set meta.T=4 --set meta.checkpoint_every=2
     --set meta.val_batches=2 --set data.batch_size=8 --set data.seq_len=64 --set meta.rounds=$R
     --set meta.log_every=1)

# per_step LOG: seconds per meta-step between the first and the last logged step
per_step() {
    grep -o '"seconds":[^,}]*' "$1" | cut -d: -f2 |
        awk -v r="$R" 'NR == 1 { a = $1 } { b = $1 } END { printf "%.3f", (b - a) / (r - 1) }'
}
run() {  # name threads ranks
    local name=$1 th=$2 np=$3
    if [ "$np" -eq 1 ]; then
        "$BIN/dr-meta" "${CFG[@]}" --set experiment.threads=$th -o "$tmp/$name.safetensors" \
            --log "$tmp/$name.jsonl" "$tmp/manifest.tsv" 2>/dev/null
    else
        mpirun -np "$np" --oversubscribe --bind-to none "$BIN/dr-meta" "${CFG[@]}" --set experiment.threads=$th \
            -o "$tmp/$name.safetensors" --log "$tmp/$name.jsonl" "$tmp/manifest.tsv" 2>/dev/null
    fi || { echo "mpi: $name failed"; return 1; }
    per_step "$tmp/$name.jsonl"
}
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dr-meta: $(sha256sum < "$BIN/dr-meta" | cut -c1-16) (sha256), one copy for every run"
a=$(run a 1 1) || exit 0
b=$(run b 2 1) || exit 0
c=$(run c 1 2) || exit 0
printf "dr-meta, K = 2, seconds per meta-step:\n"
printf "  (a) 1 process  x 1 thread : %s s\n" "$a"
printf "  (b) 1 process  x 2 threads: %s s\n" "$b"
printf "  (c) 2 ranks    x 1 thread : %s s\n" "$c"
awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
    printf "  ratio a/c (ranks alone)            : %.2fx\n", a / c
    printf "  ratio b/c (2 ranks vs 2 threads)   : %.2fx\n", b / c }'
if cmp -s "$tmp/a.safetensors" "$tmp/c.safetensors"; then
    echo "  raters of (a) and (c): bit-identical"
else
    echo "  raters of (a) and (c): DIFFER (the same build: a bug)"
fi
