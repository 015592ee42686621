/* attention.c — multi-head scaled dot-product attention from fused qkv, causal or
 * bidirectional, with a per-example padding mask, and its derivatives up to the tangent
 * of the backward.
 *
 * For one (b, h), with L = valid_len[b], Q, K, V the [T, hs] slices of qkv (row stride 3C)
 * and allowed(t, j) = j < L && (!causal || j <= t):
 *   S = scale·Q Kᵀ,  P = softmax over the allowed keys of each row (0 elsewhere),  O = P V;
 *   query rows t >= L are padding: their P row and O row are 0.
 * With the softmax Jacobian applied row-wise, softmax'(P)·X = P ⊙ (X − rowsum(P ⊙ X)):
 *   backward:  dV = Pᵀ dO;  dP = dO Vᵀ;  dS = P ⊙ (dP − r), r = rowsum(P ⊙ dP);
 *              dQ = scale·dS K;  dK = scale·dSᵀ Q
 *   tangent:   Ṡ = scale(Q̇ Kᵀ + Q K̇ᵀ);  Ṗ = P ⊙ (Ṡ − rowsum(P ⊙ Ṡ));  Ȯ = Ṗ V + P V̇
 *   tangent of the backward (dȮ = dtout):
 *              dV̇ = Ṗᵀ dO + Pᵀ dȮ;  dṖ = dȮ Vᵀ + dO V̇ᵀ;  ṙ = rowsum(Ṗ ⊙ dP + P ⊙ dṖ)
 *              dṠ = Ṗ ⊙ (dP − r) + P ⊙ (dṖ − ṙ)
 *              dQ̇ = scale(dṠ K + dS K̇);  dK̇ = scale(dṠᵀ Q + dSᵀ Q̇)
 * Both backward faces write (=) dqkv / dtqkv, every element (0 at padded positions): the
 * qkv cotangent has no other producer, so they are exceptions to "backward accumulates"
 * (backend.h). Each (b, h) zeroes its slices, then its blocks' products add into them.
 * Only the L×L block of valid queries and keys enters any product (everything outside it
 * is exactly 0). Causal attention goes in blocks of ATT_ROW_BLOCK query rows, each against
 * the keys up to its last row, so the products skip most of the zero upper triangle (at
 * T = 256, 62.5% of the square's work). Every product is a GEMM on strided slices; the
 * (b, h) pairs run in parallel, each writing its own columns of the outputs, with [L, L]
 * scratch per thread. The results do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "cpu_ops.h"
#include "cpu_util.h"

/* number of keys query t (< L) may attend to: keys 0 .. n−1 */
static inline int n_keys(int t, int L, int causal) { return causal ? t + 1 : L; }

/* x[0..n) ← p ⊙ (x − ⟨p, x⟩): the softmax's Jacobian (symmetric) applied to a row over
 * its n allowed keys — dP → dS in the backward, Ṡ → Ṗ in the forward tangent. */
static inline void softmax_jacobian_row(real *x, const real *p, int n) {
    real r = ops_row_dot(p, x, n);
    for (int j = 0; j < n; j++) x[j] = p[j] * (x[j] - r);
}

/* Query rows per block: causal blocks multiply only against keys 0 … r1 − 1. */
enum { ATT_ROW_BLOCK = 64 };
static inline int row_block(int L, int causal) { return causal ? ATT_ROW_BLOCK : (L > 0 ? L : 1); }
static inline int block_end(int r0, int rb, int L) { return r0 + rb < L ? r0 + rb : L; }
/* keys a block of rows [r0, r1) reaches */
static inline int block_keys(int r1, int L, int causal) { return causal ? r1 : L; }

/* att (and tatt) hold the probabilities P (and Ṗ): [B,NH,T,T] */
size_t attention_state_floats(int B, int T, int C, int NH) {
    return (size_t)B * NH * T * T;
}

void attention_forward(real *out /*[B,T,C]*/, real *att /*[B,NH,T,T]*/,
                       const real *qkv /*[B,T,3C]*/, const int32_t *valid_len /*[B] or NULL*/,
                       int causal, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    real scale = (real)(1.0 / sqrt((double)hs));
    ops_blas_init();
    #pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH, L = ops_valid(valid_len, b, T);
        const real *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
        real *P = att + (size_t)bh * T * T;
        real *o = out + (size_t)b * T * C + h * hs;
        const int rb = row_block(L, causal);
        for (int r0 = 0; r0 < L; r0 += rb) {
            const int r1 = block_end(r0, rb, L), m = r1 - r0, kn = block_keys(r1, L, causal);
            real *Pb = P + (size_t)r0 * T;
            ops_gemm_serial(0, 1, m, kn, hs, scale, q + (size_t)r0 * C3, C3, k, C3, 0, Pb, T);
            for (int t = r0; t < r1; t++) {
                real *row = P + (size_t)t * T;
                int n = n_keys(t, L, causal);
                real sum = ops_row_exp(row, row, ops_row_max(row, n), n);
                real inv = 1 / sum;
                for (int j = 0; j < n; j++) row[j] *= inv;
                memset(row + n, 0, (size_t)(T - n) * sizeof(real));
            }
            ops_gemm_serial(0, 0, m, hs, kn, 1, Pb, T, v, C3, 0, o + (size_t)r0 * C, C);
        }
        for (int t = L; t < T; t++) {
            memset(P + (size_t)t * T, 0, (size_t)T * sizeof(real));
            memset(o + (size_t)t * C, 0, (size_t)hs * sizeof(real));
        }
    }
}

/* the (b, h) slices of q, k and v in T rows of a [T, 3C] cotangent set to 0: the backward
 * faces write their output, and their blocks' products add into these zeros */
static void zero_head_slices(real *d, int T, int C, int hs) {
    for (int t = 0; t < T; t++)
        for (int part = 0; part < 3; part++)
            memset(d + (size_t)t * 3 * C + (size_t)part * C, 0, (size_t)hs * sizeof(real));
}

void attention_backward(real *dqkv /*[B,T,3C]*/, const real *dout /*[B,T,C]*/,
                        const real *qkv /*[B,T,3C]*/, const real *att /*[B,NH,T,T]*/,
                        const int32_t *valid_len /*[B] or NULL*/, int causal,
                        int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    real scale = (real)(1.0 / sqrt((double)hs));
    ops_blas_init();
    #pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH, L = ops_valid(valid_len, b, T);
        const real *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
        real *dq = dqkv + (size_t)b * T * C3 + h * hs, *dk = dq + C, *dv = dq + 2 * C;
        zero_head_slices(dq, T, C, hs);
        if (L == 0) continue;
        const real *P = att + (size_t)bh * T * T;
        const real *dO = dout + (size_t)b * T * C + h * hs;
        real *dS = ops_scratch(0, (size_t)L * L);  /* dP, then dS in place */
        const int rb = row_block(L, causal);
        for (int r0 = 0; r0 < L; r0 += rb) {
            const int r1 = block_end(r0, rb, L), m = r1 - r0, kn = block_keys(r1, L, causal);
            const real *Pb = P + (size_t)r0 * T, *dOb = dO + (size_t)r0 * C;
            real *dSb = dS + (size_t)r0 * L;
            ops_gemm_serial(1, 0, kn, hs, m, 1, Pb, T, dOb, C, 1, dv, C3);
            ops_gemm_serial(0, 1, m, kn, hs, 1, dOb, C, v, C3, 0, dSb, L);
            for (int t = r0; t < r1; t++) {
                const real *p = P + (size_t)t * T;
                real *d = dS + (size_t)t * L;
                int n = n_keys(t, L, causal);
                softmax_jacobian_row(d, p, n);
                for (int j = n; j < kn; j++) d[j] = 0;
            }
            ops_gemm_serial(0, 0, m, hs, kn, scale, dSb, L, k, C3, 1, dq + (size_t)r0 * C3, C3);
            ops_gemm_serial(1, 0, kn, hs, m, scale, dSb, L, q + (size_t)r0 * C3, C3, 1, dk, C3);
        }
    }
}

void attention_forward_tangent(real *tout /*[B,T,C]*/, real *tatt /*[B,NH,T,T] or NULL*/,
                               const real *qkv /*[B,T,3C]*/, const real *tqkv /*[B,T,3C] or NULL*/,
                               const real *att /*[B,NH,T,T]*/,
                               const int32_t *valid_len /*[B] or NULL*/, int causal,
                               int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    real scale = (real)(1.0 / sqrt((double)hs));
    ops_blas_init();
    #pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH, L = tqkv ? ops_valid(valid_len, b, T) : 0;
        const real *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
        const real *P = att + (size_t)bh * T * T;
        real *Pt = tatt ? tatt + (size_t)bh * T * T : ops_scratch(1, (size_t)T * T);
        real *ot = tout + (size_t)b * T * C + h * hs;
        const int rb = row_block(L, causal);
        for (int r0 = 0; r0 < L; r0 += rb) {
            const int r1 = block_end(r0, rb, L), m = r1 - r0, kn = block_keys(r1, L, causal);
            const real *qt = tqkv + (size_t)b * T * C3 + h * hs, *kt = qt + C, *vt = qt + 2 * C;
            const real *Pb = P + (size_t)r0 * T;
            real *Ptb = Pt + (size_t)r0 * T;
            ops_gemm_serial(0, 1, m, kn, hs, scale, qt + (size_t)r0 * C3, C3, k, C3, 0, Ptb, T);
            ops_gemm_serial(0, 1, m, kn, hs, scale, q + (size_t)r0 * C3, C3, kt, C3, 1, Ptb, T);
            for (int t = r0; t < r1; t++) {
                const real *p = P + (size_t)t * T;
                real *row = Pt + (size_t)t * T;
                int n = n_keys(t, L, causal);
                softmax_jacobian_row(row, p, n);
                memset(row + n, 0, (size_t)(T - n) * sizeof(real));
            }
            ops_gemm_serial(0, 0, m, hs, kn, 1, Ptb, T, v, C3, 0, ot + (size_t)r0 * C, C);
            ops_gemm_serial(0, 0, m, hs, kn, 1, Pb, T, vt, C3, 1, ot + (size_t)r0 * C, C);
        }
        for (int t = L; t < T; t++) {
            memset(Pt + (size_t)t * T, 0, (size_t)T * sizeof(real));
            memset(ot + (size_t)t * C, 0, (size_t)hs * sizeof(real));
        }
    }
}

void attention_backward_tangent(real *dtqkv /*[B,T,3C]*/, const real *dout /*[B,T,C]*/,
                                const real *dtout /*[B,T,C] or NULL*/, const real *qkv /*[B,T,3C]*/,
                                const real *tqkv /*[B,T,3C] or NULL*/,
                                const real *att /*[B,NH,T,T]*/,
                                const real *tatt /*[B,NH,T,T] or NULL*/,
                                const int32_t *valid_len /*[B] or NULL*/, int causal,
                                int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    real scale = (real)(1.0 / sqrt((double)hs));
    ops_blas_init();
    #pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH, L = ops_valid(valid_len, b, T);
        size_t qoff = (size_t)b * T * C3 + h * hs, ooff = (size_t)b * T * C + h * hs;
        zero_head_slices(dtqkv + qoff, T, C, hs);
        if (L == 0) continue;
        const real *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
        const real *qt = tqkv ? tqkv + qoff : NULL, *kt = qt ? qt + C : NULL;
        const real *vt = qt ? qt + 2 * C : NULL;
        real *dqt = dtqkv + qoff, *dkt = dqt + C, *dvt = dqt + 2 * C;
        const real *P = att + (size_t)bh * T * T;
        const real *Pt = tatt ? tatt + (size_t)bh * T * T : NULL;
        const real *dO = dout + ooff, *dOt = dtout ? dtout + ooff : NULL;
        real *dS = ops_scratch(0, (size_t)L * L);   /* dP, then dS in place */
        real *dSt = ops_scratch(1, (size_t)L * L);  /* dṖ, then dṠ in place */

        const int rb = row_block(L, causal);
        for (int r0 = 0; r0 < L; r0 += rb) {
            const int r1 = block_end(r0, rb, L), m = r1 - r0, kn = block_keys(r1, L, causal);
            const real *Pb = P + (size_t)r0 * T, *Ptb = Pt ? Pt + (size_t)r0 * T : NULL;
            const real *dOb = dO + (size_t)r0 * C, *dOtb = dOt ? dOt + (size_t)r0 * C : NULL;
            real *dSb = dS + (size_t)r0 * L, *dStb = dSt + (size_t)r0 * L;
            if (Ptb) ops_gemm_serial(1, 0, kn, hs, m, 1, Ptb, T, dOb, C, 1, dvt, C3);
            if (dOtb) ops_gemm_serial(1, 0, kn, hs, m, 1, Pb, T, dOtb, C, 1, dvt, C3);
            ops_gemm_serial(0, 1, m, kn, hs, 1, dOb, C, v, C3, 0, dSb, L);
            if (dOtb) ops_gemm_serial(0, 1, m, kn, hs, 1, dOtb, C, v, C3, 0, dStb, L);
            if (vt) ops_gemm_serial(0, 1, m, kn, hs, 1, dOb, C, vt, C3, dOtb ? 1 : 0, dStb, L);
            if (!dOtb && !vt)
                for (int t = r0; t < r1; t++) memset(dSt + (size_t)t * L, 0, (size_t)kn * sizeof(real));

            for (int t = r0; t < r1; t++) {
                const real *p = P + (size_t)t * T, *pt = Pt ? Pt + (size_t)t * T : NULL;
                real *d = dS + (size_t)t * L, *dt = dSt + (size_t)t * L;
                int n = n_keys(t, L, causal);
                real r = ops_row_dot(p, d, n);
                real rt = ops_row_dot(p, dt, n) + (pt ? ops_row_dot(pt, d, n) : 0);
                for (int j = 0; j < n; j++) {
                    dt[j] = (pt ? pt[j] * (d[j] - r) : 0) + p[j] * (dt[j] - rt);
                    d[j] = p[j] * (d[j] - r);
                }
                for (int j = n; j < kn; j++) d[j] = dt[j] = 0;
            }
            real *dqtb = dqt + (size_t)r0 * C3;
            ops_gemm_serial(0, 0, m, hs, kn, scale, dStb, L, k, C3, 1, dqtb, C3);
            ops_gemm_serial(1, 0, kn, hs, m, scale, dStb, L, q + (size_t)r0 * C3, C3, 1, dkt, C3);
            if (kt) ops_gemm_serial(0, 0, m, hs, kn, scale, dSb, L, kt, C3, 1, dqtb, C3);
            if (qt) ops_gemm_serial(1, 0, kn, hs, m, scale, dSb, L, qt + (size_t)r0 * C3, C3, 1, dkt, C3);
        }
    }
}
