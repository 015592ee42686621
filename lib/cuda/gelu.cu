/* gelu.cu — GELU, tanh approximation, and its faces on the GPU: lib/ops/gelu.c's formulas
 * (y', y'' derived there), elementwise, in the same order of updates:
 *   backward: dx = y'·dy;  tangent: ẏ = y'·ẋ;  tangent of backward: dẋ = y''·ẋ·dy + y'·dẏ
 * (the two terms added in that order, as the CPU adds them). Every face writes (=) its
 * output, the backward faces included (backend.h): dx is not read. tanhf is
 * CUDA's (≤ 2 ulp); the CPU float build uses a rational approximation (≤ 3e-7). */
#include <stdint.h>

#include "cuda/cuda_ops.cuh"

#define GELU_K 0.7978845608028654f  /* sqrt(2/π) */
#define GELU_A 0.044715f

static __device__ __forceinline__ float gelu_d1(float x) {
    float u = GELU_K * (x + GELU_A * x * x * x);
    float th = tanhf(u), sech2 = 1 - th * th;
    float du = GELU_K * (1 + 3 * GELU_A * x * x);
    return 0.5f * (1 + th) + 0.5f * x * sech2 * du;
}

static __device__ __forceinline__ float gelu_d2(float x) {
    float u = GELU_K * (x + GELU_A * x * x * x);
    float th = tanhf(u), sech2 = 1 - th * th;
    float du = GELU_K * (1 + 3 * GELU_A * x * x);
    float ddu = GELU_K * 6 * GELU_A * x;
    return sech2 * du + 0.5f * x * sech2 * (ddu - 2 * th * du * du);
}

#define GRID_STRIDE(i, n)                                                                  \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                \
         i += (size_t)gridDim.x * blockDim.x)

static __device__ __forceinline__ float gelu_y(float x) {
    float u = GELU_K * (x + GELU_A * x * x * x);
    return 0.5f * x * (1 + tanhf(u));
}

/* The forward and the backward, the training step's: 4 elements a thread and iteration
 * (float4 loads and stores) where n is a multiple of 4 and every pointer 16-byte aligned
 * (every activation of the LM: [B·T, 4C]), else one; the same expressions either way */
static inline int gelu_vec4(size_t n, const void *a, const void *b, const void *c) {
    return n % 4 == 0 && ((uintptr_t)a & 15) == 0 && ((uintptr_t)b & 15) == 0 &&
           ((uintptr_t)c & 15) == 0;
}

static __global__ void gelu_forward_k(float *out, const float *inp, size_t n) {
    GRID_STRIDE(i, n) out[i] = gelu_y(inp[i]);
}

static __global__ void gelu_forward_vec4_k(float4 *out, const float4 *inp, size_t n4) {
    GRID_STRIDE(i, n4) {
        const float4 x = inp[i];
        float4 y;
        y.x = gelu_y(x.x);
        y.y = gelu_y(x.y);
        y.z = gelu_y(x.z);
        y.w = gelu_y(x.w);
        out[i] = y;
    }
}

void cu_gelu_forward(real *out, const real *inp, size_t n) {
    if (!n) return;
    if (gelu_vec4(n, out, inp, inp))
        gelu_forward_vec4_k<<<cu_blocks(n / 4), CU_THREADS>>>((float4 *)out, (const float4 *)inp, n / 4);
    else
        gelu_forward_k<<<cu_blocks(n), CU_THREADS>>>(out, inp, n);
    cudaLaunchCheck();
}

static __global__ void gelu_backward_k(float *dinp, const float *inp, const float *dout, size_t n) {
    GRID_STRIDE(i, n) dinp[i] = gelu_d1(inp[i]) * dout[i];
}

static __global__ void gelu_backward_vec4_k(float4 *dinp, const float4 *inp, const float4 *dout,
                                            size_t n4) {
    GRID_STRIDE(i, n4) {
        const float4 x = inp[i], d = dout[i];
        float4 a;
        a.x = gelu_d1(x.x) * d.x;
        a.y = gelu_d1(x.y) * d.y;
        a.z = gelu_d1(x.z) * d.z;
        a.w = gelu_d1(x.w) * d.w;
        dinp[i] = a;
    }
}

void cu_gelu_backward(real *dinp, const real *inp, const real *dout, size_t n) {
    if (!n) return;
    if (gelu_vec4(n, dinp, inp, dout))
        gelu_backward_vec4_k<<<cu_blocks(n / 4), CU_THREADS>>>((float4 *)dinp, (const float4 *)inp,
                                                               (const float4 *)dout, n / 4);
    else
        gelu_backward_k<<<cu_blocks(n), CU_THREADS>>>(dinp, inp, dout, n);
    cudaLaunchCheck();
}

static __global__ void gelu_forward_tangent_k(float *tout, const float *inp, const float *tinp,
                                              size_t n) {
    GRID_STRIDE(i, n) tout[i] = tinp ? gelu_d1(inp[i]) * tinp[i] : 0.0f;
}

void cu_gelu_forward_tangent(real *tout, const real *inp, const real *tinp, size_t n) {
    if (!n) return;
    gelu_forward_tangent_k<<<cu_blocks(n), CU_THREADS>>>(tout, inp, tinp, n);
    cudaLaunchCheck();
}

static __global__ void gelu_backward_tangent_k(float *dtinp, const float *inp, const float *tinp,
                                               const float *dout, const float *dtout, size_t n) {
    GRID_STRIDE(i, n) {
        float x = inp[i], acc = 0.0f;
        if (tinp) acc = gelu_d2(x) * tinp[i] * dout[i];
        if (dtout) acc += gelu_d1(x) * dtout[i];
        dtinp[i] = acc;
    }
}

void cu_gelu_backward_tangent(real *dtinp, const real *inp, const real *tinp, const real *dout,
                              const real *dtout, size_t n) {
    if (!n) return;
    gelu_backward_tangent_k<<<cu_blocks(n), CU_THREADS>>>(dtinp, inp, tinp, dout, dtout, n);
    cudaLaunchCheck();
}
