/* attention_flash.cu — the opt-in FlashAttention-2-style forward and backward of
 * attention (attention.cu calls them; DR_CUDA_ATT_FLASH=1 or backend_cuda_set_att_flash(1),
 * bf16 GEMM mode only): tiled kernels on tensor cores (nvcuda::wmma, bf16 16×16×16 with
 * fp32 accumulation) that never store the T×T scores. The math and the masks are
 * lib/ops/attention.c's; the results agree with it at the bf16 bound.
 *
 * The att buffer [B,NH,T,T] (the backend's own state between forward and backward) holds
 * in flash mode, from its start:
 *   lse [B,NH,T]  the log-sum-exp of each query row's scaled scores over its allowed keys,
 *                 −INFINITY for rows with none (padded queries t ≥ L, and L = 0);
 *   O   [B,T,C]   a copy of the output (for D = rowsum(dO ⊙ O) in the backward);
 * the rest untouched. It fits when NH·T + T·C ≤ NH·T·T, i.e. T ≥ hs + 1
 * (cu_att_flash_eligible).
 *
 * Kernels (FL_WARPS = 4 warps a block; each warp owns 16 rows of the block's tile, and two
 * lanes share each row for the SIMT parts, columns ≡ lane mod 2, in an order rotated per
 * row so that the warp's 32 lanes hit 32 shared-memory banks: fl_col):
 *   forward   one block per (64 queries, b·h), looping over tiles of 32 keys up to the
 *             block's last allowed key. S = Q Kᵀ on tensor cores → shared memory; per row
 *             an online softmax (running max m and sum l in registers, P rounded to bf16
 *             into shared memory); O [16, hs] per warp kept in shared memory in fp32,
 *             rescaled row by row by exp(m_old − m_new) (the accumulator fragment's
 *             element → row mapping is opaque, so the rescale cannot happen in registers),
 *             then loaded as the accumulator of O += P V and stored back. One pass over K
 *             and V (a two-pass forward would need a second Q Kᵀ).
 *   D         one warp per query row: D = rowsum(dO ⊙ O) into scratch (CU_SCR_ROWS).
 *   dK, dV    one block per (64 keys, b·h), looping over tiles of 32 queries from the
 *             block's first key on (causal) to L. Sᵀ = K Qᵀ, Pᵀ = exp(scale·Sᵀ − lse)
 *             (fp32 in registers, bf16 in shared memory), dV += Pᵀ dO, dPᵀ = V dOᵀ,
 *             dSᵀ = Pᵀ ⊙ (dPᵀ − D), dK += dSᵀ Q; dK and dV stay in accumulator fragments
 *             (no rescale) and are added to dqkv at the end (dK times scale).
 *   dQ        one block per (64 queries, b·h), looping over tiles of 32 keys like the
 *             forward: S, P = exp(scale·S − lse), dP = dO Vᵀ, dS = P ⊙ (dP − D),
 *             dQ += dS K, added to dqkv at the end times scale.
 * Tiles whose (query, key) pairs are all masked are skipped (the causal upper triangle,
 * keys j ≥ L, queries t ≥ L): per block by the loop bounds, per warp by a warp-uniform
 * test. Masked entries inside a tile get P = 0 exactly; K, V, Q, dO rows beyond the limit
 * are loaded as zeros, so nothing beyond T is read.
 * Numerics: Q, K, V, dO, P and dS enter the products as bf16 (round to nearest even),
 * accumulation in fp32; scores, softmax statistics, D and the accumulated outputs are
 * fp32. Backward: ACCUMULATES into dqkv (+=, only rows t < L, which are the only ones the
 * CPU changes); forward: writes every element of out (0 for padded queries).
 * Deterministic: no atomics; each output element is written by one thread in a fixed
 * order (the tensor-core products and the loops have fixed orders).
 * wmma: every shared tile is __align__(32) with row strides of 16·k bf16 (32·k bytes) or
 * 8·k floats, so each fragment pointer is 32-byte aligned and each ldm·size a multiple of
 * 32 bytes (checked by the emulator's <mma.h>). hs ∈ {16, 32, 48, 64} (template HS); the
 * static shared memory of each kernel is static_assert-ed ≤ 48 KiB. */
#include <cuda_bf16.h>
#include <math.h>
#include <mma.h>

#include "cuda/cuda_ops.cuh"

using namespace nvcuda;

/* bf16 wmma needs sm_80 or newer: built for an older CUDA_ARCH (make CUDA_ARCH=75) the
 * kernels below compile to a trap, so that a flash run there fails loudly at its next
 * check instead of computing nothing */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define FL_NO_WMMA 1
#endif

#define FL_WARPS 4
#define FL_THREADS (32 * FL_WARPS)
#define FL_BR 64   /* queries per block: forward, dQ (16 per warp) */
#define FL_BC 32   /* keys per tile of the forward / dQ loops */
#define FL_BK 64   /* keys per block: dK, dV (16 per warp) */
#define FL_BQ 32   /* queries per tile of the dK / dV loop */
#define FL_MAX_HS 64
static_assert(FL_BK % FL_BQ == 0, "the dK/dV loop starts at the block's first key (causal)");
static_assert(FL_BR == 16 * FL_WARPS && FL_BK == 16 * FL_WARPS, "16 rows per warp");
static_assert(FL_BC % 16 == 0 && FL_BQ % 16 == 0, "tiles of 16 × 16 fragments");

#ifdef __CUDACC__
#define FL_UNROLL _Pragma("unroll")
#else
#define FL_UNROLL
#endif

typedef __nv_bfloat16 bf16;
typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragBRow;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBCol;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

typedef struct {
    int B, T, C, NH;
    float scale;
    const int32_t *valid_len;   /* [B] or NULL */
    int causal;
} FlashShape;

[[maybe_unused]] static __device__ __forceinline__ int fl_min(int a, int b) { return a < b ? a : b; }

/* keys query t attends to: 0 … n − 1 (0 for padded queries t ≥ L) */
[[maybe_unused]] static __device__ __forceinline__ int fl_keys(int t, int L, int causal) {
    return t < L ? (causal ? t + 1 : L) : 0;
}

/* The column a lane visits at step i of a row-wise loop (two lanes per row r, half = 0
 * or 1; n even): columns ≡ half mod 2, starting 2r further on in each row, so that the
 * 32 lanes of a warp hit 32 different shared-memory banks when the row stride is a
 * multiple of 32 words (with i = 0 … n/2 − 1 a lane visits each of its columns once). */
[[maybe_unused]] static __device__ __forceinline__ int fl_col(int i, int r, int half, int n) {
    return (int)((unsigned)(half + 2 * (i + r)) % (unsigned)n);   /* n a constant: a mask */
}

/* dst [rows, HS] bf16 (dense) = rows r0 … r0 + rows − 1 of src [*, ld] fp32, zeros for
 * rows ≥ limit (never read); the whole block cooperates */
template <int HS>
static __device__ void fl_load_tile(bf16 *dst, const float *src, int ld, int r0, int rows,
                                    int limit) {
    for (int i = threadIdx.x; i < rows * HS; i += FL_THREADS) {
        const int r = i / HS, e = i % HS;
        dst[i] = __float2bfloat16(r0 + r < limit ? src[(size_t)(r0 + r) * ld + e] : 0.0f);
    }
}

/* C [16, 16·NC] (fp32, ldc) = A [16, HS] · B [16·NC, HS]ᵀ, A and B bf16 row-major with
 * leading dimension HS: one warp */
template <int HS, int NC>
static __device__ void fl_mma_abt(float *c, int ldc, const bf16 *a, const bf16 *b) {
    FL_UNROLL
    for (int n = 0; n < NC; n++) {
        FragC acc;
        wmma::fill_fragment(acc, 0.0f);
        FL_UNROLL
        for (int e = 0; e < HS / 16; e++) {
            FragA fa;
            FragBCol fb;
            wmma::load_matrix_sync(fa, a + 16 * e, HS);
            wmma::load_matrix_sync(fb, b + (size_t)16 * n * HS + 16 * e, HS);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(c + 16 * n, acc, ldc, wmma::mem_row_major);
    }
}

/* acc[c] += A [16, KT] · B [KT, HS] column block c, A bf16 row-major (lda), B bf16
 * row-major with leading dimension HS: one warp */
template <int HS, int KT>
static __device__ void fl_mma_ab_acc(FragC *acc, const bf16 *a, int lda, const bf16 *b) {
    FL_UNROLL
    for (int c = 0; c < HS / 16; c++) {
        FL_UNROLL
        for (int k = 0; k < KT / 16; k++) {
            FragA fa;
            FragBRow fb;
            wmma::load_matrix_sync(fa, a + 16 * k, lda);
            wmma::load_matrix_sync(fb, b + (size_t)16 * k * HS + 16 * c, HS);
            wmma::mma_sync(acc[c], fa, fb, acc[c]);
        }
    }
}

/* dst rows r0 + rr < limit, columns 0 … HS − 1 (leading dimension ld) += alpha · acc
 * (16 rows), staged 16 columns at a time through stage [16, ≥ 16] (fp32, ldst): one warp */
template <int HS>
static __device__ void fl_add_rows(float *dst, int ld, int r0, int limit, float alpha,
                                   const FragC *acc, float *stage, int ldst) {
    const int lane = threadIdx.x & 31;
    FL_UNROLL
    for (int c = 0; c < HS / 16; c++) {
        wmma::store_matrix_sync(stage, acc[c], ldst, wmma::mem_row_major);
        __syncwarp();
        for (int i = lane; i < 256; i += 32) {
            const int rr = i / 16, e = i % 16;
            if (r0 + rr < limit) dst[(size_t)(r0 + rr) * ld + 16 * c + e] += alpha * stage[rr * ldst + e];
        }
        __syncwarp();
    }
}

/* ---- forward -------------------------------------------------------------------------- */

template <int HS>
static __global__ void __launch_bounds__(FL_THREADS)
flash_forward_k(float *out, float *lse, float *o_copy, const float *qkv, const FlashShape s) {
#ifdef FL_NO_WMMA
    __trap();
#else
    __shared__ __align__(32) bf16 q_s[FL_BR * HS];
    __shared__ __align__(32) bf16 k_s[FL_BC * HS];
    __shared__ __align__(32) bf16 v_s[FL_BC * HS];
    __shared__ __align__(32) float s_s[FL_WARPS][16 * FL_BC];
    __shared__ __align__(32) bf16 p_s[FL_WARPS][16 * FL_BC];
    __shared__ __align__(32) float o_s[FL_WARPS][16 * HS];
    __shared__ float inv_s[FL_WARPS][16];
    static_assert(sizeof q_s + sizeof k_s + sizeof v_s + sizeof s_s + sizeof p_s + sizeof o_s +
                  sizeof inv_s <= 48 * 1024, "flash forward: static shared memory over 48 KiB");

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
    const int bh = blockIdx.y, b = bh / s.NH, h = bh % s.NH, T = s.T, C3 = 3 * s.C;
    const int q0 = blockIdx.x * FL_BR, tw = q0 + 16 * warp, t = tw + r;
    const int L = cu_valid(s.valid_len, b, T);
    const float *q = qkv + (size_t)b * T * C3 + h * HS, *k = q + s.C, *v = q + 2 * s.C;
    const int kend = q0 < L ? (s.causal ? fl_min(q0 + FL_BR, L) : L) : 0;
    const int warp_keys = tw < L ? (s.causal ? fl_min(tw + 16, L) : L) : 0;
    const int n = fl_keys(t, L, s.causal);

    fl_load_tile<HS>(q_s, q, C3, q0, FL_BR, L);
    float *o = o_s[warp], *srow = s_s[warp] + r * FL_BC;
    bf16 *prow = p_s[warp] + r * FL_BC;
    for (int i = lane; i < 16 * HS; i += 32) o[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;   /* l: this lane's half of the row's sum */

    for (int k0 = 0; k0 < kend; k0 += FL_BC) {
        __syncthreads();   /* q_s written; the previous tile's k_s, v_s read */
        fl_load_tile<HS>(k_s, k, C3, k0, FL_BC, kend);
        fl_load_tile<HS>(v_s, v, C3, k0, FL_BC, kend);
        __syncthreads();
        if (k0 >= warp_keys) continue;   /* warp-uniform: every pair masked */

        fl_mma_abt<HS, FL_BC / 16>(s_s[warp], FL_BC, q_s + 16 * warp * HS, k_s);
        __syncwarp();
        float mt = -INFINITY;
        FL_UNROLL
        for (int i = 0; i < FL_BC / 2; i++) {
            const int j = fl_col(i, r, half, FL_BC);
            if (k0 + j < n) mt = fmaxf(mt, s.scale * srow[j]);
        }
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
        const float m_new = fmaxf(m, mt);
        /* no allowed key so far: O and l are 0, nothing to rescale */
        const float alpha = m_new == -INFINITY ? 1.0f : expf(m - m_new);
        float sum = 0.0f;
        FL_UNROLL
        for (int i = 0; i < FL_BC / 2; i++) {
            const int j = fl_col(i, r, half, FL_BC);
            const float p = k0 + j < n ? expf(s.scale * srow[j] - m_new) : 0.0f;
            sum += p;
            prow[j] = __float2bfloat16(p);
        }
        l = alpha * l + sum;
        m = m_new;
        FL_UNROLL
        for (int i = 0; i < HS / 2; i++) o[r * HS + fl_col(i, r, half, HS)] *= alpha;
        __syncwarp();

        FragC acc[HS / 16];
        FL_UNROLL
        for (int c = 0; c < HS / 16; c++)
            wmma::load_matrix_sync(acc[c], o + 16 * c, HS, wmma::mem_row_major);
        fl_mma_ab_acc<HS, FL_BC>(acc, p_s[warp], FL_BC, v_s);
        FL_UNROLL
        for (int c = 0; c < HS / 16; c++)
            wmma::store_matrix_sync(o + 16 * c, acc[c], HS, wmma::mem_row_major);
        __syncwarp();
    }

    l += __shfl_xor_sync(0xffffffffu, l, 1);
    if (half == 0) {
        inv_s[warp][r] = n > 0 ? 1.0f / l : 0.0f;
        if (t < T) lse[(size_t)bh * T + t] = n > 0 ? m + logf(l) : -INFINITY;
    }
    __syncwarp();
    const size_t base = (size_t)b * T * s.C + h * HS;
    for (int i = lane; i < 16 * HS; i += 32) {
        const int rr = i / HS, e = i % HS;
        if (tw + rr < T) {
            const float y = o[i] * inv_s[warp][rr];
            out[base + (size_t)(tw + rr) * s.C + e] = y;
            o_copy[base + (size_t)(tw + rr) * s.C + e] = y;
        }
    }
#endif
}

/* ---- backward ------------------------------------------------------------------------- */

/* D[(b·NH + h)·T + t] = Σ_e dO[b, t, h·hs + e] · O[b, t, h·hs + e]: one warp per row */
static __global__ void flash_rowdot_k(float *D, const float *dout, const float *o,
                                      const FlashShape s, int hs) {
    const size_t row = (size_t)blockIdx.x * FL_WARPS + (threadIdx.x >> 5);   /* (b·T + t)·NH + h */
    const int lane = threadIdx.x & 31;
    if (row >= (size_t)s.B * s.T * s.NH) return;
    const float *a = dout + row * hs, *c = o + row * hs;
    float acc = 0.0f;
    for (int e = lane; e < hs; e += 32) acc += a[e] * c[e];
    acc = cu_warp_sum(acc);
    const int h = (int)(row % s.NH), t = (int)((row / s.NH) % s.T), b = (int)(row / s.NH / s.T);
    if (lane == 0) D[((size_t)b * s.NH + h) * s.T + t] = acc;
}

template <int HS>
static __global__ void __launch_bounds__(FL_THREADS)
flash_backward_kv_k(float *dqkv, const float *dout, const float *qkv, const float *lse,
                    const float *D, const FlashShape s) {
#ifdef FL_NO_WMMA
    __trap();
#else
    __shared__ __align__(32) bf16 k_s[FL_BK * HS];
    __shared__ __align__(32) bf16 v_s[FL_BK * HS];
    __shared__ __align__(32) bf16 q_s[FL_BQ * HS];
    __shared__ __align__(32) bf16 do_s[FL_BQ * HS];
    __shared__ __align__(32) float s_s[FL_WARPS][16 * FL_BQ];
    __shared__ __align__(32) bf16 p_s[FL_WARPS][16 * FL_BQ];
    __shared__ float lse_s[FL_BQ], d_s[FL_BQ];
    static_assert(sizeof k_s + sizeof v_s + sizeof q_s + sizeof do_s + sizeof s_s + sizeof p_s +
                  sizeof lse_s + sizeof d_s <= 48 * 1024,
                  "flash dK/dV: static shared memory over 48 KiB");

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
    const int bh = blockIdx.y, b = bh / s.NH, h = bh % s.NH, T = s.T, C = s.C, C3 = 3 * C;
    const int k0 = blockIdx.x * FL_BK, kw = k0 + 16 * warp, j = kw + r;
    const int L = cu_valid(s.valid_len, b, T);
    if (k0 >= L) return;   /* block-uniform: these keys get nothing */
    const size_t qoff = (size_t)b * T * C3 + h * HS;
    const float *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
    const float *dO = dout + (size_t)b * T * C + h * HS;
    lse += (size_t)bh * T;
    D += (size_t)bh * T;

    fl_load_tile<HS>(k_s, k, C3, k0, FL_BK, L);
    fl_load_tile<HS>(v_s, v, C3, k0, FL_BK, L);
    float *srow = s_s[warp] + r * FL_BQ;
    bf16 *prow = p_s[warp] + r * FL_BQ;
    FragC dk[HS / 16], dv[HS / 16];
    FL_UNROLL
    for (int c = 0; c < HS / 16; c++) {
        wmma::fill_fragment(dk[c], 0.0f);
        wmma::fill_fragment(dv[c], 0.0f);
    }

    /* causal: queries t < k0 attend to no key ≥ k0 (FL_BK is a multiple of FL_BQ) */
    for (int q0 = s.causal ? k0 : 0; q0 < L; q0 += FL_BQ) {
        __syncthreads();   /* k_s, v_s written; the previous tile's q_s, do_s read */
        fl_load_tile<HS>(q_s, q, C3, q0, FL_BQ, L);
        fl_load_tile<HS>(do_s, dO, C, q0, FL_BQ, L);
        for (int i = threadIdx.x; i < FL_BQ; i += FL_THREADS) {
            lse_s[i] = q0 + i < L ? lse[q0 + i] : 0.0f;
            d_s[i] = q0 + i < L ? D[q0 + i] : 0.0f;
        }
        __syncthreads();
        /* warp-uniform: keys beyond L, or (causal) every query of the tile before them */
        if (kw >= L || (s.causal && q0 + FL_BQ - 1 < kw)) continue;

        /* Sᵀ [16 keys, FL_BQ queries] = K_w Qᵀ; Pᵀ = exp(scale·Sᵀ − lse) where allowed */
        fl_mma_abt<HS, FL_BQ / 16>(s_s[warp], FL_BQ, k_s + 16 * warp * HS, q_s);
        __syncwarp();
        float p[FL_BQ / 2];
        FL_UNROLL
        for (int i = 0; i < FL_BQ / 2; i++) {
            const int c = fl_col(i, r, half, FL_BQ), t = q0 + c;
            const bool allowed = t < L && j < L && (!s.causal || j <= t);
            p[i] = allowed ? expf(s.scale * srow[c] - lse_s[c]) : 0.0f;
            prow[c] = __float2bfloat16(p[i]);
        }
        __syncwarp();
        fl_mma_ab_acc<HS, FL_BQ>(dv, p_s[warp], FL_BQ, do_s);   /* dV += Pᵀ dO */
        /* dPᵀ = V_w dOᵀ (over Sᵀ: every lane has read it); dSᵀ = Pᵀ ⊙ (dPᵀ − D) */
        fl_mma_abt<HS, FL_BQ / 16>(s_s[warp], FL_BQ, v_s + 16 * warp * HS, do_s);
        __syncwarp();   /* and every lane's Pᵀ has gone into dV: p_s may be overwritten */
        FL_UNROLL
        for (int i = 0; i < FL_BQ / 2; i++) {
            const int c = fl_col(i, r, half, FL_BQ);
            prow[c] = __float2bfloat16(p[i] * (srow[c] - d_s[c]));
        }
        __syncwarp();
        fl_mma_ab_acc<HS, FL_BQ>(dk, p_s[warp], FL_BQ, q_s);   /* dK += dSᵀ Q */
    }

    if (kw >= L) return;   /* warp-uniform; no block barrier follows */
    __syncwarp();
    float *dk_out = dqkv + qoff + C, *dv_out = dqkv + qoff + 2 * C;
    fl_add_rows<HS>(dk_out, C3, kw, L, s.scale, dk, s_s[warp], FL_BQ);
    fl_add_rows<HS>(dv_out, C3, kw, L, 1.0f, dv, s_s[warp], FL_BQ);
#endif
}

template <int HS>
static __global__ void __launch_bounds__(FL_THREADS)
flash_backward_q_k(float *dqkv, const float *dout, const float *qkv, const float *lse,
                   const float *D, const FlashShape s) {
#ifdef FL_NO_WMMA
    __trap();
#else
    __shared__ __align__(32) bf16 q_s[FL_BR * HS];
    __shared__ __align__(32) bf16 do_s[FL_BR * HS];
    __shared__ __align__(32) bf16 k_s[FL_BC * HS];
    __shared__ __align__(32) bf16 v_s[FL_BC * HS];
    __shared__ __align__(32) float s_s[FL_WARPS][16 * FL_BC];
    __shared__ __align__(32) bf16 p_s[FL_WARPS][16 * FL_BC];
    static_assert(sizeof q_s + sizeof do_s + sizeof k_s + sizeof v_s + sizeof s_s + sizeof p_s <=
                  48 * 1024, "flash dQ: static shared memory over 48 KiB");

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, half = lane & 1;
    const int bh = blockIdx.y, b = bh / s.NH, h = bh % s.NH, T = s.T, C = s.C, C3 = 3 * C;
    const int q0 = blockIdx.x * FL_BR, tw = q0 + 16 * warp, t = tw + r;
    const int L = cu_valid(s.valid_len, b, T);
    const int kend = q0 < L ? (s.causal ? fl_min(q0 + FL_BR, L) : L) : 0;
    if (kend == 0) return;   /* block-uniform: padded queries get nothing */
    const int warp_keys = tw < L ? (s.causal ? fl_min(tw + 16, L) : L) : 0;
    const int n = fl_keys(t, L, s.causal);
    const size_t qoff = (size_t)b * T * C3 + h * HS;
    const float *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
    const float *dO = dout + (size_t)b * T * C + h * HS;
    const float lse_t = n > 0 ? lse[(size_t)bh * T + t] : 0.0f;
    const float d_t = n > 0 ? D[(size_t)bh * T + t] : 0.0f;

    fl_load_tile<HS>(q_s, q, C3, q0, FL_BR, L);
    fl_load_tile<HS>(do_s, dO, C, q0, FL_BR, L);
    float *srow = s_s[warp] + r * FL_BC;
    bf16 *prow = p_s[warp] + r * FL_BC;
    FragC dq[HS / 16];
    FL_UNROLL
    for (int c = 0; c < HS / 16; c++) wmma::fill_fragment(dq[c], 0.0f);

    for (int k0 = 0; k0 < kend; k0 += FL_BC) {
        __syncthreads();   /* q_s, do_s written; the previous tile's k_s, v_s read */
        fl_load_tile<HS>(k_s, k, C3, k0, FL_BC, kend);
        fl_load_tile<HS>(v_s, v, C3, k0, FL_BC, kend);
        __syncthreads();
        if (k0 >= warp_keys) continue;   /* warp-uniform: every pair masked */

        fl_mma_abt<HS, FL_BC / 16>(s_s[warp], FL_BC, q_s + 16 * warp * HS, k_s);
        __syncwarp();
        float p[FL_BC / 2];
        FL_UNROLL
        for (int i = 0; i < FL_BC / 2; i++) {
            const int jj = fl_col(i, r, half, FL_BC);
            p[i] = k0 + jj < n ? expf(s.scale * srow[jj] - lse_t) : 0.0f;
        }
        __syncwarp();   /* every lane has read S: dP goes over it */
        fl_mma_abt<HS, FL_BC / 16>(s_s[warp], FL_BC, do_s + 16 * warp * HS, v_s);
        __syncwarp();
        FL_UNROLL
        for (int i = 0; i < FL_BC / 2; i++) {
            const int jj = fl_col(i, r, half, FL_BC);
            prow[jj] = __float2bfloat16(p[i] * (srow[jj] - d_t));
        }
        __syncwarp();
        fl_mma_ab_acc<HS, FL_BC>(dq, p_s[warp], FL_BC, k_s);   /* dQ += dS K */
    }

    if (tw >= L) return;   /* warp-uniform; no block barrier follows */
    __syncwarp();
    fl_add_rows<HS>(dqkv + qoff, C3, tw, L, s.scale, dq, s_s[warp], FL_BC);
#endif
}

/* ---- host side ------------------------------------------------------------------------ */

int cu_att_flash_eligible(int B, int T, int C, int NH) {
    if (!cu_att_flash() || cu_gemm_mode() != CU_GEMM_BF16) return 0;
    if (B <= 0 || T <= 0 || NH <= 0 || C % NH) return 0;
    const int hs = C / NH;
    if (hs % 16 || hs > FL_MAX_HS) return 0;
    if ((long long)B * NH > 65535) return 0;   /* gridDim.y */
    /* lse [B,NH,T] + O [B,T,C] inside att [B,NH,T,T] */
    return (size_t)NH * T + (size_t)T * C <= (size_t)NH * T * T;
}

static FlashShape flash_shape(const int32_t *valid_len, int causal, int B, int T, int C, int NH) {
    FlashShape s;
    s.B = B; s.T = T; s.C = C; s.NH = NH;
    s.scale = (float)(1.0 / sqrt((double)(C / NH)));
    s.valid_len = valid_len;
    s.causal = causal;
    return s;
}

#define FL_DISPATCH(kern, hs)                                                               \
    ((hs) == 16 ? kern<16> : (hs) == 32 ? kern<32> : (hs) == 48 ? kern<48> : kern<64>)

void cu_attention_flash_forward(float *out, float *att, const float *qkv,
                                const int32_t *valid_len, int causal, int B, int T, int C,
                                int NH) {
    const FlashShape s = flash_shape(valid_len, causal, B, T, C, NH);
    float *lse = att, *o_copy = att + (size_t)B * NH * T;
    dim3 grid((unsigned)((T + FL_BR - 1) / FL_BR), (unsigned)(B * NH));
    auto fwd = FL_DISPATCH(flash_forward_k, C / NH);
    fwd<<<grid, FL_THREADS>>>(out, lse, o_copy, qkv, s);
    cudaLaunchCheck();
}

void cu_attention_flash_backward(float *dqkv, const float *dout, const float *qkv,
                                 const float *att, const int32_t *valid_len, int causal, int B,
                                 int T, int C, int NH) {
    const FlashShape s = flash_shape(valid_len, causal, B, T, C, NH);
    const int hs = C / NH;
    const float *lse = att, *o_copy = att + (size_t)B * NH * T;
    float *D = (float *)cu_scratch(CU_SCR_ROWS, (size_t)B * NH * T * sizeof(float));
    const size_t rows = (size_t)B * T * NH;
    flash_rowdot_k<<<(unsigned)((rows + FL_WARPS - 1) / FL_WARPS), FL_THREADS>>>(D, dout, o_copy,
                                                                                  s, hs);
    cudaLaunchCheck();
    dim3 grid_kv((unsigned)((T + FL_BK - 1) / FL_BK), (unsigned)(B * NH));
    auto kv = FL_DISPATCH(flash_backward_kv_k, hs);
    kv<<<grid_kv, FL_THREADS>>>(dqkv, dout, qkv, lse, D, s);
    cudaLaunchCheck();
    dim3 grid_q((unsigned)((T + FL_BR - 1) / FL_BR), (unsigned)(B * NH));
    auto dq = FL_DISPATCH(flash_backward_q_k, hs);
    dq<<<grid_q, FL_THREADS>>>(dqkv, dout, qkv, lse, D, s);
    cudaLaunchCheck();
}
