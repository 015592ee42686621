/* bench_gemm.cu — the GEMM rate of this GPU through cuBLAS, for bench_cuda.c (make
 * bench-cuda): the denominator of its MFU, and what each precision mode of the backend's
 * GEMM path reaches. Bench only: never linked into the library or the tools.
 *
 * Modes (a row-major n×n×n product, C = A·B, fp32 C):
 *   "fp32", "tf32", "bf16": cu_gemm in that mode, exactly the path of the matmul op
 *                          (bf16: both inputs rounded into scratch copies on the fly,
 *                          so the conversions are part of the time);
 *   "bf16-pure":           cublasGemmEx on inputs already in bf16, fp32 accumulation and
 *                          output: the tensor-core rate MFU is measured against.
 * Timing: cudaDeviceSynchronize and the host's monotonic clock (dr_now) around each product, the
 * median of reps after one warm-up. The backend's GEMM mode is restored afterwards. */
#include <cuda_bf16.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_common.cuh"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {   /* sorts t */
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* x[i] = a small pattern, so no denormals and no overflow */
static __global__ void fill_pattern_k(float *x, size_t n, int mod) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = 0.01f * (float)(int)(i % (size_t)mod) - 0.02f;
}

static __global__ void to_bf16_dense_k(__nv_bfloat16 *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16(src[i]);
}

extern "C" double bench_gemm_tflops(const char *mode, int n, int reps) {
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    const size_t nn = (size_t)n * n;
    float *A, *B, *C;
    cudaCheck(cudaMalloc((void **)&A, nn * sizeof(float)));
    cudaCheck(cudaMalloc((void **)&B, nn * sizeof(float)));
    cudaCheck(cudaMalloc((void **)&C, nn * sizeof(float)));
    fill_pattern_k<<<cu_blocks(nn), CU_THREADS>>>(A, nn, 7);
    cudaLaunchCheck();
    fill_pattern_k<<<cu_blocks(nn), CU_THREADS>>>(B, nn, 5);
    cudaLaunchCheck();
    const int pure = !strcmp(mode, "bf16-pure");
    __nv_bfloat16 *Ah = NULL, *Bh = NULL;
    char saved[8];
    snprintf(saved, sizeof saved, "%s", backend_cuda_gemm_precision());
    if (pure) {
        cudaCheck(cudaMalloc((void **)&Ah, nn * sizeof *Ah));
        cudaCheck(cudaMalloc((void **)&Bh, nn * sizeof *Bh));
        to_bf16_dense_k<<<cu_blocks(nn), CU_THREADS>>>(Ah, A, nn);
        cudaLaunchCheck();
        to_bf16_dense_k<<<cu_blocks(nn), CU_THREADS>>>(Bh, B, nn);
        cudaLaunchCheck();
    } else if (backend_cuda_set_gemm_precision(mode) != 0) {
        dr_fail_at(__FILE__, __LINE__, "bench_gemm_tflops: unknown mode %s", mode);
    }
    const float one = 1.0f, zero = 0.0f;
    double t[64];
    for (int r = -1; r < reps; r++) {   /* r = -1: warm-up (cuBLAS heuristics, scratch) */
        cudaCheck(cudaDeviceSynchronize());
        double t0 = dr_now();
        if (pure)
            cublasCheck(cublasGemmEx(cu_blas(), CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, Bh,
                                     CUDA_R_16BF, n, Ah, CUDA_R_16BF, n, &zero, C, CUDA_R_32F, n,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        else
            cu_gemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        cudaCheck(cudaDeviceSynchronize());
        if (r >= 0) t[r] = dr_now() - t0;
    }
    const double med = median(t, reps);
    backend_cuda_set_gemm_precision(saved);
    cudaCheck(cudaFree(A));
    cudaCheck(cudaFree(B));
    cudaCheck(cudaFree(C));
    if (Ah) cudaCheck(cudaFree(Ah));
    if (Bh) cudaCheck(cudaFree(Bh));
    return 2.0 * (double)n * n * n / med / 1e12;
}

/* ---- the model's own GEMM shapes -----------------------------------------------------
 * bench_gemm_shapes: cublasGemmEx on inputs already bf16, for each product a training step
 * of an LM with B·T rows, width C, d_ff F and vocabulary V makes (the head on chunks of
 * R rows), once with an fp32 C (what the backend writes now) and once with a bf16 C (what
 * bf16 activations would write), and for the head also with V rounded up to a multiple of
 * 64 (llm.c's padded vocabulary), and with V kept but the leading dimension that is V
 * rounded up (the head's extent odd, its rows 16-byte aligned: which of the two makes the
 * unpadded head slow). Median of reps after one warm-up; TFLOP/s. Row-major
 * C[M,N] = op(A)·op(B), the transposes as the matmul op's faces use them; lda, ldb, ldc
 * as stored (0: dense). */
static double time_shape(int ta, int tb, int M, int N, int K, const __nv_bfloat16 *A, int lda,
                         const __nv_bfloat16 *B, int ldb, void *C, int ldc, cudaDataType ct,
                         int reps) {
    if (!lda) lda = ta ? M : K;
    if (!ldb) ldb = tb ? K : N;
    if (!ldc) ldc = N;
    const float one = 1.0f, zero = 0.0f;
    double t[64];
    for (int r = -1; r < reps; r++) {
        cudaCheck(cudaDeviceSynchronize());
        const double t0 = dr_now();
        cublasCheck(cublasGemmEx(cu_blas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &one, B, CUDA_R_16BF,
                                 ldb, A, CUDA_R_16BF, lda, &zero, C, ct, ldc,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        cudaCheck(cudaDeviceSynchronize());
        if (r >= 0) t[r] = dr_now() - t0;
    }
    return 2.0 * (double)M * N * K / median(t, reps) / 1e12;
}

extern "C" void bench_gemm_shapes(int BT, int C, int F, int V, int R, int reps) {
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    const int Vp = (V + 63) / 64 * 64;
    /* lda, ldb, ldc: 0 = dense; the "V ld" rows keep the extent V, their V-long rows Vp */
    struct { const char *what; int ta, tb, M, N, K, lda, ldb, ldc; } s[] = {
        { "qkv forward      x·W", 0, 0, BT, 3 * C, C, 0, 0, 0 },
        { "attn proj fwd    x·W", 0, 0, BT, C, C, 0, 0, 0 },
        { "fc forward       x·W", 0, 0, BT, F, C, 0, 0, 0 },
        { "fc proj forward  x·W", 0, 0, BT, C, F, 0, 0, 0 },
        { "qkv dx           d·Wt", 0, 1, BT, C, 3 * C, 0, 0, 0 },
        { "fc dx            d·Wt", 0, 1, BT, C, F, 0, 0, 0 },
        { "fc proj dx       d·Wt", 0, 1, BT, F, C, 0, 0, 0 },
        { "qkv dW           xt·d", 1, 0, C, 3 * C, BT, 0, 0, 0 },
        { "fc dW            xt·d", 1, 0, C, F, BT, 0, 0, 0 },
        { "fc proj dW       xt·d", 1, 0, F, C, BT, 0, 0, 0 },
        { "head forward     x·Et", 0, 1, R, V, C, 0, 0, 0 },
        { "head fwd, V pad  x·Et", 0, 1, R, Vp, C, 0, 0, 0 },
        { "head dx          d·E", 0, 0, R, C, V, 0, 0, 0 },
        { "head dx, V pad   d·E", 0, 0, R, C, Vp, 0, 0, 0 },
        { "head dE          dt·x", 1, 0, V, C, R, 0, 0, 0 },
        { "head dE, V pad   dt·x", 1, 0, Vp, C, R, 0, 0, 0 },
        { "head fwd, V ld   x·Et", 0, 1, R, V, C, 0, 0, Vp },
        { "head dx, V ld    d·E", 0, 0, R, C, V, Vp, 0, 0 },
        { "head dE, V ld    dt·x", 1, 0, V, C, R, Vp, 0, 0 },
    };
    const int ns = (int)(sizeof s / sizeof *s);
    size_t a_max = 0, b_max = 0, c_max = 0;
    for (int i = 0; i < ns; i++) {
        /* rows × leading dimension of each stored operand */
        const int ld_a = s[i].lda ? s[i].lda : s[i].ta ? s[i].M : s[i].K,
                  ld_b = s[i].ldb ? s[i].ldb : s[i].tb ? s[i].K : s[i].N;
        const size_t a = (size_t)(s[i].ta ? s[i].K : s[i].M) * ld_a,
                     b = (size_t)(s[i].tb ? s[i].N : s[i].K) * ld_b,
                     c = (size_t)s[i].M * (s[i].ldc ? s[i].ldc : s[i].N);
        a_max = a > a_max ? a : a_max;
        b_max = b > b_max ? b : b_max;
        c_max = c > c_max ? c : c_max;
    }
    float *tmp;
    __nv_bfloat16 *A, *B;
    void *Cb;
    const size_t t_max = a_max > b_max ? a_max : b_max;
    cudaCheck(cudaMalloc((void **)&tmp, (t_max > c_max ? t_max : c_max) * sizeof(float)));
    cudaCheck(cudaMalloc((void **)&A, a_max * sizeof *A));
    cudaCheck(cudaMalloc((void **)&B, b_max * sizeof *B));
    fill_pattern_k<<<cu_blocks(a_max), CU_THREADS>>>(tmp, a_max, 7);
    cudaLaunchCheck();
    to_bf16_dense_k<<<cu_blocks(a_max), CU_THREADS>>>(A, tmp, a_max);
    cudaLaunchCheck();
    fill_pattern_k<<<cu_blocks(b_max), CU_THREADS>>>(tmp, b_max, 5);
    cudaLaunchCheck();
    to_bf16_dense_k<<<cu_blocks(b_max), CU_THREADS>>>(B, tmp, b_max);
    cudaLaunchCheck();
    cudaCheck(cudaMalloc(&Cb, c_max * sizeof(__nv_bfloat16)));
    printf("GEMM shapes of a training step (B·T %d, C %d, F %d, V %d, head chunks of %d rows), "
           "bf16 inputs, cuBLAS, median of %d, TFLOP/s:\n", BT, C, F, V, R, reps);
    printf("  %-22s %6s %6s %6s  %10s %10s\n", "product", "M", "N", "K", "fp32 C", "bf16 C");
    for (int i = 0; i < ns; i++) {
        const double f32 = time_shape(s[i].ta, s[i].tb, s[i].M, s[i].N, s[i].K, A, s[i].lda, B,
                                      s[i].ldb, tmp, s[i].ldc, CUDA_R_32F, reps);
        const double b16 = time_shape(s[i].ta, s[i].tb, s[i].M, s[i].N, s[i].K, A, s[i].lda, B,
                                      s[i].ldb, Cb, s[i].ldc, CUDA_R_16BF, reps);
        printf("  %-22s %6d %6d %6d  %10.1f %10.1f\n", s[i].what, s[i].M, s[i].N, s[i].K, f32, b16);
    }
    cudaCheck(cudaFree(tmp));
    cudaCheck(cudaFree(A));
    cudaCheck(cudaFree(B));
    cudaCheck(cudaFree(Cb));
}
