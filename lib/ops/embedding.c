/* embedding.c — token + position embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:].
 * The op is linear in (wte, wpe), so its tangent faces are the same maps on tangents.
 * The backward scatter (many rows may share a token) must never race: each thread owns a
 * contiguous range of channels and walks every (b,t) in order, so the sums are
 * deterministic whatever the thread count. */
#include <omp.h>

#include "cpu_ops.h"
#include "cpu_util.h"

void embedding_forward(real *out /*[B,T,C]*/, const int32_t *tokens /*[B,T]*/,
                       const real *wte /*[V,C]*/, const real *wpe /*[maxT,C]*/,
                       int B, int T, int C) {
    #pragma omp parallel for if ((size_t)B * T * C > OPS_PAR_MIN) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T;
        const real *we = wte + (size_t)tokens[bt] * C, *pe = wpe + (size_t)t * C;
        real *o = out + (size_t)bt * C;
        for (int c = 0; c < C; c++) o[c] = we[c] + pe[c];
    }
}

/* dwte[tokens[b,t],:] += dout[b,t,:]; dwpe[t,:] += Σ_b dout[b,t,:]. */
void embedding_backward(real *dwte /*[V,C] or NULL*/, real *dwpe /*[maxT,C] or NULL*/,
                        const real *dout /*[B,T,C]*/, const int32_t *tokens /*[B,T]*/,
                        int B, int T, int C) {
    #pragma omp parallel if ((size_t)B * T * C > OPS_PAR_MIN)
    {
        size_t lo, hi;
        ops_thread_range((size_t)C, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int bt = 0; bt < B * T; bt++) {
            const real *d = dout + (size_t)bt * C;
            if (dwte) {
                real *w = dwte + (size_t)tokens[bt] * C;
                for (size_t c = lo; c < hi; c++) w[c] += d[c];
            }
            if (dwpe) {
                real *p = dwpe + (size_t)(bt % T) * C;
                for (size_t c = lo; c < hi; c++) p[c] += d[c];
            }
        }
    }
}

/* tout[b,t,:] = twte[tokens[b,t],:] + twpe[t,:] (NULL tangent = 0). */
void embedding_forward_tangent(real *tout /*[B,T,C]*/, const int32_t *tokens /*[B,T]*/,
                               const real *twte /*[V,C] or NULL*/,
                               const real *twpe /*[maxT,C] or NULL*/, int B, int T, int C) {
    #pragma omp parallel for if ((size_t)B * T * C > OPS_PAR_MIN) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        real *o = tout + (size_t)bt * C;
        const real *we = twte ? twte + (size_t)tokens[bt] * C : NULL;
        const real *pe = twpe ? twpe + (size_t)(bt % T) * C : NULL;
        for (int c = 0; c < C; c++) o[c] = (we ? we[c] : 0) + (pe ? pe[c] : 0);
    }
}

/* The backward is linear in dout and independent of the weights: its tangent is the
 * backward applied to dtout. */
void embedding_backward_tangent(real *dtwte /*[V,C] or NULL*/, real *dtwpe /*[maxT,C] or NULL*/,
                                const real *dtout /*[B,T,C] or NULL*/,
                                const int32_t *tokens /*[B,T]*/, int B, int T, int C) {
    if (dtout) embedding_backward(dtwte, dtwpe, dtout, tokens, B, T, C);
}
