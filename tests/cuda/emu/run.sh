#!/usr/bin/env bash
# run.sh — EMULATION ONLY: builds the CUDA backend's real sources (lib/cuda/*.cu) for the
# CPU emulator (tests/cuda/emu/) and runs tests/cuda/test_cuda_ops against the CPU ops.
# A logic check of the kernels (indexing, masks, NULL variants, barriers, the cuBLAS
# argument mapping) for machines without a GPU; it is not a GPU test and says so.
# Needs g++, python3 and build/float/libdr.a (make). Options: EMU_SEED=n (schedule),
# EMU_ASAN=1 (AddressSanitizer on the kernels and the runtime).
# Exit status: the test's (0 pass, 1 fail).
set -eu
cd "$(dirname "$0")/../../.."
OUT=${EMU_OUT:-build/float/cuda-emu}
LIBDR=${EMU_LIBDR:-build/float/libdr.a}
[ -f "$LIBDR" ] || { echo "cuda-emu: $LIBDR missing: run make first" >&2; exit 2; }
mkdir -p "$OUT"
SAN=""
[ "${EMU_ASAN:-0}" = 1 ] && SAN="-fsanitize=address -fno-omit-frame-pointer"
CXXFLAGS="-std=c++17 -O1 -g -Wall -Wextra -Wno-unused-parameter $SAN -Itests/cuda/emu/include -Ilib \
  -I/usr/include/x86_64-linux-gnu/openblas-pthread"
objs=()
for cu in lib/cuda/*.cu; do
    name=$(basename "$cu" .cu)
    python3 tests/cuda/emu/cu2cpp.py "$cu" > "$OUT/$name.cpp"
    g++ $CXXFLAGS -c "$OUT/$name.cpp" -o "$OUT/$name.o"
    objs+=("$OUT/$name.o")
done
g++ $CXXFLAGS -c tests/cuda/emu/emu_runtime.cpp -o "$OUT/emu_runtime.o"
cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter -fopenmp $SAN -Ilib -Itests \
   -I/usr/include/x86_64-linux-gnu/openblas-pthread -c tests/cuda/test_cuda_ops.c -o "$OUT/test_cuda_ops.o"
g++ $SAN "$OUT/test_cuda_ops.o" "${objs[@]}" "$OUT/emu_runtime.o" "$LIBDR" \
    -lzstd -lxxhash -lyaml -lopenblas -lm -lpthread -fopenmp -o "$OUT/test_cuda_ops_emu"
echo "cuda-emu: the CUDA backend's kernels on the CPU EMULATOR (a logic check, not a GPU test)"
"$OUT/test_cuda_ops_emu"
