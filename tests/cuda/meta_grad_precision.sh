#!/usr/bin/env bash
# meta_grad_precision.sh — a measurement, not a test: how close the CUDA backend's
# meta-gradient (`dr-meta grad`) in fp32 and in bf16 comes to the CPU's, through inner
# AdamW at several lm.eps (docs/cuda.md, "bf16 and the meta-gradient"). The LM has GPT-2's
# vocabulary (50257: the head's rows for tokens absent from a batch get gradients near ε),
# 2 layers d64, ctx 64, B 8, T 4, on GPT-2 tokens of the default corpus's first 600
# documents; from the LM at its init (one step at lr 1e-30) and after 50 training steps.
# Prints one line per (LM, ε, precision): the cosine over every rater tensor and
# |a − b| / |b|, by tests/cuda/grad_cosine.py.
#
#   tests/cuda/meta_grad_precision.sh [CUDA_BIN]
#
# CUDA_BIN: the tools with --device cuda (default: the emulated ones of
# `tests/cuda/emu/run.sh tools --build-only`, which round bf16 products as the hardware
# does; 11 min 42 s on two cores); the CPU reference is bin/. Needs `make` and
# `make -f pipelines/data.mk` (the corpus and data/gpt2). Options (environment): EPSS (the
# ε values, default "1e-8 1e-6 1e-5"), PRECS (default "fp32 bf16"), LMS (default "init t50").
set -eu
cd "$(dirname "$0")/../.."
CB=${1:-build/float/cuda-emu/tools/bin}
[ -x "$CB/dr-meta" ] || { echo "meta_grad_precision: $CB/dr-meta missing (tests/cuda/emu/run.sh tools --build-only)" >&2; exit 2; }
[ -x bin/dr-meta ] && [ -s data/corpus/corpus.jsonl ] && [ -d data/gpt2 ] ||
    { echo "meta_grad_precision: needs make and make -f pipelines/data.mk" >&2; exit 2; }
D=$(mktemp -d "${TMPDIR:-/tmp}/dr-mgp.XXXXXX")
trap 'rm -rf "$D"' EXIT
head -n 600 data/corpus/corpus.jsonl > "$D/sub.jsonl"
bin/dr-tokenize --tokenizer gpt2 --vocab-dir data/gpt2 --field text -o "$D/shards" "$D/sub.jsonl" > /dev/null 2>&1
bin/dr-split --val 0.1 --train-b 0.05 --seed 1 -o "$D/splits" "$D/shards" > "$D/manifest.tsv" 2> /dev/null
S=(--config configs/tiny.yaml --set experiment.threads=2 --set lm.n_layer=2 --set lm.d_model=64
   --set lm.n_head=2 --set data.seq_len=64 --set data.batch_size=8 --set meta.T=4 --set meta.val_batches=2)
bin/dr-meta "${S[@]}" --set meta.rounds=1 -o "$D/rater.safetensors" "$D/manifest.tsv" 2> "$D/rater.err" ||
    { cat "$D/rater.err" >&2; exit 1; }
for lm in ${LMS:-init t50}; do
    if [ "$lm" = init ]; then T=(--steps 1 --set lm.lr=1e-30); else T=(--steps "${lm#t}"); fi
    bin/dr-train "${S[@]}" "${T[@]}" --set train.eval_batches=1 -o "$D/lm-$lm.safetensors" \
        "$D/manifest.tsv" > /dev/null 2> "$D/train.err" || { cat "$D/train.err" >&2; exit 1; }
    G=(grad "${S[@]}" --lm-init "$D/lm-$lm.safetensors" --rater-init "$D/rater.safetensors"
       --train "$D/splits/train_a" --val "$D/splits/val")
    for eps in ${EPSS:-1e-8 1e-6 1e-5}; do
        bin/dr-meta "${G[@]}" --set lm.eps="$eps" --device cpu -o "$D/cpu.safetensors" 2> "$D/cpu.err" ||
            { cat "$D/cpu.err" >&2; exit 1; }
        for p in ${PRECS:-fp32 bf16}; do
            "$CB/dr-meta" "${G[@]}" --set lm.eps="$eps" --device cuda --set experiment.precision="$p" \
                -o "$D/cuda.safetensors" 2> "$D/cuda.err" || { cat "$D/cuda.err" >&2; exit 1; }
            echo "LM $lm, lm.eps $eps, $p vs cpu: $(python3 tests/cuda/grad_cosine.py "$D/cuda.safetensors" "$D/cpu.safetensors")"
        done
    done
done
