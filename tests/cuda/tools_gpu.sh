#!/usr/bin/env bash
# tools_gpu.sh — the tools on the GPU (the second half of `make test-cuda`, after
# test_cuda_ops): dr-train, dr-meta, `dr-meta grad` and dr-score with --device cuda on
# the generated test corpora, against the same commands with --device cpu.
#   - dr-train on the GPU is deterministic: two runs log the same numbers to the last bit
#     and save the same model (fp32 and bf16); bf16 starts within 1e-2 of fp32 and trains;
#   - --stop-at + --resume on the GPU gives the uninterrupted run's log and model;
#   - GPU and CPU training agree: every logged l_val within 1e-4 (relative; the H200 gave
#     1.5e-6 over 120 steps, the emulator 4e-7; 2e-3 let a weight decay of the wrong
#     sign in the CUDA AdamW pass, at 1.6e-3 on the emulator's 40 steps), and the
#     GPU's final l_val is well below the corpus's unigram entropy;
#   - --eval-only on the GPU prints the run's final l_val (within 1e-5);
#   - dr-meta on the GPU is deterministic and follows the CPU's log (l_val within 1e-2);
#   - `dr-meta grad` on the GPU: l_val within 1e-4 of the CPU's, |dJ/dphi| within 2%, and
#     the gradient's cosine with the CPU's ≥ 0.999; the same in bf16 through SGD (the
#     AdamW case in bf16 is ill-conditioned: dr-meta warns, and only there);
#   - dr-score on the GPU: every score within 1e-3 of the CPU's;
#   - a batch no GPU holds: one error naming the bytes, what is held, the card's size and
#     the settings that need less; no model written.
# Exit 0 pass, 1 fail, 77 no GPU (never a pass). DEVICE=cpu runs the script's logic
# against the CPU itself (a check of this script, not of the GPU).
# TOOLS_GPU_SMALL=1 (set by `make test-cuda-tools-emu`: the CPU emulator of CUDA runs the
# kernels thousands of times slower than a GPU): the same checks and bounds on smaller
# runs: windows of 16 tokens, batches of 4, 40 training steps (eval every 10 steps on 2
# batches, not the whole val split), 2 meta-steps. One bound changes with the size: 40
# steps do not get below the unigram entropy (that takes ~25k predicted tokens, minutes
# on the emulator), so "trains" is then: the final l_val at least 1.5 below step 0's.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-bin}
DEV=${DEVICE:-cuda}
tmp=$(mktemp -d /tmp/dr-tools-gpu.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
field() { grep -o "\"$1\":[^,}]*" | tail -n 1 | cut -d: -f2; }
no_seconds() { sed 's/,"seconds":[^,}]*//; s/,"step_seconds":[^,}]*//' "$1"; }
# max relative difference of key $1 between two JSON-lines logs, line by line
max_rel() {
    paste -d' ' <(grep -o "\"$1\":[^,}]*" "$2" | cut -d: -f2) <(grep -o "\"$1\":[^,}]*" "$3" | cut -d: -f2) |
        awk 'BEGIN { m = 0; n = 0 } { n++; d = $1 - $2; if (d < 0) d = -d; s = $2 < 0 ? -$2 : $2;
                     if (s < 1e-30) s = 1e-30; if (d / s > m) m = d / s }
             END { if (n == 0) print "nan"; else printf "%.3g\n", m }'
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "nan" && a + 0 <= b + 0) }'; }

if [ "${TOOLS_GPU_SMALL:-0}" = 1 ]; then
    SEQ=16 BATCH=4 STEPS=40 EVERY=10 EVALB=2 ROUNDS=2
else
    SEQ=32 BATCH=8 STEPS=120 EVERY=20 EVALB=0 ROUNDS=4
fi
# trains L0 L: the final l_val L is well below the unigram entropy H (TOOLS_GPU_SMALL:
# at least 1.5 below the step-0 l_val L0)
trains() {
    if [ "${TOOLS_GPU_SMALL:-0}" = 1 ]; then awk -v l0="$1" -v l="$2" 'BEGIN { exit !(l < l0 - 1.5) }'
    else awk -v l="$2" -v h="$H" 'BEGIN { exit !(l < h - 0.4) }'; fi
}
SIZE=(--set data.seq_len=$SEQ --set data.batch_size=$BATCH)
echo "tools_gpu: --device $DEV${TOOLS_GPU_SMALL:+ (TOOLS_GPU_SMALL=$TOOLS_GPU_SMALL: $STEPS steps of ${BATCH}x$SEQ tokens)}"

# ---- corpora -----------------------------------------------------------------------------
tests/data/gen_corpus.sh "$tmp" >/dev/null
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$tmp/shards" "$tmp/corpus.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.15 --seed 1 -o "$tmp/splits" "$tmp/shards" > "$tmp/manifest.tsv" 2>/dev/null ||
    { echo "FAIL: corpus set-up"; exit 1; }
if [ "$DEV" = cuda ]; then   # is there a GPU?
    probe=$("$BIN/dr-train" --device cuda --config configs/tiny.yaml --steps 1 -o "$tmp/probe.safetensors" \
            "$tmp/manifest.tsv" 2>&1 >/dev/null)
    case "$probe" in
        *"no CUDA"*|*"has no CUDA backend"*) echo "tools_gpu: skipped: $probe"; exit 77 ;;
    esac
fi
H=$("$BIN/dr-cat" --examples --ids --seq-len $SEQ "$tmp/splits/train_a" |
    awk -F'\t' '{ n = split($2, t, " "); for (i = 2; i <= n; i++) { c[t[i]]++; N++ } }
        END { for (k in c) { p = c[k] / N; h -= p * log(p) } printf "%.4f", h }')

# ---- dr-train ------------------------------------------------------------------------------
CFG=(--config configs/tiny.yaml --set experiment.threads=1 "${SIZE[@]}")
RUN=(--set lm.lr=5e-3 --set train.eval_every=$EVERY --set train.eval_batches=$EVALB
     --set train.log_every=1 --steps $STEPS)
train() {   # train NAME DEVICE [more args]
    local name=$1 dev=$2; shift 2
    "$BIN/dr-train" "${CFG[@]}" "${RUN[@]}" --device "$dev" "$@" --log "$tmp/$name.jsonl" \
        -o "$tmp/$name.safetensors" "$tmp/manifest.tsv" 2> "$tmp/$name.err"
}
train cpu cpu || { cat "$tmp/cpu.err"; fail "dr-train --device cpu"; }
if train g1 "$DEV"; then
    train g2 "$DEV" || fail "dr-train --device $DEV (2nd run)"
    cmp -s <(no_seconds "$tmp/g1.jsonl") <(no_seconds "$tmp/g2.jsonl") && cmp -s "$tmp/g1.safetensors" "$tmp/g2.safetensors" &&
        echo "  dr-train: two runs on $DEV: same log and model, bit for bit" || fail "dr-train on $DEV is not deterministic"
    r=$(max_rel l_val "$tmp/g1.jsonl" "$tmp/cpu.jsonl")
    L0=$(head -n 1 "$tmp/g1.jsonl" | field l_val); LV=$(field l_val < "$tmp/g1.jsonl"); LC=$(field l_val < "$tmp/cpu.jsonl")
    echo "  dr-train: l_val step 0 $L0 -> step $STEPS $LV on $DEV ($LC on cpu; unigram entropy $H); max rel diff of l_val vs cpu $r"
    le "$r" 1e-4 || fail "dr-train l_val on $DEV differs from cpu by $r (> 1e-4)"
    trains "$L0" "$LV" || fail "l_val $LV on $DEV is not well below the unigram entropy $H (step 0: $L0)"
    r=$(max_rel l_train "$tmp/g1.jsonl" "$tmp/cpu.jsonl"); echo "  dr-train: max rel diff of l_train vs cpu over $STEPS steps $r"
    # resume
    train h "$DEV" --stop-at $((STEPS / 2)) >/dev/null 2>&1 && train h "$DEV" --resume ||
        fail "dr-train --stop-at/--resume on $DEV"
    cmp -s <(no_seconds "$tmp/g1.jsonl") <(no_seconds "$tmp/h.jsonl") && cmp -s "$tmp/g1.safetensors" "$tmp/h.safetensors" &&
        echo "  dr-train: --stop-at $((STEPS / 2)) + --resume on $DEV = the uninterrupted run, bit for bit" ||
        fail "dr-train --resume on $DEV differs from the uninterrupted run"
    # eval-only
    E=$("$BIN/dr-train" "${CFG[@]}" "${RUN[@]}" --device "$DEV" --eval-only "$tmp/g1.safetensors" "$tmp/manifest.tsv" 2>/dev/null | field l_val)
    r=$(awk -v a="$E" -v b="$LV" 'BEGIN { d = a - b; if (d < 0) d = -d; printf "%.3g", d / b }')
    echo "  dr-train --eval-only on $DEV: $E (run's final $LV, rel diff $r)"
    le "$r" 1e-5 || fail "--eval-only on $DEV gives $E, the run logged $LV"
else
    cat "$tmp/g1.err"; fail "dr-train --device $DEV"
fi
if [ "$DEV" = cuda ]; then   # mixed precision: bf16 GEMM inputs, fp32 everything else
    if train b1 cuda --set experiment.precision=bf16 && train b2 cuda --set experiment.precision=bf16; then
        cmp -s <(no_seconds "$tmp/b1.jsonl") <(no_seconds "$tmp/b2.jsonl") && cmp -s "$tmp/b1.safetensors" "$tmp/b2.safetensors" &&
            echo "  dr-train bf16: two runs: same log and model, bit for bit" || fail "dr-train bf16 is not deterministic"
        # the same model at step 0 in bf16 and fp32: the forward's precision; after that the
        # two runs take different paths, so bf16 must train, not follow fp32's trajectory
        r=$(max_rel l_val <(head -n 1 "$tmp/b1.jsonl") <(head -n 1 "$tmp/cpu.jsonl")); LB=$(field l_val < "$tmp/b1.jsonl")
        echo "  dr-train bf16: step-0 l_val rel diff vs cpu fp32 $r; final l_val $LB (fp32 cpu $LC; unigram entropy $H)"
        le "$r" 1e-2 || fail "dr-train bf16 step-0 l_val differs from cpu fp32 by $r (> 1e-2)"
        trains "$(head -n 1 "$tmp/b1.jsonl" | field l_val)" "$LB" ||
            fail "bf16 l_val $LB is not well below the unigram entropy $H (step 0: $(head -n 1 "$tmp/b1.jsonl" | field l_val))"
    else
        cat "$tmp/b1.err" "$tmp/b2.err" 2>/dev/null; fail "dr-train bf16"
    fi
fi

# ---- dr-meta on the toy problem ---------------------------------------------------------------
tests/data/gen_toy.sh 200 150 7 > "$tmp/toy.jsonl"
"$BIN/dr-tokenize" --tokenizer byte --source-field source -o "$tmp/tshards" "$tmp/toy.jsonl" >/dev/null 2>&1
"$BIN/dr-split" --val 0.3 --val-sources clean -o "$tmp/tsplits" "$tmp/tshards" > "$tmp/tmanifest.tsv" 2>/dev/null
MCFG=(--config configs/tiny.yaml --set experiment.threads=1 "${SIZE[@]}" --set meta.T=3
      --set meta.checkpoint_every=2 --set meta.rounds=$ROUNDS)
meta() {   # meta NAME DEVICE
    "$BIN/dr-meta" "${MCFG[@]}" --device "$2" -o "$tmp/$1.safetensors" --log "$tmp/$1.jsonl" \
        "$tmp/tmanifest.tsv" 2> "$tmp/$1.err"
}
if meta mc cpu && meta m1 "$DEV" && meta m2 "$DEV"; then
    cmp -s <(no_seconds "$tmp/m1.jsonl") <(no_seconds "$tmp/m2.jsonl") && cmp -s "$tmp/m1.safetensors" "$tmp/m2.safetensors" &&
        echo "  dr-meta: two runs on $DEV: same log and rater, bit for bit" || fail "dr-meta on $DEV is not deterministic"
    r=$(max_rel l_val "$tmp/m1.jsonl" "$tmp/mc.jsonl")
    echo "  dr-meta: $(wc -l < "$tmp/m1.jsonl") log lines; max rel diff of l_val vs cpu $r; last meta_grad_norm $(field meta_grad_norm < "$tmp/m1.jsonl") ($DEV) vs $(field meta_grad_norm < "$tmp/mc.jsonl") (cpu)"
    le "$r" 1e-2 || fail "dr-meta l_val on $DEV differs from cpu by $r (> 1e-2)"
else
    cat "$tmp/mc.err" "$tmp/m1.err" "$tmp/m2.err" 2>/dev/null; fail "dr-meta"
fi

# ---- dr-meta grad: one member's meta-gradient, tensor by tensor -------------------------------
"$BIN/dr-train" --config configs/tiny.yaml --set experiment.threads=1 "${SIZE[@]}" \
    --steps 3 -o "$tmp/lm.safetensors" "$tmp/tmanifest.tsv" >/dev/null 2>&1 || fail "dr-train for grad"
G=(grad "${MCFG[@]}" --lm-init "$tmp/lm.safetensors" --rater-init "$tmp/mc.safetensors"
   --train "$tmp/tsplits/train_a" --val "$tmp/tsplits/val")
# grad_cmp A B MIN_COSINE: the cosine of two meta-gradients and |A − B| / |B|
grad_cmp() { python3 tests/cuda/grad_cosine.py "$@"; }
# the last lines' l_val and |dJ/dphi| of two `dr-meta grad` stderr files: within 1e-4 and 2%
grad_close() {
    paste <(sed -n 's/.*l_val \([^,]*\),.*|dJ\/dphi| \([^, ]*\).*/\1 \2/p' "$1" | tail -n 1) \
          <(sed -n 's/.*l_val \([^,]*\),.*|dJ\/dphi| \([^, ]*\).*/\1 \2/p' "$2" | tail -n 1) |
        awk '{ dl = $1 - $3; if (dl < 0) dl = -dl; dn = ($2 - $4) / $4; if (dn < 0) dn = -dn;
               exit !(NF == 4 && dl / $3 <= 1e-4 && dn <= 2e-2) }'
}
if "$BIN/dr-meta" "${G[@]}" --device cpu -o "$tmp/gc.safetensors" 2> "$tmp/gc.err" &&
   "$BIN/dr-meta" "${G[@]}" --device "$DEV" -o "$tmp/gg.safetensors" 2> "$tmp/gg.err"; then
    echo "  dr-meta grad cpu:  $(tail -n 1 "$tmp/gc.err")"
    echo "  dr-meta grad $DEV: $(tail -n 1 "$tmp/gg.err")"
    grad_close "$tmp/gg.err" "$tmp/gc.err" || fail "dr-meta grad on $DEV: l_val or |dJ/dphi| differs from cpu"
    out=$(grad_cmp "$tmp/gg.safetensors" "$tmp/gc.safetensors" 0.999) || fail "dr-meta grad on $DEV: tensors differ from cpu: $out"
    echo "  dr-meta grad $DEV vs cpu: $out"
else
    cat "$tmp/gc.err" "$tmp/gg.err" 2>/dev/null; fail "dr-meta grad"
fi
# bf16: through SGD (well conditioned) the meta-gradient must follow the CPU's as closely;
# through AdamW at lm.eps 1e-8 it need not (docs/cuda.md, "bf16 and the meta-gradient"):
# dr-meta says so, and only there
if [ "$DEV" = cuda ]; then
    SG=("${G[@]}" --set lm.optimizer=sgd --set lm.lr=0.1)
    if "$BIN/dr-meta" "${SG[@]}" --device cpu -o "$tmp/sc.safetensors" 2> "$tmp/sc.err" &&
       "$BIN/dr-meta" "${SG[@]}" --device cuda --set experiment.precision=bf16 -o "$tmp/sb.safetensors" 2> "$tmp/sb.err" &&
       "$BIN/dr-meta" "${G[@]}" --device cuda --set experiment.precision=bf16 -o "$tmp/ab.safetensors" 2> "$tmp/ab.err"; then
        grad_close "$tmp/sb.err" "$tmp/sc.err" || fail "dr-meta grad bf16 (SGD): l_val or |dJ/dphi| differs from cpu"
        out=$(grad_cmp "$tmp/sb.safetensors" "$tmp/sc.safetensors" 0.999) || fail "dr-meta grad bf16 (SGD): tensors differ from cpu: $out"
        echo "  dr-meta grad bf16 vs cpu fp32, inner SGD: $out"
        grep -q "warning: experiment.precision bf16 with AdamW" "$tmp/ab.err" || fail "dr-meta grad bf16 with AdamW: no warning"
        grep -q "warning: experiment.precision bf16" "$tmp/sb.err" && fail "dr-meta grad bf16 with SGD: a warning it should not print"
        echo "  dr-meta grad bf16 vs cpu fp32, inner AdamW at lm.eps 1e-8 (warned): $(grad_cmp "$tmp/ab.safetensors" "$tmp/gc.safetensors" -2)"
    else
        cat "$tmp/sc.err" "$tmp/sb.err" "$tmp/ab.err" 2>/dev/null; fail "dr-meta grad bf16"
    fi
    # flash attention (DR_CUDA_ATT_FLASH=1: bf16, and T > hs, so seq_len 32 with tiny's hs
    # 16) through a whole meta-gradient: as close to the CPU's as the stored path's, and not
    # the stored path's bits (so it ran); its own LM and rater at that context, from CPU runs
    F32=(--config configs/tiny.yaml --set experiment.threads=1 --set data.seq_len=32
         --set data.batch_size=4)
    FG=(grad "${F32[@]}" --set meta.T=2 --set lm.optimizer=sgd --set lm.lr=0.1
        --lm-init "$tmp/f_lm.safetensors" --rater-init "$tmp/f_r.safetensors"
        --train "$tmp/tsplits/train_a" --val "$tmp/tsplits/val")
    if "$BIN/dr-train" "${F32[@]}" --steps 2 --set train.eval_batches=0 --device cpu \
           -o "$tmp/f_lm.safetensors" "$tmp/manifest.tsv" > /dev/null 2>&1 &&
       "$BIN/dr-meta" "${F32[@]}" --set meta.rounds=1 --set meta.T=2 --device cpu \
           -o "$tmp/f_r.safetensors" "$tmp/manifest.tsv" > /dev/null 2>&1 &&
       "$BIN/dr-meta" "${FG[@]}" --device cpu -o "$tmp/fc.safetensors" 2> "$tmp/fc.err" &&
       DR_CUDA_ATT_FLASH=0 "$BIN/dr-meta" "${FG[@]}" --device cuda --set experiment.precision=bf16 \
           -o "$tmp/fs.safetensors" 2> "$tmp/fs.err" &&
       DR_CUDA_ATT_FLASH=1 "$BIN/dr-meta" "${FG[@]}" --device cuda --set experiment.precision=bf16 \
           -o "$tmp/ff.safetensors" 2> "$tmp/ff.err"; then
        grad_close "$tmp/ff.err" "$tmp/fc.err" || fail "dr-meta grad bf16 with flash attention: l_val or |dJ/dphi| differs from cpu"
        out=$(grad_cmp "$tmp/ff.safetensors" "$tmp/fc.safetensors" 0.999) || fail "dr-meta grad bf16 with flash attention: tensors differ from cpu: $out"
        cmp -s "$tmp/fs.safetensors" "$tmp/ff.safetensors" && fail "dr-meta grad with DR_CUDA_ATT_FLASH=1: the stored path's bits (flash did not run)"
        echo "  dr-meta grad bf16 with flash attention vs cpu fp32, inner SGD, seq_len 32: $out (stored path: $(grad_cmp "$tmp/fs.safetensors" "$tmp/fc.safetensors" 0.999))"
    else
        cat "$tmp/fc.err" "$tmp/fs.err" "$tmp/ff.err" 2>/dev/null; fail "dr-meta grad with flash attention"
    fi
fi

# ---- dr-score ------------------------------------------------------------------------------
if "$BIN/dr-score" --rater "$tmp/mc.safetensors" --config configs/tiny.yaml "${SIZE[@]}" --device cpu --split train_a \
       "$tmp/tmanifest.tsv" > "$tmp/sc.tsv" 2> "$tmp/sc.err" &&
   "$BIN/dr-score" --rater "$tmp/mc.safetensors" --config configs/tiny.yaml "${SIZE[@]}" --device "$DEV" --split train_a \
       "$tmp/tmanifest.tsv" > "$tmp/sg.tsv" 2> "$tmp/sg.err"; then
    r=$(paste "$tmp/sg.tsv" "$tmp/sc.tsv" | awk -F'\t' -v nf="$(head -n 1 "$tmp/sc.tsv" | awk -F'\t' '{ print NF }')" '
        NR > 1 { if ($1 != $(nf + 1)) { bad = 1 }; for (i = 2; i <= nf; i++) if ($i ~ /^-?[0-9.e+-]+$/) {
                 d = $i - $(nf + i); if (d < 0) d = -d; if (d > m) m = d } ; n++ }
        END { if (bad || n == 0) print "nan"; else printf "%.3g %d\n", m, n }')
    echo "  dr-score: max |gpu - cpu| over every numeric column, rows: $r"
    le "${r%% *}" 1e-3 || fail "dr-score on $DEV differs from cpu ($r)"
else
    cat "$tmp/sc.err" "$tmp/sg.err"; fail "dr-score"
fi

# ---- out of device memory ------------------------------------------------------------------
# one error naming what was asked, what is held, the card's size and the settings that
# need less, and no model written: 2^20 windows of 128 tokens need more than any GPU has
# (on the emulator's 16 GiB the first large buffer alone fails)
if [ "$DEV" = cuda ]; then
    if "$BIN/dr-train" --config configs/tiny.yaml --device cuda --set data.batch_size=1048576 \
           --set data.seq_len=128 --steps 1 -o "$tmp/oom.safetensors" "$tmp/manifest.tsv" 2> "$tmp/oom.err"; then
        fail "dr-train with a batch no GPU holds succeeded"
    fi
    grep -q "out of device memory (.* bytes, with .* GiB already held of the GPU's .* GiB): .*; lm.checkpointing: true, a smaller lm.head_chunk or data.batch_size need less" \
        "$tmp/oom.err" || fail "out of device memory: $(tail -n 2 "$tmp/oom.err")"
    [ -e "$tmp/oom.safetensors" ] && fail "a run out of device memory wrote its model"
    echo "  dr-train out of device memory: $(grep -o "out of device memory.*GiB)" "$tmp/oom.err")"
fi

if [ $fails -gt 0 ]; then echo "tools_gpu: $fails FAILED"; exit 1; fi
echo "tools_gpu: all passed"
