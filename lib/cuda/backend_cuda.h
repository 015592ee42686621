/* backend_cuda.h — the CUDA backend (the .cu files of lib/cuda/): the same Backend table
 * as the CPU's (lib/backend.h), on device memory, for the float build only. cuBLAS runs
 * every GEMM; own kernels run the rest (docs/cuda.md lists them and what is verified).
 *
 * Plain C: the tools and tests include it; the .cu files include it as C++ (the
 * declarations below are extern "C"). Link the objects of lib/cuda/cuda.mk (CUDA_OBJ,
 * CUDA_LDLIBS). Every pointer an op receives is device memory (be->alloc), tokens and
 * [B] vectors included; host pointers only go through to_device / to_host. */
#ifndef DR_BACKEND_CUDA_H
#define DR_BACKEND_CUDA_H

#include <stddef.h>
#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const Backend backend_cuda;

/* &backend_cuda when the CUDA runtime finds at least one device (device 0 is used, its
 * cuBLAS handle created); else NULL with the reason in why[n] ("no CUDA device: ..."). */
const Backend *backend_cuda_get(char *why, size_t n);

/* GEMM arithmetic of the matmul op (linear layers, all four faces):
 *   "fp32" (default): cublasSgemm, full fp32, what the tests compare with the CPU;
 *   "tf32": fp32 storage, TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32);
 *   "bf16": inputs rounded to bf16 on the fly, fp32 accumulation and output
 *           (cublasGemmEx, CUDA_R_16BF × CUDA_R_16BF → CUDA_R_32F): bf16 autocast with
 *           fp32 master weights. Attention's batched products stay fp32.
 * The environment variable DR_CUDA_GEMM sets the initial mode. Returns 0, or -1 for an
 * unknown name (mode unchanged). */
int backend_cuda_set_gemm_precision(const char *name);
const char *backend_cuda_gemm_precision(void);

#ifdef __cplusplus
}
#endif

#endif
