#!/usr/bin/env bash
# make_bundle.sh DIR — the folder tests/cuda/run_prebuilt.sh runs from, for a GPU machine
# that has the NVIDIA driver and CUDA libraries but cannot build the project: the tools
# (with libdr_cuda.so), test_cuda_ops and bench_cuda, built in build/portable with a
# portable -march (x86-64-v3) and without MPI, stripped, plus the shared libraries they
# load other than glibc's, the compiler runtime's and CUDA's (those the GPU machine has).
# Needs nvcc here. Then: copy DIR beside the repository there and run
#   tests/cuda/run_prebuilt.sh DIR OUTDIR
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${1:?usage: make_bundle.sh DIR}
P=build/portable
make -j"$(nproc)" BUILD=$P BIN=$P/bin OPT="-O3 -march=x86-64-v3" MPICC= \
    tools $P/cuda/test_cuda_ops $P/cuda/bench_cuda > "$P.log" 2>&1 ||
    { tail -n 20 "$P.log"; echo "make_bundle: the build failed (log: $P.log)" >&2; exit 1; }
[ -f $P/bin/libdr_cuda.so ] || { echo "make_bundle: no libdr_cuda.so (is nvcc here?)" >&2; exit 1; }
rm -rf "$D"
mkdir -p "$D/bin" "$D/lib"
cp $P/bin/* "$D/bin/"
cp $P/cuda/test_cuda_ops $P/cuda/bench_cuda "$D/"
strip "$D"/bin/dr-* "$D/test_cuda_ops" "$D/bench_cuda"
ldd "$D"/bin/* "$D/test_cuda_ops" "$D/bench_cuda" 2>/dev/null |
    awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
    { grep -Ev '^(libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|libcuda|libcublas|libcublasLt|libcudart)\.so' || true; } |
    while read -r name path; do cp -L "$path" "$D/lib/$name"; done
echo "make_bundle: $D ($(du -sh "$D" | cut -f1)): $(ls "$D/lib" | tr '\n' ' ')"
