/* layernorm.c — LayerNorm over the last axis (eps 1e-5, biased variance) and its
 * derivatives up to the tangent of the backward (the Hessian-vector product needs it).
 *
 * Per row: x̂ = (x − μ)σ with σ = rstd = 1/sqrt(var + eps); y = x̂ ⊙ w + b.
 * The Jacobian of x ↦ x̂ is J = σ(I − 11ᵀ/C − x̂x̂ᵀ/C), symmetric, so
 *   backward:         dx = J (dy ⊙ w)  = σ(g − mean(g) − x̂ mean(x̂ g)),  g = dy ⊙ w
 *   forward tangent:  x̂̇ = J ẋ         = σ(ẋ − mean(ẋ) − x̂ a),           a = mean(x̂ ẋ)
 *                     ẏ = x̂̇ ⊙ w + x̂ ⊙ ẇ + ḃ
 * and, with σ̇ = −σ² a and ġ = dẏ ⊙ w + dy ⊙ ẇ, the tangent of the backward is
 *   dẋ = −σ a · dx + σ(ġ − mean(ġ) − x̂̇ mean(x̂ g) − x̂ (mean(x̂̇ g) + mean(x̂ ġ)))
 *   dẇ = Σ_rows (dẏ ⊙ x̂ + dy ⊙ x̂̇),   dḃ = Σ_rows dẏ.
 * Row quantities run in parallel over rows; the parameter gradients (sums over rows) in
 * parallel over channel ranges, so they never race and are deterministic. */
#include <omp.h>
#include <stdlib.h>

#include "check.h"
#include "cpu_ops.h"
#include "cpu_util.h"

#define LN_EPS 1e-5

void layernorm_forward(real *out /*[N,C]*/, real *mean /*[N] or NULL*/, real *rstd /*[N] or NULL*/,
                       const real *inp /*[N,C]*/, const real *w /*[C]*/, const real *b /*[C]*/,
                       int N, int C) {
    #pragma omp parallel for if ((size_t)N * C > OPS_PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        real *y = out + (size_t)n * C;
        real mu = 0;
        for (int c = 0; c < C; c++) mu += x[c];
        mu /= C;
        real var = 0;
        for (int c = 0; c < C; c++) { real d = x[c] - mu; var += d * d; }
        var /= C;
        real s = 1 / SQRT(var + (real)LN_EPS);
        for (int c = 0; c < C; c++) y[c] = (x[c] - mu) * s * w[c] + b[c];
        if (mean) mean[n] = mu;
        if (rstd) rstd[n] = s;
    }
}

/* dw[c] += Σ_n dy x̂ and db[c] += Σ_n dy, each thread owning a range of channels */
static void param_grads(real *dw, real *db, const real *dout, const real *inp,
                        const real *mean, const real *rstd, int N, int C) {
    #pragma omp parallel if ((size_t)N * C > OPS_PAR_MIN)
    {
        size_t lo, hi;
        ops_thread_range((size_t)C, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int n = 0; n < N; n++) {
            const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            real mu = mean[n], s = rstd[n];
            if (dw) for (size_t c = lo; c < hi; c++) dw[c] += dy[c] * (x[c] - mu) * s;
            if (db) for (size_t c = lo; c < hi; c++) db[c] += dy[c];
        }
    }
}

void layernorm_backward(real *dinp /*[N,C] or NULL*/, real *dw /*[C] or NULL*/,
                        real *db /*[C] or NULL*/, const real *dout /*[N,C]*/,
                        const real *inp /*[N,C]*/, const real *w /*[C]*/,
                        const real *mean /*[N]*/, const real *rstd /*[N]*/, int N, int C) {
    if (dinp) {
        #pragma omp parallel for if ((size_t)N * C > OPS_PAR_MIN) schedule(static)
        for (int n = 0; n < N; n++) {
            const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            real *dx = dinp + (size_t)n * C;
            real mu = mean[n], s = rstd[n];
            real mg = 0, mxg = 0;
            for (int c = 0; c < C; c++) {
                real g = dy[c] * w[c];
                mg += g;
                mxg += (x[c] - mu) * s * g;
            }
            mg /= C;
            mxg /= C;
            for (int c = 0; c < C; c++)
                dx[c] += s * (dy[c] * w[c] - mg - (x[c] - mu) * s * mxg);
        }
    }
    if (dw || db) param_grads(dw, db, dout, inp, mean, rstd, N, C);
}

void layernorm_forward_tangent(real *tout /*[N,C]*/, const real *inp /*[N,C]*/,
                               const real *tinp /*[N,C] or NULL*/, const real *w /*[C]*/,
                               const real *tw /*[C] or NULL*/, const real *tb /*[C] or NULL*/,
                               const real *mean /*[N]*/, const real *rstd /*[N]*/,
                               int N, int C) {
    #pragma omp parallel for if ((size_t)N * C > OPS_PAR_MIN) schedule(static)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        const real *xt = tinp ? tinp + (size_t)n * C : NULL;
        real *yt = tout + (size_t)n * C;
        real mu = mean[n], s = rstd[n];
        real mxt = 0, a = 0;
        if (xt) {
            for (int c = 0; c < C; c++) { mxt += xt[c]; a += (x[c] - mu) * s * xt[c]; }
            mxt /= C;
            a /= C;
        }
        for (int c = 0; c < C; c++) {
            real xh = (x[c] - mu) * s;
            real v = tb ? tb[c] : 0;
            if (xt) v += s * (xt[c] - mxt - xh * a) * w[c];
            if (tw) v += xh * tw[c];
            yt[c] = v;
        }
    }
}

void layernorm_backward_tangent(real *dtinp /*[N,C] or NULL*/, real *dtw /*[C] or NULL*/,
                                real *dtb /*[C] or NULL*/, const real *dout /*[N,C]*/,
                                const real *dtout /*[N,C] or NULL*/, const real *inp /*[N,C]*/,
                                const real *tinp /*[N,C] or NULL*/, const real *w /*[C]*/,
                                const real *tw /*[C] or NULL*/, const real *mean /*[N]*/,
                                const real *rstd /*[N]*/, int N, int C) {
    /* per row: mean(ẋ) and a = mean(x̂ ẋ), which define x̂̇ (zero when tinp is NULL) */
    real *row_mxt = NULL, *row_a = NULL;
    if (tinp) {
        row_mxt = xmalloc(2 * (size_t)N * sizeof(real));
        row_a = row_mxt + N;
        #pragma omp parallel for if ((size_t)N * C > OPS_PAR_MIN) schedule(static)
        for (int n = 0; n < N; n++) {
            const real *x = inp + (size_t)n * C, *xt = tinp + (size_t)n * C;
            real mu = mean[n], s = rstd[n], mxt = 0, a = 0;
            for (int c = 0; c < C; c++) { mxt += xt[c]; a += (x[c] - mu) * s * xt[c]; }
            row_mxt[n] = mxt / C;
            row_a[n] = a / C;
        }
    }
    if (dtinp) {
        #pragma omp parallel for if ((size_t)N * C > OPS_PAR_MIN) schedule(static)
        for (int n = 0; n < N; n++) {
            const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            const real *dyt = dtout ? dtout + (size_t)n * C : NULL;
            const real *xt = tinp ? tinp + (size_t)n * C : NULL;
            real *dxt = dtinp + (size_t)n * C;
            real mu = mean[n], s = rstd[n];
            real mxt = tinp ? row_mxt[n] : 0, a = tinp ? row_a[n] : 0;
            /* means over the row: g, x̂ g, ġ, x̂ ġ, x̂̇ g */
            real mg = 0, mxg = 0, mgt = 0, mxgt = 0, mxtg = 0;
            for (int c = 0; c < C; c++) {
                real xh = (x[c] - mu) * s;
                real g = dy[c] * w[c];
                real gt = (dyt ? dyt[c] * w[c] : 0) + (tw ? dy[c] * tw[c] : 0);
                real xht = xt ? s * (xt[c] - mxt - xh * a) : 0;
                mg += g; mxg += xh * g; mgt += gt; mxgt += xh * gt; mxtg += xht * g;
            }
            mg /= C; mxg /= C; mgt /= C; mxgt /= C; mxtg /= C;
            for (int c = 0; c < C; c++) {
                real xh = (x[c] - mu) * s;
                real g = dy[c] * w[c];
                real gt = (dyt ? dyt[c] * w[c] : 0) + (tw ? dy[c] * tw[c] : 0);
                real xht = xt ? s * (xt[c] - mxt - xh * a) : 0;
                real dx = s * (g - mg - xh * mxg);
                dxt[c] += -s * a * dx + s * (gt - mgt - xht * mxg - xh * (mxtg + mxgt));
            }
        }
    }
    if (dtw || dtb) {
        #pragma omp parallel if ((size_t)N * C > OPS_PAR_MIN)
        {
            size_t lo, hi;
            ops_thread_range((size_t)C, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
            for (int n = 0; n < N; n++) {
                const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                const real *dyt = dtout ? dtout + (size_t)n * C : NULL;
                const real *xt = tinp ? tinp + (size_t)n * C : NULL;
                real mu = mean[n], s = rstd[n];
                real mxt = tinp ? row_mxt[n] : 0, a = tinp ? row_a[n] : 0;
                for (size_t c = lo; c < hi; c++) {
                    real xh = (x[c] - mu) * s;
                    if (dtw) {
                        real v = dyt ? dyt[c] * xh : 0;
                        if (xt) v += dy[c] * s * (xt[c] - mxt - xh * a);
                        dtw[c] += v;
                    }
                    if (dtb && dyt) dtb[c] += dyt[c];
                }
            }
        }
    }
    free(row_mxt);
}
