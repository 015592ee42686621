/* crossentropy.cu — softmax cross-entropy, one loss per example (the mean over its
 * n_valid[b] target positions), and its faces on the GPU; formulas in
 * lib/ops/crossentropy.c. One block per row (b, t) of V logits: the forward reads the row
 * twice (one pass for its maximum and exp-sum, online, one writing the probabilities),
 * block reductions in a fixed tree; the per-example means are one thread per example summing its rows in t
 * order (as the CPU does). probs may alias logits: the forward reads the target logit
 * and the row maximum before any write. No atomics. */
#include <math.h>

#include "cuda/cuda_ops.cuh"

#define CE_THREADS 256

static __device__ __forceinline__ int n_targets(const int32_t *n_valid, int b, int T) {
    return cu_valid(n_valid, b, T);
}

/* row_loss[bt] = −log softmax(logits[bt])[target] (0 for t ≥ n_valid); probs = softmax */
static __global__ void ce_forward_rows_k(float *row_loss, float *probs, const float *logits,
                                         const int32_t *targets, const int32_t *n_valid,
                                         int T, int V) {
    __shared__ float sh[32];
    __shared__ float l_target_sh;
    int bt = blockIdx.x, b = bt / T, t = bt % T;
    const float *l = logits + (size_t)bt * V;
    float *p = probs + (size_t)bt * V;
    int valid = t < n_targets(n_valid, b, T);
    if (threadIdx.x == 0) l_target_sh = valid ? l[targets[bt]] : 0.0f;   /* before any write */
    /* one pass for the row maximum and Σ exp(l − max): each thread keeps its running
     * maximum m and its sum scaled to it; the block then rescales to the row maximum */
    float m = -INFINITY, s = 0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float x = l[v];
        if (x > m || x != x) { s = s * expf(m - x) + 1.0f; m = x; }   /* a NaN stays NaN */
        else if (m != -INFINITY) s += expf(x - m);   /* x = m = −∞ adds exp(−∞) = 0 */
    }
    const float mx = cu_block_max(m, sh);
    const float sum = cu_block_sum(m == -INFINITY ? 0.0f : s * expf(m - mx), sh);
    const float inv = 1.0f / sum;
    /* every read of l above is behind the reductions' barriers: p may overwrite l now */
    for (int v = threadIdx.x; v < V; v += blockDim.x) p[v] = expf(l[v] - mx) * inv;
    if (threadIdx.x == 0) row_loss[bt] = valid ? mx + logf(sum) - l_target_sh : 0.0f;
}

/* losses[b] = (1/n_b) Σ_{t<n_b} row[b·T + t], t in order */
static __global__ void mean_per_example_k(float *losses, const float *row, const int32_t *n_valid,
                                          int B, int T) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    int n = n_targets(n_valid, b, T);
    float s = 0;
    for (int t = 0; t < n; t++) s += row[(size_t)b * T + t];
    losses[b] = n > 0 ? s / n : 0.0f;
}

static void mean_per_example(float *losses, const float *row, const int32_t *n_valid, int B, int T) {
    mean_per_example_k<<<(B + 127) / 128, 128>>>(losses, row, n_valid, B, T);
    cudaLaunchCheck();
}

void cu_crossentropy_forward(real *losses, real *probs, const real *logits,
                             const int32_t *targets, const int32_t *n_valid, int B, int T, int V) {
    if (B <= 0) return;
    if (T <= 0) { cudaCheck(cudaMemsetAsync(losses, 0, (size_t)B * sizeof(float), 0)); return; }
    float *row_loss = (float *)cu_scratch(CU_SCR_ROWS, (size_t)B * T * sizeof(float));
    ce_forward_rows_k<<<B * T, CE_THREADS>>>(row_loss, probs, logits, targets, n_valid, T, V);
    cudaLaunchCheck();
    mean_per_example(losses, row_loss, n_valid, B, T);
}

/* dlogits[bt] += (dl_b/n)(p − onehot(target)), valid rows only */
static __global__ void ce_backward_rows_k(float *dlogits, const float *probs,
                                          const int32_t *targets, const int32_t *n_valid,
                                          const float *dlosses, int T, int V) {
    int bt = blockIdx.x, b = bt / T, t = bt % T, n = n_targets(n_valid, b, T);
    if (t >= n) return;
    const float *p = probs + (size_t)bt * V;
    float *d = dlogits + (size_t)bt * V;
    float c = dlosses[b] / n;
    int y = targets[bt];
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float x = d[v] + c * p[v];
        if (v == y) x -= c;
        d[v] = x;
    }
}

void cu_crossentropy_backward(real *dlogits, const real *probs, const int32_t *targets,
                              const int32_t *n_valid, const real *dlosses, int B, int T, int V) {
    if (B <= 0 || T <= 0) return;
    ce_backward_rows_k<<<B * T, CE_THREADS>>>(dlogits, probs, targets, n_valid, dlosses, T, V);
    cudaLaunchCheck();
}

/* row_t[bt] = Σ_v p·ṫl − ṫl[target] (0 for t ≥ n_valid) */
static __global__ void ce_tangent_rows_k(float *row_t, const float *probs, const float *tlogits,
                                         const int32_t *targets, const int32_t *n_valid,
                                         int T, int V) {
    __shared__ float sh[32];
    int bt = blockIdx.x, b = bt / T, t = bt % T;
    if (t >= n_targets(n_valid, b, T)) {   /* uniform over the block */
        if (threadIdx.x == 0) row_t[bt] = 0.0f;
        return;
    }
    const float *p = probs + (size_t)bt * V, *lt = tlogits + (size_t)bt * V;
    float dot = 0;
    for (int v = threadIdx.x; v < V; v += blockDim.x) dot += p[v] * lt[v];
    dot = cu_block_sum(dot, sh);
    if (threadIdx.x == 0) row_t[bt] = dot - lt[targets[bt]];
}

void cu_crossentropy_forward_tangent(real *tlosses, const real *probs, const real *tlogits,
                                     const int32_t *targets, const int32_t *n_valid, int B, int T,
                                     int V) {
    if (B <= 0) return;
    if (!tlogits || T <= 0) {
        cudaCheck(cudaMemsetAsync(tlosses, 0, (size_t)B * sizeof(float), 0));
        return;
    }
    float *row_t = (float *)cu_scratch(CU_SCR_ROWS, (size_t)B * T * sizeof(float));
    ce_tangent_rows_k<<<B * T, CE_THREADS>>>(row_t, probs, tlogits, targets, n_valid, T, V);
    cudaLaunchCheck();
    mean_per_example(tlosses, row_t, n_valid, B, T);
}

/* dtlogits[bt] += (dl_b/n)·ṗ + (dl̇_b/n)(p − onehot),  ṗ = p ⊙ (ṫl − Σ_v p·ṫl) */
static __global__ void ce_backward_tangent_rows_k(float *dtlogits, const float *probs,
                                                  const float *tlogits, const int32_t *targets,
                                                  const int32_t *n_valid, const float *dlosses,
                                                  const float *dtlosses, int T, int V) {
    __shared__ float sh[32];
    int bt = blockIdx.x, b = bt / T, t = bt % T, n = n_targets(n_valid, b, T);
    if (t >= n) return;   /* uniform over the block */
    const float *p = probs + (size_t)bt * V;
    const float *lt = tlogits ? tlogits + (size_t)bt * V : NULL;
    float *d = dtlogits + (size_t)bt * V;
    float c = dlosses[b] / n, ct = dtlosses ? dtlosses[b] / n : 0.0f;
    int y = targets[bt];
    if (lt) {
        float dot = 0;
        for (int v = threadIdx.x; v < V; v += blockDim.x) dot += p[v] * lt[v];
        dot = cu_block_sum(dot, sh);
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            float x = d[v] + (c * p[v] * (lt[v] - dot) + ct * p[v]);
            if (v == y) x -= ct;
            d[v] = x;
        }
    } else {
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            float x = d[v] + ct * p[v];
            if (v == y) x -= ct;
            d[v] = x;
        }
    }
}

void cu_crossentropy_backward_tangent(real *dtlogits, const real *probs, const real *tlogits,
                                      const int32_t *targets, const int32_t *n_valid,
                                      const real *dlosses, const real *dtlosses, int B, int T,
                                      int V) {
    if (B <= 0 || T <= 0) return;
    ce_backward_tangent_rows_k<<<B * T, CE_THREADS>>>(dtlogits, probs, tlogits, targets, n_valid,
                                                      dlosses, dtlosses, T, V);
    cudaLaunchCheck();
}
