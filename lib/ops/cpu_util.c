/* cpu_util.c — GEMM partitioned over OpenMP threads, per-thread scratch (see cpu_util.h).
 * Must never call multi-threaded BLAS from inside an OpenMP region: OpenBLAS is set to
 * one thread once, and every op decides its own parallel split. */
#include "cpu_util.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>

#include "check.h"

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_single_thread(void) { openblas_set_num_threads(1); }
void ops_blas_init(void) { pthread_once(&blas_once, blas_single_thread); }

void ops_gemm_serial(int trans_a, int trans_b, int M, int N, int K, real alpha,
                     const real *A, int lda, const real *B, int ldb, real beta,
                     real *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  /* empty sum: C = beta·C */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_gemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
               trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void ops_gemm(int trans_a, int trans_b, int M, int N, int K, real alpha,
              const real *A, int lda, const real *B, int ldb, real beta, real *C, int ldc) {
    ops_blas_init();
    int P = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (P <= 1 || (double)M * N * K < (double)(1 << 18)) {
        ops_gemm_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int split_rows = M >= N;
    int extent = split_rows ? M : N;
    int chunk = (extent + P - 1) / P;
    chunk = (chunk + 15) / 16 * 16;  /* whole register blocks for the BLAS kernels */
    int nblocks = (extent + chunk - 1) / chunk;
    #pragma omp parallel for num_threads(P) schedule(static, 1)
    for (int p = 0; p < nblocks; p++) {
        int i0 = p * chunk, len = extent - i0 < chunk ? extent - i0 : chunk;
        if (split_rows)
            ops_gemm_serial(trans_a, trans_b, len, N, K, alpha,
                            trans_a ? A + i0 : A + (size_t)i0 * lda, lda, B, ldb, beta,
                            C + (size_t)i0 * ldc, ldc);
        else
            ops_gemm_serial(trans_a, trans_b, M, len, K, alpha, A, lda,
                            trans_b ? B + (size_t)i0 * ldb : B + i0, ldb, beta, C + i0, ldc);
    }
}

static _Thread_local real *scratch_buf[OPS_SCRATCH_SLOTS];
static _Thread_local size_t scratch_cap[OPS_SCRATCH_SLOTS];

real *ops_scratch(int slot, size_t n) {
    CHECK(slot >= 0 && slot < OPS_SCRATCH_SLOTS, "bad scratch slot %d", slot);
    if (n > scratch_cap[slot]) {
        free(scratch_buf[slot]);
        size_t cap = n + n / 4 + 64;
        void *p = NULL;
        CHECK(posix_memalign(&p, 64, cap * sizeof(real)) == 0, "out of memory (%zu bytes)",
              cap * sizeof(real));
        scratch_buf[slot] = p;
        scratch_cap[slot] = cap;
    }
    return scratch_buf[slot];
}
