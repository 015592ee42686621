/* matmul.c — linear layer with bias, out = inp @ W + b, and its three derivative faces.
 * W is [C, OC] (GPT-2 Conv1D layout, MATMUL_W_C_OC) or [OC, C] (MATMUL_W_OC_C, the tied
 * token embedding used as the LM head). Every product is a BLAS GEMM split over the
 * OpenMP threads (ops_gemm); the tangent faces accumulate their two products into one
 * output with beta = 1. The input cotangent's first product writes it (beta = 0: the
 * one exception to "backward accumulates", backend.h); the weight and bias gradients
 * accumulate. The bias gradient is a column sum, each thread owning a range of
 * columns, so nothing races and the bits depend only on the thread count. Rows of out,
 * dout, tout and dtout are ldo ≥ OC apart (the LM's logits: backend.h); the columns
 * past OC are neither read nor written here. */
#include <omp.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"
#include "cpu_util.h"

/* out[N,OC] (rows ldo apart) = x[N,C] @ W + beta·out */
static void x_times_w(real *out, const real *x, const real *w, int N, int C, int OC,
                      int w_layout, real beta, int ldo) {
    if (w_layout == MATMUL_W_OC_C) ops_gemm(0, 1, N, OC, C, 1, x, C, w, C, beta, out, ldo);
    else                           ops_gemm(0, 0, N, OC, C, 1, x, C, w, OC, beta, out, ldo);
}

/* dx[N,C] = d[N,OC] (rows ldo apart) @ Wᵀ + beta·dx */
static void d_times_wt(real *dx, const real *d, const real *w, int N, int C, int OC,
                       int w_layout, real beta, int ldo) {
    if (w_layout == MATMUL_W_OC_C) ops_gemm(0, 0, N, C, OC, 1, d, ldo, w, C, beta, dx, C);
    else                           ops_gemm(0, 1, N, C, OC, 1, d, ldo, w, OC, beta, dx, C);
}

/* dW += x[N,C]ᵀ @ d[N,OC] (rows ldo apart; in W's layout) */
static void xt_times_d(real *dw, const real *x, const real *d, int N, int C, int OC,
                       int w_layout, int ldo) {
    if (w_layout == MATMUL_W_OC_C) ops_gemm(1, 0, OC, C, N, 1, d, ldo, x, C, 1, dw, C);
    else                           ops_gemm(1, 0, C, OC, N, 1, x, C, d, ldo, 1, dw, OC);
}

/* db[OC] += Σ_n d[n,:] (rows ldo apart) */
static void column_sum(real *db, const real *d, int N, int OC, int ldo) {
    #pragma omp parallel if ((size_t)N * OC > OPS_PAR_MIN)
    {
        size_t lo, hi;
        ops_thread_range((size_t)OC, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int n = 0; n < N; n++) {
            const real *row = d + (size_t)n * ldo;
            for (size_t o = lo; o < hi; o++) db[o] += row[o];
        }
    }
}

/* out[n,:] = b (or 0), rows ldo apart: the start of out = … + b computed with beta = 1 */
static void fill_rows(real *out, const real *b, int N, int OC, int ldo) {
    #pragma omp parallel for if ((size_t)N * OC > OPS_PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        if (b) memcpy(out + (size_t)n * ldo, b, (size_t)OC * sizeof(real));
        else   memset(out + (size_t)n * ldo, 0, (size_t)OC * sizeof(real));
    }
}

void matmul_forward(real *out /*[N,OC]*/, const real *inp /*[N,C]*/,
                    const real *w /*[C,OC] or [OC,C]*/, const real *bias /*[OC] or NULL*/,
                    int N, int C, int OC, int w_layout, int ldo) {
    CHECK(ldo >= OC, "matmul_forward: row stride %d < OC %d", ldo, OC);
    if (bias) fill_rows(out, bias, N, OC, ldo);
    x_times_w(out, inp, w, N, C, OC, w_layout, bias ? 1 : 0, ldo);
}

/* dinp = dout Wᵀ (written); dW += inpᵀ dout; dbias += Σ_n dout */
void matmul_backward(real *dinp /*[N,C] or NULL*/, real *dw /*like w, or NULL*/,
                     real *dbias /*[OC] or NULL*/, const real *dout /*[N,OC]*/,
                     const real *inp /*[N,C]*/, const real *w /*[C,OC] or [OC,C]*/,
                     int N, int C, int OC, int w_layout, int ldo) {
    CHECK(ldo >= OC, "matmul_backward: row stride %d < OC %d", ldo, OC);
    if (dinp) d_times_wt(dinp, dout, w, N, C, OC, w_layout, 0, ldo);
    if (dw) xt_times_d(dw, inp, dout, N, C, OC, w_layout, ldo);
    if (dbias) column_sum(dbias, dout, N, OC, ldo);
}

/* tout = tinp W + inp tW + tb */
void matmul_forward_tangent(real *tout /*[N,OC]*/, const real *inp /*[N,C]*/,
                            const real *tinp /*[N,C] or NULL*/, const real *w /*like w*/,
                            const real *tw /*like w, or NULL*/, const real *tbias /*[OC] or NULL*/,
                            int N, int C, int OC, int w_layout, int ldo) {
    CHECK(ldo >= OC, "matmul_forward_tangent: row stride %d < OC %d", ldo, OC);
    fill_rows(tout, tbias, N, OC, ldo);
    if (tinp) x_times_w(tout, tinp, w, N, C, OC, w_layout, 1, ldo);
    if (tw) x_times_w(tout, inp, tw, N, C, OC, w_layout, 1, ldo);
}

/* dtinp = dtout Wᵀ + dout tWᵀ (written);  dtW += tinpᵀ dout + inpᵀ dtout;  dtb += Σ_n dtout */
void matmul_backward_tangent(real *dtinp /*[N,C] or NULL*/, real *dtw /*like w, or NULL*/,
                             real *dtbias /*[OC] or NULL*/, const real *dout /*[N,OC]*/,
                             const real *dtout /*[N,OC] or NULL*/, const real *inp /*[N,C]*/,
                             const real *tinp /*[N,C] or NULL*/, const real *w /*like w*/,
                             const real *tw /*like w, or NULL*/, int N, int C, int OC,
                             int w_layout, int ldo) {
    CHECK(ldo >= OC, "matmul_backward_tangent: row stride %d < OC %d", ldo, OC);
    if (dtinp) {
        if (dtout) d_times_wt(dtinp, dtout, w, N, C, OC, w_layout, 0, ldo);
        if (tw) d_times_wt(dtinp, dout, tw, N, C, OC, w_layout, dtout ? 1 : 0, ldo);
        if (!dtout && !tw) vec_zero(dtinp, (size_t)N * C);
    }
    if (dtw) {
        if (tinp) xt_times_d(dtw, tinp, dout, N, C, OC, w_layout, ldo);
        if (dtout) xt_times_d(dtw, inp, dtout, N, C, OC, w_layout, ldo);
    }
    if (dtbias && dtout) column_sum(dtbias, dtout, N, OC, ldo);
}
