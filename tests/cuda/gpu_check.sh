#!/usr/bin/env bash
# gpu_check.sh PREBUILT OUT [SECONDS] — everything a lent GPU should run in one call, in
# the order that matters most (docs/cuda.md, "Checking a GPU in one call"):
#   1. tests/cuda/run_prebuilt.sh PREBUILT: test_cuda_ops; racecheck on its flash section
#      (the sixth session's mma.sync kernels, unmeasured) and its bf16 section (`--only
#      bf16`: the padded products' copy kernel and attention's in-place bf16 rows);
#      tools_gpu.sh; bench_cuda with the per-op and GEMM profile and --gemm-shapes (bf16),
#      then the same training steps with DR_CUDA_ATT_FLASH=1 (bench_cuda_flash: the
#      flash kernels against the stored path); the reference meta-step at T = 16, c = 1,
#      checkpoints on the GPU, timed op by op (the fifth session's fused tangent
#      products), the same meta-step with DR_CUDA_NO_KSUM=1 (those products apart: the
#      A/B on one card) and with DR_CUDA_ATT_FLASH=1 (bench_cuda_4); the training steps
#      with DR_CUDA_BH_POINTERS=1 (attention's score products on pointer arrays, against
#      the strided calls of the first bench), and with DR_CUDA_NO_BIAS_K=1 (bench_cuda_6:
#      the biases filled before their products, against the first bench's products that
#      carry them), and with DR_CUDA_NO_LOGITS_PAD=1 (bench_cuda_7: logits rows of V and
#      the head's x·Eᵀ through the padded output's scratch and copy, against the first
#      bench's rows of 50304), and with DR_CUDA_NO_COPY_VEC4=1 (bench_cuda_8: the padded
#      bf16 copies a value a thread, against the first bench's four columns a thread);
#      tests/cuda/reference_tools.sh
#      on .gpudata/splits/manifest.tsv when it exists (the meta-gradient comparison at
#      gpu.yaml's lm.eps only: 1e-8 was measured in the fourth session); initcheck and
#      memcheck on both sections, then racecheck, initcheck, memcheck on the whole
#      test, with the time left. Env variables change these (an empty value skips a
#      bench), and GRAD_EPS="1e-5 1e-8" brings back the meta-gradient at 1e-8;
#   2. tests/cuda/torch_gpu_lm.py --compile with TORCH=1, when python3 has torch (PyTorch
#      on the same LM; measured in the third session: 83.4 ms, 41.8% MFU on an H200);
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
BENCH_FLASH_ARGS=${BENCH_FLASH_ARGS-"--profile --skip-meta --precision bf16"} \
BENCH4_ARGS=${BENCH4_ARGS-"--skip-train --precision bf16 --reps 1 --ref-config $LOGS/gpu-device-ckpt.yaml --checkpoint-every 1"} \
BENCH2_ARGS="--skip-train --precision bf16 --reps 1 --ref-config $LOGS/gpu-device-ckpt.yaml --checkpoint-every 1 --profile" \
BENCH3_ARGS=${BENCH3_ARGS-"--skip-train --precision bf16 --reps 1 --ref-config $LOGS/gpu-device-ckpt.yaml --checkpoint-every 1"} \
BENCH3_ENV=${BENCH3_ENV-DR_CUDA_NO_KSUM=1} \
BENCH5_ARGS=${BENCH5_ARGS-"--skip-meta --precision bf16"} BENCH5_ENV=${BENCH5_ENV-DR_CUDA_BH_POINTERS=1} \
BENCH6_ARGS=${BENCH6_ARGS-"--skip-meta --precision bf16"} BENCH6_ENV=${BENCH6_ENV-DR_CUDA_NO_BIAS_K=1} \
BENCH7_ARGS=${BENCH7_ARGS-"--skip-meta --precision bf16"} BENCH7_ENV=${BENCH7_ENV-DR_CUDA_NO_LOGITS_PAD=1} \
BENCH8_ARGS=${BENCH8_ARGS-"--skip-meta --precision bf16"} BENCH8_ENV=${BENCH8_ENV-DR_CUDA_NO_COPY_VEC4=1} \
REF_MANIFEST=$([ -f "$M" ] && echo "$M") META_LIMIT=${META_LIMIT:-75} TRAIN_LIMIT=${TRAIN_LIMIT:-35} \
META_ROUNDS=${META_ROUNDS:-1} GRAD_EPS=${GRAD_EPS:-1e-5} \
SANITIZERS=${SANITIZERS-"racecheck initcheck memcheck"} SAN_CAP=${SAN_CAP:-60} \
EARLY_SANITIZERS=${EARLY_SANITIZERS-racecheck} SAN_SECTION=${SAN_SECTION:-"flash bf16"} \
    tests/cuda/run_prebuilt.sh "$P" "$LOGS" "$TOTAL"
rc=$?
if [ "${TORCH:-0}" = 1 ] && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    echo "==== torch_gpu_lm (limit 100s)"
    timeout 100 python3 tests/cuda/torch_gpu_lm.py --compile > "$LOGS/torch.log" 2>&1
    echo "torch_gpu_lm: exit $?"
    tail -n 3 "$LOGS/torch.log"
fi
tar czf "$OUT/logs.tgz" -C "$LOGS" . && rm -rf "$LOGS"
exit $rc
