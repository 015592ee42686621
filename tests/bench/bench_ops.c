/* bench_ops.c — throughput of the CPU ops at LM-training shapes (prints numbers, never
 * pass/fail). The reference is plain SGEMM: OpenBLAS with its own threads, measured first
 * (the backend later switches OpenBLAS to one thread and splits GEMMs over OpenMP itself),
 * then the ops at the shapes of one GPT-2 block: B·T = 16·256 rows, d = 256, 4 heads. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "ops/cpu_ops.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
static real *rnd(size_t n) {
    real *x = xmalloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) x[i] = (real)((rand() / (double)RAND_MAX - 0.5) * 0.2);
    return x;
}

/* seconds per call: the best of 10 repetitions after one warm-up call (the minimum
 * filters out preemption on a shared machine) */
#define TIME_IT(secs, stmt)                                                    \
    do {                                                                       \
        stmt;                                                                  \
        double best_ = 1e30;                                                   \
        for (int r_ = 0; r_ < 10; r_++) {                                       \
            double t0_ = now();                                                \
            stmt;                                                              \
            double dt_ = now() - t0_;                                          \
            best_ = dt_ < best_ ? dt_ : best_;                                 \
        }                                                                      \
        (secs) = best_;                                                        \
    } while (0)

int main(void) {
    int B = 16, T = 256, C = 256, NH = 4, V = 256, N = B * T;
    double s, flops;
    printf("bench_ops (%s): %d OpenMP threads, OpenBLAS default %d threads\n", REAL_NAME,
           omp_get_max_threads(), openblas_get_num_threads());

    real *x = rnd((size_t)N * C), *w = rnd((size_t)C * 3 * C), *y = rnd((size_t)N * 4 * C);
    flops = 2.0 * N * C * 3 * C;
    TIME_IT(s, cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, 3 * C, C, 1, x, C, w, 3 * C, 0, y, 3 * C));
    double ref = flops / s * 1e-9;
    printf("sgemm_openblas_threads   [%d,%d]x[%d,%d]  %8.2f GFLOP/s\n", N, C, C, 3 * C, ref);

    TIME_IT(s, matmul_forward(y, x, w, NULL, N, C, 3 * C, MATMUL_W_C_OC, 3 * C));
    printf("matmul_forward           [%d,%d]x[%d,%d]  %8.2f GFLOP/s  %.2f of sgemm\n", N, C, C, 3 * C,
           flops / s * 1e-9, flops / s * 1e-9 / ref);
    TIME_IT(s, cblas_gemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, 3 * C, C, 1, x, C, w, 3 * C, 0, y, 3 * C));
    printf("sgemm_single_thread      [%d,%d]x[%d,%d]  %8.2f GFLOP/s\n", N, C, C, 3 * C, flops / s * 1e-9);

    real *dx = rnd((size_t)N * C), *dw = rnd((size_t)C * 3 * C), *db = rnd(3 * C);
    TIME_IT(s, matmul_backward(dx, dw, db, y, x, w, N, C, 3 * C, MATMUL_W_C_OC, 3 * C));
    printf("matmul_backward          dinp+dW+db        %8.2f GFLOP/s  %.2f of sgemm\n",
           2 * flops / s * 1e-9, 2 * flops / s * 1e-9 / ref);
    real *tw = rnd((size_t)C * 3 * C);
    TIME_IT(s, matmul_forward_tangent(y, x, dx, w, tw, NULL, N, C, 3 * C, MATMUL_W_C_OC, 3 * C));
    printf("matmul_forward_tangent   2 GEMMs           %8.2f GFLOP/s\n", 2 * flops / s * 1e-9);

    real *wte = rnd((size_t)V * C);
    double fl = 2.0 * N * C * V;
    TIME_IT(s, matmul_forward(y, x, wte, NULL, N, C, V, MATMUL_W_OC_C, V));
    printf("matmul_forward tied head [%d,%d]x[%d,%d]ᵀ %8.2f GFLOP/s\n", N, C, V, C, fl / s * 1e-9);

    /* attention: QKᵀ and PV, 2·B·NH·T·T·hs each (causal: half of it useful) */
    real *qkv = rnd((size_t)N * 3 * C), *att = rnd((size_t)B * NH * T * T), *out = rnd((size_t)N * C);
    real *dqkv = rnd((size_t)N * 3 * C), *tatt = rnd((size_t)B * NH * T * T);
    double afl = 4.0 * B * NH * T * T * (C / NH);
    TIME_IT(s, attention_forward(out, att, qkv, NULL, 1, B, T, C, NH));
    printf("attention_forward        B%d T%d C%d NH%d %8.2f GFLOP/s  %.2f ms\n", B, T, C, NH, afl / s * 1e-9, s * 1e3);
    TIME_IT(s, attention_backward(dqkv, out, qkv, att, NULL, 1, B, T, C, NH));
    printf("attention_backward                         %8.2f GFLOP/s  %.2f ms\n", 2 * afl / s * 1e-9, s * 1e3);
    TIME_IT(s, attention_forward_tangent(out, tatt, qkv, dqkv, att, NULL, 1, B, T, C, NH));
    printf("attention_forward_tangent                  %8.2f GFLOP/s  %.2f ms\n", 2 * afl / s * 1e-9, s * 1e3);
    TIME_IT(s, attention_backward_tangent(dqkv, out, out, qkv, qkv, att, tatt, NULL, 1, B, T, C, NH));
    printf("attention_backward_tangent                 %8.2f GFLOP/s  %.2f ms\n", 4 * afl / s * 1e-9, s * 1e3);

    real *mean = rnd(N), *rstd = rnd(N), *lw = rnd(C), *lb = rnd(C);
    TIME_IT(s, layernorm_forward(y, mean, rstd, x, lw, lb, N, C));
    printf("layernorm_forward        [%d,%d]          %8.2f ms\n", N, C, s * 1e3);
    TIME_IT(s, layernorm_backward(dx, lw, lb, y, x, lw, mean, rstd, N, C));
    printf("layernorm_backward                         %8.2f ms\n", s * 1e3);
    TIME_IT(s, gelu_forward(y, x, (size_t)N * C));
    printf("gelu_forward             [%d,%d]          %8.2f ms\n", N, C, s * 1e3);

    real *logits = rnd((size_t)N * V), *probs = rnd((size_t)N * V), *losses = rnd(B), *dl = rnd(B);
    int32_t *tg = xmalloc((size_t)N * sizeof(int32_t));
    for (int i = 0; i < N; i++) tg[i] = i % V;
    TIME_IT(s, crossentropy_forward(losses, probs, logits, tg, NULL, B, T, V, V));
    printf("crossentropy_forward     [%d,%d]          %8.2f ms\n", N, V, s * 1e3);
    TIME_IT(s, crossentropy_backward(logits, probs, tg, NULL, dl, B, T, V, V));
    printf("crossentropy_backward                      %8.2f ms\n", s * 1e3);
    return 0;
}
