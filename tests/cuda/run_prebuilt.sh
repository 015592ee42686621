#!/usr/bin/env bash
# run_prebuilt.sh PREBUILT OUTDIR [SECONDS] — what `make test-cuda` and `make bench-cuda`
# run, from binaries built elsewhere, for a GPU machine that has the NVIDIA driver and
# the CUDA libraries but not the project's build dependencies (zstd, xxHash, libyaml,
# OpenBLAS headers).
#
# PREBUILT holds test_cuda_ops, bench_cuda, bin/ (the tools and libdr_cuda.so) and lib/
# (the non-CUDA shared libraries they load): tests/cuda/make_bundle.sh PREBUILT makes it
# on a machine with nvcc (a portable -march, no MPI).
#
# Steps, each under its own time limit, all inside SECONDS (default 560) in total:
#   1. the GPU and the libraries (nvidia-smi, ldd)
#   2. test_cuda_ops              -> OUTDIR/test_cuda_ops.log
#   3. tests/cuda/tools_gpu.sh    -> OUTDIR/tools_gpu.log
#   4. bench_cuda                 -> OUTDIR/bench_cuda.log
#   5. compute-sanitizer on test_cuda_ops, each tool of SANITIZERS (default memcheck; also
#      racecheck, initcheck, synccheck) with what time is left, at most SAN_CAP (240) s each
# It ends with a summary: each step's exit status and seconds; it exits 1 when any step
# failed (77, no GPU, included). Environment: BENCH_ARGS
# (bench_cuda's options, e.g. "--profile --skip-meta"), BENCH_FLASH_ARGS (one more
# bench_cuda run right after it, with DR_CUDA_ATT_FLASH=1: flash attention against the
# run before, same options), BENCH2_ARGS and BENCH3_ARGS (more
# bench_cuda runs with these options; BENCH3_ENV, e.g. DR_CUDA_ATT_BLOCKS=1, is set for the
# third), BENCH4_ARGS (one more, with DR_CUDA_ATT_FLASH=1: the fused flash tangents in a
# meta-step), BENCH5_ARGS with BENCH5_ENV, BENCH6_ARGS with BENCH6_ENV, BENCH7_ARGS with
# BENCH7_ENV and BENCH8_ARGS with BENCH8_ENV (four more, like the third), REF_MANIFEST (a
# manifest of GPT-2 shards: also run
# tests/cuda/reference_tools.sh on it), SANITIZERS="" or MEMCHECK=0 (no step 5). Each
# sanitizer also runs on sections of the test, `test_cuda_ops --only S` for each S of
# SAN_SECTION (a space-separated list; flash, the default: the flash attention kernels;
# bf16: the bf16 products and attention's bf16 rows): racecheck right after
# test_cuda_ops, so that a short call still checks them (EARLY_SANITIZERS="" skips that),
# the others in step 5 before the whole test.
set -u
cd "$(dirname "$0")/../.."
P=$(realpath "${1:?usage: run_prebuilt.sh PREBUILT OUTDIR [SECONDS]}")
OUT=${2:?usage: run_prebuilt.sh PREBUILT OUTDIR [SECONDS]}
TOTAL=${3:-560}
mkdir -p "$OUT"
t_start=$(date +%s)
left() { echo $((TOTAL - ($(date +%s) - t_start))); }
export LD_LIBRARY_PATH="$P/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
summary=""

# ---- 1. the GPU and the libraries -----------------------------------------------------------
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
    nvcc --version 2>/dev/null | tail -n 2
    nproc; uname -r
} 2>&1 | tee "$OUT/env.log"
if ldd "$P/test_cuda_ops" "$P/bin/libdr_cuda.so" | grep -q 'not found'; then
    # the CUDA libraries live somewhere else on this machine: find them
    d=$(dirname "$(find /usr/local /usr/lib /opt -name 'libcublasLt.so.13*' 2>/dev/null | head -n 1)")
    echo "cuBLAS not at the build's rpath; using $d" | tee -a "$OUT/env.log"
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
    for lib in libcudart.so.13; do
        e=$(dirname "$(find /usr/local /usr/lib /opt -name "$lib*" 2>/dev/null | head -n 1)")
        export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$e"
    done
fi
ldd "$P/test_cuda_ops" "$P/bin/libdr_cuda.so" | grep -E 'cublas|cudart|not found' | sort -u | tee -a "$OUT/env.log"

step() {   # step NAME CAP_SECONDS command...
    local name=$1 cap=$2; shift 2
    local lim; lim=$(left); [ "$lim" -gt "$cap" ] && lim=$cap
    if [ "$lim" -lt 10 ]; then summary="$summary\n$name: not run (no time left)"; return; fi
    echo "==== $name (limit ${lim}s)"
    local t0; t0=$(date +%s)
    timeout -k 5 "$lim" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    summary="$summary\n$name: exit $rc in $(( $(date +%s) - t0 )) s"
    tail -n "${TAIL_LINES:-25}" "$OUT/$name.log"
}

step test_cuda_ops 180 "$P/test_cuda_ops"
san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
[ "${MEMCHECK:-1}" = 1 ] || SANITIZERS=""
sanitize() {   # sanitize TOOLS SUFFIX [test_cuda_ops arguments]: each tool of TOOLS
    local tools=$1 suffix=$2 tool extra
    shift 2
    [ -n "$san" ] || return 0
    for tool in $tools; do
        extra=""
        [ "$tool" = memcheck ] && extra="--leak-check full"
        step "$tool$suffix" "${SAN_CAP:-240}" "$san" --tool "$tool" $extra --error-exitcode 3 \
            "$P/test_cuda_ops" "$@"
    done
}
SAN_TOOLS=${SANITIZERS-memcheck}
# racecheck on one section first (the newest kernels: their shared-memory and warp
# ordering is what racecheck sees and the emulator cannot; the whole test under racecheck
# outlasts SAN_CAP); the other tools on it, and every tool on the whole test, last
SECTIONS=${SAN_SECTION:-flash}
early=${EARLY_SANITIZERS-$(printf '%s\n' $SAN_TOOLS | grep -x racecheck)}
for sec in $SECTIONS; do sanitize "$early" "_$sec" --only "$sec"; done
step tools_gpu 150 env BIN="$P/bin" tests/cuda/tools_gpu.sh
step bench_cuda 300 "$P/bench_cuda" ${BENCH_ARGS:-}
[ -n "${BENCH_FLASH_ARGS:-}" ] && step bench_cuda_flash 200 env DR_CUDA_ATT_FLASH=1 "$P/bench_cuda" $BENCH_FLASH_ARGS
[ -n "${BENCH2_ARGS:-}" ] && step bench_cuda_2 200 "$P/bench_cuda" $BENCH2_ARGS
[ -n "${BENCH3_ARGS:-}" ] && step bench_cuda_3 200 env ${BENCH3_ENV:-} "$P/bench_cuda" $BENCH3_ARGS
[ -n "${BENCH4_ARGS:-}" ] && step bench_cuda_4 200 env DR_CUDA_ATT_FLASH=1 "$P/bench_cuda" $BENCH4_ARGS
[ -n "${BENCH5_ARGS:-}" ] && step bench_cuda_5 200 env ${BENCH5_ENV:-} "$P/bench_cuda" $BENCH5_ARGS
[ -n "${BENCH6_ARGS:-}" ] && step bench_cuda_6 200 env ${BENCH6_ENV:-} "$P/bench_cuda" $BENCH6_ARGS
[ -n "${BENCH7_ARGS:-}" ] && step bench_cuda_7 200 env ${BENCH7_ENV:-} "$P/bench_cuda" $BENCH7_ARGS
[ -n "${BENCH8_ARGS:-}" ] && step bench_cuda_8 200 env ${BENCH8_ENV:-} "$P/bench_cuda" $BENCH8_ARGS
[ -n "${REF_MANIFEST:-}" ] && step reference 200 env BIN="$P/bin" tests/cuda/reference_tools.sh "$REF_MANIFEST" "$OUT/reference"
for sec in $SECTIONS; do
    sanitize "$(printf '%s\n' $SAN_TOOLS | grep -vx racecheck)" "_$sec" --only "$sec"
done
sanitize "$SAN_TOOLS" ""
printf "==== summary (%s s in all)$summary\n" "$(( $(date +%s) - t_start ))"
# exit 0 only when every step that ran passed
printf "$summary" | grep -q 'exit [1-9]' && exit 1
exit 0
