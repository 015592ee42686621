/* gemm.cu — every matrix product of the CUDA backend goes through here: cuBLAS on
 * row-major operands (lib/ops/cpu_util.h's ops_gemm contract), in fp32, TF32 or bf16
 * (inputs rounded to bf16 on the fly, fp32 accumulation and output), the per-(b, h)
 * batched products of attention, and column sums by GEMV.
 *
 * Row-major to cuBLAS's column-major: a row-major X[r, c] with leading dimension ld is
 * the column-major Xᵀ with the same ld, so C = op(A)·op(B) is computed as
 * Cᵀ = op(B)ᵀ·op(A)ᵀ: the same transpose flags, operands swapped, M and N swapped. */
#include <cuda_bf16.h>

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
    scale_rows_k<<<cu_blocks((size_t)M * N), CU_THREADS>>>(C, M, N, ldc, beta);
    cudaLaunchCheck();
}

void cu_gemm_fp32(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { gemm_empty(M, N, beta, C, ldc); return; }
    cublasCheck(cublasSgemm(cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha, B, ldb, A, lda,
                            &beta, C, ldc));
}

/* dst[rows, cols] (dense, ld = cols) = bf16(src[rows, cols] with leading dimension ld) */
static __global__ void to_bf16_k(__nv_bfloat16 *dst, const float *src, int rows, int cols, int ld) {
    size_t n = (size_t)rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        dst[i] = __float2bfloat16(src[r * (size_t)ld + c]);
    }
}

static const __nv_bfloat16 *bf16_copy(int slot, const float *src, int rows, int cols, int ld) {
    __nv_bfloat16 *dst = (__nv_bfloat16 *)cu_scratch(slot, (size_t)rows * cols * sizeof *dst);
    to_bf16_k<<<cu_blocks((size_t)rows * cols), CU_THREADS>>>(dst, src, rows, cols, ld);
    cudaLaunchCheck();
    return dst;
}

void cu_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { gemm_empty(M, N, beta, C, ldc); return; }
    switch (cu_gemm_mode()) {
    case CU_GEMM_TF32:
        cublasCheck(cublasGemmEx(cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha,
                                 B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta,
                                 C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F_FAST_TF32,
                                 CUBLAS_GEMM_DEFAULT));
        return;
    case CU_GEMM_BF16: {
        /* the stored shapes: A is [M,K] or [K,M], B is [K,N] or [N,K] */
        int ra = ta ? K : M, ca = ta ? M : K, rb = tb ? N : K, cb = tb ? K : N;
        const __nv_bfloat16 *Ah = bf16_copy(CU_SCR_BF16_A, A, ra, ca, lda);
        const __nv_bfloat16 *Bh = bf16_copy(CU_SCR_BF16_B, B, rb, cb, ldb);
        cublasCheck(cublasGemmEx(cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha,
                                 Bh, CUDA_R_16BF, cb, Ah, CUDA_R_16BF, ca, &beta,
                                 C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        return;
    }
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

void cu_gemm_bh(int ta, int tb, int M, int N, int K, float alpha, CuBHMat A, CuBHMat B,
                float beta, CuBHMat C, int nb, int nh) {
    int count = nb * nh;
    if (M <= 0 || N <= 0 || count <= 0) return;
    if (K <= 0) dr_fail_at(__FILE__, __LINE__, "cu_gemm_bh: empty product (K = %d)", K);
    void **ptrs = (void **)cu_scratch(CU_SCR_PTRS, 3 * (size_t)count * sizeof(void *));
    const float **pa = (const float **)ptrs, **pb = pa + count;
    float **pc = (float **)(ptrs + 2 * (size_t)count);
    bh_pointers_k<<<(count + 127) / 128, 128>>>(pa, pb, pc, A, B, C, nb, nh);
    cudaLaunchCheck();
    cublasCheck(cublasSgemmBatched(cu_blas(), op_of(tb), op_of(ta), N, M, K, &alpha, pb, B.ld,
                                   pa, A.ld, &beta, pc, C.ld, count));
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
    fill_k<<<cu_blocks((size_t)N), CU_THREADS>>>(ones, 1.0f, (size_t)N);
    cudaLaunchCheck();
    const float one = 1.0f;
    /* column-major view of d: [OC, N], ld OC; db += d·1 */
    cublasCheck(cublasSgemv(cu_blas(), CUBLAS_OP_N, OC, N, &one, d, OC, ones, 1, &one, db, 1));
}
