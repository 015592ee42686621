#!/usr/bin/env bash
# mpi.sh — dr-train and dr-meta over 2 local MPI ranks (docs/scale-out.md), against the
# same runs in one process:
#  - dr-meta, population K = 2 (one member per rank) and K = 3 (uneven; also with a timed
#    save after every meta-step, which rank 0's clock decides for all): the rater, its EMA,
#    the state file and the metrics are BIT-IDENTICAL to one process (the members'
#    meta-gradients and statistics are combined in member order on every rank); a log
#    write failing on rank 0 (its reader gone) saves the state with the lost line, and
#    --resume on 2 ranks ends as one process, bit for bit;
#    --stop-at on 2 ranks + --resume in ONE process = the uninterrupted run, bit for bit;
#  - dr-train, the same global batch split over 2 ranks, each rank reading only its slice:
#    every logged loss (l_train, l_val) within a relative 1e-4 of one process and the same
#    token counts (train.sh's float-vs-double tolerance); also with online filtering
#    (bit-identical logits), length buckets and read-ahead. Not
#    bit-exact, by construction: each rank's backward sums ∂W over its half of the batch's
#    rows and the two halves are added after, a different association of the same float
#    sum (and BLAS blocks rows by the GEMM's row count); the first step's loss is equal, and
#    Adam carries the ~1e-7 rounding differences on: over 60 steps ≤ 3e-5 measured;
#  - dr-train: rank 1 killed (SIGKILL) mid-run stops the whole job with the rank named;
#    --resume from the last periodic checkpoint on 2 ranks then logs and saves exactly what
#    an uninterrupted 2-rank run does; an error on one rank (a missing input) stops the job
#    with "rank 1: …" instead of leaving rank 0 waiting; a read error on rank 1 alone
#    halfway stops every rank at that step, rank 0 saves and prints rank 1's message once,
#    and --resume ends as the uninterrupted run; in dr-meta, rank 1's read error stops
#    every rank before the combining collectives, and rank 0 names the last saved state.
# Skipped (exit 0, "skipped: no MPI") only when mpirun is not installed; a bin/ built
# without MPI fails here (it refuses to run as 2 processes). Runs in ~15 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
if ! command -v mpirun >/dev/null 2>&1; then
    echo "mpi.sh: skipped: no MPI (mpirun not found; scripts/install-deps.sh installs openmpi-bin)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# every run below on one copy of bin/: another build relinking bin/ between the one-process
# and the 2-rank run would make them differ by rounding (issue #8, tests/bench/mpi.sh)
cp -a "$BIN" "$tmp/bin"
BIN=$tmp/bin
no_seconds() { sed 's/,"seconds":[^,}]*//; s/,"step_seconds":[^,}]*//' "$1"; }
# A safetensors file with its "seconds" metadata (wall time) blanked, for cmp.
st_no_seconds() {
    local hlen; hlen=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
    head -c $((8 + hlen)) "$1" | tail -c +9 | sed 's/"seconds":"[^"]*"/"seconds":""/; s/ *$//'
    echo
    tail -c +$((9 + hlen)) "$1"
}
# Open MPI as root (CI containers), 2 ranks on any core count, shared memory without
# ptrace-based single copy (refused in many containers)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPI2=(timeout 120 mpirun -np 2 --oversubscribe)

tests/data/gen_corpus.sh "$tmp" >/dev/null
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$tmp/shards" "$tmp/corpus.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.15 --seed 1 -o "$tmp/splits" "$tmp/shards" > "$tmp/manifest.tsv" 2>/dev/null
M=$tmp/manifest.tsv

# ==== dr-meta: bit-identical to one process ============================================
META=(--config configs/tiny.yaml --set experiment.threads=1 --set data.batch_size=8
      --set meta.T=3 --set meta.checkpoint_every=2 --set meta.rounds=4 --set meta.reset_every=2
      --set rater.lr=1e-2)
same_meta() {  # name_a name_b: rater, EMA, state and metrics identical
    cmp -s "$tmp/$1.safetensors" "$tmp/$2.safetensors" || fail "$3: the raters differ"
    cmp -s "$tmp/$1.ema.safetensors" "$tmp/$2.ema.safetensors" || fail "$3: the EMAs differ"
    cmp -s <(st_no_seconds "$tmp/$1.safetensors.state") <(st_no_seconds "$tmp/$2.safetensors.state") ||
        fail "$3: the states differ"
    cmp -s <(no_seconds "$tmp/$1.jsonl") <(no_seconds "$tmp/$2.jsonl") || fail "$3: the metrics differ"
}
for K in 2 3; do
    "$BIN/dr-meta" "${META[@]}" --set meta.population_K=$K -o "$tmp/m1k$K.safetensors" \
        --log "$tmp/m1k$K.jsonl" "$M" 2>/dev/null || fail "dr-meta K=$K, one process"
    "${MPI2[@]}" "$BIN/dr-meta" "${META[@]}" --set meta.population_K=$K -o "$tmp/m2k$K.safetensors" \
        --log "$tmp/m2k$K.jsonl" "$M" 2>"$tmp/m2.err" || { cat "$tmp/m2.err"; fail "dr-meta K=$K on 2 ranks"; }
    [ "$(wc -l < "$tmp/m2k$K.jsonl")" -eq 4 ] || fail "dr-meta K=$K on 2 ranks: expected 4 metrics lines (rank 0 only)"
    same_meta m1k$K m2k$K "dr-meta K=$K, 2 ranks vs one process"
    echo "dr-meta K=$K: 2 ranks = one process, bit for bit (rater, EMA, state, metrics)"
done
# stopped on 2 ranks, resumed in one process: the uninterrupted run
rc=0; "${MPI2[@]}" "$BIN/dr-meta" "${META[@]}" -o "$tmp/ms.safetensors" --log "$tmp/ms.jsonl" \
    --stop-at 2 "$M" 2>/dev/null || rc=$?
[ $rc -eq 0 ] || fail "dr-meta --stop-at on 2 ranks exited $rc, expected 0 (a requested stop)"
"$BIN/dr-meta" "${META[@]}" -o "$tmp/ms.safetensors" --log "$tmp/ms.jsonl" --resume "$M" 2>/dev/null ||
    fail "dr-meta --resume (one process) of a 2-rank state"
same_meta m1k2 ms "dr-meta --stop-at on 2 ranks + --resume in one process"
echo "dr-meta: --stop-at on 2 ranks + --resume in one process = one run, bit for bit"
# timed saves after every meta-step (meta.save_minutes: 6 ms): rank 0's clock decides for
# every rank (the save is collective): no rank waits for another, and the run is the same
SAVES=(--set meta.save_minutes=0.0001 --set meta.population_K=3)
"$BIN/dr-meta" "${META[@]}" "${SAVES[@]}" -o "$tmp/mt1.safetensors" --log "$tmp/mt1.jsonl" "$M" 2>/dev/null ||
    fail "dr-meta with timed saves, one process"
"${MPI2[@]}" "$BIN/dr-meta" "${META[@]}" "${SAVES[@]}" -o "$tmp/mt2.safetensors" --log "$tmp/mt2.jsonl" "$M" \
    2>"$tmp/mt2.err" || { cat "$tmp/mt2.err"; fail "dr-meta with timed saves on 2 ranks"; }
same_meta mt1 mt2 "dr-meta with timed saves, 2 ranks vs one process"
echo "dr-meta: timed saves after every meta-step on 2 ranks = one process, bit for bit"
# the log's reader goes away (a FIFO read by `head -n 1`): rank 0's write fails (EPIPE),
# every rank joins the save of the state after that meta-step, with the lost line, and
# says rank 0's words; --resume on 2 ranks writes the line again and ends as one process
mkfifo "$tmp/log.fifo"
head -n 1 "$tmp/log.fifo" > "$tmp/mp.jsonl" &
if "${MPI2[@]}" "$BIN/dr-meta" "${META[@]}" "${SAVES[@]}" -o "$tmp/mp.safetensors" --log "$tmp/log.fifo" "$M" \
    2>"$tmp/mp.err"; then fail "dr-meta on 2 ranks whose log's reader went away: exit status 0"; fi
wait
grep -Eq '^dr-meta: .*log\.fifo: writing the log failed: Broken pipe; the state after meta-step [2-4] is saved in .*mp\.safetensors\.state with that line' \
    "$tmp/mp.err" || { cat "$tmp/mp.err"; fail "dr-meta on 2 ranks, log reader gone: the message"; }
"${MPI2[@]}" "$BIN/dr-meta" "${META[@]}" "${SAVES[@]}" -o "$tmp/mp.safetensors" --log "$tmp/mp.jsonl" --resume "$M" \
    2>"$tmp/mp.err" || { cat "$tmp/mp.err"; fail "dr-meta --resume on 2 ranks after the log failed"; }
same_meta mt1 mp "dr-meta on 2 ranks, log reader gone, then --resume"
echo "dr-meta: a log write failing on 2 ranks saves the state with its line; --resume = one process, bit for bit"

# ==== dr-train: the same losses as one process ========================================
TRAIN=(--config configs/tiny.yaml --set lm.lr=5e-3 --set data.batch_size=8 --set train.eval_every=10
       --set train.eval_batches=0 --set train.log_every=1 --set train.checkpoint_every=5 --steps 60)
"$BIN/dr-train" "${TRAIN[@]}" --log "$tmp/t1.jsonl" -o "$tmp/t1.safetensors" "$M" 2>/dev/null ||
    fail "dr-train, one process"
"${MPI2[@]}" "$BIN/dr-train" "${TRAIN[@]}" --log "$tmp/t2.jsonl" -o "$tmp/t2.safetensors" "$M" \
    2>"$tmp/t2.err" || { cat "$tmp/t2.err"; fail "dr-train on 2 ranks"; }
grep -q 'over 2 ranks' "$tmp/t2.err" || fail "dr-train on 2 ranks does not say so"
[ "$(grep -c 'step 0: l_val' "$tmp/t2.err")" -eq 1 ] || fail "dr-train on 2 ranks: more than rank 0 logs"
[ "$(wc -l < "$tmp/t2.jsonl")" -eq 61 ] || fail "dr-train on 2 ranks: expected 61 log lines (rank 0 only)"
# same_losses A B N WHAT: N l_train / l_val values, each pair within 1e-4 relative; the
# token counts identical. Prints the largest relative difference.
same_losses() {
    paste -d' ' <(grep -o '"l_\(train\|val\)":[^,}]*' "$tmp/$1.jsonl" | cut -d: -f2) \
                <(grep -o '"l_\(train\|val\)":[^,}]*' "$tmp/$2.jsonl" | cut -d: -f2) > "$tmp/pairs"
    [ "$(wc -l < "$tmp/pairs")" -eq "$3" ] || fail "$4: expected $3 l_train + l_val values"
    worst=$(awk '{ d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > w) w = d } END { printf "%.2e", w }' "$tmp/pairs")
    awk -v w="$worst" 'BEGIN { exit !(w <= 1e-4) }' || fail "$4: a loss differs by $worst relative (> 1e-4)"
    cmp -s <(grep -o '"tokens":[0-9]*' "$tmp/$1.jsonl") <(grep -o '"tokens":[0-9]*' "$tmp/$2.jsonl") ||
        fail "$4: other token counts"
}
same_losses t1 t2 67 "dr-train on 2 ranks"   # 60 l_train + 7 l_val
echo "dr-train: 2 ranks vs one process, 60 steps: largest relative loss difference $worst (≤ 1e-4)"
# each rank reads only its slice of a batch: with online filtering (it reads and scores its
# sub-batch of the 16 candidates, then its slice of the 8 kept), length buckets (every
# slice has the whole batch's trimmed length) and read-ahead; the logits are bit-identical
CUR=(--rater "$tmp/m1k2.safetensors" --online-keep 0.5 --set data.bucket_by_length=true
     --set data.prefetch=2 --steps 20)
"$BIN/dr-train" "${TRAIN[@]}" "${CUR[@]}" --log "$tmp/o1.jsonl" -o "$tmp/o1.safetensors" "$M" 2>/dev/null ||
    fail "dr-train online, one process"
"${MPI2[@]}" "$BIN/dr-train" "${TRAIN[@]}" "${CUR[@]}" --log "$tmp/o2.jsonl" -o "$tmp/o2.safetensors" "$M" \
    2>"$tmp/o2.err" || { cat "$tmp/o2.err"; fail "dr-train online on 2 ranks"; }
same_losses o1 o2 23 "dr-train online on 2 ranks"   # 20 l_train + 3 l_val
cmp -s <(grep -o '"z_\(kept\|all\)":[^,}]*' "$tmp/o1.jsonl") <(grep -o '"z_\(kept\|all\)":[^,}]*' "$tmp/o2.jsonl") ||
    fail "dr-train online on 2 ranks: other logits (z_kept, z_all)"
echo "dr-train --online-keep 0.5, length buckets, read-ahead: 2 ranks vs one process: the same logits, largest relative loss difference $worst"

# ---- rank 1 killed mid-run; --resume from the last checkpoint = uninterrupted ----------
"${MPI2[@]}" "$BIN/dr-train" "${TRAIN[@]}" --log "$tmp/k.jsonl" -o "$tmp/k.safetensors" "$M" \
    >/dev/null 2>"$tmp/k.err" &
mp=$!
killed=0
for _ in $(seq 1 400); do
    if [ -s "$tmp/k.jsonl" ] && [ "$(wc -l < "$tmp/k.jsonl")" -ge 12 ]; then
        launcher=$(pgrep -P $mp -x mpirun || true)     # timeout → mpirun → the ranks
        for p in $(pgrep -P "${launcher:-$mp}" -x dr-train || true); do
            if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; then
                kill -9 "$p" && killed=1
            fi
        done
        break
    fi
    sleep 0.02
done
rc=0; wait $mp || rc=$?
if [ $killed -eq 1 ]; then
    [ $rc -ne 0 ] || fail "a job whose rank 1 was killed exited 0"
    grep -q 'rank 1' "$tmp/k.err" || { cat "$tmp/k.err"; fail "the killed rank is not named"; }
    [ -s "$tmp/k.safetensors.state" ] || fail "no checkpoint survived the killed rank"
    done_lines=$(wc -l < "$tmp/k.jsonl")
    "${MPI2[@]}" "$BIN/dr-train" "${TRAIN[@]}" --resume --log "$tmp/k.jsonl" -o "$tmp/k.safetensors" "$M" \
        2>"$tmp/k2.err" || { cat "$tmp/k2.err"; fail "--resume after a killed rank"; }
    cmp -s <(no_seconds "$tmp/t2.jsonl") <(no_seconds "$tmp/k.jsonl") || fail "resumed logs differ from the uninterrupted 2-rank run"
    cmp -s "$tmp/t2.safetensors" "$tmp/k.safetensors" || fail "resumed model differs from the uninterrupted 2-rank run"
    echo "dr-train: rank 1 killed mid-run (rank 0 had logged $((done_lines - 1)) steps) stopped the job; --resume = uninterrupted, bit for bit"
else
    echo "dr-train: the run ended before rank 1 could be killed (rc $rc): kill check not made"
fi

# ---- an error on one rank stops the job, naming the rank ------------------------------
rc=0
timeout 60 mpirun -np 1 "$BIN/dr-train" "${TRAIN[@]}" -o "$tmp/e.safetensors" "$M" : \
    -np 1 "$BIN/dr-train" "${TRAIN[@]}" -o "$tmp/e.safetensors" "$tmp/no-such-manifest.tsv" \
    >/dev/null 2>"$tmp/e.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "an error on rank 1: exit status $rc (0 = not noticed, 124 = hung)"
grep -q 'dr-train: rank 1: .*no-such-manifest' "$tmp/e.err" || { cat "$tmp/e.err"; fail "the failing rank is not named"; }
echo "dr-train: an error on rank 1 stopped the job: $(grep -m1 'rank 1:' "$tmp/e.err")"
# ---- a read error on rank 1 alone, halfway: every rank stops at that step, rank 0 saves ----
# rank 0 reads a good copy of the shards, rank 1 one whose last Train shard has a corrupt
# block (the corpus streamed: DR_RESIDENT_TOKENS=0, so it is met at the end of the run);
# the message is rank 1's, printed once by rank 0 after its save; --resume = uninterrupted
tests/data/gen_toy.sh 2500 40 1 100 400 > "$tmp/toy.jsonl"
"$BIN/dr-tokenize" --tokenizer byte -o "$tmp/toy_shards" "$tmp/toy.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.1 --dedup --shard-size 0.1 -o "$tmp/rd_ok" "$tmp/toy_shards" >/dev/null 2>&1
cp -r "$tmp/rd_ok" "$tmp/rd_bad"
last=$(ls "$tmp/rd_bad/train_a/"*.drs | tail -n 1)
b=$(od -An -tu1 -j 112 -N 1 "$last" | tr -d ' ')   # a byte of its first block's data, inverted
printf "\\x$(printf %02x $((255 - b)))" | dd of="$last" bs=1 seek=112 conv=notrunc 2>/dev/null
RD=(--config configs/tiny.yaml --set experiment.threads=1 --set data.shuffle=false --set data.batch_size=8
    --set train.eval_every=500 --set train.save_minutes=0 --set train.steps=0 --val "$tmp/rd_ok/val")
export DR_RESIDENT_TOKENS=0
"${MPI2[@]}" -x DR_RESIDENT_TOKENS "$BIN/dr-train" "${RD[@]}" --train "$tmp/rd_ok/train_a" -o "$tmp/rf.st" \
    --log "$tmp/rf.jsonl" 2>"$tmp/rf.err" || { cat "$tmp/rf.err"; fail "dr-train on 2 ranks, streamed"; }
rc=0
timeout 120 mpirun -x DR_RESIDENT_TOKENS -np 1 "$BIN/dr-train" "${RD[@]}" --train "$tmp/rd_ok/train_a" -o "$tmp/rh.st" \
    --log "$tmp/rh.jsonl" : -np 1 "$BIN/dr-train" "${RD[@]}" --train "$tmp/rd_bad/train_a" -o "$tmp/rh.st" \
    --log "$tmp/rh.jsonl" 2>"$tmp/rh.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$tmp/rh.err"; fail "a read error on rank 1: exit status $rc"; }
grep -Eq '^dr-train: rank 1: .*train_a-[0-9]+\.drs: block 0: .*corrupted.*; the state at step [1-9][0-9]* is saved in .*rh\.st' \
    "$tmp/rh.err" || { cat "$tmp/rh.err"; fail "a read error on rank 1: rank 0's save and message"; }
[ "$(grep -c 'corrupted' "$tmp/rh.err")" -eq 1 ] || { cat "$tmp/rh.err"; fail "a read error on rank 1: reported more than once"; }
"${MPI2[@]}" -x DR_RESIDENT_TOKENS "$BIN/dr-train" "${RD[@]}" --train "$tmp/rd_ok/train_a" -o "$tmp/rh.st" \
    --log "$tmp/rh.jsonl" --resume 2>"$tmp/rh2.err" || { cat "$tmp/rh2.err"; fail "--resume after rank 1's read error"; }
cmp -s "$tmp/rf.st" "$tmp/rh.st" || fail "after rank 1's read error: the resumed model differs from the uninterrupted one"
cmp -s <(no_seconds "$tmp/rf.jsonl") <(no_seconds "$tmp/rh.jsonl") || fail "after rank 1's read error: the logs differ"
echo "dr-train: $(grep -o 'rank 1: .*drs: block 0' "$tmp/rh.err") halfway: rank 0 saved $(grep -o 'state at step [0-9]*' "$tmp/rh.err"); --resume = uninterrupted, bit for bit"
# dr-meta: the same, member 1 (rank 1) alone meeting a corrupt block after some meta-steps
# (Train_A in 42 small shards, read in order: member 1 starts halfway, at shard 20): every
# rank stops before the combining collectives, rank 0 names rank 1's error and the last
# saved state (meta.save_every 1); --resume on 2 ranks = the uninterrupted 2-rank run
"$BIN/dr-split" --val 0.1 --dedup --shard-size 0.02 -o "$tmp/md_ok" "$tmp/toy_shards" >/dev/null 2>&1
cp -r "$tmp/md_ok" "$tmp/md_bad"
late=$(ls "$tmp/md_bad/train_a/"*.drs | sed -n 23p)
b=$(od -An -tu1 -j 112 -N 1 "$late" | tr -d ' ')
printf "\\x$(printf %02x $((255 - b)))" | dd of="$late" bs=1 seek=112 conv=notrunc 2>/dev/null
MD=(--config configs/tiny.yaml --set experiment.threads=1 --set data.shuffle=false --set meta.rounds=30
    --set meta.save_every=1 --set meta.save_minutes=0)
"${MPI2[@]}" -x DR_RESIDENT_TOKENS "$BIN/dr-meta" "${MD[@]}" -o "$tmp/mdf.safetensors" --log "$tmp/mdf.jsonl" \
    "$tmp/md_ok/manifest.tsv" 2>"$tmp/mdf.err" || { cat "$tmp/mdf.err"; fail "dr-meta on 2 ranks, streamed"; }
rc=0
timeout 120 mpirun -x DR_RESIDENT_TOKENS -np 1 "$BIN/dr-meta" "${MD[@]}" -o "$tmp/mdh.safetensors" --log "$tmp/mdh.jsonl" \
    "$tmp/md_ok/manifest.tsv" : -np 1 "$BIN/dr-meta" "${MD[@]}" -o "$tmp/mdh.safetensors" --log "$tmp/mdh.jsonl" \
    "$tmp/md_bad/manifest.tsv" 2>"$tmp/mdh.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$tmp/mdh.err"; fail "dr-meta, a read error on rank 1: exit status $rc"; }
grep -Eq '^dr-meta: rank 1: .*train_a-[0-9]+\.drs: block 0: .*corrupted.*; the state after meta-step [1-9][0-9]* is saved in .*mdh\.safetensors\.state' \
    "$tmp/mdh.err" || { cat "$tmp/mdh.err"; fail "dr-meta, a read error on rank 1: rank 0's message"; }
[ "$(grep -c 'corrupted' "$tmp/mdh.err")" -eq 1 ] || { cat "$tmp/mdh.err"; fail "dr-meta, a read error on rank 1: reported more than once"; }
"${MPI2[@]}" -x DR_RESIDENT_TOKENS "$BIN/dr-meta" "${MD[@]}" -o "$tmp/mdh.safetensors" --log "$tmp/mdh.jsonl" --resume \
    "$tmp/md_ok/manifest.tsv" 2>"$tmp/mdh2.err" || { cat "$tmp/mdh2.err"; fail "dr-meta --resume after rank 1's read error"; }
same_meta mdf mdh "dr-meta on 2 ranks, rank 1's read error, then --resume"
echo "dr-meta: $(grep -o 'rank 1: .*drs: block 0' "$tmp/mdh.err") at meta-step $(($(grep -o 'after meta-step [0-9]*' "$tmp/mdh.err" | grep -o '[0-9]*$') + 1)): rank 0 reported it with the saved state; --resume = uninterrupted, bit for bit"
unset DR_RESIDENT_TOKENS

# ==== ranks started with different commands: refused, once, by rank 0 ====================
# (an MPMD launch or a config that differs on one node ran on to another result, hung in a
# collective, or crashed in MPI)
mpmd() {  # name tool pattern "rank-0 args" "rank-1 args": refused with pattern, no hang
    local name=$1 tool=$2 pat=$3 a0 a1 rc=0
    read -ra a0 <<<"$4"; read -ra a1 <<<"$5"
    timeout 120 mpirun --oversubscribe -np 1 "$BIN/$tool" "${a0[@]}" : -np 1 "$BIN/$tool" "${a1[@]}" 2>"$tmp/mpmd.err" || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || { cat "$tmp/mpmd.err"; fail "$name: exit status $rc"; }
    [ "$(grep -c "^$tool: .*$pat" "$tmp/mpmd.err")" -eq 1 ] || { cat "$tmp/mpmd.err"; fail "$name: not one line /$pat/"; }
}
T1="--config configs/tiny.yaml --set experiment.threads=1 --steps 6 -o $tmp/mp.safetensors $M"
mpmd "dr-train, lm.lr on rank 1 only" dr-train "the 2 ranks were started with different configs" "$T1" "$T1 --set lm.lr=1e-2"
mpmd "dr-train, --steps on rank 1 only" dr-train "the 2 ranks were started with different options" "$T1" "$T1 --steps 8"
M1="--config configs/tiny.yaml --set experiment.threads=1 --set meta.rounds=2 -o $tmp/mp.safetensors $M"
mpmd "dr-meta, meta.rounds on rank 1 only" dr-meta "the 2 ranks were started with different configs" "$M1" "$M1 --set meta.rounds=3"
head -n 100 "$tmp/corpus.jsonl" > "$tmp/corpus100.jsonl"
"$BIN/dr-tokenize" --tokenizer byte -o "$tmp/shards100" "$tmp/corpus100.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.15 --seed 1 -o "$tmp/splits100" "$tmp/shards100" > "$tmp/manifest100.tsv" 2>/dev/null
mpmd "dr-meta, other data on rank 1" dr-meta "the 2 ranks read different data (Train_A" "$M1" "${M1% *} $tmp/manifest100.tsv"
mpmd "dr-train, other data on rank 1" dr-train "the 2 ranks read different data (Train" "$T1" "${T1% *} $tmp/manifest100.tsv"
rc=0; "${MPI2[@]}" "$BIN/dr-train" --config configs/tiny.yaml --train - --val "$tmp/splits/val" -o "$tmp/mp.safetensors" \
    < "$M" 2>"$tmp/mpmd.err" || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "^dr-train: --train on stdin reaches only rank 0 of 2: give it as a file" "$tmp/mpmd.err" ||
    { cat "$tmp/mpmd.err"; fail "dr-train --train - under mpirun: status $rc"; }
echo "ranks started with different configs or options: refused by rank 0, once; --train - refused"
echo "mpi: ok"
