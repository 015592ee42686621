#!/usr/bin/env bash
# tests/xcheck/run.sh — cross-check the double build of the datarater tools against an
# independent float64 PyTorch reference (tests/xcheck/torch_ref.py, written from
# DESIGN.md and docs/ only).
#
#   tests/xcheck/run.sh            # from the repository root (or anywhere)
#   KEEP=1 tests/xcheck/run.sh     # keep the temp dir (printed)
#   XCHECK_BIN=build/clang/double/bin tests/xcheck/run.sh   # another build's double tools
#
# Checks (each prints "CHECK <name> maxrel=<err> tol=<tol> PASS|FAIL"):
#   a. dr-train --eval-only l_val / examples / tokens vs the reference LM (padded Val);
#   b. dr-meta grad (dJ/dphi tensor by tensor, l_val, objective) vs create_graph autograd
#      through T inner steps, over AdamW/SGD, clip on/off, sigmoid/softmax, tau, clamp,
#      mean-normalize, regularizers, warmup/cosine/constant schedules, c < T;
#      (also hvp: false, backprop_steps, a 2-layer rater, seq_len_rater < seq_len,
#      Adam rows with v = 0, sigmoid weights within 1e-8 of 1 and rounded to the clamp's 1,
#      and sets smaller than T·B that wrap around);
#   c. dr-score --rater scores.tsv vs the reference rater's logits; dr-score --lm vs the
#      reference per-example loss (and its mean vs --eval-only's l_val);
#   d. dr-train: l_train of each step and the final weights, continued by the reference
#      from the state `--stop-at 2` saves, vs the uninterrupted run (AdamW with warmup,
#      cosine and clip; SGD momentum; --weights with sigmoid and softmax; --rater
#      --online-keep);
#   e. dr-train from scratch (docs/deploy.md "Randomness"): the reference's own init from
#      experiment.seed, bit for bit against what dr-train starts from; the data order
#      (shuffle, length buckets, batches straddling epochs) through l_train, tokens and
#      flops_lm of each step; whole AdamW runs (and --init CKPT) over that order;
#   f. dr-meta from scratch (docs/meta.md 3.1): phi_0 bit for bit; whole runs (K members
#      with staggered resets, streams with and without the Feistel permutation, epochs
#      wrapping, combine mean / per_member_adam, outer AdamW with clip, EMA, softmax) from
#      experiment.seed alone: the final rater and EMA and every logged metric.
# Exit 0 when all pass, 1 on any FAIL, 77 when /usr/bin/python3 (or $XCHECK_PYTHON)
# cannot import torch. About 55-150 s on 2 cores (section e: ~25 s, f: ~25 s).
# Random configurations instead of these: tests/xcheck/random.sh (make xcheck-random).
source "$(dirname "$0")/prelude.bash"
D=${XCHECK_BIN:-$ROOT/build/double/bin}   # the double tools (another build: XCHECK_BIN=DIR)
D=$(realpath -m "$D")                      # the checks run in a work directory of their own
REF=$ROOT/tests/xcheck/torch_ref.py
xcheck_setup xcheck "torch numpy yaml" "$D" dr-train dr-meta dr-score dr-cat dr-split dr-tokenize

fails=0
note() { echo "# $*"; }
run() {  # run a tool, show its stderr only on failure
    # (the message goes to stderr too, so that a failing command whose stdout is discarded is seen)
    if ! "$@" 2>"$W/last.err"; then echo "COMMAND FAILED: $*" >&2; cat "$W/last.err" >&2; fails=$((fails + 1)); return 1; fi
}
ref() { "$PY" "$REF" "$@" || fails=$((fails + 1)); }

# ---- inputs: toy corpus (documents of 20..60 bytes, seq_len 32: windows of 2..33 tokens,
# so examples are padded and their valid lengths vary)
CFG="$ROOT/configs/tiny.yaml"
BASE=(--config "$CFG" --set data.shuffle=false --set train.eval_batches=0 --set experiment.threads=1)
"$ROOT/tests/data/gen_toy.sh" 60 40 1 20 60 > toy.jsonl
run "$D/dr-tokenize" --tokenizer byte --source-field source -o shards toy.jsonl >/dev/null || exit 1
run "$D/dr-split" --val 0.3 --val-sources clean -o splits shards > manifest.tsv || exit 1
run "$D/dr-cat" --examples --ids --seq-len 32 --min-tokens 2 splits/train_a > train.ex || exit 1
run "$D/dr-cat" --examples --ids --seq-len 32 --min-tokens 2 splits/val > val.ex || exit 1
note "Train_A $(wc -l < train.ex) examples, Val $(wc -l < val.ex) examples (seq_len 32)"

# ---- LM checkpoint: 30 steps of the tiny config
run "$D/dr-train" "${BASE[@]}" --steps 30 --set train.eval_every=0 -o lm.safetensors manifest.tsv >/dev/null || exit 1

echo "== a. dr-train --eval-only vs reference LM"
echo "\$ dr-train ${BASE[*]} --eval-only lm.safetensors manifest.tsv"
run "$D/dr-train" "${BASE[@]}" --eval-only lm.safetensors manifest.tsv > eval.json || exit 1
run "$D/dr-meta" "${BASE[@]}" --print-config > cfg_base.yaml
ref eval --name "a: eval-only" --lm lm.safetensors --val val.ex --config cfg_base.yaml \
    --c-json "$(cat eval.json)" --tol 1e-12
for E in 0 2 3; do  # batch 5: Val (36 examples) ends with a partial batch; E > 0: spread batches
    X=(--set data.batch_size=5 --set train.eval_batches=$E)
    echo "\$ dr-train ${BASE[*]} ${X[*]} --eval-only lm.safetensors manifest.tsv"
    run "$D/dr-train" "${BASE[@]}" "${X[@]}" --eval-only lm.safetensors manifest.tsv > "eval$E.json" || continue
    run "$D/dr-meta" "${BASE[@]}" "${X[@]}" --print-config > "cfg_eval$E.yaml"
    ref eval --name "a: eval-only B5 E$E" --lm lm.safetensors --val val.ex --config "cfg_eval$E.yaml" \
        --c-json "$(cat "eval$E.json")" --tol 1e-12
done

# ---- rater checkpoints: 2 meta-steps of the tiny config; then the head scaled so that the
# logits spread over a few units (clamp bounds then bind for some examples)
run "$D/dr-meta" "${BASE[@]}" --set meta.rounds=2 --set meta.population_K=1 -o rater.safetensors manifest.tsv || exit 1
"$PY" "$REF" rescale --rater rater.safetensors --out r300.safetensors --factor 300 --shift 0.5
run "$D/dr-meta" "${BASE[@]}" --set data.seq_len_rater=16 --set meta.rounds=2 --set meta.population_K=1 \
    -o r16raw.safetensors manifest.tsv || exit 1
"$PY" "$REF" rescale --rater r16raw.safetensors --out r16.safetensors --factor 300 --shift 0.5
run "$D/dr-meta" "${BASE[@]}" --set rater.n_layer=2 --set rater.n_head=4 --set meta.rounds=2 --set meta.population_K=1 \
    -o r2raw.safetensors manifest.tsv || exit 1
"$PY" "$REF" rescale --rater r2raw.safetensors --out r2.safetensors --factor 300 --shift 0.5
# Train_A of short documents only (windows <= 18 tokens) and a Val of long ones: the LM's
# wpe rows 17..31 get g = 0, so v = 0, in every inner step while dL_val/dtheta is not 0
# there (DESIGN 4.2: Adam's backward must stay finite where v = 0)
"$ROOT/tests/data/gen_toy.sh" 30 20 5 8 18 > short.jsonl
"$ROOT/tests/data/gen_toy.sh" 20 0 7 40 60 > long.jsonl
run "$D/dr-tokenize" --tokenizer byte --source-field source -o short short.jsonl >/dev/null || exit 1
run "$D/dr-tokenize" --tokenizer byte --source-field source -o long long.jsonl >/dev/null || exit 1
run "$D/dr-cat" --examples --ids --seq-len 32 short > short.ex || exit 1
run "$D/dr-cat" --examples --ids --seq-len 32 long > long.ex || exit 1

echo "== b. dr-meta grad vs create_graph autograd"
GTOL=${GTOL:-1e-8}
grad_case() {  # name rater_file [--set k=v ...]
    local name=$1 rater=$2; shift 2
    echo "\$ dr-meta grad ${BASE[*]} $* --lm-init lm.safetensors --rater-init $rater --train ${TRAIN:-splits/train_a} --val ${VAL:-splits/val} -o g_$name.safetensors"
    run "$D/dr-meta" grad "${BASE[@]}" "$@" --lm-init lm.safetensors --rater-init "$rater" \
        --train "${TRAIN:-splits/train_a}" --val "${VAL:-splits/val}" -o "g_$name.safetensors" || return
    run "$D/dr-meta" "${BASE[@]}" "$@" --print-config > "cfg_$name.yaml" || return
    ref grad --name "b: $name" --lm lm.safetensors --rater "$rater" --train "${TRAIN_EX:-train.ex}" --val "${VAL_EX:-val.ex}" \
        --config "cfg_$name.yaml" --c-grad "g_$name.safetensors" --tol "$GTOL" --tol-loss 1e-10 ${VERBOSE:+--verbose}
}
grad_case adamw-sigmoid-noclip rater.safetensors --set lm.clip=0
grad_case adamw-clip-tau-clamp-warmup r300.safetensors --set lm.clip=0.2 --set rater.tau=0.7 \
    --set "rater.clamp=[0.3,0.9]" --set lm.warmup_steps=2 --set meta.T=4 --set meta.checkpoint_every=3
grad_case adamw-softmax-meannorm-regs r300.safetensors --set rater.normalize=softmax --set rater.tau=2 \
    --set rater.mean_normalize=true --set rater.entropy_penalty=0.05 --set rater.l2_to_mean=0.2 \
    --set meta.T=3 --set meta.checkpoint_every=2 --set lm.clip=0.5
grad_case adamw-sigmoid-meannorm-regs-betas r300.safetensors --set rater.mean_normalize=true \
    --set rater.entropy_penalty=0.1 --set rater.l2_to_mean=0.3 --set rater.tau=1.5 --set "rater.clamp=[0.1,0.7]" \
    --set "lm.betas=[0.8,0.99]" --set lm.eps=1e-6 --set lm.weight_decay=0.1 --set lm.lr=3e-3 \
    --set meta.T=4 --set meta.checkpoint_every=0 --set lm.clip=0.3
grad_case adamw-lifetime-reset3 r300.safetensors --set meta.reset_every=3 --set meta.T=3 \
    --set meta.checkpoint_every=2 --set lm.warmup_steps=1 --set lm.lr=2e-3
grad_case adamw-rater-ctx16 r16.safetensors --set data.seq_len_rater=16 --set meta.T=3 \
    --set meta.checkpoint_every=2 --set lm.clip=0.2
grad_case sgd-sigmoid-clamp-regs r300.safetensors --set lm.optimizer=sgd --set lm.lr=0.05 --set lm.momentum=0.9 \
    --set lm.clip=0.5 --set "rater.clamp=[0.3,0.9]" --set rater.entropy_penalty=0.1 --set rater.l2_to_mean=0.1 \
    --set meta.T=4 --set meta.checkpoint_every=3 --set lm.weight_decay=0.1
grad_case sgd-softmax-noclip-constant r300.safetensors --set lm.optimizer=sgd --set lm.lr=0.05 \
    --set lm.momentum=0.5 --set lm.clip=0 --set rater.normalize=softmax --set rater.tau=0.5 \
    --set lm.schedule=constant --set lm.warmup_steps=2 --set meta.T=3 --set meta.checkpoint_every=1
grad_case adamw-first-order r300.safetensors --set meta.hvp=false --set lm.clip=0.3 \
    --set rater.entropy_penalty=0.05 --set meta.T=3 --set meta.checkpoint_every=2
grad_case adamw-backprop2-regs r300.safetensors --set meta.backprop_steps=2 --set meta.T=4 \
    --set meta.checkpoint_every=3 --set lm.clip=0.3 --set rater.entropy_penalty=0.1 --set rater.l2_to_mean=0.2 \
    --set "rater.clamp=[0.3,0.9]"
grad_case adamw-rater-2layer-4head r2.safetensors --set rater.n_layer=2 --set rater.n_head=4 \
    --set lm.clip=0.3 --set meta.T=3 --set meta.checkpoint_every=2 --set rater.mean_normalize=true
TRAIN=short VAL=long TRAIN_EX=short.ex VAL_EX=long.ex grad_case adamw-v0-rows r300.safetensors \
    --set lm.clip=0.3 --set rater.l2_to_mean=0.1
# logits shifted to z/tau ~ 30 and every weight clamped (the gradient is the entropy
# regularizer's alone): -H and its derivative lose their precision where 1 - s is taken
# from s (the C had 1.8e-4 relative error here; 3.9e-2 at 34)
"$PY" "$REF" rescale --rater rater.safetensors --out r30.safetensors --factor 1 --shift 30
grad_case entropy-saturated r30.safetensors --set rater.entropy_penalty=0.1 --set "rater.clamp=[0.3,0.3]" \
    --set meta.T=1 --set meta.checkpoint_every=1
# logits shifted to z/tau ~ 20 (sigmoid weights within 1e-8 of 1, under the clamp's 1): the
# weights' derivative s(1 - s) must take 1 - s as sigma(-z/tau); the reference took it from s
# (torch.sigmoid's backward) and was 4e-8 off here (found by tests/xcheck/random_cases.py)
"$PY" "$REF" rescale --rater rater.safetensors --out r20.safetensors --factor 30 --shift 20
grad_case sigmoid-near-1 r20.safetensors --set lm.clip=0.3 --set meta.T=2 --set meta.checkpoint_every=1
# z/tau ~ 40: sigma rounds to 1.0 = w_max, the clamp's bound: no gradient flows there (docs/meta.md
# 5), though sigma(x)·sigma(-x) is not 0; the regularizer's is all there is
"$PY" "$REF" rescale --rater rater.safetensors --out r40.safetensors --factor 30 --shift 40
grad_case sigmoid-at-1 r40.safetensors --set rater.l2_to_mean=0.3 --set meta.T=2 --set meta.checkpoint_every=1
# Sets smaller than T·B and val_batches·B: example numbers wrap around (modulo the count)
"$ROOT/tests/data/gen_toy.sh" 4 3 9 20 30 > few.jsonl
run "$D/dr-tokenize" --tokenizer byte --source-field source -o few few.jsonl >/dev/null || exit 1
run "$D/dr-split" --val 0.4 --seed 3 -o fewsplits few > /dev/null || exit 1
run "$D/dr-cat" --examples --ids --seq-len 32 fewsplits/train_a > few_train.ex || exit 1
run "$D/dr-cat" --examples --ids --seq-len 32 fewsplits/val > few_val.ex || exit 1
note "small sets: Train_A $(wc -l < few_train.ex) examples, Val $(wc -l < few_val.ex) (T·B = 16, 3 Val batches of 4)"
TRAIN=fewsplits/train_a VAL=fewsplits/val TRAIN_EX=few_train.ex VAL_EX=few_val.ex grad_case adamw-wraparound \
    r300.safetensors --set lm.clip=0.3 --set meta.T=4 --set meta.checkpoint_every=2 --set meta.val_batches=3

echo "== c. dr-score --rater vs reference rater logits"
score_case() {  # name rater examples-file input [--set ...]
    local name=$1 rater=$2 ex=$3 input=$4; shift 4
    echo "\$ dr-score --rater $rater ${BASE[*]} $* $input"
    run "$D/dr-score" --rater "$rater" "${BASE[@]}" "$@" "$input" > "sc_$name.tsv" || return
    run "$D/dr-meta" "${BASE[@]}" "$@" --print-config > "cfgs_$name.yaml" || return
    ref score --name "c: $name" --rater "$rater" --examples "$ex" --config "cfgs_$name.yaml" \
        --c-scores "sc_$name.tsv" --tol 1e-7
}
score_case val-ctx32 r300.safetensors val.ex splits/val
score_case train_a-ctx32 r300.safetensors train.ex splits/train_a
score_case train_a-ctx16 r16.safetensors train.ex splits/train_a --set data.seq_len_rater=16
echo "\$ dr-score --lm lm.safetensors ${BASE[*]} splits/val"
if run "$D/dr-score" --lm lm.safetensors "${BASE[@]}" splits/val > sc_lm_val.tsv; then
    ref lmscore --name "c: dr-score --lm, val" --lm lm.safetensors --examples val.ex --config cfg_base.yaml \
        --c-scores sc_lm_val.tsv --c-json "$(cat eval.json)" --tol 1e-8
fi

echo "== d. dr-train steps vs reference training (from the state saved by --stop-at 2)"
train_case() {  # name steps [--set ...]   (SCORES=file: dr-train --weights file)
    local name=$1 n=$2; shift 2
    local T=(--set train.eval_every=0 --set train.log_every=1 "$@")
    local X=() R=()
    if [ -n "${SCORES:-}" ]; then X=(--weights "$SCORES" --train-split train_a); R=(--scores "$SCORES"); fi
    if [ -n "${ONLINE:-}" ]; then
        X=(--rater "$ONLINE" --online-keep "$ONLINE_KEEP" --train-split train_a)
        R=(--online-rater "$ONLINE" --online-keep "$ONLINE_KEEP")
    fi
    echo "\$ dr-train ${BASE[*]} ${T[*]} ${X[*]} --steps $n [--stop-at 2] manifest.tsv"
    run "$D/dr-train" "${BASE[@]}" "${T[@]}" "${X[@]}" --steps "$n" --stop-at 2 -o "st_$name.safetensors" manifest.tsv >/dev/null || return
    run "$D/dr-train" "${BASE[@]}" "${T[@]}" "${X[@]}" --steps "$n" --log "tr_$name.jsonl" -o "full_$name.safetensors" manifest.tsv >/dev/null || return
    run "$D/dr-meta" "${BASE[@]}" "${T[@]}" --print-config > "cfgt_$name.yaml" || return
    ref train --name "d: $name" --state-ckpt "st_$name.safetensors" --c-final "full_$name.safetensors" \
        --c-log "tr_$name.jsonl" --train train.ex --config "cfgt_$name.yaml" --steps "$n" --tol 1e-9 --tol-loss 1e-10 "${R[@]}"
}
train_case adamw-warmup-cosine-clip 8 --set lm.warmup_steps=3 --set lm.clip=0.5 --set lm.lr=3e-3
train_case sgd-momentum 8 --set lm.optimizer=sgd --set lm.lr=0.05 --set lm.clip=1
SCORES=sc_train_a-ctx32.tsv train_case weights-sigmoid-clamp 8 --set lm.clip=0.5 --set lm.lr=3e-3 \
    --set "rater.clamp=[0.3,0.9]" --set rater.tau=0.7
SCORES=sc_train_a-ctx32.tsv train_case weights-softmax-meannorm 8 --set lm.lr=3e-3 \
    --set rater.normalize=softmax --set rater.mean_normalize=true --set rater.tau=2
ONLINE=r300.safetensors ONLINE_KEEP=0.6 train_case online-keep0.6 6 --set lm.lr=3e-3 --set lm.clip=0.5

echo "== e. dr-train from scratch: the documented init and data order (docs/deploy.md, Randomness)"
# experiment.seed 7; B = 5 does not divide Train_A's 138 examples (batches straddle epochs)
E7=(--set experiment.seed=7 --set train.eval_every=0 --set train.log_every=1)
# a run that cannot move a float: SGD without momentum or decay, lr 1e-30 and a clip of
# 1e-300 (an update of ~1e-330 underflows to 0, also for the zero biases), so its
# checkpoint is the init, bit for bit, and its l_train is the init's loss of each batch
FROZEN=(--set lm.optimizer=sgd --set lm.lr=1e-30 --set lm.clip=1e-300 --set lm.momentum=0 --set lm.weight_decay=0)
# 1. the init, tensor by tensor, bit for bit: the frozen run (1 and 2 threads, read-ahead);
# one step of AdamW at lr 1e-30 and 1e-40 (the non-bias tensors are the init; the zero
# biases move, by at most lr); the float build (bin/), if there, = the init rounded to F32
echo "\$ dr-train ${BASE[*]} ${E7[*]} ${FROZEN[*]} --steps 1 -o init_sgd.safetensors manifest.tsv (and variants)"
if run "$D/dr-train" "${BASE[@]}" "${E7[@]}" "${FROZEN[@]}" --steps 1 -o init_sgd.safetensors manifest.tsv >/dev/null &&
   run "$D/dr-train" "${BASE[@]}" "${E7[@]}" "${FROZEN[@]}" --set experiment.threads=2 --set data.prefetch=2 \
       --steps 1 -o init_sgd2.safetensors manifest.tsv >/dev/null &&
   run "$D/dr-train" "${BASE[@]}" "${E7[@]}" --set lm.lr=1e-30 --steps 1 -o init_a30.safetensors manifest.tsv >/dev/null &&
   run "$D/dr-train" "${BASE[@]}" "${E7[@]}" --set lm.lr=1e-40 --steps 1 -o init_a40.safetensors manifest.tsv >/dev/null &&
   run "$D/dr-meta" "${BASE[@]}" "${E7[@]}" --print-config > cfg_e_init.yaml; then
    F32=()
    if [ -x "$ROOT/bin/dr-train" ] && "$ROOT/bin/dr-train" "${BASE[@]}" "${E7[@]}" "${FROZEN[@]}" --steps 1 \
        -o init_f32.safetensors manifest.tsv >/dev/null 2>&1; then F32=(--c-init-f32 init_f32.safetensors); fi
    ref init --name "e: init seed 7" --config cfg_e_init.yaml --vocab 257 --c-init init_sgd.safetensors:1thr \
        --c-init init_sgd2.safetensors:2thr+prefetch "${F32[@]}" \
        --c-tiny init_a30.safetensors:1e-30 --c-tiny init_a40.safetensors:1e-40
fi
# 2a. the data order alone, over a larger set (429 examples, B = 4: chunks of 100·B = 400
# positions plus 29, a partial batch each epoch), 250 frozen steps = 2.3 epochs; random
# characters only (dr-train refuses a Val that shares documents with Train, and short
# clean documents repeat)
"$ROOT/tests/data/gen_toy.sh" 0 258 13 3 70 > big.jsonl
run "$D/dr-tokenize" --tokenizer byte --source-field source -o big big.jsonl >/dev/null || exit 1
run "$D/dr-cat" --examples --ids --seq-len 32 --min-tokens 2 big > big.ex || exit 1
order_case() {  # name [--set ...]
    local name=$1; shift
    local X=("${E7[@]}" "${FROZEN[@]}" --set data.batch_size=4 "$@")
    echo "\$ dr-train ${BASE[*]} ${X[*]} --steps 250 --train big --val splits/val"
    run "$D/dr-train" "${BASE[@]}" "${X[@]}" --steps 250 --log "eo_$name.jsonl" -o "eo_$name.safetensors" \
        --train big --val splits/val >/dev/null || return
    run "$D/dr-meta" "${BASE[@]}" "${X[@]}" --print-config > "cfge_$name.yaml" || return
    ref scratch --name "e: order $name" --frozen --config "cfge_$name.yaml" --train big.ex --steps 250 \
        --c-log "eo_$name.jsonl" --c-final "eo_$name.safetensors"
}
order_case shuffle-bucket-prefetch --set data.shuffle=true --set data.bucket_by_length=true --set data.prefetch=2
order_case bucket-noshuffle --set data.bucket_by_length=true
# the largest u64 seed: S + e wraps to 0 in epoch 1 (and the init's splitmix64(S))
order_case shuffle-seed-2^64-1 --set data.shuffle=true --set experiment.seed=18446744073709551615
# 2b, 3. whole runs: AdamW with warmup, cosine and clip, 60 steps of B = 5 (2.2 epochs of
# 138), from the seed-7 init (2b) and from lm.safetensors by --init (3)
scratch_case() {  # name init|- [--set ...]
    local name=$1 init=$2; shift 2
    local X=("${E7[@]}" --set data.batch_size=5 --set lm.lr=3e-3 --set lm.warmup_steps=5 --set lm.clip=0.5 "$@")
    local I=() RI=()
    if [ "$init" != - ]; then I=(--init "$init"); RI=(--init "$init"); fi
    echo "\$ dr-train ${BASE[*]} ${X[*]} ${I[*]} --steps 60 manifest.tsv"
    run "$D/dr-train" "${BASE[@]}" "${X[@]}" "${I[@]}" --steps 60 --log "es_$name.jsonl" -o "es_$name.safetensors" \
        manifest.tsv >/dev/null || return
    run "$D/dr-meta" "${BASE[@]}" "${X[@]}" --print-config > "cfges_$name.yaml" || return
    ref scratch --name "e: $name" "${RI[@]}" --config "cfges_$name.yaml" --train train.ex --steps 60 \
        --c-log "es_$name.jsonl" --c-final "es_$name.safetensors" --tol 1e-9 --tol-loss 1e-10
}
scratch_case adamw-shuffle - --set data.shuffle=true
scratch_case adamw-shuffle-bucket - --set data.shuffle=true --set data.bucket_by_length=true
scratch_case init-adamw-shuffle-bucket lm.safetensors --set data.shuffle=true --set data.bucket_by_length=true
# control: the reference with seed 8 must reject the seed-7 run (the checks can fail)
if [ -f cfges_adamw-shuffle.yaml ]; then
    sed 's/^\(  seed:\) 7\b/\1 8/' cfges_adamw-shuffle.yaml > cfg_e_seed8.yaml
    if ! grep -q '^  seed: 8 ' cfg_e_seed8.yaml; then
        echo "CHECK e: control: could not set seed 8 in the config  FAIL"; fails=$((fails + 1))
    elif "$PY" "$REF" scratch --name control --config cfg_e_seed8.yaml --train train.ex --steps 60 \
        --c-log es_adamw-shuffle.jsonl --c-final es_adamw-shuffle.safetensors >/dev/null; then
        echo "CHECK e: control: seed-8 reference rejects the seed-7 run  FAIL (not detected)"; fails=$((fails + 1))
    else
        echo "CHECK e: control: seed-8 reference rejects the seed-7 run  PASS"
    fi
fi

echo "== f. dr-meta from scratch: the whole run from experiment.seed (docs/meta.md 3.1)"
# K = 2 members, T = 3 inner steps (c = 2), reset_every 2 (member 1 resets at meta-step 1,
# member 0 at 2: staggered; members keep theta and the AdamW state across meta-steps, the
# inner step count and the schedule over T*R = 6 steps continue), 2 Val batches, EMA 0.5,
# the uniform shadows on; 3 meta-steps. Compared: the final rater and EMA tensor by tensor,
# and every logged metric of every meta-step.
MF=(--set meta.rounds=3 --set meta.T=3 --set meta.checkpoint_every=2 --set meta.reset_every=2
    --set meta.val_batches=2 --set meta.ema=0.5 --set meta.track_uniform=true)
FTOL=(--tol 1e-7 --tol-loss 1e-9 --tol-grad 1e-7)
# 1. phi_0 bit for bit: mode detach leaves phi and its EMA at the init (docs/meta.md 2)
echo "\$ dr-meta ${BASE[*]} ${MF[*]} --set meta.mode=detach -o mf_detach.safetensors manifest.tsv"
if run "$D/dr-meta" "${BASE[@]}" "${MF[@]}" --set meta.mode=detach -o mf_detach.safetensors manifest.tsv &&
   run "$D/dr-meta" "${BASE[@]}" "${MF[@]}" --set meta.mode=detach --print-config > cfgf_detach.yaml; then
    ref meta --name "f: phi_0 (seed 0)" --config cfgf_detach.yaml --train train.ex --val val.ex \
        --c-phi0 mf_detach.safetensors --c-phi0 mf_detach.ema.safetensors
fi
meta_case() {  # name train-split val-split train.ex val.ex [--set ...]
    local name=$1 trs=$2 vas=$3 tre=$4 vae=$5; shift 5
    local X=("${MF[@]}" "$@")
    echo "\$ dr-meta ${BASE[*]} ${X[*]} --train $trs --val $vas --log mf_$name.jsonl -o mf_$name.safetensors"
    run "$D/dr-meta" "${BASE[@]}" "${X[@]}" --train "$trs" --val "$vas" --log "mf_$name.jsonl" \
        -o "mf_$name.safetensors" >/dev/null || return
    run "$D/dr-meta" "${BASE[@]}" "${X[@]}" --print-config > "cfgf_$name.yaml" || return
    ref meta --name "f: $name" --config "cfgf_$name.yaml" --train "$tre" --val "$vae" --c-log "mf_$name.jsonl" \
        --c-rater "mf_$name.safetensors" --c-ema "mf_$name.ema.safetensors" "${FTOL[@]}"
}
SPL=(splits/train_a splits/val train.ex val.ex)
meta_case noshuffle-mean "${SPL[@]}" --set data.shuffle=false
meta_case feistel-mean "${SPL[@]}" --set data.shuffle=true --set experiment.seed=11
# softmax weights: head.out.bias gets a meta-gradient of 0 (softmax ignores a shift of z) and
# stays ~0, moved only by roundoff that the outer Adam normalizes: checked against the bound of
# such moves, not at its own scale, which compared two roundoff draws (random_cases.py)
meta_case softmax-K3 "${SPL[@]}" --set data.shuffle=true --set rater.normalize=softmax --set rater.tau=0.5 \
    --set meta.population_K=3
# per_member_adam, and a clamp so narrow that the weights sit at its bounds (frac_at_min/max
# > 0: the meta-gradient is cut there)
meta_case feistel-per_member_adam-clamp "${SPL[@]}" --set data.shuffle=true --set meta.combine=per_member_adam \
    --set "rater.clamp=[0.49995,0.50005]"
# the small sets of section b (Train_A 8, Val 7 examples): the streams wrap into epochs
# 1..4, K = 3 (offsets floor(n*k/K), resets at (m + floor(k*R/K)) mod R = 0), R = 3, 4 rounds
FEW=(fewsplits/train_a fewsplits/val few_train.ex few_val.ex)
meta_case few-K3-noshuffle "${FEW[@]}" --set data.shuffle=false --set meta.population_K=3 --set meta.reset_every=3 \
    --set meta.rounds=4 --set lm.clip=0.3
meta_case few-K3-feistel-sgd "${FEW[@]}" --set data.shuffle=true --set meta.population_K=3 --set meta.reset_every=3 \
    --set meta.rounds=4 --set lm.optimizer=sgd --set lm.lr=0.05 --set lm.warmup_steps=2
# K = 3, R = 2: floor(k*R/K) = 0, 0, 1 (the integer division matters): members 0 and 1
# reset at meta-steps 0 and 2, member 2 at 0, 1 and 3
meta_case few-K3-R2 "${FEW[@]}" --set data.shuffle=true --set meta.population_K=3 --set meta.reset_every=2 \
    --set meta.rounds=4 --set experiment.seed=5
# control: the reference with another seed must reject the run
if [ -f cfgf_feistel-mean.yaml ]; then
    sed 's/^\(  seed:\) 11\b/\1 12/' cfgf_feistel-mean.yaml > cfgf_seed12.yaml
    if ! grep -q '^  seed: 12 ' cfgf_seed12.yaml; then
        echo "CHECK f: control: could not set seed 12 in the config  FAIL"; fails=$((fails + 1))
    elif "$PY" "$REF" meta --name control --config cfgf_seed12.yaml --train train.ex --val val.ex \
        --c-log mf_feistel-mean.jsonl --c-rater mf_feistel-mean.safetensors \
        --c-ema mf_feistel-mean.ema.safetensors "${FTOL[@]}" >/dev/null; then
        echo "CHECK f: control: seed-12 reference rejects the seed-11 run  FAIL (not detected)"; fails=$((fails + 1))
    else
        echo "CHECK f: control: seed-12 reference rejects the seed-11 run  PASS"
    fi
fi

echo
if [ "$fails" -eq 0 ]; then echo "xcheck: all checks PASS"; exit 0; fi
echo "xcheck: $fails FAIL(s)"; exit 1
