/* meanpool.cu — the rater's pooling on the GPU: out[b,:] = (1/L_b) Σ_{t<L_b} inp[b,t,:]
 * (lib/ops/meanpool.c), one thread per (b, c) summing t in order, and its backward.
 * Padded positions never contribute and never receive gradient. The forward is
 * bit-identical to the CPU op (the same float additions in the same order, then one
 * division); the backward may differ in the last bit (nvcc fuses dout·inv + dinp). */
#include "cuda/cuda_ops.cuh"

static __global__ void meanpool_forward_k(float *out, const float *inp, const int32_t *valid_len,
                                          int B, int T, int C) {
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i >= (size_t)B * C) return;
    int b = (int)(i / (size_t)C), c = (int)(i % (size_t)C);
    int L = cu_valid(valid_len, b, T);
    float o = 0;
    for (int t = 0; t < L; t++) o += inp[((size_t)b * T + t) * C + c];
    if (L > 0) o /= L;
    out[i] = o;
}

void cu_meanpool_forward(real *out, const real *inp, const int32_t *valid_len, int B, int T, int C) {
    size_t n = (size_t)B * C;
    if (!n) return;
    meanpool_forward_k<<<(unsigned)((n + 255) / 256), 256>>>(out, inp, valid_len, B, T, C);
    cudaLaunchCheck();
}

static __global__ void meanpool_backward_k(float *dinp, const float *dout, const int32_t *valid_len,
                                           int B, int T, int C) {
    size_t n = (size_t)B * T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t bt = i / (size_t)C, c = i % (size_t)C;
        int b = (int)(bt / (size_t)T), t = (int)(bt % (size_t)T);
        int L = cu_valid(valid_len, b, T);
        if (t >= L) continue;
        float inv = 1.0f / L;
        dinp[i] += dout[(size_t)b * C + c] * inv;
    }
}

void cu_meanpool_backward(real *dinp, const real *dout, const int32_t *valid_len, int B, int T,
                          int C) {
    size_t n = (size_t)B * T * C;
    if (!n) return;
    meanpool_backward_k<<<cu_blocks(n), CU_THREADS>>>(dinp, dout, valid_len, B, T, C);
    cudaLaunchCheck();
}
