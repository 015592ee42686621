#!/usr/bin/env bash
# run.sh — EMULATION ONLY: builds the CUDA backend's real sources (lib/cuda/*.cu) for the
# CPU emulator (tests/cuda/emu/) and runs either tests/cuda/test_cuda_ops against the CPU
# ops (default) or tests/cuda/bench_cuda (with `bench [ARGS]`, e.g. `bench --quick`: a
# smoke test of the benchmark program's logic; its timings mean nothing).
# A logic check of the kernels (indexing, masks, NULL variants, barriers, the cuBLAS
# argument mapping) for machines without a GPU; it is not a GPU test and says so.
# Needs g++, python3 and build/float/libdr.a (make). Options: EMU_SEED=n (schedule),
# EMU_ASAN=1 (AddressSanitizer on the kernels and the runtime), EMU_NO_DEVICE=1 (no GPU).
# Exit status: the program's (test: 0 pass, 1 fail, 77 no device).
#
#   tests/cuda/emu/run.sh               the op test
#   tests/cuda/emu/run.sh bench --quick bench_cuda on tiny shapes
set -eu
cd "$(dirname "$0")/../../.."
SAN=""
[ "${EMU_ASAN:-0}" = 1 ] && SAN="-fsanitize=address -fno-omit-frame-pointer"
OUT=${EMU_OUT:-build/float/cuda-emu}${SAN:+-asan}
LIBDR=${EMU_LIBDR:-build/float/libdr.a}
[ -f "$LIBDR" ] || { echo "cuda-emu: $LIBDR missing: run make first" >&2; exit 2; }
what=test
if [ $# -gt 0 ] && [ "$1" = bench ]; then what=bench; shift; fi
mkdir -p "$OUT"
BLAS_CFLAGS=$(pkg-config --cflags openblas 2>/dev/null || echo "-I/usr/include/$(gcc -print-multiarch)/openblas-pthread")
CXXFLAGS="-std=c++17 -O1 -g -Wall -Wextra -Wno-unused-parameter $SAN -Itests/cuda/emu/include -Ilib $BLAS_CFLAGS"
CFLAGS="-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter -fopenmp $SAN -Ilib -Itests $BLAS_CFLAGS"
LIBS="-lzstd -lxxhash -lyaml -lopenblas -lm -lpthread -fopenmp"

# a .cu file → C++ → object (appended to objs), redone only when the source, a header or
# the emulator changed
objs=()
emu_obj() {
    local cu=$1 name
    name=$(basename "$cu" .cu)
    if [ ! -f "$OUT/$name.o" ] || [ -n "$(find "$cu" lib/cuda/*.cuh lib/cuda/*.h lib/backend.h lib/real.h \
            tests/cuda/emu/include tests/cuda/emu/cu2cpp.py -newer "$OUT/$name.o" | head -1)" ]; then
        python3 tests/cuda/emu/cu2cpp.py "$cu" > "$OUT/$name.cpp"
        g++ $CXXFLAGS -c "$OUT/$name.cpp" -o "$OUT/$name.o"
    fi
    objs+=("$OUT/$name.o")
}

for cu in lib/cuda/*.cu; do emu_obj "$cu"; done
g++ $CXXFLAGS -c tests/cuda/emu/emu_runtime.cpp -o "$OUT/emu_runtime.o"

if [ "$what" = bench ]; then
    emu_obj tests/cuda/bench_gemm.cu
    cc $CFLAGS -c tests/cuda/bench_cuda.c -o "$OUT/bench_cuda.o"
    g++ $SAN "$OUT/bench_cuda.o" "${objs[@]}" "$OUT/emu_runtime.o" "$LIBDR" $LIBS \
        -o "$OUT/bench_cuda_emu"
    echo "cuda-emu: bench_cuda on the CPU EMULATOR (a check of the program's logic; the numbers mean nothing)"
    exec "$OUT/bench_cuda_emu" "$@"
fi
cc $CFLAGS -c tests/cuda/test_cuda_ops.c -o "$OUT/test_cuda_ops.o"
g++ $SAN "$OUT/test_cuda_ops.o" "${objs[@]}" "$OUT/emu_runtime.o" "$LIBDR" $LIBS \
    -o "$OUT/test_cuda_ops_emu"
echo "cuda-emu: the CUDA backend's kernels on the CPU EMULATOR (a logic check, not a GPU test)"
exec "$OUT/test_cuda_ops_emu"
