/* gelu.c — GELU, tanh approximation (GPT-2's): y = ½x(1 + tanh u), u = k(x + 0.044715x³),
 * k = sqrt(2/π), with its first and second derivatives for the tangent faces:
 *   y'  = ½(1 + tanh u) + ½x·sech²u·u',                      u' = k(1 + 3·0.044715x²)
 *   y'' = sech²u·u' + ½x·sech²u·(u'' − 2 tanh u·u'²),         u'' = 6k·0.044715x
 * backward: dx = y'·dy;  tangent: ẏ = y'·ẋ;  tangent of backward: dẋ = y''·ẋ·dy + y'·dẏ.
 * Every face writes (=) its output: GELU's input cotangent has no other producer, so
 * the backward faces are exceptions to "backward accumulates" (backend.h). */
#include "cpu_ops.h"
#include "cpu_util.h"

#define GELU_K 0.7978845608028654  /* sqrt(2/π) */
#define GELU_A 0.044715

static inline real gelu_d1(real x) {
    real u = (real)GELU_K * (x + (real)GELU_A * x * x * x);
    real th = ops_tanh(u), sech2 = 1 - th * th;
    real du = (real)GELU_K * (1 + 3 * (real)GELU_A * x * x);
    return (real)0.5 * (1 + th) + (real)0.5 * x * sech2 * du;
}

static inline real gelu_d2(real x) {
    real u = (real)GELU_K * (x + (real)GELU_A * x * x * x);
    real th = ops_tanh(u), sech2 = 1 - th * th;
    real du = (real)GELU_K * (1 + 3 * (real)GELU_A * x * x);
    real ddu = (real)GELU_K * 6 * (real)GELU_A * x;
    return sech2 * du + (real)0.5 * x * sech2 * (ddu - 2 * th * du * du);
}

void gelu_forward(real *out /*[n]*/, const real *inp /*[n]*/, size_t n) {
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        real u = (real)GELU_K * (x + (real)GELU_A * x * x * x);
        out[i] = (real)0.5 * x * (1 + ops_tanh(u));
    }
}

void gelu_backward(real *dinp /*[n]*/, const real *inp /*[n]*/, const real *dout /*[n]*/,
                   size_t n) {
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] = gelu_d1(inp[i]) * dout[i];
}

void gelu_forward_tangent(real *tout /*[n]*/, const real *inp /*[n]*/,
                          const real *tinp /*[n] or NULL*/, size_t n) {
    if (!tinp) {
        vec_zero(tout, n);
        return;
    }
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) tout[i] = gelu_d1(inp[i]) * tinp[i];
}

void gelu_backward_tangent(real *dtinp /*[n]*/, const real *inp /*[n]*/,
                           const real *tinp /*[n] or NULL*/, const real *dout /*[n]*/,
                           const real *dtout /*[n] or NULL*/, size_t n) {
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        real d = 0;
        if (tinp) d = gelu_d2(inp[i]) * tinp[i] * dout[i];
        if (dtout) d += gelu_d1(inp[i]) * dtout[i];
        dtinp[i] = d;
    }
}
