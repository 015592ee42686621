#!/usr/bin/env bash
# gpu_check.sh PREBUILT OUT [SECONDS] — everything a lent GPU should run in one call, in
# the order that matters most (docs/cuda.md, "Checking a GPU in one call"):
#   1. tests/cuda/run_prebuilt.sh PREBUILT: test_cuda_ops (flash attention's cases
#      included), tools_gpu.sh; bench_cuda with the per-op and GEMM profile and
#      --gemm-shapes (bf16), then without --gemm-shapes with DR_CUDA_ATT_FLASH=1 (flash
#      attention, its tiles now loaded 4 floats at a time); the reference meta-step at
#      T = 16, c = 1, checkpoints on the GPU; the training step again with
#      DR_CUDA_GEMM_SPLIT=1 (the head's 50257-column products split at 50176:
#      docs/cuda.md); tests/cuda/reference_tools.sh on .gpudata/splits/manifest.tsv when
#      it exists; initcheck and memcheck on the flash section, then racecheck, initcheck,
#      memcheck on the whole test, with the time left. The third session's call also ran
#      racecheck on the flash section first (clean then; EARLY_SANITIZERS=racecheck), the
#      meta-step at c = 4 and with flash attention (BENCH4_ARGS, as in the third session's
#      script, brings the latter back);
#   2. tests/cuda/torch_gpu_lm.py --compile, when python3 has torch (PyTorch on the same LM);
#   3. OUT/logs.tgz: every log (a device call brings back a few files, not a tree).
# PREBUILT: tests/cuda/make_bundle.sh PREBUILT, built here. SECONDS (default 400) bounds
# step 1; step 2 has 100 s more. Exit: run_prebuilt.sh's (1 when any step failed).
set -u
cd "$(dirname "$0")/../.."
P=${1:?usage: gpu_check.sh PREBUILT OUT [SECONDS]}
OUT=${2:?usage: gpu_check.sh PREBUILT OUT [SECONDS]}
TOTAL=${3:-400}
mkdir -p "$OUT"
LOGS=$(mktemp -d /tmp/gpu-check.XXXXXX)
# the reference config with its checkpoints on the GPU (an H100 or H200 holds T = 16)
sed 's/host_checkpoints: true/host_checkpoints: false/' configs/gpu.yaml > "$LOGS/gpu-device-ckpt.yaml"
export PYTHONUNBUFFERED=1 TAIL_LINES=${TAIL_LINES:-8}
M=.gpudata/splits/manifest.tsv
BENCH_ARGS="--profile --skip-meta --precision bf16 --gemm-shapes" \
BENCH_FLASH_ARGS=${BENCH_FLASH_ARGS-"--profile --skip-meta --precision bf16"} BENCH4_ARGS=${BENCH4_ARGS:-} \
BENCH2_ARGS="--skip-train --precision bf16 --reps 1 --ref-config $LOGS/gpu-device-ckpt.yaml --checkpoint-every 1" \
BENCH3_ENV=DR_CUDA_GEMM_SPLIT=1 BENCH3_ARGS="--profile --skip-meta --precision bf16" \
REF_MANIFEST=$([ -f "$M" ] && echo "$M") META_LIMIT=${META_LIMIT:-75} TRAIN_LIMIT=${TRAIN_LIMIT:-35} \
META_ROUNDS=${META_ROUNDS:-1} \
SANITIZERS=${SANITIZERS-"racecheck initcheck memcheck"} SAN_CAP=${SAN_CAP:-60} \
EARLY_SANITIZERS=${EARLY_SANITIZERS-} \
    tests/cuda/run_prebuilt.sh "$P" "$LOGS" "$TOTAL"
rc=$?
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    echo "==== torch_gpu_lm (limit 100s)"
    timeout 100 python3 tests/cuda/torch_gpu_lm.py --compile > "$LOGS/torch.log" 2>&1
    echo "torch_gpu_lm: exit $?"
    tail -n 3 "$LOGS/torch.log"
fi
tar czf "$OUT/logs.tgz" -C "$LOGS" . && rm -rf "$LOGS"
exit $rc
