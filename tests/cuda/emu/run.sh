#!/usr/bin/env bash
# run.sh — EMULATION ONLY: builds the CUDA backend's real sources (lib/cuda/*.cu) for the
# CPU emulator (tests/cuda/emu/) and runs either tests/cuda/test_cuda_ops against the CPU
# ops (default) or tests/cuda/bench_cuda (with `bench [ARGS]`, e.g. `bench --quick`: a
# smoke test of the benchmark program's logic; its timings mean nothing), or (with
# `tools`) builds an emulated bin/libdr_cuda.so next to copies of the tools and runs
# tests/cuda/tools_gpu.sh on them: the path tool → backend_select → dlopen → the CUDA
# backend, on the CPU (`tools --build-only`: build, print the directory, run nothing).
# A logic check of the kernels (indexing, masks, NULL variants, barriers, the cuBLAS
# argument mapping) for machines without a GPU; it is not a GPU test and says so.
# Needs g++, python3 and build/float/libdr.a (make). Options: EMU_SEED=n (schedule),
# EMU_ASAN=1 (AddressSanitizer on the kernels and the runtime), EMU_NO_DEVICE=1 (no GPU).
# The tools mode links the tools as the Makefile does: EMU_CC, EMU_CFLAGS, EMU_LDLIBS (the
# Makefile's CC, CFLAGS, LDLIBS; `make test-cuda-tools-emu` passes them; unset, they are
# asked of the Makefile); it runs tools_gpu.sh with TOOLS_GPU_SMALL=1 unless set (0: the
# GPU's sizes, far too slow for CI: over half an hour).
# Exit status: the program's (test: 0 pass, 1 fail, 77 no device).
#
#   tests/cuda/emu/run.sh               the op test (--only flash|bf16: one section)
#   tests/cuda/emu/run.sh bench --quick bench_cuda on tiny shapes
#   tests/cuda/emu/run.sh tools         tools_gpu.sh on the emulated libdr_cuda.so
set -eu
cd "$(dirname "$0")/../../.."
SAN=""
[ "${EMU_ASAN:-0}" = 1 ] && SAN="-fsanitize=address -fno-omit-frame-pointer"
OUT=${EMU_OUT:-build/float/cuda-emu}${SAN:+-asan}
LIBDR=${EMU_LIBDR:-build/float/libdr.a}
[ -f "$LIBDR" ] || { echo "cuda-emu: $LIBDR missing: run make first" >&2; exit 2; }
what=test
if [ $# -gt 0 ] && { [ "$1" = bench ] || [ "$1" = tools ]; }; then what=$1; shift; fi
BLAS_CFLAGS=$(pkg-config --cflags openblas 2>/dev/null || echo "-I/usr/include/$(gcc -print-multiarch)/openblas-pthread")
CXXFLAGS="-std=c++17 -O1 -g -Wall -Wextra -Wno-unused-parameter $SAN -Itests/cuda/emu/include -Ilib $BLAS_CFLAGS"
if [ "$what" = tools ]; then   # a shared library: its own objects, position-independent
    OUT=$OUT/tools
    CXXFLAGS="$CXXFLAGS -fPIC"
fi
mkdir -p "$OUT"
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

if [ "$what" = tools ]; then
    # the library with the real one's interface (backend_cuda_get, …; dr_fail_at and
    # dr_now come from the tool), and the tools linked as the Makefile links them, with
    # backend_select.c compiled for a CUDA build (-DDR_HAVE_CUDA; its object comes before
    # libdr.a, so the archive's copy, CPU-only on a machine without nvcc, is not used).
    # Real files, not links: backend_select finds the library through /proc/self/exe.
    mkvar() {   # a variable of the Makefile, for a run without make (EMU_CC etc. unset)
        make -s --no-print-directory -f Makefile -f <(printf 'emu-print-%%:\n\t@echo $($*)\n') "emu-print-$1"
    }
    TCC=${EMU_CC:-$(mkvar CC)}
    TCFLAGS="${EMU_CFLAGS:-$(mkvar CFLAGS)} $SAN -DDR_HAVE_CUDA"
    TLIBS="${EMU_LDLIBS:-$(mkvar LDLIBS)} -rdynamic -ldl"
    mkdir -p "$OUT/bin"
    g++ $CXXFLAGS -c tests/cuda/emu/emu_so.cpp -o "$OUT/emu_so.o"
    g++ $SAN -shared -Wl,-Bsymbolic "${objs[@]}" "$OUT/emu_runtime.o" "$OUT/emu_so.o" \
        -lopenblas -lm -lpthread -o "$OUT/bin/libdr_cuda.so"
    $TCC $TCFLAGS -c lib/backend_select.c -o "$OUT/backend_select.o"
    for main in tools/dr-*/main.c; do
        tool=$(basename "$(dirname "$main")")
        $TCC $TCFLAGS "$main" "$OUT/backend_select.o" "$LIBDR" $TLIBS -o "$OUT/bin/$tool"
    done
    if [ $# -gt 0 ] && [ "$1" = --build-only ]; then
        echo "cuda-emu: the tools and an EMULATED libdr_cuda.so (CPU, not a GPU) in $OUT/bin"
        exit 0
    fi
    echo "cuda-emu: tests/cuda/tools_gpu.sh with --device cuda on the CPU EMULATOR of CUDA" \
         "($OUT/bin/libdr_cuda.so: a logic check of the tool → CUDA backend path, not a GPU test)"
    BIN=$OUT/bin DEVICE=cuda TOOLS_GPU_SMALL=${TOOLS_GPU_SMALL:-1} exec tests/cuda/tools_gpu.sh "$@"
fi

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
exec "$OUT/test_cuda_ops_emu" "$@"
