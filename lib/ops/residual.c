/* residual.c — the residual connection out = a + b. Linear, so the tangent faces are
 * the same maps applied to tangents; the backward hands dout to both branches. */
#include "cpu_ops.h"
#include "cpu_util.h"

void residual_forward(real *out /*[n]*/, const real *a /*[n]*/, const real *b /*[n]*/, size_t n) {
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void residual_backward(real *da /*[n] or NULL*/, real *db /*[n] or NULL*/,
                       const real *dout /*[n]*/, size_t n) {
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}

void residual_forward_tangent(real *tout /*[n]*/, const real *ta /*[n] or NULL*/,
                              const real *tb /*[n] or NULL*/, size_t n) {
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) tout[i] = (ta ? ta[i] : 0) + (tb ? tb[i] : 0);
}

void residual_backward_tangent(real *dta /*[n] or NULL*/, real *dtb /*[n] or NULL*/,
                               const real *dtout /*[n] or NULL*/, size_t n) {
    if (dtout) residual_backward(dta, dtb, dtout, n);
}
