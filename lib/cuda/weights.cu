/* weights.cu — example weights from rater logits (DESIGN §3) and their backward on the
 * GPU: lib/ops/weights.c's arithmetic (in double) run by ONE device thread, since B is
 * small and the sums must be taken in order. (meta.c currently normalizes the weights on
 * the host with backend_cpu's op, because its [B] vectors are host memory; this face
 * exists so the table is complete and a device-resident caller can use it.) */
#include <math.h>

#include "cuda/cuda_ops.cuh"

static __device__ double sigmoid_d(double x) {
    if (x >= 0) return 1 / (1 + exp(-x));
    double e = exp(x);
    return e / (1 + e);
}

/* w before mean normalization, in double */
static __device__ void raw_weights(double *w, const float *z, const WeightNormConfig cfg, int B) {
    if (cfg.kind == WEIGHT_NORM_SOFTMAX) {
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < B; i++) mx = z[i] / cfg.tau > mx ? z[i] / cfg.tau : mx;
        for (int i = 0; i < B; i++) { w[i] = exp(z[i] / cfg.tau - mx); sum += w[i]; }
        for (int i = 0; i < B; i++) w[i] *= B / sum;
    } else {
        for (int i = 0; i < B; i++) {
            double s = sigmoid_d(z[i] / cfg.tau);
            w[i] = s < cfg.w_min ? cfg.w_min : s > cfg.w_max ? cfg.w_max : s;
        }
    }
}

static __device__ double sum_of(const double *w, int B) {
    double s = 0;
    for (int i = 0; i < B; i++) s += w[i];
    return s;
}

static __global__ void weights_forward_k(float *w, const float *z, double *raw,
                                         const WeightNormConfig cfg, int B) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    raw_weights(raw, z, cfg, B);
    double S = sum_of(raw, B);
    double k = cfg.mean_normalize && S > 0 ? B / S : 1;
    for (int i = 0; i < B; i++) w[i] = (float)(raw[i] * k);
}

static __global__ void weights_backward_k(float *dz, const float *dw, const float *z, double *raw,
                                          double *draw, const WeightNormConfig cfg, int B) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    raw_weights(raw, z, cfg, B);
    double S = sum_of(raw, B);
    if (cfg.mean_normalize && S > 0) {
        double dot = 0;
        for (int i = 0; i < B; i++) dot += (double)dw[i] * raw[i];
        for (int i = 0; i < B; i++) draw[i] = B / S * dw[i] - B / (S * S) * dot;
    } else {
        for (int i = 0; i < B; i++) draw[i] = dw[i];
    }
    if (cfg.kind == WEIGHT_NORM_SOFTMAX) {
        double pdw = 0;
        for (int i = 0; i < B; i++) pdw += raw[i] / B * draw[i];
        for (int i = 0; i < B; i++) dz[i] += (float)(raw[i] * (draw[i] - pdw) / cfg.tau);
    } else {
        for (int i = 0; i < B; i++) {
            double s = sigmoid_d(z[i] / cfg.tau);
            if (s > cfg.w_min && s < cfg.w_max)
                dz[i] += (float)(draw[i] * s * sigmoid_d(-z[i] / cfg.tau) / cfg.tau);   /* 1 − s as σ(−x) */
        }
    }
}

void cu_weights_forward(real *w, const real *z, const WeightNormConfig *cfg, int B) {
    if (B <= 0) return;
    double *raw = (double *)cu_scratch(CU_SCR_WEIGHTS, 2 * (size_t)B * sizeof(double));
    weights_forward_k<<<1, 1>>>(w, z, raw, *cfg, B);
    cudaLaunchCheck();
}

void cu_weights_backward(real *dz, const real *dw, const real *z, const WeightNormConfig *cfg,
                         int B) {
    if (B <= 0) return;
    double *raw = (double *)cu_scratch(CU_SCR_WEIGHTS, 2 * (size_t)B * sizeof(double));
    weights_backward_k<<<1, 1>>>(dz, dw, z, raw, raw + B, *cfg, B);
    cudaLaunchCheck();
}
