/* optimizer.cu — AdamW and SGD updates and their reverse on the GPU: lib/ops/optimizer.c
 * kernel for kernel (formulas and derivation there). The scalar coefficients are
 * computed on the host exactly as the CPU op computes them (double, then rounded to
 * float); the per-element arithmetic is the CPU's in the same order. Elementwise: no
 * reduction, so nothing to make deterministic. Must stay finite where v = 0. */
#include <math.h>

#include "cuda/cuda_ops.cuh"

/* The AdamW constants of lib/ops/optimizer.c, in float. */
struct AdamWConsts {
    float decay, b1, b2, eps, s, step_size, c2_sqrt;
};

static AdamWConsts adamw_consts(double g_scale, const AdamWHyper *h) {
    double k = (double)h->step;
    AdamWConsts c;
    c.decay = (float)(1.0 - h->lr * h->weight_decay);
    c.b1 = (float)h->beta1;
    c.b2 = (float)h->beta2;
    c.eps = (float)h->eps;
    c.s = (float)g_scale;
    c.step_size = (float)(h->lr / (1.0 - pow(h->beta1, k)));
    c.c2_sqrt = (float)sqrt(1.0 - pow(h->beta2, k));
    return c;
}

static __global__ void adamw_forward_k(float *theta, float *m, float *v, const float *g,
                                       AdamWConsts c, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float gh = c.s * g[i];
        float th = theta[i] * c.decay;
        float mi = m[i] + (1 - c.b1) * (gh - m[i]);
        float vi = c.b2 * v[i] + (1 - c.b2) * gh * gh;
        float denom = sqrtf(vi) / c.c2_sqrt + c.eps;
        m[i] = mi;
        v[i] = vi;
        theta[i] = th - c.step_size * (mi / denom);
    }
}

void cu_adamw_forward(real *theta, real *m, real *v, const real *g, double g_scale, size_t n,
                      const AdamWHyper *h) {
    if (!n) return;
    adamw_forward_k<<<cu_blocks(n), CU_THREADS>>>(theta, m, v, g, adamw_consts(g_scale, h), n);
    cudaLaunchCheck();
}

static __global__ void adamw_backward_k(float *dtheta, float *dm, float *dv, float *dg,
                                        const float *m_old, const float *v_old, const float *g,
                                        AdamWConsts c, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float gh = c.s * g[i];
        float mi = m_old[i] + (1 - c.b1) * (gh - m_old[i]);
        float vi = c.b2 * v_old[i] + (1 - c.b2) * gh * gh;
        float sv = sqrtf(vi);
        float denom = sv / c.c2_sqrt + c.eps;
        float dth = dtheta[i];
        float mbar = (dm ? dm[i] : 0.0f) - c.step_size / denom * dth;
        float vbar = dv ? dv[i] : 0.0f;
        if (vi > 0) vbar += c.step_size * mi / (denom * denom) / (2 * sv * c.c2_sqrt) * dth;
        dtheta[i] = c.decay * dth;
        if (dm) dm[i] = c.b1 * mbar;
        if (dv) dv[i] = c.b2 * vbar;
        if (dg) dg[i] = (1 - c.b1) * mbar + 2 * (1 - c.b2) * gh * vbar;
    }
}

void cu_adamw_backward(real *dtheta, real *dm, real *dv, real *dg, const real *m_old,
                       const real *v_old, const real *g, double g_scale, size_t n,
                       const AdamWHyper *h) {
    if (!n) return;
    adamw_backward_k<<<cu_blocks(n), CU_THREADS>>>(dtheta, dm, dv, dg, m_old, v_old, g,
                                                   adamw_consts(g_scale, h), n);
    cudaLaunchCheck();
}

static __global__ void sgd_forward_k(float *theta, float *buf, const float *g, float s, float lr,
                                     float mu, float wd, int use_buf, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float d = s * g[i] + wd * theta[i];
        if (use_buf) { buf[i] = mu * buf[i] + d; d = buf[i]; }
        theta[i] -= lr * d;
    }
}

void cu_sgd_forward(real *theta, real *buf, const real *g, double g_scale, size_t n,
                    const SGDHyper *h) {
    if (!n) return;
    int use_buf = buf && h->momentum != 0;
    sgd_forward_k<<<cu_blocks(n), CU_THREADS>>>(theta, buf, g, (float)g_scale, (float)h->lr,
                                                (float)h->momentum, (float)h->weight_decay,
                                                use_buf, n);
    cudaLaunchCheck();
}

static __global__ void sgd_backward_k(float *dtheta, float *dbuf, float *dg, float lr, float mu,
                                      float wd, int use_buf, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float dth = dtheta[i];
        float bbar = (use_buf && dbuf ? dbuf[i] : 0.0f) - lr * dth;
        dtheta[i] = dth + wd * bbar;
        if (use_buf && dbuf) dbuf[i] = mu * bbar;
        if (dg) dg[i] = bbar;
    }
}

void cu_sgd_backward(real *dtheta, real *dbuf, real *dg, size_t n, const SGDHyper *h) {
    if (!n) return;
    int use_buf = h->momentum != 0;
    sgd_backward_k<<<cu_blocks(n), CU_THREADS>>>(dtheta, dbuf, dg, (float)h->lr,
                                                 (float)h->momentum, (float)h->weight_decay,
                                                 use_buf, n);
    cudaLaunchCheck();
}
