/* attention.cu — multi-head attention from fused qkv on the GPU, causal or not, with the
 * per-example padding mask, and its derivatives up to the tangent of the backward. The
 * math (and its notation) is lib/ops/attention.c's; this file computes the same thing.
 *
 * How: att [B,NH,T,T] is materialized as on the CPU. Every product is one batched GEMM
 * over the B·NH (b, h) pairs (cu_gemm_bh: fp32, tf32 or bf16 inputs with fp32
 * accumulation, as backend_cuda_set_gemm_precision says), on the FULL T×T blocks;
 * the row kernels (one warp per row of T keys) then apply the softmax, its Jacobian, or
 * the tangent of its Jacobian over the allowed keys j < n(t) and write exact zeros
 * everywhere else (keys j ≥ n, and whole rows of padded queries t ≥ L). Every later
 * product therefore only ever combines entries of the valid L×L block with non-zero
 * weight, as the CPU's L×L products do: the results agree, provided the padded rows
 * of qkv and dout hold finite numbers (they do: they are computed from valid token ids;
 * 0·finite = 0, whereas 0·NaN would not be). att and tatt must be what the forward and
 * forward tangent wrote (zeros outside the allowed keys).
 * Up to T = 1024 keys a row kernel holds its row in registers and reads each input row
 * once and writes each output row once (above, a multi-pass version).
 * bf16 GEMM mode (full T×T products): the row kernels also write the products' T×T
 * operands in bf16, the roundings a dense copy would make, so cu_gemm_bh_bf16a takes them
 * without copying them: the forward's softmax writes P in fp32 (att) and in bf16
 * (CU_SCR_ATT_A, dense); the backward's (rows in registers) turns each row of dP in
 * CU_SCR_ATT_A into bf16 dS followed by bf16 P (leading dimension 2T), and dS is never
 * written in fp32. Per layer of the reference step (B 64, NH 8, T 1024, [B,NH,T,T] = 2 GiB
 * in fp32) that spares reading P (forward) and P, dS, dS (backward) for copies and writing
 * dS in fp32: 9 of the backward's 20 GiB of T×T traffic. The forward tangent's row kernel
 * writes Ṗ (fp32, tatt) and [Ṗ | P] in bf16 (CU_SCR_ATT_B, ld 2T); the backward tangent's
 * (rows in registers) turns the rows of dP and dṖ into bf16 [Ṗ | P] and [dṠ | dS] in
 * place. The tangents' paired products are one product each over K = 2T or 2·hs
 * (cu_gemm_bh_ksum, cu_gemm_bh_bf16a_ksum): Ṡ = scale(Q̇Kᵀ + QK̇ᵀ), dṖ = dȮVᵀ + dOV̇ᵀ,
 * Ȯ = [Ṗ | P]·[V ; V̇], dQ̇ = scale[dṠ | dS]·[K ; K̇]; dK̇ and dV̇ contract over rows t of
 * two matrices, which the [T, 2T] rows read with leading dimension T give alternating
 * (dṠ[t], dS[t], …), against B's rows alternating the same way (Q[t], Q̇[t], …).
 * Optionally (DR_CUDA_ATT_BLOCKS=1, backend_cuda_set_att_blocks(1)) causal attention
 * skips most of the zero upper triangle, as the CPU does: the products go in blocks of
 * att_block(T) query rows [r0, r1), each against keys 0 … r1 − 1 only, and the products
 * over queries (dV, dK and their tangents) in blocks of keys [k0, k1), each over queries
 * k0 … T − 1 only (at T = 1024, blocks of 128: 56% of the square's work). The entries of
 * a row beyond r1 are never multiplied; the row kernels write their zeros as before. The
 * default is the full T×T products: blocks measured slower on an H200 (2026-11-27: 504.9
 * vs 495.4 ms per reference bf16 step, attention_forward 90.3 vs 81.9 ms), since each
 * block copies K and V to bf16 again; kept as an option.
 * Scratch: two [B,NH,T,T] buffers (dS and its tangent), like the CPU's per-thread [L,L].
 * Deterministic: warp butterflies, cuBLAS on one stream.
 * Flash mode (DR_CUDA_ATT_FLASH=1, backend_cuda_set_att_flash(1); off by default): where
 * cu_att_flash_eligible (bf16 GEMM mode, hs ∈ {16, 32, 48, 64}, B·NH ≤ 65535, T > hs), all
 * four faces are attention_flash.cu's tiled tensor-core kernels, which never store T×T,
 * and att and tatt hold, from their start (the rest untouched):
 *   att   lse [B,NH,T]  log-sum-exp of each query row's scaled scores, −INFINITY for a row
 *                       with no allowed key;
 *         O   [B,T,C]   a copy of the forward's output (D = dO·O);
 *   tatt  r   [B,NH,T]  rowsum(P ⊙ Ṡ) of each query row (Ṗ = P ⊙ (Ṡ − r)), 0 for a row
 *                       with no allowed key;
 *         Ȯ   [B,T,C]   a copy of the forward tangent's output (Ḋ = dȮ·O + dO·Ȯ);
 * NH·T + T·C ≤ NH·T·T floats each per example, i.e. T ≥ hs + 1. The derivative faces
 * recompute P from lse and Ṡ (hence Ṗ) from qkv and tqkv, so tatt is the forward tangent's
 * state for the same qkv and tqkv, as att is the forward's for the same qkv.
 * attention_state_floats (cu_attention_state_floats) gives B·NH·T + B·T·C there, so the LM
 * allocates no T×T in flash mode; elsewhere B·NH·T·T. The switch and the GEMM mode must
 * not change between an allocation sized so and the last face given the buffer, nor
 * between a forward and the faces given its att: each face checks that a buffer it was
 * given as the start of a be->alloc block is large enough for its own path (att_room), so
 * a mode changed after the allocation fails loudly instead of writing past the end.
 * One case keeps T×T scratch in flash mode: the backward tangent with tatt NULL but tqkv
 * given (Ṗ = 0 by the CPU op's convention; no caller in lib/ does this) rematerializes P
 * into CU_SCR_ATT_P (the S products and the softmax row kernel) and runs the stored path. */
#include <cuda_bf16.h>
#include <math.h>

#include "cuda/cuda_ops.cuh"

#define ROWS_PER_BLOCK 8   /* warps per block, one attention row each */


/* Per-(b,h) views: part 0/1/2 = q/k/v of a [B,T,3C] tensor; a [B,T,C] tensor; [B,NH,T,T]. */
static CuBHMat m_qkv(const float *x, int part, const AttShape &s) {
    CuBHMat m = { x + (size_t)part * s.C, (long long)s.T * 3 * s.C, s.hs, 3 * s.C };
    return m;
}
static CuBHMat m_btc(const float *x, const AttShape &s) {
    CuBHMat m = { x, (long long)s.T * s.C, s.hs, s.C };
    return m;
}
static CuBHMat m_att(const float *x, const AttShape &s) {
    CuBHMat m = { x, (long long)s.NH * s.T * s.T, (long long)s.T * s.T, s.T };
    return m;
}

/* C_bh (+)= alpha · op(A_bh) · op(B_bh) for all (b, h) */
static void bh(int ta, int tb, int M, int N, int K, float alpha, CuBHMat A, CuBHMat B,
               float beta, CuBHMat C, const AttShape &s) {
    cu_gemm_bh(ta, tb, M, N, K, alpha, A, B, beta, C, s.B, s.NH);
}

/* Rows (keys) per causal block: about T/8, a multiple of 16 in [16, 128]; bidirectional
 * attention is one block (its padding differs from example to example). */
static int att_block(const AttShape &s) {
    if (!s.causal || !cu_att_blocks()) return s.T;
    int rb = ((s.T + 7) / 8 + 15) / 16 * 16;
    return rb > 128 ? 128 : rb;
}

/* the view m moved down r rows and right c columns */
static CuBHMat at(CuBHMat m, int r, int c) {
    m.p += (long long)r * m.ld + c;
    return m;
}

/* X [T, *] · Yᵀ into a [T, T] score-shaped C: C[t, j] (+)= alpha Σ_e X[t, e] Y[j, e], for
 * keys j < r1 of each block of queries [r0, r1) (all of C when not causal) */
static void bh_scores(float alpha, CuBHMat X, CuBHMat Y, float beta, CuBHMat C,
                      const AttShape &s) {
    const int rb = att_block(s);
    for (int r0 = 0; r0 < s.T; r0 += rb) {
        const int r1 = s.T - r0 < rb ? s.T : r0 + rb;
        bh(0, 1, r1 - r0, r1, s.hs, alpha, at(X, r0, 0), Y, beta, at(C, r0, 0), s);
    }
}

/* alpha·(X1·Y1ᵀ + X2·Y2ᵀ) into a score-shaped C (beta 0): one product over the
 * concatenated contraction (cu_gemm_bh_ksum) when bh_scores is one (no causal blocks),
 * else bh_scores twice */
static void bh_scores_sum(float alpha, CuBHMat X1, CuBHMat Y1, CuBHMat X2, CuBHMat Y2,
                          CuBHMat C, const AttShape &s) {
    if (att_block(s) < s.T) {
        bh_scores(alpha, X1, Y1, 0, C, s);
        bh_scores(alpha, X2, Y2, 1, C, s);
        return;
    }
    cu_gemm_bh_ksum(0, 1, s.T, s.T, s.hs, s.hs, alpha, X1, Y1, X2, Y2, 0, C, s.B, s.NH);
}

/* A [T, T] (zero above the diagonal when causal) times Y [T, hs]: C[t] (+)= alpha Σ_j
 * A[t, j] Y[j], over keys j < r1 of each block of queries [r0, r1) */
static void bh_rows_times(float alpha, CuBHMat A, CuBHMat Y, float beta, CuBHMat C,
                          const AttShape &s) {
    const int rb = att_block(s);
    for (int r0 = 0; r0 < s.T; r0 += rb) {
        const int r1 = s.T - r0 < rb ? s.T : r0 + rb;
        bh(0, 0, r1 - r0, s.hs, r1, alpha, at(A, r0, 0), Y, beta, at(C, r0, 0), s);
    }
}

/* Aᵀ Y: C[j] (+)= alpha Σ_t A[t, j] Y[t], over queries t ≥ k0 of each block of keys
 * [k0, k1) */
static void bh_cols_times(float alpha, CuBHMat A, CuBHMat Y, float beta, CuBHMat C,
                          const AttShape &s) {
    const int rb = att_block(s);
    for (int k0 = 0; k0 < s.T; k0 += rb) {
        const int k1 = s.T - k0 < rb ? s.T : k0 + rb;
        bh(1, 0, k1 - k0, s.hs, s.T - k0, alpha, at(A, k0, k0), at(Y, k0, 0), beta, at(C, k0, 0),
           s);
    }
}

/* Row r = (b·NH + h)·T + t of a [B,NH,T,T] tensor: number of keys it attends to. */
static __device__ __forceinline__ int row_keys(int r, const AttShape s) {
    int t = r % s.T, b = (r / s.T) / s.NH;
    int L = cu_valid(s.valid_len, b, s.T);
    return t < L ? (s.causal ? t + 1 : L) : 0;
}

static inline unsigned row_blocks(const AttShape &s) {
    size_t rows = (size_t)s.B * s.NH * s.T;
    return (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
}

#define ROW_PROLOGUE                                                                        \
    size_t r = (size_t)blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5);                    \
    int lane = threadIdx.x & 31;                                                            \
    if (r >= (size_t)s.B * s.NH * s.T) return;                                              \
    int n = row_keys((int)r, s);                                                            \
    size_t off = r * (size_t)s.T;

/* The row kernels for any T (the launches use them above ROW_REG_KEYS keys; below, the
 * register versions further down): each lane strides over its keys j = lane + 32·i,
 * passing over the row once per reduction and once to write. */

/* S → P in place: softmax over the n allowed keys, 0 elsewhere; ph, when given, gets P
 * rounded to bf16 at the same index (a dense bf16 [B,NH,T,T]) */
static __global__ void softmax_rows_k(float *att, const AttShape s, __nv_bfloat16 *ph) {
    ROW_PROLOGUE
    float *row = att + off;
    if (n > 0) {
        float mx = -INFINITY;
        for (int j = lane; j < n; j += 32) mx = fmaxf(mx, row[j]);
        mx = cu_warp_max(mx);
        float sum = 0;
        for (int j = lane; j < n; j += 32) {
            float e = expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        float inv = 1.0f / cu_warp_sum(sum);
        for (int j = lane; j < n; j += 32) {
            row[j] *= inv;
            if (ph) ph[off + j] = __float2bfloat16(row[j]);
        }
    }
    for (int j = n + lane; j < s.T; j += 32) {
        row[j] = 0.0f;
        if (ph) ph[off + j] = __float2bfloat16(0.0f);
    }
}

/* X → P ⊙ (X − rowsum(P ⊙ X)) in place over allowed keys, 0 elsewhere: the softmax's
 * Jacobian (symmetric) applied to a row, so both the backward's dP → dS and the forward
 * tangent's Ṡ → Ṗ */
static __global__ void softmax_jacobian_rows_k(float *x, const float *att, const AttShape s,
                                              __nv_bfloat16 *h) {
    ROW_PROLOGUE
    const float *p = att + off;
    float *d = x + off;
    float rr = 0;
    for (int j = lane; j < n; j += 32) rr += p[j] * d[j];
    rr = cu_warp_sum(rr);
    for (int j = lane; j < n; j += 32) d[j] = p[j] * (d[j] - rr);
    for (int j = n + lane; j < s.T; j += 32) d[j] = 0.0f;
    if (h) {   /* the result and P in bf16: row r of h is [2T] */
        __syncwarp();   /* the zeros above come from other lanes */
        for (int j = lane; j < s.T; j += 32) {
            h[2 * off + j] = __float2bfloat16(d[j]);
            h[2 * off + s.T + j] = __float2bfloat16(j < n ? p[j] : 0.0f);
        }
    }
}

/* (dP, dṖ) → (dS, dṠ) in place:
 *   r = rowsum(P ⊙ dP), ṙ = rowsum(P ⊙ dṖ) + rowsum(Ṗ ⊙ dP)
 *   dṠ = Ṗ ⊙ (dP − r) + P ⊙ (dṖ − ṙ),  dS = P ⊙ (dP − r);  0 outside the allowed keys */
static __global__ void softmax_backward_tangent_rows_k(float *dS, float *dSt, const float *att,
                                                       const float *tatt, const AttShape s) {
    ROW_PROLOGUE
    const float *p = att + off, *pt = tatt ? tatt + off : NULL;
    float *d = dS + off, *dt = dSt + off;
    float rr = 0, rt1 = 0, rt2 = 0;
    for (int j = lane; j < n; j += 32) {
        rr += p[j] * d[j];
        rt1 += p[j] * dt[j];
        if (pt) rt2 += pt[j] * d[j];
    }
    rr = cu_warp_sum(rr);
    float rt = cu_warp_sum(rt1) + (pt ? cu_warp_sum(rt2) : 0.0f);
    for (int j = lane; j < n; j += 32) {
        dt[j] = (pt ? pt[j] * (d[j] - rr) : 0.0f) + p[j] * (dt[j] - rt);
        d[j] = p[j] * (d[j] - rr);
    }
    for (int j = n + lane; j < s.T; j += 32) d[j] = dt[j] = 0.0f;
}

/* ---- rows held in registers (T ≤ ROW_REG_KEYS) -----------------------------------------
 * The kernels above pass over a row two or three times (a reduction, then the writes
 * that need its result). Up to ROW_REG_KEYS keys, the kernels below instead load each
 * input row once into registers, key j = lane + 32·i in v[i] of NV values per lane
 * (NV = 1, 2, …, 32: the smallest power of two with 32·NV ≥ T), and write each output
 * once. The arrays are indexed only by the counters of fully unrolled loops, so they stay
 * in registers (ptxas -v: no stack frame). Same expressions, same per-lane order of the
 * sums and the same butterflies as the kernels above (deterministic: no atomics). Keys
 * j ≥ n are never read (after a causal block's product they are stale), only written
 * as 0. */
#define ROW_REG_KEYS 1024
#ifdef __CUDACC__
#define ROW_UNROLL _Pragma("unroll")
#else
#define ROW_UNROLL
#endif

/* S → P in place, and into ph when given (softmax_rows_k) */
template <int NV>
static __global__ void softmax_rows_reg_k(float *att, const AttShape s, __nv_bfloat16 *ph) {
    ROW_PROLOGUE
    float *row = att + off;
    float v[NV];
    float mx = -INFINITY;
    ROW_UNROLL
    for (int i = 0; i < NV; i++) {
        const int j = lane + 32 * i;
        v[i] = j < n ? row[j] : -INFINITY;
    }
    ROW_UNROLL
    for (int i = 0; i < NV; i++) mx = fmaxf(mx, v[i]);
    mx = cu_warp_max(mx);
    float sum = 0;
    ROW_UNROLL
    for (int i = 0; i < NV; i++) {
        if (lane + 32 * i < n) {
            v[i] = expf(v[i] - mx);
            sum += v[i];
        }
    }
    const float inv = 1.0f / cu_warp_sum(sum);   /* unused when n = 0 */
    ROW_UNROLL
    for (int i = 0; i < NV; i++) {
        const int j = lane + 32 * i;
        if (j < s.T) {
            const float pj = j < n ? v[i] * inv : 0.0f;
            row[j] = pj;
            if (ph) ph[off + j] = __float2bfloat16(pj);
        }
    }
}

/* The register kernels' loads and row sums: a lane's keys j = lane + 32·i of the row (0
 * for j ≥ n, never read) and the warp's sums over the allowed keys, in a fixed order.
 * jacobian: P and X, returns rowsum(P ⊙ X). */
template <int NV>
static __device__ __forceinline__ float jacobian_row_load(float (&pv)[NV], float (&dv)[NV],
                                                          const float *p, const float *d, int n,
                                                          int lane) {
    ROW_UNROLL
    for (int i = 0; i < NV; i++) {
        const int j = lane + 32 * i;
        pv[i] = j < n ? p[j] : 0.0f;
        dv[i] = j < n ? d[j] : 0.0f;
    }
    float rr = 0;
    ROW_UNROLL
    for (int i = 0; i < NV; i++)
        if (lane + 32 * i < n) rr += pv[i] * dv[i];
    return cu_warp_sum(rr);
}

/* backward tangent: P, Ṗ (0 when pt is NULL), dP, dṖ; returns r = rowsum(P ⊙ dP) and sets
 * *rt = ṙ = rowsum(P ⊙ dṖ) + rowsum(Ṗ ⊙ dP) */
template <int NV>
static __device__ __forceinline__ float backward_tangent_row_load(
    float (&pv)[NV], float (&ptv)[NV], float (&dv)[NV], float (&dtv)[NV], float *rt,
    const float *p, const float *pt, const float *d, const float *dt, int n, int lane) {
    ROW_UNROLL
    for (int i = 0; i < NV; i++) {
        const int j = lane + 32 * i;
        pv[i] = j < n ? p[j] : 0.0f;
        ptv[i] = pt && j < n ? pt[j] : 0.0f;
        dv[i] = j < n ? d[j] : 0.0f;
        dtv[i] = j < n ? dt[j] : 0.0f;
    }
    float rr = 0, rt1 = 0, rt2 = 0;
    ROW_UNROLL
    for (int i = 0; i < NV; i++) {
        if (lane + 32 * i < n) {
            rr += pv[i] * dv[i];
            rt1 += pv[i] * dtv[i];
            if (pt) rt2 += ptv[i] * dv[i];
        }
    }
    *rt = cu_warp_sum(rt1) + (pt ? cu_warp_sum(rt2) : 0.0f);
    return cu_warp_sum(rr);
}

/* X → P ⊙ (X − rowsum(P ⊙ X)) in place, and with P into h when given
 * (softmax_jacobian_rows_k) */
template <int NV>
static __global__ void softmax_jacobian_rows_reg_k(float *x, const float *att,
                                                   const AttShape s, __nv_bfloat16 *h) {
    ROW_PROLOGUE
    const float *p = att + off;
    float *d = x + off;
    float pv[NV], dv[NV];
    const float rr = jacobian_row_load<NV>(pv, dv, p, d, n, lane);
    ROW_UNROLL
    for (int i = 0; i < NV; i++) {
        const int j = lane + 32 * i;
        if (j < s.T) {
            const float xj = j < n ? pv[i] * (dv[i] - rr) : 0.0f;
            d[j] = xj;
            if (h) {
                h[2 * off + j] = __float2bfloat16(xj);
                h[2 * off + s.T + j] = __float2bfloat16(pv[i]);
            }
        }
    }
}

/* The backward's row kernel in the bf16 GEMM mode: (dP, P) → the bf16 operands of dV, dQ
 * and dK, written over dP's own rows. Row r of dP [B,NH,T,T] (fp32) becomes dS = P ⊙ (dP −
 * rowsum(P ⊙ dP)) in bf16 (its first T bf16, 0 outside the allowed keys) followed by P in
 * bf16 (the next T): two [B,NH,T,T] bf16 matrices with leading dimension 2T. dS is the
 * expression of softmax_jacobian_rows_reg_k, and both round to nearest even as the dense
 * copies of cu_gemm_bh would: the same bf16 operands, without writing dS in fp32 and
 * reading it (and P) back for three copies. Every lane holds its part of the row in
 * registers before the warp's sum, so nothing is read after the first write. */
template <int NV>
static __global__ void softmax_backward_bf16_rows_reg_k(float *dP, const float *att,
                                                       const AttShape s) {
    ROW_PROLOGUE
    const float *p = att + off, *d = dP + off;
    __nv_bfloat16 *dsh = (__nv_bfloat16 *)(dP + off), *ph = dsh + s.T;
    float pv[NV], dv[NV];
    const float rr = jacobian_row_load<NV>(pv, dv, p, d, n, lane);
    __syncwarp();   /* the row is read: overwrite it */
    ROW_UNROLL
    for (int i = 0; i < NV; i++) {
        const int j = lane + 32 * i;
        if (j < s.T) {
            dsh[j] = __float2bfloat16(j < n ? pv[i] * (dv[i] - rr) : 0.0f);
            ph[j] = __float2bfloat16(pv[i]);
        }
    }
}

/* (dP, dṖ) → (dS, dṠ) in place (softmax_backward_tangent_rows_k); tatt may be NULL */
template <int NV>
static __global__ void softmax_backward_tangent_rows_reg_k(float *dS, float *dSt,
                                                           const float *att,
                                                           const float *tatt,
                                                           const AttShape s) {
    ROW_PROLOGUE
    const float *p = att + off, *pt = tatt ? tatt + off : NULL;
    float *d = dS + off, *dt = dSt + off;
    float pv[NV], ptv[NV], dv[NV], dtv[NV], rt;
    const float rr = backward_tangent_row_load<NV>(pv, ptv, dv, dtv, &rt, p, pt, d, dt, n, lane);
    ROW_UNROLL
    for (int i = 0; i < NV; i++) {
        const int j = lane + 32 * i;
        if (j < s.T) {
            if (j < n) {
                dt[j] = (pt ? ptv[i] * (dv[i] - rr) : 0.0f) + pv[i] * (dtv[i] - rt);
                d[j] = pv[i] * (dv[i] - rr);
            } else {
                d[j] = dt[j] = 0.0f;
            }
        }
    }
}

/* The backward tangent's row kernel in the bf16 GEMM mode: softmax_backward_tangent_rows_reg_k's
 * dS and dṠ, rounded to bf16 and written over the rows of dP and dṖ they come from, each
 * followed by the row of P (after dS) or Ṗ (after dṠ; 0 when tatt is NULL) in bf16: four
 * [B,NH,T,T] bf16 matrices with leading dimension 2T, the operands of the products that
 * follow (as softmax_backward_bf16_rows_reg_k) */
template <int NV>
static __global__ void softmax_backward_tangent_bf16_rows_reg_k(float *dS, float *dSt,
                                                                const float *att,
                                                                const float *tatt,
                                                                const AttShape s) {
    ROW_PROLOGUE
    const float *p = att + off, *pt = tatt ? tatt + off : NULL;
    const float *d = dS + off, *dt = dSt + off;
    __nv_bfloat16 *dsh = (__nv_bfloat16 *)(dS + off), *dsth = (__nv_bfloat16 *)(dSt + off);
    float pv[NV], ptv[NV], dv[NV], dtv[NV], rt;
    const float rr = backward_tangent_row_load<NV>(pv, ptv, dv, dtv, &rt, p, pt, d, dt, n, lane);
    __syncwarp();   /* the rows are read: overwrite them */
    ROW_UNROLL
    for (int i = 0; i < NV; i++) {
        const int j = lane + 32 * i;
        if (j < s.T) {
            const int in = j < n;
            dsth[j] = __float2bfloat16(in ? (pt ? ptv[i] * (dv[i] - rr) : 0.0f) + pv[i] * (dtv[i] - rt) : 0.0f);
            dsth[s.T + j] = __float2bfloat16(in ? pv[i] * (dv[i] - rr) : 0.0f);
            dsh[j] = __float2bfloat16(ptv[i]);
            dsh[s.T + j] = __float2bfloat16(pv[i]);
        }
    }
}

/* The row kernel for rows of s.T keys: kern##_reg_k<NV> up to ROW_REG_KEYS, else the
 * multi-pass kern##_k above it (a pointer to the kernel; the launch goes through it). */
static int row_nv(const AttShape &s) {
    if (s.T > ROW_REG_KEYS) return 0;
    int nv = 1;
    while (32 * nv < s.T) nv *= 2;
    return nv;
}
#define ROW_KERNEL(kern, s)                                                                 \
    (row_nv(s) == 1    ? kern##_reg_k<1>                                                    \
     : row_nv(s) == 2  ? kern##_reg_k<2>                                                    \
     : row_nv(s) == 4  ? kern##_reg_k<4>                                                    \
     : row_nv(s) == 8  ? kern##_reg_k<8>                                                    \
     : row_nv(s) == 16 ? kern##_reg_k<16>                                                   \
     : row_nv(s) == 32 ? kern##_reg_k<32>                                                   \
                       : kern##_k)
/* the register kernel only (row_nv(s) > 0) */
#define ROW_REG_KERNEL(kern, s)                                                             \
    (row_nv(s) == 1    ? kern##_reg_k<1>                                                    \
     : row_nv(s) == 2  ? kern##_reg_k<2>                                                    \
     : row_nv(s) == 4  ? kern##_reg_k<4>                                                    \
     : row_nv(s) == 8  ? kern##_reg_k<8>                                                    \
     : row_nv(s) == 16 ? kern##_reg_k<16>                                                   \
                       : kern##_reg_k<32>)

/* In the bf16 GEMM mode, when the products are the full T×T ones, the forward's row kernel
 * writes P in bf16 too (softmax_rows_k's ph), and the backward's, when a row fits in
 * registers, writes dS and P in bf16 only (softmax_backward_bf16_rows_reg_k): the T×T
 * operands of the products then need no copies. T a multiple of 8 keeps every matrix and
 * the P half of a [dS | P] row on a 16-byte boundary (cu_gemm_bh_bf16a checks it); other
 * T take the copies' path */
static int att_bf16_rows(const AttShape &s, int backward) {
    return cu_gemm_mode() == CU_GEMM_BF16 && !cu_att_blocks() && s.T % 8 == 0 &&
           (!backward || row_nv(s) > 0);
}

/* matrix (b, h) of a [B,NH,T,T] bf16 tensor whose rows are `ld` elements apart */
static CuBHMatH m_att_h(const void *x, int ld, const AttShape &s) {
    CuBHMatH m = { x, (long long)s.NH * s.T * ld, (long long)s.T * ld, ld };
    return m;
}


static size_t att_elems(const AttShape &s) { return (size_t)s.B * s.NH * s.T * s.T; }
/* flash mode's att (lse, O) and tatt (r, Ȯ): [B,NH,T] + [B,T,C] */
static size_t att_flash_elems(const AttShape &s) {
    return (size_t)s.B * s.NH * s.T + (size_t)s.B * s.T * s.C;
}

/* floats att and tatt need for this shape now (the Backend's attention_state_floats) */
size_t cu_attention_state_floats(int B, int T, int C, int NH) {
    if (B <= 0 || T <= 0 || NH <= 0) return 0;
    const AttShape s = att_shape(NULL, 0, B, T, C, NH);
    return cu_att_flash_eligible(B, T, C, NH) ? att_flash_elems(s) : att_elems(s);
}

/* buf (att or tatt, `what`) must hold `floats` when it is the start of a be->alloc block
 * (any other pointer cannot be checked): a buffer sized for flash mode given to the
 * T×T path after the GEMM mode or the flash switch changed would be written past its end */
static void att_room(const float *buf, size_t floats, const char *what, const AttShape &s) {
    const size_t have = buf ? cu_block_bytes(buf) : 0;
    if (have && have < floats * sizeof(float))
        dr_fail_at(__FILE__, __LINE__,
                   "attention (B %d, T %d, C %d, NH %d): %s holds %zu bytes, this path needs %zu: "
                   "it was sized by attention_state_floats under another GEMM precision or flash "
                   "switch (DR_CUDA_ATT_FLASH), which must not change between allocation and use",
                   s.B, s.T, s.C, s.NH, what, have, floats * sizeof(float));
}

/* P [B,NH,T,T] (the probabilities, 0 outside the allowed keys) into scratch slot `slot`:
 * S = scale·Q Kᵀ, then the softmax row kernel (the non-flash forward without O = P V) */
static float *att_probs(int slot, const float *qkv, const AttShape &s) {
    float *P = (float *)cu_scratch(slot, att_elems(s) * sizeof(float));
    bh_scores(s.scale, m_qkv(qkv, 0, s), m_qkv(qkv, 1, s), 0, m_att(P, s), s);
    auto softmax = ROW_KERNEL(softmax_rows, s);
    softmax<<<row_blocks(s), 32 * ROWS_PER_BLOCK>>>(P, s, (__nv_bfloat16 *)NULL);
    cudaLaunchCheck();
    return P;
}

/* ---- the four faces ------------------------------------------------------------------- */

void cu_attention_forward(real *out, real *att, const real *qkv, const int32_t *valid_len,
                          int causal, int B, int T, int C, int NH) {
    if (B <= 0 || T <= 0) return;
    AttShape s = att_shape(valid_len, causal, B, T, C, NH);
    if (cu_att_flash_eligible(B, T, C, NH)) {
        att_room(att, att_flash_elems(s), "att", s);
        cu_attention_flash_forward(out, att, qkv, valid_len, causal, B, T, C, NH);
        return;
    }
    att_room(att, att_elems(s), "att", s);
    bh_scores(s.scale, m_qkv(qkv, 0, s), m_qkv(qkv, 1, s), 0, m_att(att, s), s);
    /* bf16 mode: P also in bf16 (dense, scratch), the operand of O = P V */
    __nv_bfloat16 *ph = att_bf16_rows(s, 0)
        ? (__nv_bfloat16 *)cu_scratch(CU_SCR_ATT_A, att_elems(s) * sizeof(__nv_bfloat16)) : NULL;
    auto softmax = ROW_KERNEL(softmax_rows, s);
    softmax<<<row_blocks(s), 32 * ROWS_PER_BLOCK>>>(att, s, ph);
    cudaLaunchCheck();
    if (ph) cu_gemm_bh_bf16a(0, 0, s.T, s.hs, s.T, 1, m_att_h(ph, s.T, s), m_qkv(qkv, 2, s), 0,
                             m_btc(out, s), s.B, s.NH);
    else    bh_rows_times(1, m_att(att, s), m_qkv(qkv, 2, s), 0, m_btc(out, s), s);
}

/* dV = Pᵀ dO;  dP = dO Vᵀ;  dS = softmax'ᵀ dP;  dQ = scale·dS K;  dK = scale·dSᵀ Q: every
 * product into dqkv with beta 0 (the backward faces write it, backend.h; padded rows get
 * exact zeros, their P and dS rows and columns being 0) */
void cu_attention_backward(real *dqkv, const real *dout, const real *qkv, const real *att,
                           const int32_t *valid_len, int causal, int B, int T, int C, int NH) {
    if (B <= 0 || T <= 0) return;
    AttShape s = att_shape(valid_len, causal, B, T, C, NH);
    if (cu_att_flash_eligible(B, T, C, NH)) {
        att_room(att, att_flash_elems(s), "att", s);
        cu_attention_flash_backward(dqkv, dout, qkv, att, valid_len, causal, B, T, C, NH);
        return;
    }
    att_room(att, att_elems(s), "att", s);
    float *dS = (float *)cu_scratch(CU_SCR_ATT_A, att_elems(s) * sizeof(float));
    if (att_bf16_rows(s, 1)) {
        /* dP into dS's rows, then the row kernel turns each into bf16 dS and P (ld 2T);
         * the three products take them as they are */
        bh_scores(1, m_btc(dout, s), m_qkv(qkv, 2, s), 0, m_att(dS, s), s);
        auto softmax_bw = ROW_REG_KERNEL(softmax_backward_bf16_rows, s);
        softmax_bw<<<row_blocks(s), 32 * ROWS_PER_BLOCK>>>(dS, att, s);
        cudaLaunchCheck();
        const CuBHMatH dSh = m_att_h(dS, 2 * s.T, s),
                       Ph = m_att_h((const __nv_bfloat16 *)dS + s.T, 2 * s.T, s);
        cu_gemm_bh_bf16a(1, 0, s.T, s.hs, s.T, 1, Ph, m_btc(dout, s), 0, m_qkv(dqkv, 2, s), s.B, s.NH);
        cu_gemm_bh_bf16a(0, 0, s.T, s.hs, s.T, s.scale, dSh, m_qkv(qkv, 1, s), 0, m_qkv(dqkv, 0, s), s.B, s.NH);
        cu_gemm_bh_bf16a(1, 0, s.T, s.hs, s.T, s.scale, dSh, m_qkv(qkv, 0, s), 0, m_qkv(dqkv, 1, s), s.B, s.NH);
        return;
    }
    bh_cols_times(1, m_att(att, s), m_btc(dout, s), 0, m_qkv(dqkv, 2, s), s);
    bh_scores(1, m_btc(dout, s), m_qkv(qkv, 2, s), 0, m_att(dS, s), s);
    auto softmax_bw = ROW_KERNEL(softmax_jacobian_rows, s);
    softmax_bw<<<row_blocks(s), 32 * ROWS_PER_BLOCK>>>(dS, att, s, (__nv_bfloat16 *)NULL);
    cudaLaunchCheck();
    bh_rows_times(s.scale, m_att(dS, s), m_qkv(qkv, 1, s), 0, m_qkv(dqkv, 0, s), s);
    bh_cols_times(s.scale, m_att(dS, s), m_qkv(qkv, 0, s), 0, m_qkv(dqkv, 1, s), s);
}

/* Ṡ = scale(Q̇ Kᵀ + Q K̇ᵀ);  Ṗ = softmax' Ṡ;  Ȯ = Ṗ V + P V̇ (flash mode: tatt gets r, Ȯ) */
void cu_attention_forward_tangent(real *tout, real *tatt, const real *qkv, const real *tqkv,
                                  const real *att, const int32_t *valid_len, int causal,
                                  int B, int T, int C, int NH) {
    if (B <= 0 || T <= 0) return;
    AttShape s = att_shape(valid_len, causal, B, T, C, NH);
    const int flash = cu_att_flash_eligible(B, T, C, NH);
    const size_t state = flash ? att_flash_elems(s) : att_elems(s);
    att_room(att, state, "att", s);
    att_room(tatt, state, "tatt", s);
    if (!tqkv) {   /* zero tangent in, zero tangent out (flash: r and Ȯ) */
        if (tatt) cudaCheck(cudaMemsetAsync(tatt, 0, state * sizeof(float), 0));
        cudaCheck(cudaMemsetAsync(tout, 0, (size_t)B * T * C * sizeof(float), 0));
        return;
    }
    if (flash) {
        cu_attention_flash_forward_tangent(tout, tatt, qkv, tqkv, att, valid_len, causal, B, T, C,
                                           NH);
        return;
    }
    float *Pt = tatt ? tatt : (float *)cu_scratch(CU_SCR_ATT_A, att_elems(s) * sizeof(float));
    bh_scores_sum(s.scale, m_qkv(tqkv, 0, s), m_qkv(qkv, 1, s), m_qkv(qkv, 0, s),
                  m_qkv(tqkv, 1, s), m_att(Pt, s), s);
    /* bf16 mode: Ṗ and P also in bf16 ([2T] rows: Ṗ, then P), the products' operands */
    __nv_bfloat16 *h = att_bf16_rows(s, 0)
        ? (__nv_bfloat16 *)cu_scratch(CU_SCR_ATT_B, att_elems(s) * 2 * sizeof(__nv_bfloat16)) : NULL;
    auto softmax_t = ROW_KERNEL(softmax_jacobian_rows, s);
    softmax_t<<<row_blocks(s), 32 * ROWS_PER_BLOCK>>>(Pt, att, s, h);
    cudaLaunchCheck();
    if (h) {   /* Ȯ = [Ṗ | P]·[V ; V̇], one product over K = 2T */
        cu_gemm_bh_bf16a_ksum(0, 0, s.T, s.hs, s.T, s.T, 1, m_att_h(h, 2 * s.T, s),
                              m_qkv(qkv, 2, s), m_qkv(tqkv, 2, s), 0, 0, m_btc(tout, s), s.B, s.NH);
        return;
    }
    bh_rows_times(1, m_att(Pt, s), m_qkv(qkv, 2, s), 0, m_btc(tout, s), s);
    bh_rows_times(1, m_att(att, s), m_qkv(tqkv, 2, s), 1, m_btc(tout, s), s);
}

/* dṖ = dȮ Vᵀ + dO V̇ᵀ into dSt's [B,NH,T,T] (terms whose tangent is NULL left out) */
static void tangent_scores(const float *dtout, CuBHMat dO, CuBHMat V, const float *tqkv,
                           float *dSt, const AttShape &s) {
    const CuBHMat DST = m_att(dSt, s);
    if (dtout && tqkv) {
        bh_scores_sum(1, m_btc(dtout, s), V, dO, m_qkv(tqkv, 2, s), DST, s);
    } else if (dtout) {
        bh_scores(1, m_btc(dtout, s), V, 0, DST, s);
    } else if (tqkv) {
        bh_scores(1, dO, m_qkv(tqkv, 2, s), 0, DST, s);
    } else {
        cudaCheck(cudaMemsetAsync(dSt, 0, att_elems(s) * sizeof(float), 0));
    }
}

/* dV̇ = Ṗᵀ dO + Pᵀ dȮ;  dṖ = dȮ Vᵀ + dO V̇ᵀ;  (dS, dṠ) by the row kernel;
 * dQ̇ = scale(dṠ K + dS K̇);  dK̇ = scale(dṠᵀ Q + dSᵀ Q̇): written, like the backward's
 * (each output's first product with beta 0; all of dtqkv zeroed first where dV̇ has no
 * term, tatt and dtout both NULL, which no caller in lib/ does) */
void cu_attention_backward_tangent(real *dtqkv, const real *dout, const real *dtout,
                                   const real *qkv, const real *tqkv, const real *att,
                                   const real *tatt, const int32_t *valid_len, int causal,
                                   int B, int T, int C, int NH) {
    if (B <= 0 || T <= 0) return;
    AttShape s = att_shape(valid_len, causal, B, T, C, NH);
    const int flash = cu_att_flash_eligible(B, T, C, NH);
    const size_t state = flash ? att_flash_elems(s) : att_elems(s);
    att_room(att, state, "att", s);
    att_room(tatt, state, "tatt", s);
    if (!tatt && !dtout) {
        cudaCheck(cudaMemsetAsync(dtqkv, 0, (size_t)B * T * 3 * C * sizeof(float), 0));
        if (flash && !tqkv) return;   /* every tangent zero: so is dtqkv */
    }
    if (flash && (tatt || !tqkv)) {
        cu_attention_flash_backward_tangent(dtqkv, dout, dtout, qkv, tqkv, att, tatt, valid_len,
                                            causal, B, T, C, NH);
        return;
    }
    /* flash, tatt NULL with tqkv given (Ṗ = 0 by the CPU's convention; no caller in lib/
     * does this): P rematerialized into scratch, then the stored path below */
    if (flash) att = att_probs(CU_SCR_ATT_P, qkv, s);
    float *dS = (float *)cu_scratch(CU_SCR_ATT_A, att_elems(s) * sizeof(float));
    float *dSt = (float *)cu_scratch(CU_SCR_ATT_B, att_elems(s) * sizeof(float));
    const CuBHMat P = m_att(att, s), DS = m_att(dS, s), DST = m_att(dSt, s);
    const CuBHMat dO = m_btc(dout, s);
    const CuBHMat Q = m_qkv(qkv, 0, s), K = m_qkv(qkv, 1, s), V = m_qkv(qkv, 2, s);
    const CuBHMat dQt = m_qkv(dtqkv, 0, s), dKt = m_qkv(dtqkv, 1, s), dVt = m_qkv(dtqkv, 2, s);

    if (att_bf16_rows(s, 1)) {
        /* dP and dṖ into dS's and dṠ's rows, which the row kernel turns into bf16 [Ṗ | P]
         * and [dṠ | dS] (ld 2T). Each pair of products then is one over K = 2T: dQ̇ over
         * [dṠ | dS] and [K ; K̇]; dK̇ and dV̇ over the rows read with ld T, which alternate
         * (dṠ[t], dS[t], …; Ṗ[t], P[t], …), and B's rows alternating the same way */
        bh_scores(1, dO, V, 0, DS, s);
        tangent_scores(dtout, dO, V, tqkv, dSt, s);
        auto softmax_bwt = ROW_REG_KERNEL(softmax_backward_tangent_bf16_rows, s);
        softmax_bwt<<<row_blocks(s), 32 * ROWS_PER_BLOCK>>>(dS, dSt, att, tatt, s);
        cudaLaunchCheck();
        const __nv_bfloat16 *hp = (const __nv_bfloat16 *)dS, *hd = (const __nv_bfloat16 *)dSt;
        const CuBHMatH PPh = m_att_h(hp, 2 * s.T, s), DDh = m_att_h(hd, 2 * s.T, s);
        const CuBHMatH PPi = { hp, PPh.sb, PPh.sh, s.T }, DDi = { hd, DDh.sb, DDh.sh, s.T };
        if (tatt && dtout) {
            cu_gemm_bh_bf16a_ksum(1, 0, s.T, s.hs, s.T, s.T, 1, PPi, dO, m_btc(dtout, s), 1, 0,
                                  dVt, s.B, s.NH);
        } else if (tatt) {
            cu_gemm_bh_bf16a(1, 0, s.T, s.hs, s.T, 1, PPh, dO, 0, dVt, s.B, s.NH);
        } else if (dtout) {
            cu_gemm_bh_bf16a(1, 0, s.T, s.hs, s.T, 1, m_att_h(hp + s.T, 2 * s.T, s),
                             m_btc(dtout, s), 0, dVt, s.B, s.NH);
        }
        if (tqkv) {
            cu_gemm_bh_bf16a_ksum(0, 0, s.T, s.hs, s.T, s.T, s.scale, DDh, K, m_qkv(tqkv, 1, s), 0,
                                  0, dQt, s.B, s.NH);
            cu_gemm_bh_bf16a_ksum(1, 0, s.T, s.hs, s.T, s.T, s.scale, DDi, Q, m_qkv(tqkv, 0, s), 1,
                                  0, dKt, s.B, s.NH);
        } else {
            cu_gemm_bh_bf16a(0, 0, s.T, s.hs, s.T, s.scale, DDh, K, 0, dQt, s.B, s.NH);
            cu_gemm_bh_bf16a(1, 0, s.T, s.hs, s.T, s.scale, DDh, Q, 0, dKt, s.B, s.NH);
        }
        return;
    }
    if (tatt) bh_cols_times(1, m_att(tatt, s), dO, 0, dVt, s);
    if (dtout) bh_cols_times(1, P, m_btc(dtout, s), tatt ? 1 : 0, dVt, s);
    bh_scores(1, dO, V, 0, DS, s);
    tangent_scores(dtout, dO, V, tqkv, dSt, s);

    auto softmax_bwt = ROW_KERNEL(softmax_backward_tangent_rows, s);
    softmax_bwt<<<row_blocks(s), 32 * ROWS_PER_BLOCK>>>(dS, dSt, att, tatt, s);
    cudaLaunchCheck();

    bh_rows_times(s.scale, DST, K, 0, dQt, s);
    bh_cols_times(s.scale, DST, Q, 0, dKt, s);
    if (tqkv) {
        bh_rows_times(s.scale, DS, m_qkv(tqkv, 1, s), 1, dQt, s);
        bh_cols_times(s.scale, DS, m_qkv(tqkv, 0, s), 1, dKt, s);
    }
}
