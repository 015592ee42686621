/* cpu_util.h — shared plumbing of the CPU ops (lib/ops/): the GEMM wrapper that
 * splits one product over the OpenMP threads, per-thread scratch, thread ranges.
 * Internal to the CPU backend; model code never includes it. */
#ifndef DR_OPS_CPU_UTIL_H
#define DR_OPS_CPU_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include "real.h"

/* Row-major C[M,N] = alpha·op(A)·op(B) + beta·C, op(X) = Xᵀ when trans_x.
 * A is [M,K] (or [K,M] when trans_a), B is [K,N] (or [N,K] when trans_b).
 * ops_gemm splits the rows (or columns) of C over the OpenMP threads, each thread calling
 * single-threaded BLAS on its block: every element is computed by one thread, so the
 * result depends only on the thread count. ops_gemm_serial is the plain BLAS call, for
 * use inside a parallel region (attention's per-(b,h) products). */
void ops_gemm(int trans_a, int trans_b, int M, int N, int K, real alpha,
              const real *A, int lda, const real *B, int ldb, real beta, real *C, int ldc);
void ops_gemm_serial(int trans_a, int trans_b, int M, int N, int K, real alpha,
                     const real *A, int lda, const real *B, int ldb, real beta,
                     real *C, int ldc);

/* OpenBLAS runs single-threaded: all parallelism is OpenMP's (called once, lazily). */
void ops_blas_init(void);

/* Per-thread scratch buffer `slot` (0..OPS_SCRATCH_SLOTS-1) of at least n reals; grows on
 * demand and is kept for the thread's lifetime (no malloc per call in hot paths). */
#define OPS_SCRATCH_SLOTS 4
real *ops_scratch(int slot, size_t n);

/* The contiguous share [*lo, *hi) of [0, n) of the calling thread in a parallel region. */
static inline void ops_thread_range(size_t n, int tid, int nthreads, size_t *lo, size_t *hi) {
    size_t chunk = (n + (size_t)nthreads - 1) / (size_t)nthreads;
    *lo = chunk * (size_t)tid;
    if (*lo > n) *lo = n;
    *hi = *lo + chunk < n ? *lo + chunk : n;
}

/* valid_len[b] clamped to [0, T]; NULL means T. */
static inline int ops_valid(const int32_t *valid_len, int b, int T) {
    if (!valid_len) return T;
    int L = valid_len[b];
    return L < 0 ? 0 : L > T ? T : L;
}

/* Below this many elements the elementwise ops stay on one thread. */
#define OPS_PAR_MIN 8192

#endif
