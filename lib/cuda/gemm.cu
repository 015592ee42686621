/* gemm.cu — every matrix product of the CUDA backend goes through here: cuBLAS on
 * row-major operands (lib/ops/cpu_util.h's ops_gemm contract), in fp32, TF32 or bf16
 * (inputs rounded to bf16 on the fly, fp32 accumulation and output), the per-(b, h)
 * batched products of attention in the same three modes, and column sums by GEMV.
 *
 * Row-major to cuBLAS's column-major: a row-major X[r, c] with leading dimension ld is
 * the column-major Xᵀ with the same ld, so C = op(A)·op(B) is computed as
 * Cᵀ = op(B)ᵀ·op(A)ᵀ: the same transpose flags, operands swapped, M and N swapped.
 *
 * bf16: each operand is rounded into a dense bf16 scratch copy (ld = its column count;
 * 4 floats at a time where the rows allow), then one cublasGemmEx / cublasGemmBatchedEx
 * multiplies the copies with fp32 accumulation into the fp32 C. A copy larger than
 * cu_bf16_chunk_bytes() (512 MiB by default) is made block by block: blocks of rows of C
 * (for a big A) or of columns of C (for a big B), blocks of examples b for the batched
 * products. Each block is a complete product of its part of C, so the result does not
 * depend on the blocking beyond cuBLAS's own choice of algorithm for the block's shape.
 *
 * A contraction length K that is not a multiple of 8 (the head's dx = d·E over V = 50257)
 * is padded with zeros to a multiple of 64 in both copies (the columns of A's rows or the
 * rows of A's columns, and likewise B), and cuBLAS multiplies over the padded K: the
 * extra terms are exact zeros, the fp32 sums unchanged but for cuBLAS's own order. On the
 * H200, `bench_cuda --gemm-shapes` measured d·E at 135 TFLOP/s with K = 50257 and 782 with
 * K = 50304 (2026-11-27); inside the step this path has not run on a GPU yet.
 *
 * Tried and reverted (H200, 2026-11-27): copies padded to rows of 16-byte multiples and
 * an aligned fp32 scratch for a C with an odd leading dimension (the head's [rows, 50257]
 * logits). The reference bf16 step's matmul_forward went 125.8 → 152.9 ms (the extra
 * pass over C alone took 23.4 ms, the GEMMs gained nothing visible), and cuBLAS's 16-byte
 * loads read the uninitialized padding (compute-sanitizer initcheck). */
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

/* dst[rows_p, cols_p] (dense) = bf16(src[rows, cols] with leading dimension ld), zeros
 * in the rows ≥ rows and the columns ≥ cols (rows_p ≥ rows, cols_p ≥ cols): a copy with
 * its contraction dimension padded */
static __global__ void to_bf16_padded_k(__nv_bfloat16 *dst, const float *src, int rows, int cols,
                                        int ld, int rows_p, int cols_p) {
    for (int r = blockIdx.y; r < rows_p; r += gridDim.y) {
        const float *s = src + (size_t)(r < rows ? r : 0) * ld;
        __nv_bfloat16 *d = dst + (size_t)r * cols_p;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols_p; c += gridDim.x * blockDim.x)
            d[c] = r < rows && c < cols ? __float2bfloat16(s[c]) : __float2bfloat16(0.0f);
    }
}

static inline int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* the contraction length cuBLAS gets: K, or K rounded up to 64 when K % 8 != 0 */
static inline int padded_k(int K) { return K % 8 == 0 ? K : (K + 63) / 64 * 64; }

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

/* the dense bf16 copy [rows_p, cols_p] of src[rows, cols] (ld), zero beyond rows × cols */
static const __nv_bfloat16 *bf16_copy(int slot, const float *src, int rows, int cols, int ld,
                                      int rows_p, int cols_p) {
    __nv_bfloat16 *dst = (__nv_bfloat16 *)cu_scratch(slot, (size_t)rows_p * cols_p * sizeof *dst);
    const double t = cu_prof_begin();
    if (rows_p == rows && cols_p == cols) {
        to_bf16(dst, src, rows, cols, ld);
    } else {
        dim3 grid((unsigned)((cols_p + CU_THREADS - 1) / CU_THREADS), rows_p < 65535 ? rows_p : 65535);
        to_bf16_padded_k<<<grid, CU_THREADS>>>(dst, src, rows, cols, ld, rows_p, cols_p);
        cudaLaunchCheck();
    }
    cu_prof_end(CU_PROF_COPY, t, 0);
    return dst;
}

/* bf16 copies of the GEMM operands, K padded to Kp: A is [M,K] (ta = 0) or [K,M], B is
 * [K,N] (tb = 0) or [N,K] */
static const __nv_bfloat16 *copy_a(const float *A, int ta, int M, int K, int Kp, int lda) {
    return ta ? bf16_copy(CU_SCR_BF16_A, A, K, M, lda, Kp, M) : bf16_copy(CU_SCR_BF16_A, A, M, K, lda, M, Kp);
}

static const __nv_bfloat16 *copy_b(const float *B, int tb, int N, int K, int Kp, int ldb) {
    return tb ? bf16_copy(CU_SCR_BF16_B, B, N, K, ldb, N, Kp) : bf16_copy(CU_SCR_BF16_B, B, K, N, ldb, Kp, N);
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

static void gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
    if (cu_gemm_split() && N >= 1024 && N % 64 != 0) {
        /* columns [0, n0) with n0 a multiple of 64, then the rest (DR_CUDA_GEMM_SPLIT) */
        const int n0 = N - N % 64;
        gemm_bf16(ta, tb, M, n0, K, alpha, A, lda, B, ldb, beta, C, ldc);
        gemm_bf16(ta, tb, M, N - n0, K, alpha, A, lda, tb ? B + (size_t)n0 * ldb : B + n0, ldb,
                  beta, C + n0, ldc);
        return;
    }
    const size_t es = sizeof(__nv_bfloat16), limit = cu_bf16_chunk_bytes();
    const int Kp = padded_k(K);   /* the copies' contraction length, zero-padded */
    /* the stored shapes: A is [M,K] (ta = 0) or [K,M], B is [K,N] (tb = 0) or [N,K] */
    if ((size_t)M * Kp * es > limit && M > 1) {
        /* blocks of mc rows of C: rows of A, or columns of A stored [K,M]; B copied once */
        const int mc = block_of(limit, (size_t)Kp * es, M);
        const __nv_bfloat16 *Bh = copy_b(B, tb, N, K, Kp, ldb);
        for (int m0 = 0; m0 < M; m0 += mc) {
            const int m = M - m0 < mc ? M - m0 : mc;
            const float *Ab = ta ? A + m0 : A + (size_t)m0 * lda;
            const __nv_bfloat16 *Ah = copy_a(Ab, ta, m, K, Kp, lda);
            gemm_ex_bf16(ta, tb, m, N, Kp, alpha, Ah, ta ? m : Kp, Bh, tb ? Kp : N, beta,
                         C + (size_t)m0 * ldc, ldc);
        }
        return;
    }
    if ((size_t)Kp * N * es > limit && N > 1) {
        /* blocks of nc columns of C: columns of B, or rows of B stored [N,K]; A copied once */
        const int nc = block_of(limit, (size_t)Kp * es, N);
        const __nv_bfloat16 *Ah = copy_a(A, ta, M, K, Kp, lda);
        for (int n0 = 0; n0 < N; n0 += nc) {
            const int n = N - n0 < nc ? N - n0 : nc;
            const float *Bb = tb ? B + (size_t)n0 * ldb : B + n0;
            const __nv_bfloat16 *Bh = copy_b(Bb, tb, n, K, Kp, ldb);
            gemm_ex_bf16(ta, tb, M, n, Kp, alpha, Ah, ta ? M : Kp, Bh, tb ? Kp : n, beta, C + n0, ldc);
        }
        return;
    }
    const __nv_bfloat16 *Ah = copy_a(A, ta, M, K, Kp, lda);
    const __nv_bfloat16 *Bh = copy_b(B, tb, N, K, Kp, ldb);
    gemm_ex_bf16(ta, tb, M, N, Kp, alpha, Ah, ta ? M : Kp, Bh, tb ? Kp : N, beta, C, ldc);
}

void cu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
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
        gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    default:
        cu_gemm_fp32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    }
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

/* matrix m = (b − b0)·nh + h of nb examples: dst + m·stride (dense rows×cols, ld = cols)
 * = bf16 of matrix (b, h) of X. Matrices over blockIdx.y (grid-stride), rows over
 * blockIdx.x (grid-stride), columns over threads: no thread divides. */
static __global__ void bh_to_bf16_k(__nv_bfloat16 *dst, size_t stride, CuBHMat X, int rows,
                                    int cols, int b0, int nb, int nh) {
    for (int m = blockIdx.y; m < nb * nh; m += gridDim.y) {
        const float *src = bh_matrix(X, b0, m, nh);
        __nv_bfloat16 *d = dst + (size_t)m * stride;
        for (int r = blockIdx.x; r < rows; r += gridDim.x) {
            const float *sr = src + (long long)r * X.ld;
            __nv_bfloat16 *dr = d + (size_t)r * cols;
            for (int c = threadIdx.x; c < cols; c += blockDim.x) dr[c] = __float2bfloat16(sr[c]);
        }
    }
}

/* bh_to_bf16_k 4 floats at a time (cols, X.ld, X.sb, X.sh, stride multiples of 4 and X.p
 * 16-byte aligned): a block of blockDim.y rows × blockDim.x float4 columns per step, rows
 * over blockIdx.x (grid-stride), matrices over blockIdx.y (grid-stride) */
static __global__ void bh_to_bf16_vec4_k(__nv_bfloat16 *dst, size_t stride, CuBHMat X, int rows,
                                         int cols4, int b0, int nb, int nh) {
    for (int m = blockIdx.y; m < nb * nh; m += gridDim.y) {
        const float *src = bh_matrix(X, b0, m, nh);
        __nv_bfloat16 *d = dst + (size_t)m * stride;
        for (int r = blockIdx.x * blockDim.y + threadIdx.y; r < rows; r += gridDim.x * blockDim.y) {
            const float4 *sr = (const float4 *)(src + (long long)r * X.ld);
            __nv_bfloat162 *dr = (__nv_bfloat162 *)(d + (size_t)r * 4 * cols4);
            for (int c = threadIdx.x; c < cols4; c += blockDim.x) {
                const float4 v = sr[c];
                dr[2 * c] = __floats2bfloat162_rn(v.x, v.y);
                dr[2 * c + 1] = __floats2bfloat162_rn(v.z, v.w);
            }
        }
    }
}

static void bh_to_bf16(__nv_bfloat16 *dst, size_t stride, CuBHMat X, int rows, int cols, int b0,
                       int nb, int nh) {
    const int count = nb * nh;
    if (cols % 4 == 0 && X.ld % 4 == 0 && X.sb % 4 == 0 && X.sh % 4 == 0 && stride % 4 == 0 &&
        ((uintptr_t)X.p & 15) == 0 && ((uintptr_t)dst & 7) == 0) {
        /* 256 threads: as many float4 columns as a row has (a power of 2 up to 256), the
         * rest of the block on further rows */
        const int cols4 = cols / 4;
        int tx = 1;
        while (tx < cols4 && tx < 256) tx *= 2;
        const dim3 threads((unsigned)tx, (unsigned)(256 / tx));
        int rblocks = (rows + (int)threads.y - 1) / (int)threads.y;
        if (rblocks > 65535) rblocks = 65535;
        dim3 grid((unsigned)rblocks, count < 65535 ? count : 65535);
        bh_to_bf16_vec4_k<<<grid, threads>>>(dst, stride, X, rows, cols4, b0, nb, nh);
        cudaLaunchCheck();
        return;
    }
    const int threads = cols >= 256 ? 256 : cols >= 128 ? 128 : cols >= 64 ? 64 : 32;
    /* about 64 rows a block for narrow matrices, one row a block for wide ones */
    int rblocks = cols >= 256 ? rows : (rows + 63) / 64;
    if (rblocks > 65535) rblocks = 65535;
    if (rblocks < 1) rblocks = 1;
    dim3 grid((unsigned)rblocks, count < 65535 ? count : 65535);
    bh_to_bf16_k<<<grid, threads>>>(dst, stride, X, rows, cols, b0, nb, nh);
    cudaLaunchCheck();
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
static void gemm_bh_bf16(int ta, int tb, int M, int N, int K, float alpha, CuBHMat A,
                         const CuBHMatH *Ah, CuBHMat B, float beta, CuBHMat C, int nb, int nh) {
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
            bh_to_bf16(copy, per_a, A, ra, ca, b0, n, nh);
            Ab = { copy, (long long)per_a * nh, (long long)per_a, ca };
        }
        __nv_bfloat16 *Bh = (__nv_bfloat16 *)cu_scratch(CU_SCR_BF16_B, (size_t)count * per_b * es);
        bh_to_bf16(Bh, per_b, B, rb, cb, b0, n, nh);
        cu_prof_end(CU_PROF_BH_COPY, t, 0);
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

void cu_gemm_bh_bf16a(int ta, int tb, int M, int N, int K, float alpha, CuBHMatH A, CuBHMat B,
                      float beta, CuBHMat C, int nb, int nh) {
    if (M <= 0 || N <= 0 || nb * nh <= 0) return;
    if (K <= 0) dr_fail_at(__FILE__, __LINE__, "cu_gemm_bh_bf16a: empty product (K = %d)", K);
    if (cu_gemm_mode() != CU_GEMM_BF16)
        dr_fail_at(__FILE__, __LINE__, "cu_gemm_bh_bf16a: a bf16 operand outside the bf16 GEMM mode");
    const CuBHMat unused = { NULL, 0, 0, 0 };
    gemm_bh_bf16(ta, tb, M, N, K, alpha, unused, &A, B, beta, C, nb, nh);
}

void cu_gemm_bh(int ta, int tb, int M, int N, int K, float alpha, CuBHMat A, CuBHMat B,
                float beta, CuBHMat C, int nb, int nh) {
    int count = nb * nh;
    if (M <= 0 || N <= 0 || count <= 0) return;
    if (K <= 0) dr_fail_at(__FILE__, __LINE__, "cu_gemm_bh: empty product (K = %d)", K);
    const int mode = cu_gemm_mode();
    if (mode == CU_GEMM_BF16) {
        gemm_bh_bf16(ta, tb, M, N, K, alpha, A, NULL, B, beta, C, nb, nh);
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

void cu_column_sum_add(float *db, const float *d, int N, int OC) {
    if (N <= 0 || OC <= 0) return;
    float *ones = (float *)cu_scratch(CU_SCR_ONES, (size_t)N * sizeof(float));
    const double t = cu_prof_begin();
    fill_k<<<cu_blocks((size_t)N), CU_THREADS>>>(ones, 1.0f, (size_t)N);
    cudaLaunchCheck();
    const float one = 1.0f;
    /* column-major view of d: [OC, N], ld OC; db += d·1 */
    cublasCheck(cublasSgemv(cu_blas(), CUBLAS_OP_N, OC, N, &one, d, OC, ones, 1, &one, db, 1));
    cu_prof_end(CU_PROF_OTHER, t, 0);
}
