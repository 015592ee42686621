/* cuda_common.cuh — what every .cu file of lib/cuda/ shares: the float-only guard, the check
 * macros (file and line of the failing call), the cuBLAS handle, device scratch, launch
 * sizes and the deterministic warp/block reductions. Internal to the CUDA backend.
 *
 * Conventions of the backend (docs/cuda.md):
 *  - One stream: the legacy default stream 0. Every kernel, cuBLAS call and copy is
 *    ordered on it, so scratch buffers can be reused from one op to the next, and
 *    to_host (a blocking cudaMemcpy) sees every op queued before it.
 *  - Deterministic: no floating-point atomics anywhere. Every reduction has a fixed
 *    order that depends only on the shapes (warp butterflies, block trees, per-chunk
 *    partials summed in chunk order), so the same inputs give the same bits run after
 *    run on the same GPU model. cuBLAS is deterministic on one stream with its default
 *    atomics mode (off).
 *  - Kernels mirror the CPU op of lib/ops/ line by line where they can (same formulas,
 *    same order of the elementwise updates); reductions differ in order only. */
#ifndef DR_CUDA_COMMON_CUH
#define DR_CUDA_COMMON_CUH

#ifdef DR_DOUBLE
#error "the CUDA backend is float-only: build lib/cuda/*.cu with PRECISION=float (lib/cuda/cuda.mk)"
#endif

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "backend.h"
}
#include "cuda/backend_cuda.h"

/* lib/check.c: "progname: file:line: message", removes registered temp files, exit(1).
 * (check.h itself is C-only: <stdnoreturn.h>.) */
extern "C" [[noreturn]] void dr_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* lib/progress.c: monotonic seconds */
extern "C" double dr_now(void);

static_assert(sizeof(real) == sizeof(float), "the CUDA backend is float-only");

#define cudaCheck(call)                                                                   \
    do {                                                                                  \
        cudaError_t e_ = (call);                                                          \
        if (e_ != cudaSuccess)                                                            \
            dr_fail_at(__FILE__, __LINE__, "CUDA error %s (%s) in %s", cudaGetErrorName(e_), \
                       cudaGetErrorString(e_), #call);                                    \
    } while (0)

#define cublasCheck(call)                                                                 \
    do {                                                                                  \
        cublasStatus_t s_ = (call);                                                       \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                  \
            dr_fail_at(__FILE__, __LINE__, "cuBLAS error %s in %s", cublasGetStatusString(s_), \
                       #call);                                                            \
    } while (0)

/* After every kernel launch: a bad configuration fails here, at its line. */
#define cudaLaunchCheck() cudaCheck(cudaGetLastError())

/* ---- context (context.cu) ----------------------------------------------------------- */

/* The cuBLAS handle (created by backend_cuda_get, or lazily). */
cublasHandle_t cu_blas(void);

/* Device scratch: slot `slot` holds at least `bytes` (grown on demand, never shrunk;
 * growing waits for the device first). Valid until the next call with the same slot;
 * ops are stream-ordered, so one op's scratch is free for the next op. */
enum {
    CU_SCR_PTRS = 0,     /* pointer arrays of batched GEMMs                       */
    CU_SCR_ATT_A,        /* [B,NH,T,T] attention dS / a forward-tangent Ṗ          */
    CU_SCR_ATT_B,        /* [B,NH,T,T] attention dṠ                               */
    CU_SCR_ATT_P,        /* [B,NH,T,T] flash mode, only for a backward tangent given
                          * tqkv without tatt: P rematerialized (attention.cu)      */
    CU_SCR_ROWS,         /* per-row values: CE row losses, LN row statistics, flash
                          * attention's D (and Ḋ) [B,NH,T]                         */
    CU_SCR_PARTIAL,      /* per-chunk partial column sums                         */
    CU_SCR_REDUCE,       /* vec reductions: block partials + result               */
    CU_SCR_BF16_A,       /* bf16 copies of GEMM operands (≤ cu_bf16_chunk_bytes)   */
    CU_SCR_BF16_B,
    CU_SCR_GEMM_OUT,     /* bf16 products with a wide misaligned C (gemm.cu): the fp32
                          * output [rows, N rounded up to 64] before its copy into C
                          * (≤ 2 · cu_bf16_chunk_bytes)                            */
    CU_SCR_INDEX,        /* embedding backward: token-sorted rows and runs         */
    CU_SCR_ONES,         /* a vector of ones (column sums by GEMV)                */
    CU_SCR_WEIGHTS,      /* weights op: double work arrays                        */
    CU_SCR_COUNT
};
void *cu_scratch(int slot, size_t bytes);

/* Host scratch (embedding backward's counting sort), grown on demand. */
void *cu_host_scratch(int slot, size_t bytes);
enum { CU_HSCR_TOKENS = 0, CU_HSCR_INDEX, CU_HSCR_COUNT_, CU_HSCR_N };

/* GEMM arithmetic of cu_gemm and cu_gemm_bh (backend_cuda_set_gemm_precision; env
 * DR_CUDA_GEMM), and the largest bf16 operand copy (backend_cuda_set_bf16_chunk_bytes). */
enum cu_gemm_mode { CU_GEMM_FP32 = 0, CU_GEMM_TF32 = 1, CU_GEMM_BF16 = 2 };
int cu_gemm_mode(void);
size_t cu_bf16_chunk_bytes(void);
int cu_bh_pointers(void); /* 1 when DR_CUDA_BH_POINTERS=1 (or set so): no strided batched calls */
int cu_ksum(void);         /* 0 when DR_CUDA_NO_KSUM=1 (or set so): the tangents' products apart */
int cu_att_blocks(void);   /* 1 when DR_CUDA_ATT_BLOCKS=1 (or set so): causal attention in blocks */
int cu_att_flash(void);    /* 1 when DR_CUDA_ATT_FLASH=1 (or set so): flash attention where eligible */
int cu_bias_k(void);       /* 0 when DR_CUDA_NO_BIAS_K=1 (or set so): bias rows filled before products */
int cu_copy_vec4(void);    /* 0 when DR_CUDA_NO_COPY_VEC4=1 (or set so): padded copies a value a thread */

/* The GEMM profile (backend_cuda_profile): t = cu_prof_begin() before a part of a product,
 * cu_prof_end(category, t, flops) after it; both do nothing while the profile is off. */
enum { CU_PROF_COPY, CU_PROF_GEMM, CU_PROF_OUT_COPY, CU_PROF_BH_COPY, CU_PROF_BH_GEMM,
       CU_PROF_OTHER, CU_PROF_N };   /* OUT_COPY: the padded-output copy-back (gemm.cu) */
double cu_prof_begin(void);
void cu_prof_end(int category, double t0, double flops);
/* cu_prof_end for a product C[M,N] = op(A)·op(B) over K (count of them, batched): also
 * kept by shape, so that the print shows which shapes take the time */
void cu_prof_end_gemm(int category, double t0, int ta, int tb, int M, int N, int K, int count);

/* ---- GEMMs (gemm.cu) ------------------------------------------------------------------
 * Row-major C[M,N] = alpha·op(A)·op(B) + beta·C as lib/ops/cpu_util.h's ops_gemm:
 * A is [M,K] (or [K,M] when ta), B is [K,N] (or [N,K] when tb), leading dimensions in
 * elements. K = 0 gives C = beta·C. cu_gemm follows the selected precision (fp32, tf32,
 * bf16); cu_gemm_fp32 is always fp32. */
void cu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);
void cu_gemm_fp32(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc);

/* One cu_gemm call's arguments. cu_gemm_run(g) is cu_gemm on them. cu_gemm_pair(g1, g2, X)
 * runs g1 then g2 where X is an operand (A or B) of each: in bf16 mode, when both run as
 * single products (no blocks, no padded output) and X's copy comes out the same for both
 * (shape, leading dimension and padding), X is rounded to bf16 once for both; the same
 * copies and cuBLAS calls as two cu_gemm calls, so the same bits. Otherwise it is two
 * cu_gemm calls. */
struct CuGemm {
    int ta, tb, M, N, K;
    float alpha;
    const float *A;
    int lda;
    const float *B;
    int ldb;
    float beta;
    float *C;
    int ldc;
    /* C's rows have room for this many columns (0: N): the columns from N on may be
     * overwritten. bf16 mode then runs a wide N that is not a multiple of 8 (the LM
     * head's x·Eᵀ over V) as a product over N rounded up to 64 straight into C, when
     * that fits, instead of through a dense scratch and a copy (gemm.cu). */
    int n_room;
};
void cu_gemm_run(const CuGemm *g);
void cu_gemm_pair(const CuGemm *g1, const CuGemm *g2, const float *X);

/* cu_gemm_ksum(g1, g2, h1, h2): g1 then g2 into the same C (g2 with beta 1: C = g1.beta·C
 * + alpha·(op(A1)·op(B1) + op(A2)·op(B2))), then h1 and h2 when not NULL, where h_i takes
 * g_i's A as one of its operands. In bf16 mode, when g1 and g2 agree in output, shape,
 * transposes and alpha and each is a single product, they run as one product over the
 * concatenated contraction K1 + K2 (the same bf16 roundings; one fp32 accumulation, so
 * not the same bits as two products): the forward tangent's tinp·W + inp·tW and the
 * backward tangent's dtout·Wᵀ + dout·tWᵀ, whose K = 512 products run at half the rate of
 * longer ones (docs/cuda.md). When the two A operands lie side by side in that copy (ta =
 * 0) and each h_i is a single product taking its A_i stored the same way, h_i reads
 * A_i's half of the copy instead of making its own (the backward tangent's dtW products
 * share dtout's and dout's copies so). Otherwise it is the cu_gemm calls in that order. */
void cu_gemm_ksum(const CuGemm *g1, const CuGemm *g2, const CuGemm *h1, const CuGemm *h2);

/* cu_gemm_bias(g, bias): C = op(A)·B + bias in every row, for g with alpha 1, beta 0, A
 * stored [M, K] (ta = 0) and B stored [K, N] (tb = 0): in bf16 mode as one product over
 * K + 2, A's copy with two columns of ones and B's with two rows carrying the bias (its
 * bf16 rounding, then the bf16 rounding of what that left: about 16 bits of it), so C is
 * written once instead of filled, then read and written by a product with beta 1. Returns
 * 0, having done nothing, where that does not apply (another mode, another layout, a
 * blocked or padded-output product, DR_CUDA_NO_BIAS_K=1): the caller fills and adds. */
int cu_gemm_bias(const CuGemm *g, const float *bias);
/* The same for cu_gemm_ksum's one product (g1 with beta 0 and alpha 1, both ta = tb = 0):
 * C = op(A1)·B1 + op(A2)·B2 + bias over K1p + K2p + 8, the ones and the bias's two rows
 * in an 8-wide block after the two (the forward tangent's tout = tinp·W + inp·tW + tb).
 * 0, having done nothing, where the one product or the bias term does not apply. */
int cu_gemm_ksum_bias(const CuGemm *g1, const CuGemm *g2, const float *bias);

/* The same product for every (b, h) of a [B, NH] grid of matrices, matrix (b, h) of X at
 * X.p + b·X.sb + h·X.sh with leading dimension X.ld (attention's per-head slices of qkv,
 * out and att). In the selected precision like cu_gemm: one cublasSgemmBatched (fp32),
 * one cublasGemmBatchedEx (tf32), or, in bf16, per block of examples two dense bf16
 * copies and one cublasGemmBatchedEx bf16 × bf16 → fp32. */
struct CuBHMat {
    const float *p;
    long long sb, sh;
    int ld;
};
void cu_gemm_bh(int ta, int tb, int M, int N, int K, float alpha, CuBHMat A, CuBHMat B,
                float beta, CuBHMat C, int nb, int nh);

/* A [B, NH] grid of matrices already in bf16 (element strides, leading dimension in
 * elements), and cu_gemm_bh's bf16 product with A given so: only B is copied (attention's
 * row kernels write their T×T results in bf16 next to the fp32 ones, which spares the
 * copy that would read them back: attention.cu). Needs the bf16 GEMM mode. */
struct CuBHMatH {
    const void *p;   /* __nv_bfloat16 */
    long long sb, sh;
    int ld;
};
void cu_gemm_bh_bf16a(int ta, int tb, int M, int N, int K, float alpha, CuBHMatH A, CuBHMat B,
                      float beta, CuBHMat C, int nb, int nh);

/* Two batched products into one C, C = beta·C + alpha·(op(A1)·op(B1) + op(A2)·op(B2)),
 * contractions K1 and K2. cu_gemm_bh_ksum: in bf16 mode one batched product over the
 * copies of A1, A2 and of B1, B2 concatenated along K (side by side where K runs along a
 * stored row, else stacked), the same bf16 roundings; otherwise two cu_gemm_bh calls.
 * cu_gemm_bh_bf16a_ksum: A already in bf16 and K1 + K2 wide ([A1 | A2] side by side, or
 * stacked), B1 and B2 copied so; with interleave (K1 = K2, A stored [K, M] whose rows
 * alternate between A1's and A2's: a [T, 2T] matrix of rows [A1[t] | A2[t]] read with
 * leading dimension T), B's rows alternate the same way. Attention's tangents (Ṡ = Q̇Kᵀ +
 * QK̇ᵀ, dṖ = dȮVᵀ + dOV̇ᵀ, Ȯ = [Ṗ | P]·[V ; V̇], and the backward tangent's dQ̇, dK̇, dV̇):
 * C is written once instead of written, read and written again. */
void cu_gemm_bh_ksum(int ta, int tb, int M, int N, int K1, int K2, float alpha, CuBHMat A1,
                     CuBHMat B1, CuBHMat A2, CuBHMat B2, float beta, CuBHMat C, int nb, int nh);
void cu_gemm_bh_bf16a_ksum(int ta, int tb, int M, int N, int K1, int K2, float alpha, CuBHMatH A,
                           CuBHMat B1, CuBHMat B2, int interleave, float beta, CuBHMat C, int nb,
                           int nh);

/* db[OC] += Σ_n d[n, :] (row-major d [N, OC], rows ld ≥ OC apart): one GEMV against
 * ones, fixed order. */
void cu_column_sum_add(float *db, const float *d, int N, int OC, int ld);

/* ---- launch helpers and reductions --------------------------------------------------- */

#define CU_THREADS 256

/* Blocks for a grid-stride loop over n elements (capped: the loop covers the rest). */
static inline unsigned cu_blocks(size_t n, int threads = CU_THREADS) {
    size_t b = (n + (size_t)threads - 1) / (size_t)threads;
    if (b < 1) b = 1;
    if (b > 65535u * 16u) b = 65535u * 16u;
    return (unsigned)b;
}

/* valid_len[b] clamped to [0, T]; NULL means T (lib/ops/cpu_util.h ops_valid). */
__device__ __forceinline__ int cu_valid(const int32_t *valid_len, int b, int T) {
    if (!valid_len) return T;
    int L = valid_len[b];
    return L < 0 ? 0 : L > T ? T : L;
}

/* Butterfly reductions: every lane ends with the same value (float + is commutative, so
 * lane i and lane i^m add the same two numbers), and the order is fixed. */
__device__ __forceinline__ float cu_warp_sum(float v) {
    for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}
__device__ __forceinline__ double cu_warp_sum_d(double v) {
    for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}
__device__ __forceinline__ float cu_warp_max(float v) {
    for (int m = 16; m > 0; m >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, m));
    return v;
}

/* Sum over a block of blockDim.x threads (a multiple of 32, ≤ 1024); every thread gets
 * the result. shared: 32 floats. Fixed order: warps, then the warp sums in warp order. */
__device__ __forceinline__ float cu_block_sum(float v, float *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = cu_warp_sum(v);
    __syncthreads();                       /* shared may hold a previous reduction */
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float s = lane < nwarps ? shared[lane] : 0.0f;
    return cu_warp_sum(s);
}
__device__ __forceinline__ float cu_block_max(float v, float *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = cu_warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float s = lane < nwarps ? shared[lane] : -INFINITY;
    return cu_warp_max(s);
}

#endif
