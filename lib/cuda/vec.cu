/* vec.cu — flat-buffer vector ops of the CUDA backend (lib/ops/vec.c's contract).
 * Reductions (dot, sumsq) accumulate in double in a fixed tree: a grid of at most
 * VEC_MAX_BLOCKS blocks whose count depends only on n, each thread a grid-stride sum,
 * a block tree, then one block sums the block partials in a tree. Same n, same bits;
 * they differ from the CPU's (thread-count dependent) order only by double rounding.
 * Never uses atomics. */
#include "cuda/cuda_ops.cuh"

#define VEC_MAX_BLOCKS 1024
#define VEC_THREADS 256

void cu_vec_zero(real *x, size_t n) {
    if (n) cudaCheck(cudaMemsetAsync(x, 0, n * sizeof(real), 0));   /* all-zero bits = +0.0f */
}

void cu_vec_copy(real *dst, const real *src, size_t n) {
    if (n && dst != src)
        cudaCheck(cudaMemcpyAsync(dst, src, n * sizeof(real), cudaMemcpyDeviceToDevice, 0));
}

static __global__ void scale_k(float *x, float a, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= a;
}

void cu_vec_scale(real *x, double a, size_t n) {
    if (!n) return;
    scale_k<<<cu_blocks(n), CU_THREADS>>>(x, (float)a, n);
    cudaLaunchCheck();
}

static __global__ void axpy_k(float *y, float a, const float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += a * x[i];
}

void cu_vec_axpy(real *y, double a, const real *x, size_t n) {
    if (!n) return;
    axpy_k<<<cu_blocks(n), CU_THREADS>>>(y, (float)a, x, n);
    cudaLaunchCheck();
}

/* Tree sum of VEC_THREADS doubles in shared memory; thread 0 gets the result. */
static __device__ double block_tree_sum(double s, double *sh) {
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int stride = VEC_THREADS / 2; stride > 0; stride >>= 1) {
        if ((int)threadIdx.x < stride) sh[threadIdx.x] += sh[threadIdx.x + stride];
        __syncthreads();
    }
    return sh[0];
}

/* partial[block] = Σ over the block's grid-stride share of a·b (b NULL: a·a) */
static __global__ void dot_partial_k(double *partial, const float *a, const float *b, size_t n) {
    __shared__ double sh[VEC_THREADS];
    double s = 0;
    for (size_t i = blockIdx.x * (size_t)VEC_THREADS + threadIdx.x; i < n;
         i += (size_t)gridDim.x * VEC_THREADS)
        s += b ? (double)a[i] * (double)b[i] : (double)a[i] * (double)a[i];
    s = block_tree_sum(s, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* out[0] = Σ partial[0 .. nparts), one block */
static __global__ void dot_final_k(double *out, const double *partial, int nparts) {
    __shared__ double sh[VEC_THREADS];
    double s = 0;
    for (int i = threadIdx.x; i < nparts; i += VEC_THREADS) s += partial[i];
    s = block_tree_sum(s, sh);
    if (threadIdx.x == 0) out[0] = s;
}

static double dot_device(const float *a, const float *b, size_t n) {
    if (!n) return 0;
    size_t nb = (n + VEC_THREADS - 1) / VEC_THREADS;
    int blocks = nb > VEC_MAX_BLOCKS ? VEC_MAX_BLOCKS : (int)nb;
    double *buf = (double *)cu_scratch(CU_SCR_REDUCE, (VEC_MAX_BLOCKS + 1) * sizeof(double));
    dot_partial_k<<<blocks, VEC_THREADS>>>(buf + 1, a, b, n);
    cudaLaunchCheck();
    dot_final_k<<<1, VEC_THREADS>>>(buf, buf + 1, blocks);
    cudaLaunchCheck();
    double result;
    cudaCheck(cudaMemcpy(&result, buf, sizeof result, cudaMemcpyDeviceToHost));
    return result;
}

double cu_vec_dot(const real *a, const real *b, size_t n) { return dot_device(a, b, n); }
double cu_vec_sumsq(const real *x, size_t n) { return dot_device(x, NULL, n); }

/* *bad = 1 when some element is inf or NaN (every writer stores the same value) */
static __global__ void nonfinite_k(int *bad, const float *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        if (!isfinite(x[i])) *bad = 1;
}

int cu_vec_all_finite(const real *x, size_t n) {
    if (!n) return 1;
    int *bad = (int *)cu_scratch(CU_SCR_REDUCE, (VEC_MAX_BLOCKS + 1) * sizeof(double));
    cudaCheck(cudaMemsetAsync(bad, 0, sizeof(int), 0));
    nonfinite_k<<<cu_blocks(n), CU_THREADS>>>(bad, x, n);
    cudaLaunchCheck();
    int h = 0;
    cudaCheck(cudaMemcpy(&h, bad, sizeof h, cudaMemcpyDeviceToHost));
    return !h;
}
