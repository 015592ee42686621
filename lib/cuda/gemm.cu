/* gemm.cu — every matrix product of the CUDA backend goes through here: cuBLAS on
 * row-major operands (lib/ops/cpu_util.h's ops_gemm contract), in fp32, TF32 or bf16
 * (inputs rounded to bf16 on the fly, fp32 accumulation and output), the per-(b, h)
 * batched products of attention in the same three modes, and column sums by GEMV.
 *
 * Row-major to cuBLAS's column-major: a row-major X[r, c] with leading dimension ld is
 * the column-major Xᵀ with the same ld, so C = op(A)·op(B) is computed as
 * Cᵀ = op(B)ᵀ·op(A)ᵀ: the same transpose flags, operands swapped, M and N swapped.
 *
 * bf16: each operand is rounded into a dense bf16 scratch copy (4 floats at a time where
 * the rows allow), then one cublasGemmEx / cublasGemmBatchedEx multiplies the copies with
 * fp32 accumulation into the fp32 C. A copy larger than cu_bf16_chunk_bytes() (512 MiB by
 * default) is made block by block: blocks of rows of C (for a big A) or of columns of C
 * (for a big B), blocks of examples b for the batched products. Each block is a complete
 * product of its part of C, so the result does not depend on the blocking beyond cuBLAS's
 * own choice of algorithm for the block's shape.
 *
 * Padding, all with zeros that cuBLAS may read but that never reach C (gemm_bf16 says
 * which path wins):
 *  - a contraction length K that is not a multiple of 8 (the head's dx = d·E over
 *    V = 50257) is padded to a multiple of 64 in both copies, and cuBLAS multiplies over
 *    the padded K: the extra terms are exact zeros;
 *  - a copy whose row length (its leading dimension) is not a multiple of 8 gets rows
 *    padded to a multiple of 64 (the head's dE reads the logit gradient stored [rows, V]),
 *    the extents unchanged;
 *  - a product with N ≥ 1024 and N or ldc not a multiple of 8 (the head's x·Eᵀ) runs over
 *    Np = N rounded up to 64, B's copy zero-padded to Np: straight into C when the caller
 *    gave C's rows room for Np columns (CuGemm.n_room; the LM's logits rows are 50304
 *    long, backend.h), else into a dense fp32 scratch [rows, Np], whose first N columns
 *    a copy kernel moves into C (with beta·C).
 * Why (H200, 2026-11-27, bench_cuda --gemm-shapes, bf16 inputs, TFLOP/s): x·Eᵀ (M 4096,
 * K 512) ran at 90.8 with N = 50257, 674.4 with N = 50304 (ld 50304), 91.4 with N = 50257
 * and the copies' rows and C's ld padded, 139.5 with N = 50240 and C's ld 50257: the
 * product is fast only when both the extent N and C's leading dimension are multiples of
 * 64. dE (M 50257, N 512, K 4096) ran at 142 with its A copy's rows 50257 long and 492.8
 * with them padded; dx at 135 with K = 50257 and 782 with K = 50304. An earlier attempt's
 * extra pass over C took 23.4 ms per step; padded_out_copy_k reads float4s and writes
 * whole warps of consecutive floats. The padded K has run in the step (dx from 138 to
 * ~800 TFLOP/s); the padded rows and the padded output are unmeasured on a GPU. */
#include <cuda_bf16.h>
#include <stdint.h>

#include "cuda/cuda_common.cuh"

static inline cublasOperation_t op_of(int t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

/* C[M,N] (row-major, ldc) = beta·C, exactly 0 when beta = 0: the empty product K = 0 */
static __global__ void scale_rows_k(float *C, int M, int N, int ldc, float beta) {
    size_t n = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)N, c = i % (size_t)N;
        float *p = C + r * (size_t)ldc + c;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

static void gemm_empty(int M, int N, float beta, float *C, int ldc) {
    const double t = cu_prof_begin();
    scale_rows_k<<<cu_blocks((size_t)M * N), CU_THREADS>>>(C, M, N, ldc, beta);
    cudaLaunchCheck();
    cu_prof_end(CU_PROF_OTHER, t, 0);
}

void cu_gemm_fp32(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { gemm_empty(M, N, beta, C, ldc); return; }
    const double t = cu_prof_begin();
    cublasCheck(cublasSgemm(cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha, B, ldb, A, lda,
                            &beta, C, ldc));
    cu_prof_end_gemm(CU_PROF_GEMM, t, ta, tb, M, N, K, 1);
}

/* dst[n] = bf16(src[n]), 4 at a time (src 16-byte and dst 8-byte aligned, n % 4 == 0) */
static __global__ void to_bf16_vec4_k(__nv_bfloat162 *dst, const float4 *src, size_t n4) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4;
         i += (size_t)gridDim.x * blockDim.x) {
        float4 v = src[i];
        dst[2 * i] = __floats2bfloat162_rn(v.x, v.y);
        dst[2 * i + 1] = __floats2bfloat162_rn(v.z, v.w);
    }
}

/* dst[rows, cols] (dense, ld = cols) = bf16(src[rows, cols] with leading dimension ld):
 * rows over blockIdx.y (grid-stride), columns over blockIdx.x·blockDim.x + threadIdx.x,
 * so no thread divides */
static __global__ void to_bf16_rows_k(__nv_bfloat16 *dst, const float *src, int rows, int cols,
                                      int ld) {
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        const float *s = src + (size_t)r * ld;
        __nv_bfloat16 *d = dst + (size_t)r * cols;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x)
            d[c] = __float2bfloat16(s[c]);
    }
}

/* dst[rows_p, cols_p] (rows ldd apart) = bf16(src[rows, cols] with leading dimension
 * ld), zeros in the rows ≥ rows and the columns ≥ cols (rows_p ≥ rows, cols_p ≥ cols): a
 * copy with its contraction dimension, its row length (leading dimension) or, on the
 * padded-output path, B's N extent padded; ldd > cols_p: one half of two copies side by
 * side (cu_gemm_ksum) */
static __global__ void to_bf16_padded_k(__nv_bfloat16 *dst, int ldd, const float *src, int rows,
                                        int cols, int ld, int rows_p, int cols_p) {
    for (int r = blockIdx.y; r < rows_p; r += gridDim.y) {
        const float *s = src + (size_t)(r < rows ? r : 0) * ld;
        __nv_bfloat16 *d = dst + (size_t)r * ldd;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols_p; c += gridDim.x * blockDim.x)
            d[c] = r < rows && c < cols ? __float2bfloat16(s[c]) : __float2bfloat16(0.0f);
    }
}

/* dst[rows_p, cols_p] (rows ldd apart) = [bf16(src[rows, cols] (ld)) | `ones` columns of 1
 * | 0 …], zeros in the rows ≥ rows: to_bf16_padded_k four columns a thread, two 4-byte
 * stores (dst 8-byte aligned; ldd and cols_p multiples of 4). src is read a float4 at a
 * time where vec (src 16-byte aligned, ld % 4 == 0), else value by value, and the group
 * that straddles cols reads its columns below cols one by one, never past them (a matrix
 * may end there). Rounds to nearest even, as the kernels above: the same bits. ones = 2:
 * the input of a product that carries a bias (cu_gemm_bias). */
static __global__ void to_bf16_by4_k(__nv_bfloat162 *dst, int ldd, const float *src, int rows,
                                     int cols, int ld, int rows_p, int cols_p, int ones, int vec) {
    const int n4 = cols_p >> 2;
    for (int r = blockIdx.y; r < rows_p; r += gridDim.y) {
        const float *s = src + (size_t)(r < rows ? r : 0) * ld;
        __nv_bfloat162 *d = dst + (size_t)r * (ldd >> 1);
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < n4; j += gridDim.x * blockDim.x) {
            const int c0 = 4 * j;
            float v[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
            if (r < rows && vec && c0 + 4 <= cols) {
                const float4 x = *(const float4 *)(s + c0);
                v[0] = x.x; v[1] = x.y; v[2] = x.z; v[3] = x.w;
            } else if (r < rows) {
                for (int i = 0; i < 4; i++) {
                    const int c = c0 + i;
                    v[i] = c < cols ? s[c] : c < cols + ones ? 1.0f : 0.0f;
                }
            }
            d[2 * j] = __floats2bfloat162_rn(v[0], v[1]);
            d[2 * j + 1] = __floats2bfloat162_rn(v[2], v[3]);
        }
    }
}

/* to_bf16_by4_k's launch */
static void to_bf16_by4(__nv_bfloat16 *dst, int ldd, const float *src, int rows, int cols,
                        int ld, int rows_p, int cols_p, int ones, int vec) {
    dim3 grid((unsigned)((cols_p / 4 + CU_THREADS - 1) / CU_THREADS),
              rows_p < 65535 ? rows_p : 65535);
    to_bf16_by4_k<<<grid, CU_THREADS>>>((__nv_bfloat162 *)dst, ldd, src, rows, cols, ld, rows_p,
                                        cols_p, ones, vec);
    cudaLaunchCheck();
}

static inline int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static inline int round_up_64(int n) { return (n + 63) / 64 * 64; }

/* a length of the bf16 copies as cuBLAS gets it: n, or n rounded up to 64 when n % 8 != 0.
 * Used for the contraction length K (zero-padded in both copies) and for a copy's row
 * length, its leading dimension (zero columns after the n stored ones, extents unchanged) */
static inline int padded(int n) { return n % 8 == 0 ? n : round_up_64(n); }

static void to_bf16(__nv_bfloat16 *dst, const float *src, int rows, int cols, int ld) {
    const size_t n = (size_t)rows * cols;
    if ((ld == cols || rows == 1) && n % 4 == 0 && aligned(src, 16) && aligned(dst, 8)) {
        to_bf16_vec4_k<<<cu_blocks(n / 4), CU_THREADS>>>((__nv_bfloat162 *)dst,
                                                        (const float4 *)src, n / 4);
    } else {
        dim3 grid((unsigned)((cols + CU_THREADS - 1) / CU_THREADS), rows < 65535 ? rows : 65535);
        to_bf16_rows_k<<<grid, CU_THREADS>>>(dst, src, rows, cols, ld);
    }
    cudaLaunchCheck();
}

/* the bf16 copy [rows_p, cols_p] of src[rows, cols] (ld) into dst, its rows ldd apart,
 * zero beyond rows × cols */
static void bf16_copy_to(__nv_bfloat16 *dst, int ldd, const float *src, int rows, int cols,
                         int ld, int rows_p, int cols_p) {
    const double t = cu_prof_begin();
    const int dense = rows_p == rows && cols_p == cols && ldd == cols;
    const int by4 = cu_copy_vec4() && cols_p % 4 == 0 && ldd % 4 == 0 && aligned(dst, 8);
    if (dense && (ld == cols || rows == 1 || !by4)) {   /* strided rows: by fours, if it can */
        to_bf16(dst, src, rows, cols, ld);
    } else if (by4) {
        to_bf16_by4(dst, ldd, src, rows, cols, ld, rows_p, cols_p, 0,
                    ld % 4 == 0 && aligned(src, 16));
    } else {
        dim3 grid((unsigned)((cols_p + CU_THREADS - 1) / CU_THREADS), rows_p < 65535 ? rows_p : 65535);
        to_bf16_padded_k<<<grid, CU_THREADS>>>(dst, ldd, src, rows, cols, ld, rows_p, cols_p);
        cudaLaunchCheck();
    }
    cu_prof_end(CU_PROF_COPY, t, 0);
}

/* the dense bf16 copy [rows_p, cols_p] of src[rows, cols] (ld) in scratch slot `slot` */
static const __nv_bfloat16 *bf16_copy(int slot, const float *src, int rows, int cols, int ld,
                                      int rows_p, int cols_p) {
    __nv_bfloat16 *dst = (__nv_bfloat16 *)cu_scratch(slot, (size_t)rows_p * cols_p * sizeof *dst);
    bf16_copy_to(dst, cols_p, src, rows, cols, ld, rows_p, cols_p);
    return dst;
}

/* bf16 copies of the GEMM operands in scratch slot `slot`, K padded to Kp, rows padded to
 * padded(their length); *ld_h = the copy's row length. A is [M,K] (ta = 0) or [K,M]; B is
 * [K,N] (tb = 0) or [N,K], its N extent zero-padded to Np ≥ N (Np > N only on the
 * padded-output path). gemm_bf16 puts A in CU_SCR_BF16_A and B in CU_SCR_BF16_B. */
static const __nv_bfloat16 *copy_a(int slot, const float *A, int ta, int M, int K, int Kp,
                                   int lda, int *ld_h) {
    *ld_h = ta ? padded(M) : Kp;
    return ta ? bf16_copy(slot, A, K, M, lda, Kp, *ld_h) : bf16_copy(slot, A, M, K, lda, M, Kp);
}

static const __nv_bfloat16 *copy_b(int slot, const float *B, int tb, int N, int Np, int K, int Kp,
                                   int ldb, int *ld_h) {
    *ld_h = tb ? Kp : padded(Np);
    return tb ? bf16_copy(slot, B, N, K, ldb, Np, Kp) : bf16_copy(slot, B, K, N, ldb, Kp, *ld_h);
}

/* the bytes of those copies */
static size_t copy_a_bytes(int ta, int M, int Kp) {
    return (size_t)Kp * (ta ? padded(M) : M) * sizeof(__nv_bfloat16);
}

static size_t copy_b_bytes(int tb, int Np, int Kp) {
    return (size_t)Kp * (tb ? Np : padded(Np)) * sizeof(__nv_bfloat16);
}

/* C = alpha·op(A)·op(B) + beta·C on bf16 copies Ah, Bh (dense, leading dimensions lda_h,
 * ldb_h as stored row-major), fp32 accumulation and output */
static void gemm_ex_bf16(int ta, int tb, int M, int N, int K, float alpha,
                         const __nv_bfloat16 *Ah, int lda_h, const __nv_bfloat16 *Bh, int ldb_h,
                         float beta, float *C, int ldc) {
    const double t = cu_prof_begin();
    cublasCheck(cublasGemmEx(cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha,
                             Bh, CUDA_R_16BF, ldb_h, Ah, CUDA_R_16BF, lda_h, &beta,
                             C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    cu_prof_end_gemm(CU_PROF_GEMM, t, ta, tb, M, N, K, 1);
}

static int block_of(size_t limit, size_t bytes_per_unit, int total) {
    size_t b = bytes_per_unit ? limit / bytes_per_unit : (size_t)total;
    return b < 1 ? 1 : b > (size_t)total ? total : (int)b;
}

/* a block length of at most b (as block_of gives it for total), a multiple of 64 when
 * 64 ≤ b < total: the blocks of a copy whose rows hold the blocked dimension keep an
 * aligned row length, so padded() adds nothing but in the last block, which is shorter
 * (below 64, only with the tests' tiny limits, a block's padded copy can exceed the limit
 * by its up to 63 zero columns) */
static int block_of_64(int b, int total) { return b >= 64 && b < total ? b / 64 * 64 : b; }

/* C[r, c] = Cp[r, c] (beta = 0: C is not read) or Cp[r, c] + beta·C[r, c] for r < rows,
 * c < N: Cp [rows, Np4·4] dense and 16-byte aligned, C row-major with leading dimension
 * ldc (any). Rows over blockIdx.y (grid-stride), tiles of 4·CU_THREADS columns over
 * blockIdx.x (blockDim.x = CU_THREADS): each thread reads one float4 of Cp into shared
 * memory, then each warp writes 32 consecutive floats of C per store, 4 stores a thread. */
static __global__ void padded_out_copy_k(float *C, int ldc, const float4 *Cp, int Np4, int rows,
                                         int N, float beta) {
    __shared__ float4 tile[CU_THREADS];
    const int c4 = blockIdx.x * CU_THREADS + threadIdx.x;   /* this thread's float4 of a row */
    const int c0 = blockIdx.x * 4 * CU_THREADS;             /* the tile's first column */
    const float *t = (const float *)tile;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        if (c4 < Np4) tile[threadIdx.x] = Cp[(size_t)r * Np4 + c4];
        __syncthreads();
        float *Cr = C + (size_t)r * ldc + c0;
        for (int k = 0; k < 4; k++) {
            const int i = k * CU_THREADS + threadIdx.x;
            if (c0 + i < N) Cr[i] = beta == 0.0f ? t[i] : t[i] + beta * Cr[i];
        }
        __syncthreads();   /* the tile is read before the next row overwrites it */
    }
}

/* the outputs gemm_bf16_padded_out takes: wide, with rows that are not 16-byte multiples
 * (the slow cases measured, header; an aligned N that is not a multiple of 64 is left to
 * cuBLAS, unmeasured) */
static inline int wide_misaligned_output(int N, int ldc) {
    return N >= 1024 && (N % 8 != 0 || ldc % 8 != 0);
}

/* C[M,N] (ldc) = alpha·op(A)·op(B) + beta·C for an output that cuBLAS writes slowly: N ≥
 * 1024 with N or ldc not a multiple of 8 (the head's x·Eᵀ, N = V = 50257; see the header).
 * B's copy holds Np = N rounded up to 64 in its N dimension, zeros after N (rows of B
 * stored [N,K], columns of B stored [K,N]); per block of rows of C, A's rows are copied,
 * cuBLAS writes the dense fp32 Cp [m, Np] (CU_SCR_GEMM_OUT, ld Np) with beta = 0, and
 * padded_out_copy_k moves its first N columns into C with the beta term. Blocks: Cp at
 * most 2·cu_bf16_chunk_bytes() (1 GiB: 5312 rows at Np = 50304, so the head-chunk's 4096
 * rows are one block), A's copy at most cu_bf16_chunk_bytes(), the blocks of M about equal
 * and multiples of 64 rows. The caller checks that B's padded copy fits the limit. */
static void gemm_bf16_padded_out(int ta, int tb, int M, int N, int K, int Kp, float alpha,
                                 const float *A, int lda, const float *B, int ldb, float beta,
                                 float *C, int ldc) {
    const size_t es = sizeof(__nv_bfloat16), limit = cu_bf16_chunk_bytes();
    const int Np = round_up_64(N);
    int ldb_h, lda_h;
    const __nv_bfloat16 *Bh = copy_b(CU_SCR_BF16_B, B, tb, N, Np, K, Kp, ldb, &ldb_h);
    int cap = block_of(2 * limit, (size_t)Np * sizeof(float), M);
    const int cap_a = block_of(limit, (size_t)Kp * es, M);
    cap = block_of_64(cap < cap_a ? cap : cap_a, M);
    const int blocks = (M + cap - 1) / cap;
    int mc = (M + blocks - 1) / blocks;                     /* ≤ cap */
    if (cap % 64 == 0 && mc % 64 != 0) mc = round_up_64(mc); /* still ≤ cap */
    float *Cp = (float *)cu_scratch(CU_SCR_GEMM_OUT, (size_t)mc * Np * sizeof(float));
    for (int m0 = 0; m0 < M; m0 += mc) {
        const int m = M - m0 < mc ? M - m0 : mc;
        const float *Ab = ta ? A + m0 : A + (size_t)m0 * lda;
        const __nv_bfloat16 *Ah = copy_a(CU_SCR_BF16_A, Ab, ta, m, K, Kp, lda, &lda_h);
        gemm_ex_bf16(ta, tb, m, Np, Kp, alpha, Ah, lda_h, Bh, ldb_h, 0.0f, Cp, Np);
        const double t = cu_prof_begin();
        dim3 grid((unsigned)((Np / 4 + CU_THREADS - 1) / CU_THREADS), m < 65535 ? m : 65535);
        padded_out_copy_k<<<grid, CU_THREADS>>>(C + (size_t)m0 * ldc, ldc, (const float4 *)Cp,
                                                Np / 4, m, N, beta);
        cudaLaunchCheck();
        cu_prof_end(CU_PROF_OUT_COPY, t, 0);
    }
}

/* a wide misaligned output whose rows have room (n_room, as the caller allows) for N
 * rounded up to 64 columns in a 16-byte-aligned row: the product can run over that many
 * straight into C */
static inline int wide_in_place(int N, int ldc, int n_room) {
    const int Np = round_up_64(N);
    return wide_misaligned_output(N, ldc) && ldc % 8 == 0 && ldc >= Np && n_room >= Np;
}

/* Which path: (0) a wide misaligned output with room in C's rows (wide_in_place) and B's
 * copy padded to Np within the limit: paths 2 or 4 over Nc = Np columns straight into C,
 * B's copy zero-padded to Np (the columns N … Np − 1 get beta times what they held, the
 * caller's to overwrite); (1) the padded output through scratch when N ≥ 1024, N or ldc
 * not a multiple of 8, and B's copy padded to Np fits the limit (its rows of C blocked as
 * it says); otherwise (2) blocks of rows of C when A's copy exceeds the limit, (3) blocks
 * of columns when B's does, (4) one product. K is padded (padded()) on every path, and so
 * is each copy's row length. */
static void gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc, int n_room) {
    const size_t es = sizeof(__nv_bfloat16), limit = cu_bf16_chunk_bytes();
    const int Kp = padded(K);   /* the copies' contraction length, zero-padded */
    int lda_h, ldb_h, Nc = N;   /* the columns computed */
    if (wide_misaligned_output(N, ldc) &&
        copy_b_bytes(tb, round_up_64(N), Kp) <= limit) {
        if (!wide_in_place(N, ldc, n_room)) {
            gemm_bf16_padded_out(ta, tb, M, N, K, Kp, alpha, A, lda, B, ldb, beta, C, ldc);
            return;
        }
        Nc = round_up_64(N);   /* path 0: B's padded copy fits, so path 3 is not taken */
    }
    /* the stored shapes: A is [M,K] (ta = 0) or [K,M], B is [K,N] (tb = 0) or [N,K] */
    if (copy_a_bytes(ta, M, Kp) > limit && M > 1) {
        /* blocks of mc rows of C: rows of A, or columns of A stored [K,M]; B copied once */
        const int mc = block_of_64(block_of(limit, (size_t)Kp * es, M), M);
        const __nv_bfloat16 *Bh = copy_b(CU_SCR_BF16_B, B, tb, N, Nc, K, Kp, ldb, &ldb_h);
        for (int m0 = 0; m0 < M; m0 += mc) {
            const int m = M - m0 < mc ? M - m0 : mc;
            const float *Ab = ta ? A + m0 : A + (size_t)m0 * lda;
            const __nv_bfloat16 *Ah = copy_a(CU_SCR_BF16_A, Ab, ta, m, K, Kp, lda, &lda_h);
            gemm_ex_bf16(ta, tb, m, Nc, Kp, alpha, Ah, lda_h, Bh, ldb_h, beta,
                         C + (size_t)m0 * ldc, ldc);
        }
        return;
    }
    if (copy_b_bytes(tb, N, Kp) > limit && N > 1) {
        /* blocks of nc columns of C: columns of B, or rows of B stored [N,K]; A copied once */
        const int nc = block_of_64(block_of(limit, (size_t)Kp * es, N), N);
        const __nv_bfloat16 *Ah = copy_a(CU_SCR_BF16_A, A, ta, M, K, Kp, lda, &lda_h);
        for (int n0 = 0; n0 < N; n0 += nc) {
            const int n = N - n0 < nc ? N - n0 : nc;
            const float *Bb = tb ? B + (size_t)n0 * ldb : B + n0;
            const __nv_bfloat16 *Bh = copy_b(CU_SCR_BF16_B, Bb, tb, n, n, K, Kp, ldb, &ldb_h);
            gemm_ex_bf16(ta, tb, M, n, Kp, alpha, Ah, lda_h, Bh, ldb_h, beta, C + n0, ldc);
        }
        return;
    }
    const __nv_bfloat16 *Ah = copy_a(CU_SCR_BF16_A, A, ta, M, K, Kp, lda, &lda_h);
    const __nv_bfloat16 *Bh = copy_b(CU_SCR_BF16_B, B, tb, N, Nc, K, Kp, ldb, &ldb_h);
    gemm_ex_bf16(ta, tb, M, Nc, Kp, alpha, Ah, lda_h, Bh, ldb_h, beta, C, ldc);
}

/* cu_gemm, with C's rows having room for n_room columns (CuGemm.n_room) */
static void gemm_any(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc, int n_room) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { gemm_empty(M, N, beta, C, ldc); return; }
    switch (cu_gemm_mode()) {
    case CU_GEMM_TF32: {
        const double t = cu_prof_begin();
        cublasCheck(cublasGemmEx(cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha,
                                 B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta,
                                 C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F_FAST_TF32,
                                 CUBLAS_GEMM_DEFAULT));
        cu_prof_end_gemm(CU_PROF_GEMM, t, ta, tb, M, N, K, 1);
        return;
    }
    case CU_GEMM_BF16:
        gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, n_room);
        return;
    default:
        cu_gemm_fp32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
}

void cu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
    gemm_any(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 0);
}

/* ---- two products sharing an operand ----------------------------------------------- */

/* gemm_bf16 runs g as one product (path 4): no padded output, neither copy over the
 * limit (K and the copies' rows padded as usual) */
static int single_bf16_product(const CuGemm *g) {
    const size_t limit = cu_bf16_chunk_bytes();
    const int Kp = padded(g->K);
    return g->M > 0 && g->N > 0 && g->K > 0 && !wide_misaligned_output(g->N, g->ldc) &&
           copy_a_bytes(g->ta, g->M, Kp) <= limit && copy_b_bytes(g->tb, g->N, Kp) <= limit;
}

/* X's bf16 copy as path 4 makes it for g (copy_a, copy_b): the stored [rows, cols] with
 * leading dimension ld, copied into a dense [rows_p, cols_p]; 0 unless X is exactly one
 * operand of g */
struct CopyPlan { int rows, cols, ld, rows_p, cols_p; };
static int copy_plan(const CuGemm *g, const float *X, CopyPlan *p) {
    if ((g->A == X) == (g->B == X)) return 0;
    const int Kp = padded(g->K);
    if (g->A == X) *p = g->ta ? CopyPlan{ g->K, g->M, g->lda, Kp, padded(g->M) }
                              : CopyPlan{ g->M, g->K, g->lda, g->M, Kp };
    else           *p = g->tb ? CopyPlan{ g->N, g->K, g->ldb, g->N, Kp }
                              : CopyPlan{ g->K, g->N, g->ldb, Kp, padded(g->N) };
    return 1;
}

void cu_gemm_run(const CuGemm *g) {
    gemm_any(g->ta, g->tb, g->M, g->N, g->K, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, g->C,
             g->ldc, g->n_room);
}

void cu_gemm_pair(const CuGemm *g1, const CuGemm *g2, const float *X) {
    CopyPlan p1, p2;
    if (cu_gemm_mode() != CU_GEMM_BF16 || !single_bf16_product(g1) || !single_bf16_product(g2) ||
        !copy_plan(g1, X, &p1) || !copy_plan(g2, X, &p2) || p1.rows != p2.rows ||
        p1.cols != p2.cols || p1.ld != p2.ld || p1.rows_p != p2.rows_p || p1.cols_p != p2.cols_p) {
        cu_gemm_run(g1);
        cu_gemm_run(g2);
        return;
    }
    /* X's copy in CU_SCR_BF16_A, the other operand of each product in CU_SCR_BF16_B: the
     * copies and the cuBLAS calls of gemm_bf16's path 4 (the head's logit gradient, padded
     * to rows of 50304 for dx = d·E and dE = dᵀ·x alike, is one of them) */
    const __nv_bfloat16 *Xh = bf16_copy(CU_SCR_BF16_A, X, p1.rows, p1.cols, p1.ld, p1.rows_p, p1.cols_p);
    const CuGemm *gs[2] = { g1, g2 };
    for (int i = 0; i < 2; i++) {
        const CuGemm *g = gs[i];
        const int Kp = padded(g->K);
        int ld_h;
        if (g->A == X) {
            const __nv_bfloat16 *Bh =
                copy_b(CU_SCR_BF16_B, g->B, g->tb, g->N, g->N, g->K, Kp, g->ldb, &ld_h);
            gemm_ex_bf16(g->ta, g->tb, g->M, g->N, Kp, g->alpha, Xh, p1.cols_p, Bh, ld_h, g->beta,
                         g->C, g->ldc);
        } else {
            const __nv_bfloat16 *Ah =
                copy_a(CU_SCR_BF16_B, g->A, g->ta, g->M, g->K, Kp, g->lda, &ld_h);
            gemm_ex_bf16(g->ta, g->tb, g->M, g->N, Kp, g->alpha, Ah, ld_h, Xh, p1.cols_p, g->beta,
                         g->C, g->ldc);
        }
    }
}

/* ---- two products into one output, over the concatenated contraction --------------- */

/* the N a bf16 product of g runs over: N rounded up to 64 for a wide output with room
 * in C's rows (wide_in_place: the LM head's logits tangent), else N */
static int product_n(const CuGemm *g) {
    return wide_in_place(g->N, g->ldc, g->n_room) ? round_up_64(g->N) : g->N;
}

/* g runs as one product: path 4 of gemm_bf16 (single_bf16_product), or path 0 without
 * blocks (over product_n(g) columns straight into C) */
static int one_bf16_product(const CuGemm *g) {
    if (single_bf16_product(g)) return 1;
    const size_t limit = cu_bf16_chunk_bytes();
    const int Kp = padded(g->K);
    return g->M > 0 && g->N > 0 && g->K > 0 && wide_in_place(g->N, g->ldc, g->n_room) &&
           copy_a_bytes(g->ta, g->M, Kp) <= limit && copy_b_bytes(g->tb, product_n(g), Kp) <= limit;
}

/* cu_gemm_ksum's bf16 product applies: the same output, shape, transposes and alpha, g2
 * accumulating (beta 1), each one product over the same columns, and the concatenated
 * copies within the limit (bounded with both extents padded) */
static int ksum_one_product(const CuGemm *g1, const CuGemm *g2) {
    if (!cu_ksum() || cu_gemm_mode() != CU_GEMM_BF16 || g1->ta != g2->ta || g1->tb != g2->tb ||
        g1->M != g2->M || g1->N != g2->N || g1->C != g2->C || g1->ldc != g2->ldc ||
        g1->alpha != g2->alpha || g2->beta != 1.0f || product_n(g1) != product_n(g2) ||
        !one_bf16_product(g1) || !one_bf16_product(g2))
        return 0;
    const size_t kt = (size_t)padded(g1->K) + padded(g2->K), limit = cu_bf16_chunk_bytes();
    return kt * padded(g1->M) * sizeof(__nv_bfloat16) <= limit &&
           kt * padded(product_n(g1)) * sizeof(__nv_bfloat16) <= limit;
}

/* The bf16 copies of operand A (is_a) or B of g1 and g2 in one buffer, concatenated along
 * K (each K_i zero-padded to padded(K_i)). An operand stored [other, K_i] (A with ta = 0,
 * B with tb = 1) goes side by side: [other_p, K1p + K2p], rows other_p ≥ other (zero rows
 * after other); one stored [K_i, other] goes stacked: [K1p + K2p, padded(other)]. other:
 * M for A, N for B. *ld_h = the copy's row length. extra (0 or 8): room for that many
 * more terms of K after the two, left for the caller to write (cu_gemm_ksum_bias). */
static __nv_bfloat16 *concat_copy(int slot, const CuGemm *g1, const CuGemm *g2, int is_a,
                                  int other_p, int extra, int *ld_h) {
    const int other = is_a ? g1->M : g1->N, k1p = padded(g1->K), k2p = padded(g2->K);
    const int kt = k1p + k2p + extra;
    const float *x1 = is_a ? g1->A : g1->B, *x2 = is_a ? g2->A : g2->B;
    const int ld1 = is_a ? g1->lda : g1->ldb, ld2 = is_a ? g2->lda : g2->ldb;
    const int side_by_side = is_a ? !g1->ta : g1->tb;
    const int rows = side_by_side ? other_p : kt, cols = side_by_side ? kt : padded(other);
    __nv_bfloat16 *dst = (__nv_bfloat16 *)cu_scratch(slot, (size_t)rows * cols * sizeof *dst);
    if (side_by_side) {
        bf16_copy_to(dst, kt, x1, other, g1->K, ld1, other_p, k1p);
        bf16_copy_to(dst + k1p, kt, x2, other, g2->K, ld2, other_p, k2p);
    } else {
        bf16_copy_to(dst, cols, x1, g1->K, other, ld1, k1p, cols);
        bf16_copy_to(dst + (size_t)k1p * cols, cols, x2, g2->K, other, ld2, k2p, cols);
    }
    *ld_h = cols;
    return dst;
}

/* h takes g's A (stored [M, K], ta = 0) as an operand stored the same way: as A stored
 * [K_h, M_h] (ta) or as B stored [K_h, N_h] (not tb), with K_h = g's M; and h is a single
 * product. Then h can read that operand's half of the side-by-side copy. */
static int takes_a_side_by_side(const CuGemm *g, const CuGemm *h) {
    if (g->ta || !single_bf16_product(h) || (h->A == g->A) == (h->B == g->A)) return 0;
    if (h->A == g->A) return h->ta && h->K == g->M && h->M == g->K && h->lda == g->lda;
    return !h->tb && h->K == g->M && h->N == g->K && h->ldb == g->lda;
}

void cu_gemm_ksum(const CuGemm *g1, const CuGemm *g2, const CuGemm *h1, const CuGemm *h2) {
    const CuGemm *gs[2] = { g1, g2 }, *hs[2] = { h1, h2 };
    if (!ksum_one_product(g1, g2)) {
        cu_gemm_run(g1);
        cu_gemm_run(g2);
        for (int i = 0; i < 2; i++) if (hs[i]) cu_gemm_run(hs[i]);
        return;
    }
    /* A's copy gets padded(M) rows: h's contraction over them is padded the same way; B's
     * copy holds Ng of its N extent, zeros after N (the logits tangent: 50304 columns
     * straight into rows that have room for them) */
    const int k1p = padded(g1->K), kt = k1p + padded(g2->K), Ng = product_n(g1);
    int lda_h, ldb_h;
    const __nv_bfloat16 *Ah = concat_copy(CU_SCR_BF16_A, g1, g2, 1, padded(g1->M), 0, &lda_h);
    const __nv_bfloat16 *Bh = concat_copy(CU_SCR_BF16_B, g1, g2, 0, Ng, 0, &ldb_h);
    gemm_ex_bf16(g1->ta, g1->tb, g1->M, Ng, kt, g1->alpha, Ah, lda_h, Bh, ldb_h, g1->beta,
                 g1->C, g1->ldc);
    int share = 1;
    for (int i = 0; i < 2; i++) if (hs[i] && !takes_a_side_by_side(gs[i], hs[i])) share = 0;
    for (int i = 0; i < 2; i++) {
        const CuGemm *h = hs[i];
        if (!h) continue;
        if (!share) { cu_gemm_run(h); continue; }   /* it may overwrite Ah: after the product */
        const __nv_bfloat16 *Xh = Ah + (i ? k1p : 0);   /* A_i's half, rows kt apart */
        const int kp = padded(h->K);                     /* = Ah's rows */
        int ld_h;
        if (h->A == gs[i]->A) {
            const __nv_bfloat16 *Oh =
                copy_b(CU_SCR_BF16_B, h->B, h->tb, h->N, h->N, h->K, kp, h->ldb, &ld_h);
            gemm_ex_bf16(h->ta, h->tb, h->M, h->N, kp, h->alpha, Xh, kt, Oh, ld_h, h->beta, h->C,
                         h->ldc);
        } else {
            const __nv_bfloat16 *Oh =
                copy_a(CU_SCR_BF16_B, h->A, h->ta, h->M, h->K, kp, h->lda, &ld_h);
            gemm_ex_bf16(h->ta, h->tb, h->M, h->N, kp, h->alpha, Oh, ld_h, Xh, kt, h->beta, h->C,
                         h->ldc);
        }
    }
}

/* ---- a bias carried by the product ------------------------------------------------ */

/* rows K and K + 1 of B's bf16 copy (ld ldb) = hi = bf16(bias), lo = bf16(bias − hi):
 * hi + lo is the bias to about 16 bits, each term exact in the fp32 accumulation */
static __global__ void bias_rows_k(__nv_bfloat16 *B, int ldb, const float *bias, int K, int N) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < N; c += gridDim.x * blockDim.x) {
        const __nv_bfloat16 hi = __float2bfloat16(bias[c]);
        B[(size_t)K * ldb + c] = hi;
        B[(size_t)(K + 1) * ldb + c] = __float2bfloat16(bias[c] - __bfloat162float(hi));
    }
}

int cu_gemm_bias(const CuGemm *g, const float *bias) {
    if (!bias || !cu_bias_k() || cu_gemm_mode() != CU_GEMM_BF16 || g->ta || g->tb ||
        g->alpha != 1.0f || g->beta != 0.0f || g->M <= 0 || g->N <= 0 || g->K <= 0 ||
        wide_misaligned_output(g->N, g->ldc))
        return 0;
    const int Kb = (g->K + 2 + 7) / 8 * 8, ldb_h = padded(g->N);
    const size_t limit = cu_bf16_chunk_bytes();
    if (copy_a_bytes(0, g->M, Kb) > limit || copy_b_bytes(0, g->N, Kb) > limit) return 0;
    const double t = cu_prof_begin();
    __nv_bfloat16 *Ah = (__nv_bfloat16 *)cu_scratch(CU_SCR_BF16_A, (size_t)g->M * Kb * sizeof *Ah);
    /* [bf16(A) | 1 1 | 0 …] over Kb columns: A with the ones of its two bias terms */
    to_bf16_by4(Ah, Kb, g->A, g->M, g->K, g->lda, g->M, Kb, 2,
                g->lda % 4 == 0 && aligned(g->A, 16));
    cu_prof_end(CU_PROF_COPY, t, 0);
    __nv_bfloat16 *Bh = (__nv_bfloat16 *)bf16_copy(CU_SCR_BF16_B, g->B, g->K, g->N, g->ldb, Kb,
                                                   ldb_h);
    const double t2 = cu_prof_begin();
    bias_rows_k<<<cu_blocks((size_t)g->N), CU_THREADS>>>(Bh, ldb_h, bias, g->K, g->N);
    cudaLaunchCheck();
    cu_prof_end(CU_PROF_COPY, t2, 0);
    gemm_ex_bf16(0, 0, g->M, g->N, Kb, 1.0f, Ah, Kb, Bh, ldb_h, 0.0f, g->C, g->ldc);
    return 1;
}

/* columns c0 … c0 + 7 of A's bf16 copy (ld lda, a multiple of 8) = 1 1 0 0 0 0 0 0 in its
 * rows < M, zeros in the padding rows up to rows: one 16-byte store a row */
static __global__ void ones_block_k(__nv_bfloat16 *A, int lda, int c0, int M, int rows) {
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) {
        const __nv_bfloat16 one = __float2bfloat16(r < M ? 1.0f : 0.0f);
        const __nv_bfloat16 zero = __float2bfloat16(0.0f);
        __nv_bfloat162 *d = (__nv_bfloat162 *)(A + (size_t)r * lda + c0);
        d[0] = __nv_bfloat162{ one, one };
        d[1] = d[2] = d[3] = __nv_bfloat162{ zero, zero };
    }
}

int cu_gemm_ksum_bias(const CuGemm *g1, const CuGemm *g2, const float *bias) {
    if (!bias || !cu_bias_k() || !ksum_one_product(g1, g2) || g1->ta || g1->tb ||
        g1->alpha != 1.0f || g1->beta != 0.0f || product_n(g1) != g1->N)
        return 0;
    const int kt = padded(g1->K) + padded(g2->K), Mp = padded(g1->M), Np = padded(g1->N);
    const size_t limit = cu_bf16_chunk_bytes(), es = sizeof(__nv_bfloat16);
    if ((size_t)(kt + 8) * Mp * es > limit || (size_t)(kt + 8) * Np * es > limit) return 0;
    int lda_h, ldb_h;
    __nv_bfloat16 *Ah = concat_copy(CU_SCR_BF16_A, g1, g2, 1, Mp, 8, &lda_h);
    __nv_bfloat16 *Bh = concat_copy(CU_SCR_BF16_B, g1, g2, 0, g1->N, 8, &ldb_h);
    const double t = cu_prof_begin();
    ones_block_k<<<cu_blocks((size_t)Mp), CU_THREADS>>>(Ah, lda_h, kt, g1->M, Mp);
    cudaLaunchCheck();
    cudaCheck(cudaMemsetAsync(Bh + (size_t)kt * ldb_h, 0, (size_t)8 * ldb_h * es, 0));
    bias_rows_k<<<cu_blocks((size_t)g1->N), CU_THREADS>>>(Bh, ldb_h, bias, kt, g1->N);
    cudaLaunchCheck();
    cu_prof_end(CU_PROF_COPY, t, 0);
    gemm_ex_bf16(0, 0, g1->M, g1->N, kt + 8, 1.0f, Ah, lda_h, Bh, ldb_h, 0.0f, g1->C, g1->ldc);
    return 1;
}

/* ---- batched over (b, h) ------------------------------------------------------------- */

static __global__ void bh_pointers_k(const float **pa, const float **pb, float **pc, CuBHMat A,
                                     CuBHMat B, CuBHMat C, int nb, int nh) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nb * nh) return;
    long long b = i / nh, h = i % nh;
    pa[i] = A.p + b * A.sb + h * A.sh;
    pb[i] = B.p + b * B.sb + h * B.sh;
    pc[i] = (float *)C.p + b * C.sb + h * C.sh;
}

/* matrix (b, h) of X for m = (b − b0)·nh + h */
static __device__ __forceinline__ const float *bh_matrix(CuBHMat X, int b0, int m, int nh) {
    return X.p + (b0 + m / nh) * X.sb + (long long)(m % nh) * X.sh;
}

/* matrix m = (b − b0)·nh + h of nb examples: dst + m·stride (rows×cols, rows ldd apart)
 * = bf16 of matrix (b, h) of X. Matrices over blockIdx.y (grid-stride), rows over
 * blockIdx.x (grid-stride), columns over threads: no thread divides. */
static __global__ void bh_to_bf16_k(__nv_bfloat16 *dst, size_t stride, int ldd, CuBHMat X,
                                    int rows, int cols, int b0, int nb, int nh) {
    for (int m = blockIdx.y; m < nb * nh; m += gridDim.y) {
        const float *src = bh_matrix(X, b0, m, nh);
        __nv_bfloat16 *d = dst + (size_t)m * stride;
        for (int r = blockIdx.x; r < rows; r += gridDim.x) {
            const float *sr = src + (long long)r * X.ld;
            __nv_bfloat16 *dr = d + (size_t)r * ldd;
            for (int c = threadIdx.x; c < cols; c += blockDim.x) dr[c] = __float2bfloat16(sr[c]);
        }
    }
}

/* bh_to_bf16_k 4 floats at a time (cols, ldd, X.ld, X.sb, X.sh, stride multiples of 4, X.p
 * 16-byte and dst 8-byte aligned): a block of blockDim.y rows × blockDim.x float4 columns
 * per step, rows over blockIdx.x (grid-stride), matrices over blockIdx.y (grid-stride) */
static __global__ void bh_to_bf16_vec4_k(__nv_bfloat16 *dst, size_t stride, int ldd, CuBHMat X,
                                         int rows, int cols4, int b0, int nb, int nh) {
    for (int m = blockIdx.y; m < nb * nh; m += gridDim.y) {
        const float *src = bh_matrix(X, b0, m, nh);
        __nv_bfloat16 *d = dst + (size_t)m * stride;
        for (int r = blockIdx.x * blockDim.y + threadIdx.y; r < rows; r += gridDim.x * blockDim.y) {
            const float4 *sr = (const float4 *)(src + (long long)r * X.ld);
            __nv_bfloat162 *dr = (__nv_bfloat162 *)(d + (size_t)r * ldd);
            for (int c = threadIdx.x; c < cols4; c += blockDim.x) {
                const float4 v = sr[c];
                dr[2 * c] = __floats2bfloat162_rn(v.x, v.y);
                dr[2 * c + 1] = __floats2bfloat162_rn(v.z, v.w);
            }
        }
    }
}

static void bh_to_bf16(__nv_bfloat16 *dst, size_t stride, int ldd, CuBHMat X, int rows, int cols,
                       int b0, int nb, int nh) {
    const int count = nb * nh;
    if (cols % 4 == 0 && ldd % 4 == 0 && X.ld % 4 == 0 && X.sb % 4 == 0 && X.sh % 4 == 0 &&
        stride % 4 == 0 && ((uintptr_t)X.p & 15) == 0 && ((uintptr_t)dst & 7) == 0) {
        /* 256 threads: as many float4 columns as a row has (a power of 2 up to 256), the
         * rest of the block on further rows */
        const int cols4 = cols / 4;
        int tx = 1;
        while (tx < cols4 && tx < 256) tx *= 2;
        const dim3 threads((unsigned)tx, (unsigned)(256 / tx));
        int rblocks = (rows + (int)threads.y - 1) / (int)threads.y;
        if (rblocks > 65535) rblocks = 65535;
        dim3 grid((unsigned)rblocks, count < 65535 ? count : 65535);
        bh_to_bf16_vec4_k<<<grid, threads>>>(dst, stride, ldd, X, rows, cols4, b0, nb, nh);
        cudaLaunchCheck();
        return;
    }
    const int threads = cols >= 256 ? 256 : cols >= 128 ? 128 : cols >= 64 ? 64 : 32;
    /* about 64 rows a block for narrow matrices, one row a block for wide ones */
    int rblocks = cols >= 256 ? rows : (rows + 63) / 64;
    if (rblocks > 65535) rblocks = 65535;
    if (rblocks < 1) rblocks = 1;
    dim3 grid((unsigned)rblocks, count < 65535 ? count : 65535);
    bh_to_bf16_k<<<grid, threads>>>(dst, stride, ldd, X, rows, cols, b0, nb, nh);
    cudaLaunchCheck();
}

/* one operand's copies, matrix i at dst + i·per: X (stored [rows, cols]) dense; or, with
 * X2, the two concatenated along K: side by side when K runs along the stored columns
 * (X's k1 columns, then X2's), else stacked (X's k1 rows, then X2's) or, with interleave,
 * interleaved (row 2t from X's row t, row 2t + 1 from X2's; k1 = rows / 2) */
static void bh_operand_to_bf16(__nv_bfloat16 *dst, size_t per, CuBHMat X, const CuBHMat *X2,
                               int k1, int interleave, int rows, int cols, int k_along_cols,
                               int b0, int n, int nh) {
    if (!X2) {
        bh_to_bf16(dst, per, cols, X, rows, cols, b0, n, nh);
    } else if (!k_along_cols && interleave) {
        bh_to_bf16(dst, per, 2 * cols, X, k1, cols, b0, n, nh);
        bh_to_bf16(dst + cols, per, 2 * cols, *X2, rows - k1, cols, b0, n, nh);
    } else if (k_along_cols) {
        bh_to_bf16(dst, per, cols, X, rows, k1, b0, n, nh);
        bh_to_bf16(dst + k1, per, cols, *X2, rows, cols - k1, b0, n, nh);
    } else {
        bh_to_bf16(dst, per, cols, X, k1, cols, b0, n, nh);
        bh_to_bf16(dst + (size_t)k1 * cols, per, cols, *X2, rows - k1, cols, b0, n, nh);
    }
}

/* pointers into the bf16 operands and into C for examples b0 … b0 + nb − 1: matrix
 * i = (b − b0)·nh + h of A at A.p + (b − b0)·A.sb + h·A.sh (A.p at example b0), of B at
 * Bh + i·per_b (the dense copies) */
static __global__ void bh_pointers_bf16_k(const __nv_bfloat16 **pa, const __nv_bfloat16 **pb,
                                          float **pc, CuBHMatH A, const __nv_bfloat16 *Bh,
                                          size_t per_b, CuBHMat C, int b0, int nb, int nh) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nb * nh) return;
    long long b = i / nh, h = i % nh;
    pa[i] = (const __nv_bfloat16 *)A.p + b * A.sb + h * A.sh;
    pb[i] = Bh + (size_t)i * per_b;
    pc[i] = (float *)C.p + (b0 + b) * C.sb + h * C.sh;
}

/* cu_gemm_bh in bf16: per block of examples, the dense bf16 copies of B and (unless
 * given, Ah) of A, then one cublasGemmBatchedEx */
/* A2, B2 (or NULL): second operands concatenated along K after A's, B's first k1
 * (bh_operand_to_bf16; interleave: rows alternate) */
static void gemm_bh_bf16(int ta, int tb, int M, int N, int K, float alpha, CuBHMat A,
                         const CuBHMat *A2, const CuBHMatH *Ah, CuBHMat B, const CuBHMat *B2,
                         int k1, int interleave, float beta, CuBHMat C, int nb, int nh) {
    const size_t es = sizeof(__nv_bfloat16);
    const int ra = ta ? K : M, ca = ta ? M : K, rb = tb ? N : K, cb = tb ? K : N;
    /* each matrix's copy starts on a 16-byte boundary (8 bf16), as tensor-core kernels like */
    const size_t per_a = ((size_t)ra * ca + 7) / 8 * 8, per_b = ((size_t)rb * cb + 7) / 8 * 8;
    const size_t per_example = (Ah || per_b > per_a ? per_b : per_a) * es * (size_t)nh;
    const int bc = block_of(cu_bf16_chunk_bytes(), per_example, nb);
    for (int b0 = 0; b0 < nb; b0 += bc) {
        const int n = nb - b0 < bc ? nb - b0 : bc, count = n * nh;
        CuBHMatH Ab;
        double t = cu_prof_begin();
        if (Ah) {
            Ab = *Ah;
            Ab.p = (const __nv_bfloat16 *)Ah->p + b0 * Ah->sb;
        } else {
            __nv_bfloat16 *copy = (__nv_bfloat16 *)cu_scratch(CU_SCR_BF16_A, (size_t)count * per_a * es);
            bh_operand_to_bf16(copy, per_a, A, A2, k1, interleave, ra, ca, !ta, b0, n, nh);
            Ab = { copy, (long long)per_a * nh, (long long)per_a, ca };
        }
        __nv_bfloat16 *Bh = (__nv_bfloat16 *)cu_scratch(CU_SCR_BF16_B, (size_t)count * per_b * es);
        bh_operand_to_bf16(Bh, per_b, B, B2, k1, interleave, rb, cb, tb, b0, n, nh);
        cu_prof_end(CU_PROF_BH_COPY, t, 0);
        if (!cu_bh_pointers() && Ab.sb == (long long)nh * Ab.sh && C.sb == (long long)nh * C.sh) {
            /* A's and C's matrices one stride apart over (b, h), as B's copies are (the
             * score products: C is [B,NH,T,T]): the strided call, whose pointers and
             * strides cuBLAS sees */
            t = cu_prof_begin();
            cublasCheck(cublasGemmStridedBatchedEx(
                cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha, Bh, CUDA_R_16BF, cb,
                (long long)per_b, Ab.p, CUDA_R_16BF, Ab.ld, Ab.sh, &beta,
                (float *)C.p + (long long)b0 * C.sb, CUDA_R_32F, C.ld, C.sh, count,
                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            cu_prof_end_gemm(CU_PROF_BH_GEMM, t, ta, tb, M, N, K, count);
            continue;
        }
        void **ptrs = (void **)cu_scratch(CU_SCR_PTRS, 3 * (size_t)count * sizeof(void *));
        const __nv_bfloat16 **pa = (const __nv_bfloat16 **)ptrs, **pb = pa + count;
        float **pc = (float **)(ptrs + 2 * (size_t)count);
        bh_pointers_bf16_k<<<(count + 127) / 128, 128>>>(pa, pb, pc, Ab, Bh, per_b, C, b0, n, nh);
        cudaLaunchCheck();
        t = cu_prof_begin();
        cublasCheck(cublasGemmBatchedEx(cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha,
                                        (const void *const *)pb, CUDA_R_16BF, cb,
                                        (const void *const *)pa, CUDA_R_16BF, Ab.ld, &beta,
                                        (void *const *)pc, CUDA_R_32F, C.ld, count,
                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        cu_prof_end_gemm(CU_PROF_BH_GEMM, t, ta, tb, M, N, K, count);
    }
}

/* cu_gemm_bh_bf16a, and with B2 (K2 > 0) its K = K1 + K2 form */
static void gemm_bh_bf16a(int ta, int tb, int M, int N, int K1, int K2, float alpha, CuBHMatH A,
                          CuBHMat B, const CuBHMat *B2, int interleave, float beta, CuBHMat C,
                          int nb, int nh) {
    const int K = K1 + K2;
    if (M <= 0 || N <= 0 || nb * nh <= 0) return;
    if (B2 && !cu_ksum()) {   /* the two products apart, on A's two parts (DR_CUDA_NO_KSUM=1) */
        CuBHMatH A1 = A, A2 = A;
        const __nv_bfloat16 *a = (const __nv_bfloat16 *)A.p;
        if (interleave) { A1.ld = A2.ld = 2 * A.ld; A2.p = a + A.ld; }   /* even, odd rows */
        else A2.p = ta ? a + (size_t)K1 * A.ld : a + K1;               /* stacked, side by side */
        gemm_bh_bf16a(ta, tb, M, N, K1, 0, alpha, A1, B, NULL, 0, beta, C, nb, nh);
        gemm_bh_bf16a(ta, tb, M, N, K2, 0, alpha, A2, *B2, NULL, 0, 1, C, nb, nh);
        return;
    }
    if (K <= 0) dr_fail_at(__FILE__, __LINE__, "cu_gemm_bh_bf16a: empty product (K = %d)", K);
    if (cu_gemm_mode() != CU_GEMM_BF16)
        dr_fail_at(__FILE__, __LINE__, "cu_gemm_bh_bf16a: a bf16 operand outside the bf16 GEMM mode");
    /* cuBLAS cannot see the pointers of a batched call and picks its kernel's vector width
     * from the leading dimensions: a matrix that starts off a 16-byte boundary while ld is
     * even makes it read misaligned (the H100 of the fifth GPU session, at T = 17) */
    if ((uintptr_t)A.p % 16 || A.ld % 8 || A.sb % 8 || A.sh % 8)
        dr_fail_at(__FILE__, __LINE__, "cu_gemm_bh_bf16a: bf16 matrices off 16-byte boundaries "
                   "(ld %d, strides %lld and %lld elements)", A.ld, A.sb, A.sh);
    const CuBHMat unused = { NULL, 0, 0, 0 };
    gemm_bh_bf16(ta, tb, M, N, K, alpha, unused, NULL, &A, B, B2, K1, interleave, beta, C, nb, nh);
}

void cu_gemm_bh_bf16a(int ta, int tb, int M, int N, int K, float alpha, CuBHMatH A, CuBHMat B,
                      float beta, CuBHMat C, int nb, int nh) {
    gemm_bh_bf16a(ta, tb, M, N, K, 0, alpha, A, B, NULL, 0, beta, C, nb, nh);
}

void cu_gemm_bh_bf16a_ksum(int ta, int tb, int M, int N, int K1, int K2, float alpha, CuBHMatH A,
                           CuBHMat B1, CuBHMat B2, int interleave, float beta, CuBHMat C, int nb,
                           int nh) {
    gemm_bh_bf16a(ta, tb, M, N, K1, K2, alpha, A, B1, &B2, interleave, beta, C, nb, nh);
}

void cu_gemm_bh_ksum(int ta, int tb, int M, int N, int K1, int K2, float alpha, CuBHMat A1,
                     CuBHMat B1, CuBHMat A2, CuBHMat B2, float beta, CuBHMat C, int nb, int nh) {
    if (M <= 0 || N <= 0 || nb * nh <= 0) return;
    if (!cu_ksum() || cu_gemm_mode() != CU_GEMM_BF16 || K1 <= 0 || K2 <= 0) {
        cu_gemm_bh(ta, tb, M, N, K1, alpha, A1, B1, beta, C, nb, nh);
        cu_gemm_bh(ta, tb, M, N, K2, alpha, A2, B2, 1, C, nb, nh);
        return;
    }
    gemm_bh_bf16(ta, tb, M, N, K1 + K2, alpha, A1, &A2, NULL, B1, &B2, K1, 0, beta, C, nb, nh);
}

void cu_gemm_bh(int ta, int tb, int M, int N, int K, float alpha, CuBHMat A, CuBHMat B,
                float beta, CuBHMat C, int nb, int nh) {
    int count = nb * nh;
    if (M <= 0 || N <= 0 || count <= 0) return;
    if (K <= 0) dr_fail_at(__FILE__, __LINE__, "cu_gemm_bh: empty product (K = %d)", K);
    const int mode = cu_gemm_mode();
    if (mode == CU_GEMM_BF16) {
        gemm_bh_bf16(ta, tb, M, N, K, alpha, A, NULL, NULL, B, NULL, K, 0, beta, C, nb, nh);
        return;
    }
    void **ptrs = (void **)cu_scratch(CU_SCR_PTRS, 3 * (size_t)count * sizeof(void *));
    const float **pa = (const float **)ptrs, **pb = pa + count;
    float **pc = (float **)(ptrs + 2 * (size_t)count);
    bh_pointers_k<<<(count + 127) / 128, 128>>>(pa, pb, pc, A, B, C, nb, nh);
    cudaLaunchCheck();
    const double t = cu_prof_begin();
    if (mode == CU_GEMM_TF32)
        cublasCheck(cublasGemmBatchedEx(cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha,
                                        (const void *const *)pb, CUDA_R_32F, B.ld,
                                        (const void *const *)pa, CUDA_R_32F, A.ld, &beta,
                                        (void *const *)pc, CUDA_R_32F, C.ld, count,
                                        CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
    else
        cublasCheck(cublasSgemmBatched(cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha, pb, B.ld,
                                       pa, A.ld, &beta, pc, C.ld, count));
    cu_prof_end_gemm(CU_PROF_BH_GEMM, t, ta, tb, M, N, K, count);
}

/* ---- column sums ------------------------------------------------------------------- */

static __global__ void fill_k(float *x, float v, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = v;
}

void cu_column_sum_add(float *db, const float *d, int N, int OC, int ld) {
    if (N <= 0 || OC <= 0) return;
    float *ones = (float *)cu_scratch(CU_SCR_ONES, (size_t)N * sizeof(float));
    const double t = cu_prof_begin();
    fill_k<<<cu_blocks((size_t)N), CU_THREADS>>>(ones, 1.0f, (size_t)N);
    cudaLaunchCheck();
    const float one = 1.0f;
    /* column-major view of d: [OC, N], ld ld; db += d·1 */
    cublasCheck(cublasSgemv(cu_blas(), CUBLAS_OP_N, OC, N, &one, d, ld, ones, 1, &one, db, 1));
    cu_prof_end(CU_PROF_OTHER, t, 0);
}
