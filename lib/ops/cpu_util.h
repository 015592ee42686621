/* cpu_util.h — shared plumbing of the CPU ops (lib/ops/): the GEMM wrapper that
 * splits one product over the OpenMP threads, per-thread scratch, thread ranges.
 * Internal to the CPU backend; model code never includes it. */
#ifndef DR_OPS_CPU_UTIL_H
#define DR_OPS_CPU_UTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
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

/* exp and tanh of the hot loops (softmax rows, cross-entropy, GELU). The double build,
 * which the gradient checks use, calls libm. The float build uses branch-free forms
 * that GCC vectorizes (glibc's scalar tanhf costs ~40 ns; no floorf or fminf, which
 * block vectorization without -ffast-math): exp by Cody–Waite range reduction and
 * Cephes' degree-6 polynomial (≤ 2 ulp on the clamped range, NaN
 * propagates), tanh by Eigen's 13/6 rational form (|error| ≤ 3e-7). */
#ifdef DR_DOUBLE
static inline real ops_exp(real x) { return exp(x); }
static inline real ops_tanh(real x) { return tanh(x); }
#else
static inline float ops_exp(float x0) {
    float x = x0 < 88.0f ? x0 : 88.0f;  /* 2^n stays a normal float; NaN passes */
    x = x > -87.3f ? x : -87.3f;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round(x/ln2) */
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;  /* x − n·ln2, ln2 split in two */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;  /* the float 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale + (x0 - x0);  /* + NaN when x0 is NaN, else + 0 */
}
static inline float ops_tanh(float x0) {
    float x = x0 < 7.90531110763549805f ? x0 : 7.90531110763549805f;
    x = x > -7.90531110763549805f ? x : -7.90531110763549805f;
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q + (x0 - x0);
}
#endif

/* Row reductions in 16 interleaved lanes, combined in lane order: GCC vectorizes them
 * without -ffast-math and the order (hence the bits) is fixed. */
#define OPS_LANES 16
static inline real ops_row_max(const real *x, int n) {
    if (n < OPS_LANES) {
        real m = x[0];
        for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
        return m;
    }
    real acc[OPS_LANES];
    for (int k = 0; k < OPS_LANES; k++) acc[k] = x[k];
    int i = OPS_LANES;
    for (; i + OPS_LANES <= n; i += OPS_LANES)
        for (int k = 0; k < OPS_LANES; k++) acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
    real m = acc[0];
    for (int k = 1; k < OPS_LANES; k++) m = acc[k] > m ? acc[k] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}
static inline real ops_row_sum(const real *x, int n) {
    real acc[OPS_LANES] = {0};
    int i = 0;
    for (; i + OPS_LANES <= n; i += OPS_LANES)
        for (int k = 0; k < OPS_LANES; k++) acc[k] += x[i + k];
    real s = 0;
    for (int k = 0; k < OPS_LANES; k++) s += acc[k];
    for (; i < n; i++) s += x[i];
    return s;
}
static inline real ops_row_dot(const real *x, const real *y, int n) {
    real acc[OPS_LANES] = {0};
    int i = 0;
    for (; i + OPS_LANES <= n; i += OPS_LANES)
        for (int k = 0; k < OPS_LANES; k++) acc[k] += x[i + k] * y[i + k];
    real s = 0;
    for (int k = 0; k < OPS_LANES; k++) s += acc[k];
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}
/* p[i] = exp(x[i] − shift) (p may be x: softmax in place); returns Σ p[i]. */
static inline real ops_row_exp(real *p, const real *x, real shift, int n) {
    if (p == x) {
        for (int i = 0; i < n; i++) p[i] = ops_exp(p[i] - shift);
    } else {
        real *restrict pr = p;
        const real *restrict xr = x;
        for (int i = 0; i < n; i++) pr[i] = ops_exp(xr[i] - shift);
    }
    return ops_row_sum(p, n);
}

/* Below this many elements the elementwise ops stay on one thread. */
#define OPS_PAR_MIN 8192

#endif
