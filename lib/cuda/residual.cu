/* residual.cu — the residual connection out = a + b on the GPU (lib/ops/residual.c):
 * linear, so the tangent faces are the same maps on tangents; the backward hands dout to
 * both branches. Elementwise, bit-identical to the CPU op. */
#include "cuda/cuda_ops.cuh"

#define GRID_STRIDE(i, n)                                                                  \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                \
         i += (size_t)gridDim.x * blockDim.x)

/* out = a + b (a or b NULL: a zero term) */
static __global__ void add_k(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = (a ? a[i] : 0.0f) + (b ? b[i] : 0.0f);
}

/* da += dout; db += dout (each may be NULL) */
static __global__ void fanout_k(float *da, float *db, const float *dout, size_t n) {
    GRID_STRIDE(i, n) {
        float d = dout[i];
        if (da) da[i] += d;
        if (db) db[i] += d;
    }
}

void cu_residual_forward(real *out, const real *a, const real *b, size_t n) {
    if (!n) return;
    add_k<<<cu_blocks(n), CU_THREADS>>>(out, a, b, n);
    cudaLaunchCheck();
}

void cu_residual_backward(real *da, real *db, const real *dout, size_t n) {
    if (!n || (!da && !db)) return;
    fanout_k<<<cu_blocks(n), CU_THREADS>>>(da, db, dout, n);
    cudaLaunchCheck();
}

void cu_residual_forward_tangent(real *tout, const real *ta, const real *tb, size_t n) {
    cu_residual_forward(tout, ta, tb, n);
}

void cu_residual_backward_tangent(real *dta, real *dtb, const real *dtout, size_t n) {
    if (dtout) cu_residual_backward(dta, dtb, dtout, n);
}
