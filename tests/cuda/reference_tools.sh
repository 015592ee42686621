#!/usr/bin/env bash
# reference_tools.sh MANIFEST OUTDIR — the tools at the seed's reference scale
# (configs/gpu.yaml: LM 12 layers d512 ctx 1024, batch 64, rater 8 layers d384, K = 2, bf16)
# on real GPT-2 tokens, shortened to fit a few minutes of a GPU: dr-meta with T = 8 and
# two meta-steps (META_ROUNDS; tracking the uniform shadow), dr-train for 40 steps, dr-score of
# Train_B; then `dr-meta grad` in bf16 and in fp32 from the LM's init, and the cosine of
# the two meta-gradients, at lm.eps 1e-5 and 1e-8 (GRAD_EPS; GRAD_CHECK=0: not). Writes OUTDIR/meta.jsonl, train.jsonl,
# scores.tsv and each tool's stderr.
# MANIFEST: the one dr-split writes into its -o directory (its paths are relative to
# the manifest's own directory). BIN (default bin) holds the tools. Needs a GPU; a smoke
# run of the tools' GPU paths at full size, not a result. Exit 1 when a tool failed or
# saved nothing (a run cut at its time limit, META_LIMIT / TRAIN_LIMIT, that saved is fine).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
M=${1:?usage: reference_tools.sh MANIFEST OUTDIR}
O=${2:?usage: reference_tools.sh MANIFEST OUTDIR}
mkdir -p "$O"
tmp=$(mktemp -d /tmp/dr-ref.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
C=(--config configs/gpu.yaml --device cuda)
t0=$(date +%s)
# on its time limit dr-meta gets SIGINT, as from Ctrl-C: it saves the rater and exits
fails=0
# a run cut by its time limit is fine (timeout's 124) if it saved what it had
ran() { [ "$1" -eq 0 ] || [ "$1" -eq 124 ]; }
timeout -s INT "${META_LIMIT:-150}" "$BIN/dr-meta" "${C[@]}" --set meta.T=8 --set meta.rounds="${META_ROUNDS:-2}" --set meta.val_batches=2 \
    --set meta.track_uniform=true --log "$O/meta.jsonl" -o "$tmp/rater.safetensors" "$M" 2> "$O/meta.err"
rc=$?
echo "dr-meta: exit $rc in $(( $(date +%s) - t0 )) s"; tail -n 3 "$O/meta.err"; cat "$O/meta.jsonl" 2>/dev/null
ran $rc && [ -s "$tmp/rater.safetensors" ] || { echo "FAIL: dr-meta (exit $rc) saved no rater"; fails=$((fails + 1)); }
t0=$(date +%s)
timeout -s INT "${TRAIN_LIMIT:-60}" "$BIN/dr-train" "${C[@]}" --steps 40 --set train.eval_every=20 --set train.eval_batches=4 \
    --set train.log_every=10 --log "$O/train.jsonl" -o "$tmp/lm.safetensors" "$M" 2> "$O/train.err"
rc=$?
echo "dr-train: exit $rc in $(( $(date +%s) - t0 )) s"; tail -n 3 "$O/train.err"; cat "$O/train.jsonl" 2>/dev/null
ran $rc && [ -s "$tmp/lm.safetensors" ] || { echo "FAIL: dr-train (exit $rc) saved no model"; fails=$((fails + 1)); }
t0=$(date +%s)
if [ -s "$tmp/rater.safetensors" ]; then
    timeout 60 "$BIN/dr-score" "${C[@]}" --rater "$tmp/rater.safetensors" --split train_b "$M" \
        > "$O/scores.tsv" 2> "$O/score.err"
    rc=$?
    rows=$(($(wc -l < "$O/scores.tsv") - 1))
    echo "dr-score: exit $rc in $(( $(date +%s) - t0 )) s, $rows rows"
    tail -n 2 "$O/score.err"; head -n 4 "$O/scores.tsv"
    [ $rc -eq 0 ] && [ $rows -gt 0 ] || { echo "FAIL: dr-score (exit $rc, $rows rows)"; fails=$((fails + 1)); }
fi
# the bf16 meta-gradient through AdamW at this scale (docs/cuda.md, "bf16 and the
# meta-gradient"): `dr-meta grad` from an LM at its init (one step at lr 1e-30), T = 4,
# in bf16 and in fp32, and their cosine, at gpu.yaml's lm.eps (1e-5) and at base.yaml's
# (1e-8); a measurement, not a pass/fail
if [ -s "$tmp/rater.safetensors" ] && [ "${GRAD_CHECK:-1}" = 1 ]; then
    G=(grad "${C[@]}" --set meta.T=4 --set meta.val_batches=2 --lm-init "$tmp/lm0.safetensors"
       --rater-init "$tmp/rater.safetensors" --train "$M" --val "$M")
    timeout 60 "$BIN/dr-train" "${C[@]}" --steps 1 --set lm.lr=1e-30 --set train.eval_batches=1 \
        -o "$tmp/lm0.safetensors" "$M" > /dev/null 2> "$O/grad-init.err" || echo "dr-meta grad: no LM init"
    for eps in ${GRAD_EPS:-1e-5 1e-8}; do
        [ -s "$tmp/lm0.safetensors" ] || break
        t0=$(date +%s)
        if timeout "${GRAD_LIMIT:-60}" "$BIN/dr-meta" "${G[@]}" --set lm.eps="$eps" \
               -o "$tmp/g-bf16.safetensors" 2> "$O/grad-bf16-$eps.err" &&
           timeout "${GRAD_LIMIT:-60}" "$BIN/dr-meta" "${G[@]}" --set lm.eps="$eps" --set experiment.precision=fp32 \
               -o "$tmp/g-fp32.safetensors" 2> "$O/grad-fp32-$eps.err"; then
            tail -n 1 "$O/grad-bf16-$eps.err"; tail -n 1 "$O/grad-fp32-$eps.err"
            echo "dr-meta grad at lm.eps $eps, bf16 vs fp32, from the LM's init: $(python3 tests/cuda/grad_cosine.py \
                "$tmp/g-bf16.safetensors" "$tmp/g-fp32.safetensors") ($(( $(date +%s) - t0 )) s)"
        else
            echo "dr-meta grad at lm.eps $eps, bf16 vs fp32: not measured (a run failed or ran out of time):"
            tail -n 2 "$O"/grad-*-"$eps".err 2>/dev/null
        fi
    done
fi
[ $fails -eq 0 ]
