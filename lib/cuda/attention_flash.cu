/* attention_flash.cu — the opt-in FlashAttention-2-style attention, all four faces
 * (attention.cu calls them; DR_CUDA_ATT_FLASH=1 or backend_cuda_set_att_flash(1), bf16
 * GEMM mode only): tiled kernels on tensor cores (mma.sync, bf16 m16n8k16 with fp32
 * accumulation) that never store a T×T matrix: not the scores, not P, not Ṗ. The math and
 * the masks are lib/ops/attention.c's; the results agree with it at the bf16 bound.
 *
 * The att buffer (the backend's state from the forward to the other faces) and the tatt
 * buffer (the forward tangent's state to the backward tangent) hold in flash mode, from
 * their start (the rest untouched; Backend.attention_state_floats = their size):
 *   att   lse [B,NH,T]  the log-sum-exp of each query row's scaled scores over its allowed
 *                       keys, −INFINITY for rows with none (padded queries t ≥ L, L = 0);
 *         O   [B,T,C]   a copy of the output (D = rowsum(dO ⊙ O) in the backward);
 *   tatt  r   [B,NH,T]  rowsum(P ⊙ Ṡ) of each query row, 0 for rows without keys, so that
 *                       Ṗ = P ⊙ (Ṡ − r) can be recomputed tile by tile;
 *         Ȯ   [B,T,C]   a copy of the tangent output (Ḋ = dȮ·O + dO·Ȯ);
 * each fits in [B,NH,T,T] when NH·T + T·C ≤ NH·T·T, i.e. T ≥ hs + 1 (cu_att_flash_eligible).
 *
 * Kernels: FL_WARPS = 4 warps a block, each owning 16 rows (queries, or keys in the dK/dV
 * kernels) of the block's 64, on mma.sync.m16n8k16 (mma_bf16.cuh) in FlashAttention-2's
 * manner. A warp keeps its own rows' operands (Q; K and V; Q and dO; and their tangents)
 * as A operands in registers, loaded once; per tile of the other side the block stages
 * those rows in bf16 in shared memory, row-major where they are a product's Bᵀ (S = Q Kᵀ)
 * and transposed where they are its B (O += P V), rows padded by 8 bf16 so that a warp's
 * operand loads hit 32 different banks. Scores, P, Ṗ, dP and dṖ live in accumulator
 * registers: each lane holds 2 rows (g, g + 8) × 2 columns of every 8-column block, so a
 * row statistic is the lane's part reduced over the row's 4 lanes by two xor shuffles,
 * and two 8-column blocks, packed to bf16, are the next product's A operand over 16. The
 * outputs stay in accumulators until the end.
 *   forward   one block per (64 queries, b·h), tiles of FM_BC = 64 keys up to the block's
 *             last allowed key: S = Q Kᵀ, online softmax (running max m and sum l per row,
 *             O rescaled by exp(m_old − m_new) in registers), O += P V. One pass over K, V.
 *   D         one warp per query row: D = rowsum(dO ⊙ O) into scratch (CU_SCR_ROWS).
 *   dK, dV    one block per (64 keys, b·h), tiles of FB_BQ = 32 queries from the block's
 *             first key on (causal) to L: Sᵀ = K Qᵀ, Pᵀ = exp(scale·Sᵀ − lse), dPᵀ = V dOᵀ,
 *             dSᵀ = Pᵀ ⊙ (dPᵀ − D); dV += Pᵀ dO, dK += dSᵀ Q in registers; stored into
 *             dqkv at the end (dK times scale).
 *   dQ        one block per (64 queries, b·h), tiles of FB_BC = 32 keys: S, P, dP = dO Vᵀ,
 *             dS = P ⊙ (dP − D), dQ += dS K; stored into dqkv at the end times scale.
 *   forward tangent   one block per (64 queries, b·h), tiles of FT_BC = 32 keys, two
 *             passes: r = rowsum(P ⊙ Ṡ) (S, Ṡ = Q̇ Kᵀ + Q K̇ᵀ per tile), then Ȯ += Ṗ V + P V̇
 *             with Ṗ = P ⊙ (Ṡ − r) (S, Ṡ again); no rescale (lse is final). Writes tout
 *             and, when tatt is given, r and the copy of Ȯ.
 *   D, Ḋ      the D kernel twice: D = dO·O, Ḋ = dȮ·O + dO·Ȯ (CU_SCR_ROWS, 2·B·NH·T).
 *   dK̇, dV̇    like dK, dV with tiles of FT_BT = 16 queries: per tile Pᵀ, Ṗᵀ (Sᵀ, Ṡᵀ),
 *             dPᵀ, dṖᵀ = V dȮᵀ + V̇ dOᵀ; dV̇ += Ṗᵀ dO + Pᵀ dȮ, dK̇ += dṠᵀ Q + dSᵀ Q̇ with
 *             dS = P ⊙ (dP − D), dṠ = Ṗ ⊙ (dP − D) + P ⊙ (dṖ − Ḋ).
 *   dQ̇        like dQ with tiles of FT_BT = 16 keys: dQ̇ += dṠ K + dS K̇.
 * Tiles whose (query, key) pairs are all masked are skipped (the causal upper triangle,
 * keys j ≥ L, queries t ≥ L): per block by the loop bounds, per warp by a warp-uniform
 * test. Masked entries inside a tile get P = 0 exactly (so Ṗ, dS, dṠ = 0); K, V, Q, dO
 * rows (and their tangents) beyond the limit are loaded as zeros, so nothing beyond T is
 * read. A NULL tangent (tqkv, dtout) is loaded as zero tiles.
 * Numerics: Q, K, V, dO, their tangents, P, Ṗ, dS and dṠ enter the products as bf16
 * (round to nearest even), accumulation in fp32; scores, softmax statistics, r, D, Ḋ and
 * the accumulated outputs are fp32. All four faces write every element of their outputs
 * (=, backend.h): out / tout, and the backward faces' dqkv / dtqkv, 0 at padded positions
 * (rows t ≥ L), each warp storing its own 16 rows even where it has nothing to compute.
 * Deterministic: no atomics; each output element is written by one thread in a fixed
 * order (the tensor-core products and the loops have fixed orders).
 * hs ∈ {16, 32, 48, 64} (template HS); the static shared memory of each kernel is
 * static_assert-ed ≤ 48 KiB. */
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include "cuda/cuda_ops.cuh"
#include "cuda/mma_bf16.cuh"

/* bf16 mma.sync needs sm_80 or newer: built for an older CUDA_ARCH (make CUDA_ARCH=75) the
 * kernels below compile to a trap, so that a flash run there fails loudly at its next
 * check instead of computing nothing */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define FL_NO_MMA 1
#endif

#define FL_WARPS 4
#define FL_THREADS (32 * FL_WARPS)
#define FL_BR 64   /* queries per block: forward, dQ (16 per warp) */
#define FL_BK 64   /* keys per block: dK, dV (16 per warp) */
#define FL_MAX_HS 64
static_assert(FL_BR == 16 * FL_WARPS && FL_BK == 16 * FL_WARPS, "16 rows per warp");

#ifdef __CUDACC__
#define FL_UNROLL _Pragma("unroll")
#define FL_NO_UNROLL _Pragma("unroll 1")
#else
#define FL_UNROLL
#define FL_NO_UNROLL
#endif

typedef __nv_bfloat16 bf16;

[[maybe_unused]] static __device__ __forceinline__ int fl_min(int a, int b) { return a < b ? a : b; }

/* keys query t attends to: 0 … n − 1 (0 for padded queries t ≥ L) */
[[maybe_unused]] static __device__ __forceinline__ int fl_keys(int t, int L, int causal) {
    return t < L ? (causal ? t + 1 : L) : 0;
}

/* dst [rows, HS] bf16 (rows LDD apart; dense by default) = rows r0 … r0 + rows − 1 of
 * src [*, ld] fp32, zeros for rows ≥ limit (never read), all zeros for src NULL (a zero
 * tangent: tqkv or dtout NULL); the whole block cooperates */
template <int HS, int LDD = HS>
static __device__ void fl_load_tile(bf16 *dst, const float *src, int ld, int r0, int rows,
                                    int limit) {
    static_assert(HS % 4 == 0, "rows of whole float4s");
    if (!src) {
        for (int i = threadIdx.x; i < rows * HS; i += FL_THREADS)
            dst[(i / HS) * LDD + i % HS] = __float2bfloat16(0.0f);
        return;
    }
    if (((uintptr_t)src & 15) == 0 && ld % 4 == 0) {
        /* 4 floats a load (the activations' rows are 16-byte aligned: C, 3C and h·HS are
         * multiples of 4); the same roundings as one at a time */
        FL_NO_UNROLL   /* unrolled, the loads took the kernels to 166–212 registers */
        for (int i = threadIdx.x; i < rows * HS / 4; i += FL_THREADS) {
            const int r = i / (HS / 4), e = 4 * (i % (HS / 4));
            float4 x = { 0.0f, 0.0f, 0.0f, 0.0f };
            if (r0 + r < limit) x = *(const float4 *)(src + (size_t)(r0 + r) * ld + e);
            __nv_bfloat162 *d = (__nv_bfloat162 *)(dst + r * LDD + e);
            d[0] = __floats2bfloat162_rn(x.x, x.y);
            d[1] = __floats2bfloat162_rn(x.z, x.w);
        }
        return;
    }
    for (int i = threadIdx.x; i < rows * HS; i += FL_THREADS) {
        const int r = i / HS, e = i % HS;
        dst[r * LDD + e] = __float2bfloat16(r0 + r < limit ? src[(size_t)(r0 + r) * ld + e] : 0.0f);
    }
}

/* dst [HS, rows] bf16 (rows LDD apart) = the transpose of rows r0 … r0 + rows − 1 of src
 * [*, ld] fp32 (rows even), zeros for rows ≥ limit (all zeros for src NULL, a zero
 * tangent): each thread takes two source rows and
 * four columns, and stores one register (two bf16) per column, so that consecutive
 * threads write consecutive words of a row; the whole block cooperates */
template <int HS, int LDD>
static __device__ void fl_load_tile_t(bf16 *dst, const float *src, int ld, int r0, int rows,
                                      int limit) {
    static_assert(HS % 4 == 0 && LDD % 2 == 0, "whole float4s, register-aligned pairs");
    const int pairs = rows / 2;
    const bool vec = ((uintptr_t)src & 15) == 0 && ld % 4 == 0;
    FL_NO_UNROLL
    for (int i = threadIdx.x; i < pairs * (HS / 4); i += FL_THREADS) {
        const int j = 2 * (i % pairs), e = 4 * (i / pairs);
        float x[2][4] = { { 0.0f, 0.0f, 0.0f, 0.0f }, { 0.0f, 0.0f, 0.0f, 0.0f } };
        FL_UNROLL
        for (int u = 0; u < 2; u++) {
            if (!src || r0 + j + u >= limit) continue;
            const float *row = src + (size_t)(r0 + j + u) * ld + e;
            if (vec) {
                const float4 v = *(const float4 *)row;
                x[u][0] = v.x; x[u][1] = v.y; x[u][2] = v.z; x[u][3] = v.w;
            } else {
                FL_UNROLL
                for (int c = 0; c < 4; c++) x[u][c] = row[c];
            }
        }
        FL_UNROLL
        for (int c = 0; c < 4; c++) {
            const uint32_t w = mma_pack_bf16(x[0][c], x[1][c]);
            memcpy(dst + (e + c) * LDD + j, &w, sizeof w);
        }
    }
}

/* the mma A operands (mma_bf16.cuh) of rows r0 … r0 + 15 of src [*, ld] fp32 over its
 * first HS columns, rounded to bf16, zero rows ≥ limit (all zero for src NULL, a zero
 * tangent): a[e] is k block e (columns 16e … 16e + 15); one warp, each lane loading its
 * own elements */
template <int HS>
static __device__ __forceinline__ void fl_load_a(uint32_t a[][4], const float *src, int ld,
                                                 int r0, int limit) {
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    FL_UNROLL
    for (int e = 0; e < HS / 16; e++) {
        FL_UNROLL
        for (int r = 0; r < 4; r++) {
            const int row = r0 + g + 8 * (r & 1), col = 16 * e + 2 * q + 8 * (r >> 1);
            const float *p = src ? src + (size_t)row * ld + col : NULL;
            a[e][r] = src && row < limit ? mma_pack_bf16(p[0], p[1]) : 0u;
        }
    }
}

/* dst rows r0 + g (+ 8) < T, columns 0 … HS − 1 (leading dimension ld) = alpha · acc for
 * rows < L, 0 for the padded rows L … T − 1 (acc NULL: 0 for all), acc the mma
 * accumulators (mma_bf16.cuh) of 16 rows × HS: one warp, each lane storing its own
 * elements (one writer per element) */
template <int HS>
static __device__ __forceinline__ void fl_store_acc(float *dst, int ld, int r0, int L, int T,
                                                    float alpha, const float (*acc)[4]) {
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    FL_UNROLL
    for (int c = 0; c < HS / 8; c++) {
        FL_UNROLL
        for (int i = 0; i < 4; i++) {
            const int row = r0 + g + 8 * (i >> 1);
            if (row < T)
                dst[(size_t)row * ld + 8 * c + 2 * q + (i & 1)] =
                    acc && row < L ? alpha * acc[c][i] : 0.0f;
        }
    }
}

/* the A operand over k block kk (16 columns) of a 16-row accumulator tile x [n][4] (8
 * columns per n): its 8-column blocks 2kk and 2kk + 1, rounded to bf16 */
static __device__ __forceinline__ void fl_acc_to_a(uint32_t a[4], const float x0[4],
                                                   const float x1[4]) {
    a[0] = mma_pack_bf16(x0[0], x0[1]);
    a[1] = mma_pack_bf16(x0[2], x0[3]);
    a[2] = mma_pack_bf16(x1[0], x1[1]);
    a[3] = mma_pack_bf16(x1[2], x1[3]);
}

/* acc [N/8][4] = A [16, K] · Bᵀ (ACC: +=) for A's operands a[K/16][4] and B [N, K] bf16 in
 * shared memory, rows ldb apart (row-major: the register pairs run along K): one warp */
template <int K, int N, bool ACC = false>
static __device__ __forceinline__ void fl_mma_a_bt(float acc[][4], const uint32_t a[][4],
                                                   const bf16 *b, int ldb) {
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    FL_UNROLL
    for (int nb = 0; nb < N / 8; nb++) {
        if (!ACC) acc[nb][0] = acc[nb][1] = acc[nb][2] = acc[nb][3] = 0.0f;
        const bf16 *br = b + (8 * nb + g) * ldb + 2 * q;
        FL_UNROLL
        for (int e = 0; e < K / 16; e++) {
            const uint32_t bb[2] = { mma_load_pair(br + 16 * e), mma_load_pair(br + 16 * e + 8) };
            mma_m16n8k16_bf16(acc[nb], a[e], bb);
        }
    }
}

/* acc [HS/8][4] += X [16, K] · B for X an accumulator tile x [K/8][4] (rounded to bf16 as
 * the A operand) and B [K, HS] stored transposed in shared memory, bt [HS, ≥ K] with rows
 * ldb apart: one warp */
template <int K, int HS>
static __device__ __forceinline__ void fl_mma_acc_b(float acc[][4], const float x[][4],
                                                    const bf16 *bt, int ldb) {
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    FL_UNROLL
    for (int kk = 0; kk < K / 16; kk++) {
        uint32_t a[4];
        fl_acc_to_a(a, x[2 * kk], x[2 * kk + 1]);
        FL_UNROLL
        for (int c = 0; c < HS / 8; c++) {
            const bf16 *br = bt + (8 * c + g) * ldb + 16 * kk + 2 * q;
            const uint32_t bb[2] = { mma_load_pair(br), mma_load_pair(br + 8) };
            mma_m16n8k16_bf16(acc[c], a, bb);
        }
    }
}

/* ---- forward -------------------------------------------------------------------------- */

#define FM_BC 64   /* keys per tile of the forward */

/* One block per (64 queries, b·h), four warps of 16 query rows, looping over tiles of
 * FM_BC keys up to the block's last allowed key; all on mma.sync (mma_bf16.cuh), with the
 * scores, the softmax and O in registers (FlashAttention-2's forward). Each warp keeps
 * its Q rows as A operands; per tile the block stages K [FM_BC, HS] and Vᵀ [HS, FM_BC] in
 * bf16 (rows padded by 8 bf16, so that the 8 row groups of a warp's operand loads fall
 * in different banks). S = Q Kᵀ in 8-column accumulators; each lane holds 2 rows (g,
 * g + 8) × 2 columns per 8-key block; the row maximum is reduced over the row's 4 lanes by
 * two xor shuffles; P = exp(scale·S − m) in fp32 (its sum l kept per lane, reduced at the
 * end), rounded to bf16 as the A operand of O += P V; O rescaled by exp(m_old − m_new) in
 * registers. Masked keys get scale·S = −∞, so P = 0 exactly. Writes out, lse and the copy
 * of O for every row t < T (0 and −∞ for rows without keys). */
template <int HS>
static __global__ void __launch_bounds__(FL_THREADS)
flash_forward_k(float *out, float *lse, float *o_copy, const float *qkv, const AttShape s) {
#ifdef FL_NO_MMA
    __trap();
#else
    constexpr int LDK = HS + 8, LDV = FM_BC + 8;
    __shared__ __align__(16) bf16 k_s[FM_BC * LDK];
    __shared__ __align__(16) bf16 vt_s[HS * LDV];
    static_assert(sizeof k_s + sizeof vt_s <= 48 * 1024,
                  "flash forward: static shared memory over 48 KiB");

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
    const int bh = blockIdx.y, b = bh / s.NH, h = bh % s.NH, T = s.T, C3 = 3 * s.C;
    const int q0 = blockIdx.x * FL_BR, tw = q0 + 16 * warp;
    const int L = cu_valid(s.valid_len, b, T);
    const float *q = qkv + (size_t)b * T * C3 + h * HS, *k = q + s.C, *v = q + 2 * s.C;
    const int kend = q0 < L ? (s.causal ? fl_min(q0 + FL_BR, L) : L) : 0;
    const int warp_keys = tw < L ? (s.causal ? fl_min(tw + 16, L) : L) : 0;
    const int n_keys[2] = { fl_keys(tw + g, L, s.causal), fl_keys(tw + g + 8, L, s.causal) };

    uint32_t qa[HS / 16][4];
    fl_load_a<HS>(qa, q, C3, tw, L);
    float o[HS / 8][4];
    FL_UNROLL
    for (int c = 0; c < HS / 8; c++) o[c][0] = o[c][1] = o[c][2] = o[c][3] = 0.0f;
    float m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };   /* l: this lane's part */

    for (int k0 = 0; k0 < kend; k0 += FM_BC) {
        __syncthreads();   /* the previous tile's k_s, vt_s read */
        fl_load_tile<HS, LDK>(k_s, k, C3, k0, FM_BC, kend);
        fl_load_tile_t<HS, LDV>(vt_s, v, C3, k0, FM_BC, kend);
        __syncthreads();
        if (k0 >= warp_keys) continue;   /* warp-uniform: every pair masked */

        float sc[FM_BC / 8][4];   /* S, then scale·S masked, then P */
        fl_mma_a_bt<HS, FM_BC>(sc, qa, k_s, LDK);   /* S = Q_w Kᵀ */
        float mx[2] = { -INFINITY, -INFINITY };
        FL_UNROLL
        for (int nb = 0; nb < FM_BC / 8; nb++) {
            FL_UNROLL
            for (int c = 0; c < 4; c++) {
                const int j = k0 + 8 * nb + 2 * q4 + (c & 1);
                const float x = j < n_keys[c >> 1] ? s.scale * sc[nb][c] : -INFINITY;
                sc[nb][c] = x;
                mx[c >> 1] = fmaxf(mx[c >> 1], x);
            }
        }
        float shift[2], alpha[2];
        FL_UNROLL
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            const float m_new = fmaxf(m[r], mx[r]);
            /* no allowed key so far: O and l are 0, and every exp below is exp(−∞) = 0 */
            shift[r] = m_new == -INFINITY ? 0.0f : m_new;
            alpha[r] = expf(m[r] - shift[r]);
            m[r] = m_new;
            l[r] *= alpha[r];
        }
        FL_UNROLL
        for (int nb = 0; nb < FM_BC / 8; nb++) {
            FL_UNROLL
            for (int c = 0; c < 4; c++) {
                const float p = expf(sc[nb][c] - shift[c >> 1]);
                l[c >> 1] += p;
                sc[nb][c] = p;
            }
        }
        FL_UNROLL
        for (int c = 0; c < HS / 8; c++) {
            o[c][0] *= alpha[0]; o[c][1] *= alpha[0];
            o[c][2] *= alpha[1]; o[c][3] *= alpha[1];
        }
        fl_mma_acc_b<FM_BC, HS>(o, sc, vt_s, LDV);   /* O += P V */
    }

    const size_t base = (size_t)b * T * s.C + h * HS;
    FL_UNROLL
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        const int t = tw + g + 8 * r, n = n_keys[r];
        if (t >= T) continue;
        const float inv = n > 0 ? 1.0f / l[r] : 0.0f;
        if (q4 == 0) lse[(size_t)bh * T + t] = n > 0 ? m[r] + logf(l[r]) : -INFINITY;
        FL_UNROLL
        for (int c = 0; c < HS / 8; c++) {
            const size_t at = base + (size_t)t * s.C + 8 * c + 2 * q4;
            const float y0 = o[c][2 * r] * inv, y1 = o[c][2 * r + 1] * inv;
            out[at] = y0;
            out[at + 1] = y1;
            o_copy[at] = y0;
            o_copy[at + 1] = y1;
        }
    }
#endif
}

/* ---- backward ------------------------------------------------------------------------- */

/* D[(b·NH + h)·T + t] = Σ_e bf16(a1[b, t, h·hs + e]) · b1[…] + Σ_e bf16(a2[…]) · b2[…], a
 * term left out where one of its two [B,T,C] operands is NULL: one warp per row. The
 * backward's D = rowsum(dO ⊙ O) (a2 = b2 = NULL); the backward tangent's Ḋ = dȮ·O + dO·Ȯ.
 * The cotangents a1, a2 are rounded to bf16 as they are where they enter dP = dO Vᵀ and
 * dṖ = dȮ Vᵀ + dO V̇ᵀ, so that the part of dP's error that dO's rounding makes, common to
 * a whole row, cancels in dP − D as it does in the stored path's rowsum(P ⊙ dP) (measured
 * on the emulator against the CPU: the backward at T = 100, hs 16, bidirectional 6.8e-3 →
 * 5.5e-3; the largest backward-tangent error 9.0e-3 → 7.5e-3, as large as the stored
 * path's given its own GPU Ṗ). */
static __global__ void flash_rowdot_k(float *D, const float *a1, const float *b1,
                                      const float *a2, const float *b2, const AttShape s,
                                      int hs) {
    const size_t row = (size_t)blockIdx.x * FL_WARPS + (threadIdx.x >> 5);   /* (b·T + t)·NH + h */
    const int lane = threadIdx.x & 31;
    if (row >= (size_t)s.B * s.T * s.NH) return;
    float acc = 0.0f;
    if (a1 && b1)
        for (int e = lane; e < hs; e += 32)
            acc += __bfloat162float(__float2bfloat16(a1[row * hs + e])) * b1[row * hs + e];
    if (a2 && b2)
        for (int e = lane; e < hs; e += 32)
            acc += __bfloat162float(__float2bfloat16(a2[row * hs + e])) * b2[row * hs + e];
    acc = cu_warp_sum(acc);
    const int h = (int)(row % s.NH), t = (int)((row / s.NH) % s.T), b = (int)(row / s.NH / s.T);
    if (lane == 0) D[((size_t)b * s.NH + h) * s.T + t] = acc;
}

#define FB_BQ 32   /* queries per tile of the dK / dV loop (mma.sync) */
#define FB_BC 32   /* keys per tile of the dQ loop (mma.sync) */
static_assert(FL_BK % FB_BQ == 0, "the dK/dV loop starts at the block's first key (causal)");

/* dK, dV: one block per (64 keys, b·h), 16 keys a warp, looping over tiles of FB_BQ
 * queries from the block's first key on (causal) to L, on mma.sync. Each warp keeps its K
 * and V rows as A operands and dK, dV in accumulators; per tile the block stages Q and dO
 * in bf16 both row-major and transposed (the B operands of Sᵀ = K Qᵀ, dPᵀ = V dOᵀ and of
 * dK += dSᵀ Q, dV += Pᵀ dO), with lse and D. Pᵀ = exp(scale·Sᵀ − lse) where allowed (0
 * elsewhere), dSᵀ = Pᵀ ⊙ (dPᵀ − D), both in registers and rounded to bf16 as A operands.
 * dK (times scale) and dV are stored into dqkv at the end (0 in rows j ≥ L). */
template <int HS>
static __global__ void __launch_bounds__(FL_THREADS)
flash_backward_kv_k(float *dqkv, const float *dout, const float *qkv, const float *lse,
                    const float *D, const AttShape s) {
#ifdef FL_NO_MMA
    __trap();
#else
    constexpr int LDR = HS + 8, LDT = FB_BQ + 8;
    __shared__ __align__(16) bf16 q_s[FB_BQ * LDR];
    __shared__ __align__(16) bf16 do_s[FB_BQ * LDR];
    __shared__ __align__(16) bf16 qt_s[HS * LDT];
    __shared__ __align__(16) bf16 dot_s[HS * LDT];
    __shared__ float lse_s[FB_BQ], d_s[FB_BQ];
    static_assert(sizeof q_s + sizeof do_s + sizeof qt_s + sizeof dot_s + sizeof lse_s +
                  sizeof d_s <= 48 * 1024, "flash dK/dV: static shared memory over 48 KiB");

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
    const int bh = blockIdx.y, b = bh / s.NH, h = bh % s.NH, T = s.T, C = s.C, C3 = 3 * C;
    const int k0 = blockIdx.x * FL_BK, kw = k0 + 16 * warp;
    const int L = cu_valid(s.valid_len, b, T);
    const size_t qoff = (size_t)b * T * C3 + h * HS;
    if (k0 >= L) {   /* block-uniform: these keys get 0 */
        fl_store_acc<HS>(dqkv + qoff + C, C3, kw, L, T, 0.0f, NULL);
        fl_store_acc<HS>(dqkv + qoff + 2 * C, C3, kw, L, T, 0.0f, NULL);
        return;
    }
    const float *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
    const float *dO = dout + (size_t)b * T * C + h * HS;
    lse += (size_t)bh * T;
    D += (size_t)bh * T;

    uint32_t ka[HS / 16][4], va[HS / 16][4];
    fl_load_a<HS>(ka, k, C3, kw, L);
    fl_load_a<HS>(va, v, C3, kw, L);
    float dk[HS / 8][4], dv[HS / 8][4];
    FL_UNROLL
    for (int c = 0; c < HS / 8; c++)
        FL_UNROLL
        for (int i = 0; i < 4; i++) dk[c][i] = dv[c][i] = 0.0f;

    /* causal: queries t < k0 attend to no key ≥ k0 (FL_BK is a multiple of FB_BQ) */
    for (int q0 = s.causal ? k0 : 0; q0 < L; q0 += FB_BQ) {
        __syncthreads();   /* the previous tile's q_s, do_s, qt_s, dot_s read */
        fl_load_tile<HS, LDR>(q_s, q, C3, q0, FB_BQ, L);
        fl_load_tile<HS, LDR>(do_s, dO, C, q0, FB_BQ, L);
        fl_load_tile_t<HS, LDT>(qt_s, q, C3, q0, FB_BQ, L);
        fl_load_tile_t<HS, LDT>(dot_s, dO, C, q0, FB_BQ, L);
        for (int i = threadIdx.x; i < FB_BQ; i += FL_THREADS) {
            lse_s[i] = q0 + i < L ? lse[q0 + i] : 0.0f;
            d_s[i] = q0 + i < L ? D[q0 + i] : 0.0f;
        }
        __syncthreads();
        /* warp-uniform: keys beyond L, or (causal) every query of the tile before them */
        if (kw >= L || (s.causal && q0 + FB_BQ - 1 < kw)) continue;

        float p[FB_BQ / 8][4], dp[FB_BQ / 8][4];
        fl_mma_a_bt<HS, FB_BQ>(p, ka, q_s, LDR);     /* Sᵀ = K_w Qᵀ */
        fl_mma_a_bt<HS, FB_BQ>(dp, va, do_s, LDR);   /* dPᵀ = V_w dOᵀ */
        FL_UNROLL
        for (int nb = 0; nb < FB_BQ / 8; nb++) {
            FL_UNROLL
            for (int i = 0; i < 4; i++) {
                const int c = 8 * nb + 2 * q4 + (i & 1), t = q0 + c, j = kw + g + 8 * (i >> 1);
                const bool allowed = t < L && j < L && (!s.causal || j <= t);
                const float pt = allowed ? expf(s.scale * p[nb][i] - lse_s[c]) : 0.0f;
                p[nb][i] = pt;
                dp[nb][i] = pt * (dp[nb][i] - d_s[c]);   /* dSᵀ */
            }
        }
        fl_mma_acc_b<FB_BQ, HS>(dv, p, dot_s, LDT);   /* dV += Pᵀ dO */
        fl_mma_acc_b<FB_BQ, HS>(dk, dp, qt_s, LDT);   /* dK += dSᵀ Q */
    }

    fl_store_acc<HS>(dqkv + qoff + C, C3, kw, L, T, s.scale, dk);
    fl_store_acc<HS>(dqkv + qoff + 2 * C, C3, kw, L, T, 1.0f, dv);
#endif
}

/* dQ: one block per (64 queries, b·h), 16 queries a warp, looping over tiles of FB_BC
 * keys like the forward, on mma.sync. Each warp keeps its Q and dO rows as A operands and
 * dQ in accumulators; per tile the block stages K (row-major and transposed) and V
 * (row-major) in bf16. S = Q Kᵀ, P = exp(scale·S − lse) where allowed, dP = dO Vᵀ,
 * dS = P ⊙ (dP − D), dQ += dS K; dQ (times scale) is stored into dqkv (0 in rows t ≥ L). */
template <int HS>
static __global__ void __launch_bounds__(FL_THREADS)
flash_backward_q_k(float *dqkv, const float *dout, const float *qkv, const float *lse,
                   const float *D, const AttShape s) {
#ifdef FL_NO_MMA
    __trap();
#else
    constexpr int LDR = HS + 8, LDT = FB_BC + 8;
    __shared__ __align__(16) bf16 k_s[FB_BC * LDR];
    __shared__ __align__(16) bf16 v_s[FB_BC * LDR];
    __shared__ __align__(16) bf16 kt_s[HS * LDT];
    static_assert(sizeof k_s + sizeof v_s + sizeof kt_s <= 48 * 1024,
                  "flash dQ: static shared memory over 48 KiB");

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
    const int bh = blockIdx.y, b = bh / s.NH, h = bh % s.NH, T = s.T, C = s.C, C3 = 3 * C;
    const int q0 = blockIdx.x * FL_BR, tw = q0 + 16 * warp;
    const int L = cu_valid(s.valid_len, b, T);
    const int kend = q0 < L ? (s.causal ? fl_min(q0 + FL_BR, L) : L) : 0;
    const int warp_keys = tw < L ? (s.causal ? fl_min(tw + 16, L) : L) : 0;
    const size_t qoff = (size_t)b * T * C3 + h * HS;
    if (kend == 0) {   /* block-uniform: padded queries get 0 */
        fl_store_acc<HS>(dqkv + qoff, C3, tw, L, T, 0.0f, NULL);
        return;
    }
    const float *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
    const float *dO = dout + (size_t)b * T * C + h * HS;
    int n_keys[2];
    float lse_r[2], d_r[2];
    FL_UNROLL
    for (int r = 0; r < 2; r++) {
        const int t = tw + g + 8 * r;
        n_keys[r] = fl_keys(t, L, s.causal);
        lse_r[r] = n_keys[r] > 0 ? lse[(size_t)bh * T + t] : 0.0f;
        d_r[r] = n_keys[r] > 0 ? D[(size_t)bh * T + t] : 0.0f;
    }

    uint32_t qa[HS / 16][4], doa[HS / 16][4];
    fl_load_a<HS>(qa, q, C3, tw, L);
    fl_load_a<HS>(doa, dO, C, tw, L);
    float dq[HS / 8][4];
    FL_UNROLL
    for (int c = 0; c < HS / 8; c++) dq[c][0] = dq[c][1] = dq[c][2] = dq[c][3] = 0.0f;

    for (int k0 = 0; k0 < kend; k0 += FB_BC) {
        __syncthreads();   /* the previous tile's k_s, v_s, kt_s read */
        fl_load_tile<HS, LDR>(k_s, k, C3, k0, FB_BC, kend);
        fl_load_tile<HS, LDR>(v_s, v, C3, k0, FB_BC, kend);
        fl_load_tile_t<HS, LDT>(kt_s, k, C3, k0, FB_BC, kend);
        __syncthreads();
        if (k0 >= warp_keys) continue;   /* warp-uniform: every pair masked */

        float p[FB_BC / 8][4], dp[FB_BC / 8][4];
        fl_mma_a_bt<HS, FB_BC>(p, qa, k_s, LDR);    /* S = Q_w Kᵀ */
        fl_mma_a_bt<HS, FB_BC>(dp, doa, v_s, LDR);  /* dP = dO_w Vᵀ */
        FL_UNROLL
        for (int nb = 0; nb < FB_BC / 8; nb++) {
            FL_UNROLL
            for (int i = 0; i < 4; i++) {
                const int r = i >> 1, j = k0 + 8 * nb + 2 * q4 + (i & 1);
                const float pt = j < n_keys[r] ? expf(s.scale * p[nb][i] - lse_r[r]) : 0.0f;
                dp[nb][i] = pt * (dp[nb][i] - d_r[r]);   /* dS */
            }
        }
        fl_mma_acc_b<FB_BC, HS>(dq, dp, kt_s, LDT);   /* dQ += dS K */
    }

    fl_store_acc<HS>(dqkv + qoff, C3, tw, L, T, s.scale, dq);
#endif
}

/* ---- forward tangent ------------------------------------------------------------------ */

#define FT_BC 32   /* keys per tile of the forward tangent */
#define FT_BT 16   /* queries (dK̇, dV̇ kernel) or keys (dQ̇ kernel) per tile of the backward tangent */
static_assert(FL_BK % FT_BT == 0, "the dK̇/dV̇ loop starts at the block's first key (causal)");

/* Ṡ = scale(Q̇ Kᵀ + Q K̇ᵀ), r = rowsum(P ⊙ Ṡ), Ṗ = P ⊙ (Ṡ − r), Ȯ = Ṗ V + P V̇, with
 * P = exp(scale·S − lse) recomputed per tile (lse is final: nothing to rescale).
 * Two passes over the keys: the first computes r (S and Ṡ per tile, P ⊙ Ṡ summed per lane,
 * then over the row's 4 lanes); the second recomputes S, Ṡ and accumulates Ȯ = Σ Ṗ V + P V̇
 * in accumulators, with Ṗ = P ⊙ (Ṡ − r) formed in fp32 and rounded to bf16 once, as the
 * stored path does. (One pass could accumulate Σ P (Ṡ − c) V for a per-row c fixed early
 * and subtract (r − c)·O at the end, 5 tile products instead of 8; measured on the
 * emulator it doubled the error against the CPU, to 7.9e-3 and 9.1e-3 of the 1e-2 bound
 * on T = 100 bidirectional rows, because the bf16 rounding then applies to P ⊙ (Ṡ − c) and
 * to (r − c)·O rather than to the smaller Ṗ.)
 * One block per (64 queries, b·h), four warps of 16 query rows (Q, Q̇ rows as A operands),
 * tiles of FT_BC keys: K, K̇ row-major and, in the second pass, Vᵀ, V̇ᵀ in shared memory;
 * mma.sync as the forward. Writes every element of tout (0 for padded queries); r_out
 * [B,NH,T] (0 for rows without keys) and ot_copy [B,T,C] (= tout) when not NULL. */
template <int HS>
static __global__ void __launch_bounds__(FL_THREADS)
flash_forward_tangent_k(float *tout, float *r_out, float *ot_copy, const float *qkv,
                        const float *tqkv, const float *lse, const AttShape s) {
#ifdef FL_NO_MMA
    __trap();
#else
    constexpr int LDR = HS + 8, LDT = FT_BC + 8;
    __shared__ __align__(16) bf16 k_s[FT_BC * LDR];
    __shared__ __align__(16) bf16 kt_s[FT_BC * LDR];
    __shared__ __align__(16) bf16 vT_s[HS * LDT];
    __shared__ __align__(16) bf16 vtT_s[HS * LDT];
    static_assert(sizeof k_s + sizeof kt_s + sizeof vT_s + sizeof vtT_s <= 48 * 1024,
                  "flash forward tangent: static shared memory over 48 KiB");

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
    const int bh = blockIdx.y, b = bh / s.NH, h = bh % s.NH, T = s.T, C = s.C, C3 = 3 * C;
    const int q0 = blockIdx.x * FL_BR, tw = q0 + 16 * warp;
    const int L = cu_valid(s.valid_len, b, T);
    const size_t qoff = (size_t)b * T * C3 + h * HS;
    const float *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
    const float *qt = tqkv + qoff, *kt = qt + C, *vt = qt + 2 * C;
    const int kend = q0 < L ? (s.causal ? fl_min(q0 + FL_BR, L) : L) : 0;
    const int warp_keys = tw < L ? (s.causal ? fl_min(tw + 16, L) : L) : 0;
    int n_keys[2];
    float lse_r[2];
    FL_UNROLL
    for (int r = 0; r < 2; r++) {
        const int t = tw + g + 8 * r;
        n_keys[r] = fl_keys(t, L, s.causal);
        lse_r[r] = n_keys[r] > 0 ? lse[(size_t)bh * T + t] : 0.0f;
    }

    uint32_t qa[HS / 16][4], qta[HS / 16][4];
    fl_load_a<HS>(qa, q, C3, tw, L);
    fl_load_a<HS>(qta, qt, C3, tw, L);
    float o[HS / 8][4];
    FL_UNROLL
    for (int c = 0; c < HS / 8; c++) o[c][0] = o[c][1] = o[c][2] = o[c][3] = 0.0f;
    float rt[2] = { 0.0f, 0.0f };   /* r: this lane's part in pass 0, then the row's */

    for (int pass = 0; pass < 2; pass++) {
        for (int k0 = 0; k0 < kend; k0 += FT_BC) {
            __syncthreads();   /* the previous tile's k_s … vtT_s read */
            fl_load_tile<HS, LDR>(k_s, k, C3, k0, FT_BC, kend);
            fl_load_tile<HS, LDR>(kt_s, kt, C3, k0, FT_BC, kend);
            if (pass == 1) {
                fl_load_tile_t<HS, LDT>(vT_s, v, C3, k0, FT_BC, kend);
                fl_load_tile_t<HS, LDT>(vtT_s, vt, C3, k0, FT_BC, kend);
            }
            __syncthreads();
            if (k0 >= warp_keys) continue;   /* warp-uniform: every pair masked */

            float p[FT_BC / 8][4], st[FT_BC / 8][4];
            fl_mma_a_bt<HS, FT_BC>(p, qa, k_s, LDR);          /* S = Q_w Kᵀ */
            fl_mma_a_bt<HS, FT_BC>(st, qta, k_s, LDR);        /* Ṡ / scale = Q̇_w Kᵀ */
            fl_mma_a_bt<HS, FT_BC, true>(st, qa, kt_s, LDR);  /*   + Q_w K̇ᵀ */
            FL_UNROLL
            for (int nb = 0; nb < FT_BC / 8; nb++) {
                FL_UNROLL
                for (int i = 0; i < 4; i++) {
                    const int r = i >> 1, j = k0 + 8 * nb + 2 * q4 + (i & 1);
                    p[nb][i] = j < n_keys[r] ? expf(s.scale * p[nb][i] - lse_r[r]) : 0.0f;
                    if (pass == 0) rt[r] += p[nb][i] * (s.scale * st[nb][i]);
                    else st[nb][i] = p[nb][i] * (s.scale * st[nb][i] - rt[r]);   /* Ṗ */
                }
            }
            if (pass == 0) continue;
            fl_mma_acc_b<FT_BC, HS>(o, st, vT_s, LDT);    /* Ȯ += Ṗ V */
            fl_mma_acc_b<FT_BC, HS>(o, p, vtT_s, LDT);    /* Ȯ += P V̇ */
        }
        if (pass == 0) {   /* each row's r, in its 4 lanes */
            FL_UNROLL
            for (int r = 0; r < 2; r++) {
                rt[r] += __shfl_xor_sync(0xffffffffu, rt[r], 1);
                rt[r] += __shfl_xor_sync(0xffffffffu, rt[r], 2);
                const int t = tw + g + 8 * r;
                if (n_keys[r] == 0) rt[r] = 0.0f;
                if (q4 == 0 && r_out && t < T) r_out[(size_t)bh * T + t] = rt[r];
            }
        }
    }

    /* Ȯ out; padded queries get exact zeros */
    const size_t base = (size_t)b * T * C + h * HS;
    FL_UNROLL
    for (int i = 0; i < 4; i++) {
        const int t = tw + g + 8 * (i >> 1);
        if (t >= T) continue;
        FL_UNROLL
        for (int c = 0; c < HS / 8; c++) {
            const size_t at = base + (size_t)t * C + 8 * c + 2 * q4 + (i & 1);
            const float y = t < L ? o[c][i] : 0.0f;
            tout[at] = y;
            if (ot_copy) ot_copy[at] = y;
        }
    }
#endif
}

/* ---- backward tangent ----------------------------------------------------------------- */

/* The tangent of the backward (lib/ops/attention.c): with P = exp(scale·S − lse),
 * Ṗ = P ⊙ (scale·Ṡ' − r) (Ṡ' = Q̇ Kᵀ + Q K̇ᵀ, r from the forward tangent), dP = dO Vᵀ,
 * dṖ = dȮ Vᵀ + dO V̇ᵀ, D = dO·O and Ḋ = rowsum(Ṗ ⊙ dP + P ⊙ dṖ) = dȮ·O + dO·Ȯ per query:
 *   dS = P ⊙ (dP − D),  dṠ = Ṗ ⊙ (dP − D) + P ⊙ (dṖ − Ḋ),
 *   dV̇ = Ṗᵀ dO + Pᵀ dȮ,  dK̇ = scale(dṠᵀ Q + dSᵀ Q̇),  dQ̇ = scale(dṠ K + dS K̇).
 * Two kernels like the backward's, on mma.sync: each warp keeps the four operands of its
 * 16 rows (K, K̇, V, V̇ or Q, Q̇, dO, dȮ) as A operands, P, Ṗ, dP − D and dṖ in fp32
 * accumulators per tile, and its two outputs in accumulators; the tiles of the other side
 * (FT_BT = 16 queries or keys) are staged in shared memory row-major and, for the
 * products into the outputs, transposed. A NULL tqkv or dtout gives zero operands, a NULL
 * r (tatt NULL, tqkv NULL) reads 0. */
template <int HS>
static __global__ void __launch_bounds__(FL_THREADS)
flash_backward_tangent_kv_k(float *dtqkv, const float *dout, const float *dtout,
                            const float *qkv, const float *tqkv, const float *lse,
                            const float *rt, const float *D, const float *Dt,
                            const AttShape s) {
#ifdef FL_NO_MMA
    __trap();
#else
    constexpr int BQ = FT_BT, LDR = HS + 8, LDT = BQ + 8;
    __shared__ __align__(16) bf16 q_s[BQ * LDR];
    __shared__ __align__(16) bf16 qt_s[BQ * LDR];
    __shared__ __align__(16) bf16 do_s[BQ * LDR];
    __shared__ __align__(16) bf16 dot_s[BQ * LDR];
    __shared__ __align__(16) bf16 qT_s[HS * LDT];
    __shared__ __align__(16) bf16 qtT_s[HS * LDT];
    __shared__ __align__(16) bf16 doT_s[HS * LDT];
    __shared__ __align__(16) bf16 dotT_s[HS * LDT];
    __shared__ float lse_s[BQ], r_s[BQ], d_s[BQ], dd_s[BQ];
    static_assert(sizeof q_s + sizeof qt_s + sizeof do_s + sizeof dot_s + sizeof qT_s +
                  sizeof qtT_s + sizeof doT_s + sizeof dotT_s + sizeof lse_s + sizeof r_s +
                  sizeof d_s + sizeof dd_s <= 48 * 1024,
                  "flash dK̇/dV̇: static shared memory over 48 KiB");

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
    const int bh = blockIdx.y, b = bh / s.NH, h = bh % s.NH, T = s.T, C = s.C, C3 = 3 * C;
    const int k0 = blockIdx.x * FL_BK, kw = k0 + 16 * warp;
    const int L = cu_valid(s.valid_len, b, T);
    const size_t qoff = (size_t)b * T * C3 + h * HS, ooff = (size_t)b * T * C + h * HS;
    if (k0 >= L) {   /* block-uniform: these keys get 0 */
        fl_store_acc<HS>(dtqkv + qoff + C, C3, kw, L, T, 0.0f, NULL);
        fl_store_acc<HS>(dtqkv + qoff + 2 * C, C3, kw, L, T, 0.0f, NULL);
        return;
    }
    const float *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
    const float *qt = tqkv ? tqkv + qoff : NULL, *kt = qt ? qt + C : NULL;
    const float *vt = qt ? qt + 2 * C : NULL;
    const float *dO = dout + ooff, *dOt = dtout ? dtout + ooff : NULL;
    lse += (size_t)bh * T;
    D += (size_t)bh * T;
    Dt += (size_t)bh * T;
    if (rt) rt += (size_t)bh * T;

    uint32_t ka[HS / 16][4], kta[HS / 16][4], va[HS / 16][4], vta[HS / 16][4];
    fl_load_a<HS>(ka, k, C3, kw, L);
    fl_load_a<HS>(kta, kt, C3, kw, L);
    fl_load_a<HS>(va, v, C3, kw, L);
    fl_load_a<HS>(vta, vt, C3, kw, L);
    float dkt[HS / 8][4], dvt[HS / 8][4];
    FL_UNROLL
    for (int c = 0; c < HS / 8; c++)
        FL_UNROLL
        for (int i = 0; i < 4; i++) dkt[c][i] = dvt[c][i] = 0.0f;

    /* causal: queries t < k0 attend to no key ≥ k0 (FL_BK is a multiple of BQ) */
    for (int q0 = s.causal ? k0 : 0; q0 < L; q0 += BQ) {
        __syncthreads();   /* the previous tile's q_s … dotT_s read */
        fl_load_tile<HS, LDR>(q_s, q, C3, q0, BQ, L);
        fl_load_tile<HS, LDR>(qt_s, qt, C3, q0, BQ, L);
        fl_load_tile<HS, LDR>(do_s, dO, C, q0, BQ, L);
        fl_load_tile<HS, LDR>(dot_s, dOt, C, q0, BQ, L);
        fl_load_tile_t<HS, LDT>(qT_s, q, C3, q0, BQ, L);
        fl_load_tile_t<HS, LDT>(qtT_s, qt, C3, q0, BQ, L);
        fl_load_tile_t<HS, LDT>(doT_s, dO, C, q0, BQ, L);
        fl_load_tile_t<HS, LDT>(dotT_s, dOt, C, q0, BQ, L);
        for (int i = threadIdx.x; i < BQ; i += FL_THREADS) {
            const bool in = q0 + i < L;
            lse_s[i] = in ? lse[q0 + i] : 0.0f;
            r_s[i] = in && rt ? rt[q0 + i] : 0.0f;
            d_s[i] = in ? D[q0 + i] : 0.0f;
            dd_s[i] = in ? Dt[q0 + i] : 0.0f;
        }
        __syncthreads();
        /* warp-uniform: keys beyond L, or (causal) every query of the tile before them */
        if (kw >= L || (s.causal && q0 + BQ - 1 < kw)) continue;

        float p[BQ / 8][4], pt[BQ / 8][4], gd[BQ / 8][4], dpt[BQ / 8][4];
        fl_mma_a_bt<HS, BQ>(p, ka, q_s, LDR);              /* Sᵀ = K_w Qᵀ */
        fl_mma_a_bt<HS, BQ>(pt, ka, qt_s, LDR);            /* Ṡᵀ / scale = K_w Q̇ᵀ */
        fl_mma_a_bt<HS, BQ, true>(pt, kta, q_s, LDR);      /*   + K̇_w Qᵀ */
        fl_mma_a_bt<HS, BQ>(gd, va, do_s, LDR);            /* dPᵀ = V_w dOᵀ */
        fl_mma_a_bt<HS, BQ>(dpt, va, dot_s, LDR);          /* dṖᵀ = V_w dȮᵀ */
        fl_mma_a_bt<HS, BQ, true>(dpt, vta, do_s, LDR);    /*   + V̇_w dOᵀ */
        FL_UNROLL
        for (int nb = 0; nb < BQ / 8; nb++) {
            FL_UNROLL
            for (int i = 0; i < 4; i++) {
                const int c = 8 * nb + 2 * q4 + (i & 1), t = q0 + c, j = kw + g + 8 * (i >> 1);
                const bool allowed = t < L && j < L && (!s.causal || j <= t);
                const float pp = allowed ? expf(s.scale * p[nb][i] - lse_s[c]) : 0.0f;
                const float ppt = pp * (s.scale * pt[nb][i] - r_s[c]);   /* Ṗᵀ */
                const float gg = gd[nb][i] - d_s[c];                      /* dPᵀ − D */
                p[nb][i] = pp;
                pt[nb][i] = ppt;
                dpt[nb][i] = ppt * gg + pp * (dpt[nb][i] - dd_s[c]);     /* dṠᵀ */
                gd[nb][i] = pp * gg;                                      /* dSᵀ */
            }
        }
        fl_mma_acc_b<BQ, HS>(dvt, pt, doT_s, LDT);    /* dV̇ += Ṗᵀ dO */
        fl_mma_acc_b<BQ, HS>(dvt, p, dotT_s, LDT);    /* dV̇ += Pᵀ dȮ */
        fl_mma_acc_b<BQ, HS>(dkt, dpt, qT_s, LDT);    /* dK̇ += dṠᵀ Q (× scale at the end) */
        fl_mma_acc_b<BQ, HS>(dkt, gd, qtT_s, LDT);    /* dK̇ += dSᵀ Q̇ */
    }

    fl_store_acc<HS>(dtqkv + qoff + C, C3, kw, L, T, s.scale, dkt);
    fl_store_acc<HS>(dtqkv + qoff + 2 * C, C3, kw, L, T, 1.0f, dvt);
#endif
}

template <int HS>
static __global__ void __launch_bounds__(FL_THREADS)
flash_backward_tangent_q_k(float *dtqkv, const float *dout, const float *dtout,
                           const float *qkv, const float *tqkv, const float *lse,
                           const float *rt, const float *D, const float *Dt,
                           const AttShape s) {
#ifdef FL_NO_MMA
    __trap();
#else
    constexpr int BC = FT_BT, LDR = HS + 8, LDT = BC + 8;
    __shared__ __align__(16) bf16 k_s[BC * LDR];
    __shared__ __align__(16) bf16 kt_s[BC * LDR];
    __shared__ __align__(16) bf16 v_s[BC * LDR];
    __shared__ __align__(16) bf16 vt_s[BC * LDR];
    __shared__ __align__(16) bf16 kT_s[HS * LDT];
    __shared__ __align__(16) bf16 ktT_s[HS * LDT];
    static_assert(sizeof k_s + sizeof kt_s + sizeof v_s + sizeof vt_s + sizeof kT_s +
                  sizeof ktT_s <= 48 * 1024, "flash dQ̇: static shared memory over 48 KiB");

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q4 = lane & 3;
    const int bh = blockIdx.y, b = bh / s.NH, h = bh % s.NH, T = s.T, C = s.C, C3 = 3 * C;
    const int q0 = blockIdx.x * FL_BR, tw = q0 + 16 * warp;
    const int L = cu_valid(s.valid_len, b, T);
    const int kend = q0 < L ? (s.causal ? fl_min(q0 + FL_BR, L) : L) : 0;
    const int warp_keys = tw < L ? (s.causal ? fl_min(tw + 16, L) : L) : 0;
    const size_t qoff = (size_t)b * T * C3 + h * HS, ooff = (size_t)b * T * C + h * HS;
    if (kend == 0) {   /* block-uniform: padded queries get 0 */
        fl_store_acc<HS>(dtqkv + qoff, C3, tw, L, T, 0.0f, NULL);
        return;
    }
    const float *q = qkv + qoff, *k = q + C, *v = q + 2 * C;
    const float *qt = tqkv ? tqkv + qoff : NULL, *kt = qt ? qt + C : NULL;
    const float *vt = qt ? qt + 2 * C : NULL;
    const float *dO = dout + ooff, *dOt = dtout ? dtout + ooff : NULL;
    int n_keys[2];
    float lse_r[2], r_r[2], d_r[2], dd_r[2];
    FL_UNROLL
    for (int r = 0; r < 2; r++) {
        const int t = tw + g + 8 * r;
        const size_t row = (size_t)bh * T + t;
        n_keys[r] = fl_keys(t, L, s.causal);
        const bool any = n_keys[r] > 0;
        lse_r[r] = any ? lse[row] : 0.0f;
        r_r[r] = any && rt ? rt[row] : 0.0f;
        d_r[r] = any ? D[row] : 0.0f;
        dd_r[r] = any ? Dt[row] : 0.0f;
    }

    uint32_t qa[HS / 16][4], qta[HS / 16][4], doa[HS / 16][4], dota[HS / 16][4];
    fl_load_a<HS>(qa, q, C3, tw, L);
    fl_load_a<HS>(qta, qt, C3, tw, L);
    fl_load_a<HS>(doa, dO, C, tw, L);
    fl_load_a<HS>(dota, dOt, C, tw, L);
    float dqt[HS / 8][4];
    FL_UNROLL
    for (int c = 0; c < HS / 8; c++) dqt[c][0] = dqt[c][1] = dqt[c][2] = dqt[c][3] = 0.0f;

    for (int k0 = 0; k0 < kend; k0 += BC) {
        __syncthreads();   /* the previous tile's k_s … ktT_s read */
        fl_load_tile<HS, LDR>(k_s, k, C3, k0, BC, kend);
        fl_load_tile<HS, LDR>(kt_s, kt, C3, k0, BC, kend);
        fl_load_tile<HS, LDR>(v_s, v, C3, k0, BC, kend);
        fl_load_tile<HS, LDR>(vt_s, vt, C3, k0, BC, kend);
        fl_load_tile_t<HS, LDT>(kT_s, k, C3, k0, BC, kend);
        fl_load_tile_t<HS, LDT>(ktT_s, kt, C3, k0, BC, kend);
        __syncthreads();
        if (k0 >= warp_keys) continue;   /* warp-uniform: every pair masked */

        float p[BC / 8][4], pt[BC / 8][4], gd[BC / 8][4], dpt[BC / 8][4];
        fl_mma_a_bt<HS, BC>(p, qa, k_s, LDR);              /* S = Q_w Kᵀ */
        fl_mma_a_bt<HS, BC>(pt, qta, k_s, LDR);            /* Ṡ / scale = Q̇_w Kᵀ */
        fl_mma_a_bt<HS, BC, true>(pt, qa, kt_s, LDR);      /*   + Q_w K̇ᵀ */
        fl_mma_a_bt<HS, BC>(gd, doa, v_s, LDR);            /* dP = dO_w Vᵀ */
        fl_mma_a_bt<HS, BC>(dpt, dota, v_s, LDR);          /* dṖ = dȮ_w Vᵀ */
        fl_mma_a_bt<HS, BC, true>(dpt, doa, vt_s, LDR);    /*   + dO_w V̇ᵀ */
        FL_UNROLL
        for (int nb = 0; nb < BC / 8; nb++) {
            FL_UNROLL
            for (int i = 0; i < 4; i++) {
                const int r = i >> 1, j = k0 + 8 * nb + 2 * q4 + (i & 1);
                const float pp = j < n_keys[r] ? expf(s.scale * p[nb][i] - lse_r[r]) : 0.0f;
                const float ppt = pp * (s.scale * pt[nb][i] - r_r[r]);   /* Ṗ */
                const float gg = gd[nb][i] - d_r[r];                      /* dP − D */
                dpt[nb][i] = ppt * gg + pp * (dpt[nb][i] - dd_r[r]);     /* dṠ */
                gd[nb][i] = pp * gg;                                      /* dS */
            }
        }
        fl_mma_acc_b<BC, HS>(dqt, dpt, kT_s, LDT);    /* dQ̇ += dṠ K (× scale at the end) */
        fl_mma_acc_b<BC, HS>(dqt, gd, ktT_s, LDT);    /* dQ̇ += dS K̇ */
    }

    fl_store_acc<HS>(dtqkv + qoff, C3, tw, L, T, s.scale, dqt);
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


#define FL_DISPATCH(kern, hs)                                                               \
    ((hs) == 16 ? kern<16> : (hs) == 32 ? kern<32> : (hs) == 48 ? kern<48> : kern<64>)

void cu_attention_flash_forward(float *out, float *att, const float *qkv,
                                const int32_t *valid_len, int causal, int B, int T, int C,
                                int NH) {
    const AttShape s = att_shape(valid_len, causal, B, T, C, NH);
    float *lse = att, *o_copy = att + (size_t)B * NH * T;
    dim3 grid((unsigned)((T + FL_BR - 1) / FL_BR), (unsigned)(B * NH));
    auto fwd = FL_DISPATCH(flash_forward_k, C / NH);
    fwd<<<grid, FL_THREADS>>>(out, lse, o_copy, qkv, s);
    cudaLaunchCheck();
}

void cu_attention_flash_backward(float *dqkv, const float *dout, const float *qkv,
                                 const float *att, const int32_t *valid_len, int causal, int B,
                                 int T, int C, int NH) {
    const AttShape s = att_shape(valid_len, causal, B, T, C, NH);
    const int hs = C / NH;
    const float *lse = att, *o_copy = att + (size_t)B * NH * T;
    float *D = (float *)cu_scratch(CU_SCR_ROWS, (size_t)B * NH * T * sizeof(float));
    const size_t rows = (size_t)B * T * NH;
    flash_rowdot_k<<<(unsigned)((rows + FL_WARPS - 1) / FL_WARPS), FL_THREADS>>>(
        D, dout, o_copy, NULL, NULL, s, hs);
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

void cu_attention_flash_forward_tangent(float *tout, float *tatt, const float *qkv,
                                        const float *tqkv, const float *att,
                                        const int32_t *valid_len, int causal, int B, int T,
                                        int C, int NH) {
    const AttShape s = att_shape(valid_len, causal, B, T, C, NH);
    const size_t nl = (size_t)B * NH * T;
    const float *lse = att;
    float *r_out = tatt, *ot_copy = tatt ? tatt + nl : NULL;
    dim3 grid((unsigned)((T + FL_BR - 1) / FL_BR), (unsigned)(B * NH));
    auto fwdt = FL_DISPATCH(flash_forward_tangent_k, C / NH);
    fwdt<<<grid, FL_THREADS>>>(tout, r_out, ot_copy, qkv, tqkv, lse, s);
    cudaLaunchCheck();
}

void cu_attention_flash_backward_tangent(float *dtqkv, const float *dout, const float *dtout,
                                         const float *qkv, const float *tqkv, const float *att,
                                         const float *tatt, const int32_t *valid_len,
                                         int causal, int B, int T, int C, int NH) {
    const AttShape s = att_shape(valid_len, causal, B, T, C, NH);
    const int hs = C / NH;
    const size_t nl = (size_t)B * NH * T;
    const float *lse = att, *o_copy = att + nl;
    const float *rt = tatt, *ot_copy = tatt ? tatt + nl : NULL;
    /* D = rowsum(dO ⊙ O), Ḋ = dȮ·O + dO·Ȯ: [B,NH,T] each */
    float *D = (float *)cu_scratch(CU_SCR_ROWS, 2 * nl * sizeof(float)), *Dt = D + nl;
    const size_t rows = (size_t)B * T * NH;
    const unsigned rd_blocks = (unsigned)((rows + FL_WARPS - 1) / FL_WARPS);
    flash_rowdot_k<<<rd_blocks, FL_THREADS>>>(D, dout, o_copy, NULL, NULL, s, hs);
    cudaLaunchCheck();
    flash_rowdot_k<<<rd_blocks, FL_THREADS>>>(Dt, dtout, o_copy, dout, ot_copy, s, hs);
    cudaLaunchCheck();
    dim3 grid_kv((unsigned)((T + FL_BK - 1) / FL_BK), (unsigned)(B * NH));
    auto kv = FL_DISPATCH(flash_backward_tangent_kv_k, hs);
    kv<<<grid_kv, FL_THREADS>>>(dtqkv, dout, dtout, qkv, tqkv, lse, rt, D, Dt, s);
    cudaLaunchCheck();
    dim3 grid_q((unsigned)((T + FL_BR - 1) / FL_BR), (unsigned)(B * NH));
    auto dq = FL_DISPATCH(flash_backward_tangent_q_k, hs);
    dq<<<grid_q, FL_THREADS>>>(dtqkv, dout, dtout, qkv, tqkv, lse, rt, D, Dt, s);
    cudaLaunchCheck();
}
