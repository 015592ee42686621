/* meanpool.c — the rater's pooling: out[b,:] = (1/L_b) Σ_{t<L_b} inp[b,t,:], L_b =
 * valid_len[b] (0 gives 0). Rater-only, first order: forward and backward. Padded
 * positions never contribute and never receive gradient. */
#include "cpu_ops.h"
#include "cpu_util.h"

void meanpool_forward(real *out /*[B,C]*/, const real *inp /*[B,T,C]*/,
                      const int32_t *valid_len /*[B] or NULL*/, int B, int T, int C) {
    #pragma omp parallel for if ((size_t)B * T * C > OPS_PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++) {
        int L = ops_valid(valid_len, b, T);
        real *o = out + (size_t)b * C;
        for (int c = 0; c < C; c++) o[c] = 0;
        for (int t = 0; t < L; t++) {
            const real *x = inp + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) o[c] += x[c];
        }
        if (L > 0) for (int c = 0; c < C; c++) o[c] /= L;
    }
}

void meanpool_backward(real *dinp /*[B,T,C]*/, const real *dout /*[B,C]*/,
                       const int32_t *valid_len /*[B] or NULL*/, int B, int T, int C) {
    #pragma omp parallel for collapse(2) if ((size_t)B * T * C > OPS_PAR_MIN) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int L = ops_valid(valid_len, b, T);
            if (t >= L) continue;
            const real *d = dout + (size_t)b * C;
            real *dx = dinp + ((size_t)b * T + t) * C;
            real inv = (real)1 / L;
            for (int c = 0; c < C; c++) dx[c] += d[c] * inv;
        }
}
