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
 * Timing: cudaDeviceSynchronize and the host's monotonic clock around each product, the
 * median of reps after one warm-up. The backend's GEMM mode is restored afterwards. */
#include <cuda_bf16.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/cuda_common.cuh"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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
        double t0 = now_s();
        if (pure)
            cublasCheck(cublasGemmEx(cu_blas(), CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, Bh,
                                     CUDA_R_16BF, n, Ah, CUDA_R_16BF, n, &zero, C, CUDA_R_32F, n,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        else
            cu_gemm(0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        cudaCheck(cudaDeviceSynchronize());
        if (r >= 0) t[r] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    backend_cuda_set_gemm_precision(saved);
    cudaCheck(cudaFree(A));
    cudaCheck(cudaFree(B));
    cudaCheck(cudaFree(C));
    if (Ah) cudaCheck(cudaFree(Ah));
    if (Bh) cudaCheck(cudaFree(Bh));
    return 2.0 * (double)n * n * n / med / 1e12;
}
