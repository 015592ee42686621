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
#include <stdio.h>
#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const Backend backend_cuda;

/* &backend_cuda when the CUDA runtime finds at least one device (device 0 is used, its
 * cuBLAS handle created); else NULL with the reason in why[n] ("no CUDA device: ..."). */
const Backend *backend_cuda_get(char *why, size_t n);

/* GEMM arithmetic of every matrix product: the matmul op (linear layers, the tied
 * output head) and attention's batched per-(b, h) products, all four faces of each:
 *   "fp32" (default): cublasSgemm / cublasSgemmBatched, full fp32, what the tests
 *           compare with the CPU at 1e-5;
 *   "tf32": fp32 storage, TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32);
 *   "bf16": both inputs rounded to bf16 on the fly, fp32 accumulation and fp32 output
 *           (cublasGemmEx / cublasGemmBatchedEx, CUDA_R_16BF × CUDA_R_16BF → CUDA_R_32F,
 *           CUBLAS_COMPUTE_32F): experiment.precision bf16. Parameters, activations,
 *           gradients, optimizer state and the meta-gradient stay fp32 (fp32 master
 *           weights); softmax, LayerNorm, cross-entropy and the optimizers stay fp32.
 * The environment variable DR_CUDA_GEMM sets the initial mode. Returns 0, or -1 for an
 * unknown name (mode unchanged). */
int backend_cuda_set_gemm_precision(const char *name);
const char *backend_cuda_gemm_precision(void);

/* bf16 mode rounds each operand into a scratch copy; a product whose operand copy would
 * exceed this many bytes (default 512 MiB; 0 restores it) runs in row or column blocks,
 * and attention's batched products in blocks of examples, so the copies stay bounded
 * (the [B·T, V] logit gradient alone would be 6 GiB at the reference scale). Tests set
 * it small to exercise the blocked path. */
void backend_cuda_set_bf16_chunk_bytes(size_t bytes);

/* Causal attention's products: 1 in blocks of query rows over the non-zero lower part
 * only (attention.cu), 0 on the full T×T squares (the default: blocks measured slower on
 * an H200), -1 back to the environment's choice (DR_CUDA_ATT_BLOCKS=1 turns blocks on).
 * The results agree either way; the tests run both. */
void backend_cuda_set_att_blocks(int on);

/* The tangents' paired products (matmul and attention, both tangent faces) in bf16 mode:
 * 1 as one product over the concatenated contraction (the default), 0 as two products
 * each, as before the fifth session (to measure the difference), -1 back to the
 * environment's choice (DR_CUDA_NO_KSUM=1 turns the fusion off). The same bf16 roundings
 * either way; the tests run both. */
void backend_cuda_set_ksum(int on);

/* A linear layer's bias in bf16 mode: 1 carried by the product itself over two more
 * contraction terms (ones in the input's copy, the bias's bf16 rounding and that
 * rounding's remainder in the weight's; the default), 0 filled into the output before a
 * product that adds to it, as before the eighth session (to measure the difference), -1
 * back to the environment's choice (DR_CUDA_NO_BIAS_K=1 turns it off). The tests run
 * both. */
void backend_cuda_set_bias_k(int on);

/* The bf16 operand copies that pad (K, a row length, the side-by-side halves of
 * cu_gemm_ksum) or read strided rows: 1 four columns a thread where the rows are 16-byte
 * (source) and 8-byte (copy) aligned (the default), 0 one value a thread, as before the
 * tenth session (to measure the difference), -1 back to the environment's choice
 * (DR_CUDA_NO_COPY_VEC4=1 turns it off). The same bits either way; the tests compare. */
void backend_cuda_set_copy_vec4(int on);

/* Attention's bf16 batched products with uniformly strided A and C (the T×T score
 * products): 0 as one strided batched call (the default), 1 on pointer arrays as every
 * other batched product, -1 back to the environment's choice (DR_CUDA_BH_POINTERS=1).
 * The same products either way; the tests run both. */
void backend_cuda_set_bh_pointers(int on);

/* Attention's four faces as FlashAttention-2-style tiled kernels on tensor cores
 * (lib/cuda/attention_flash.cu): 1 on, 0 off (the default: correct on the emulator,
 * unmeasured on a GPU), -1 back to the environment's choice (DR_CUDA_ATT_FLASH=1 turns it
 * on). It applies only in bf16 GEMM mode, to hs = C/NH ∈ {16, 32, 48, 64} with T > hs and
 * B·NH ≤ 65535 (elsewhere the usual path runs). Where it applies, att holds, instead of the
 * probabilities, the per-row log-sum-exp of the scaled scores ([B,NH,T], −inf for rows
 * with no key) followed by a copy of the output ([B,T,C]), and tatt, instead of Ṗ, the
 * per-row r = rowsum(P ⊙ Ṡ) ([B,NH,T]) and a copy of the tangent output ([B,T,C]);
 * Backend.attention_state_floats gives that size, so models allocate no [B,NH,T,T]. The
 * switch and the GEMM mode must therefore not change between the allocation of att / tatt
 * and their last use, nor between a forward and the faces given its att (the faces fail,
 * naming the buffer, when they can see that a buffer is too small for their path). */
void backend_cuda_set_att_flash(int on);

/* Device 0 as the runtime reports it (cudaGetDeviceProperties; no cuBLAS handle). 0, or
 * -1 with the reason in why[n] ("no CUDA device: ...") when there is none. */
typedef struct {
    char name[256];
    int major, minor;          /* compute capability */
    int sm_count;
    int count;                 /* devices visible */
    size_t total_bytes;        /* totalGlobalMem */
} BackendCudaDevice;
int backend_cuda_device(BackendCudaDevice *d, char *why, size_t n);

/* Device memory of this process. live: the be->alloc blocks held now (rounded up to 256
 * bytes as allocated); scratch: the backend's scratch buffers held now (attention's
 * [B,NH,T,T] buffers, bf16 copies, ...); peak: the largest live + scratch since the
 * start or the last reset. device_used / device_total: cudaMemGetInfo (used = total −
 * free, the whole device: also the CUDA context, cuBLAS's workspace and other
 * processes). */
typedef struct {
    size_t live, scratch, peak;
    size_t device_used, device_total;
} BackendCudaMemory;
void backend_cuda_memory(BackendCudaMemory *m);
void backend_cuda_memory_reset_peak(void);   /* peak = live + scratch now */

/* Frees the scratch buffers and the cuBLAS handle (both are made again on the next use),
 * so that a memory checker at exit sees only the caller's own blocks. */
void backend_cuda_release(void);

/* The GEMM profile, for finding where the matrix products' time goes: with
 * backend_cuda_profile(1), every cuBLAS call, bf16 operand copy, bias fill and column sum of
 * lib/cuda/gemm.cu and matmul.cu runs between two device synchronizations and is timed (slow: for
 * measuring only). backend_cuda_profile_print writes the time per category since the
 * last backend_cuda_profile(1), divided by `steps`, with the GEMMs' TFLOP/s. */
void backend_cuda_profile(int on);
void backend_cuda_profile_print(FILE *f, const char *what, int steps);

#ifdef __cplusplus
}
#endif

#endif
