/* crossentropy.cu — softmax cross-entropy, one loss per example (the mean over its
 * n_valid[b] target positions), and its faces on the GPU; formulas in
 * lib/ops/crossentropy.c. One block per row (b, t) of V logits. The forward reads the row
 * twice: one pass for its maximum and exp-sum (online: each thread keeps a running
 * maximum and its sum scaled to it, four elements per update), one writing the
 * probabilities (none when probs is NULL); block reductions in a fixed tree. The backward
 * in place reads and writes each row once, from the probabilities, or from the logits with
 * the forward's first pass taken again before it (and then, when asked, the forward's
 * losses too: forward and backward in three passes over the logits, where the forward with
 * probabilities and a backward from them take five); the backward tangent in place reads ṫl
 * for its dot product, then once more to write over it. The per-example means are one thread
 * per example summing its rows in t order (as the CPU does). probs may alias logits: the
 * forward reads the target logit and finishes both reductions before any write. Rows are
 * ldv ≥ V floats apart (the LM's logits: V rounded up to 64, so every row starts on a
 * 16-byte boundary); the columns past V are neither read nor written.
 * Memory access: a row starts only 4-byte aligned in general (V is odd for the LM), so
 * every row is cut into a scalar head up to the first 16-byte boundary (< 4 elements),
 * float4s, and a scalar tail (< 4); when two rows a kernel reads or writes together are
 * not aligned alike, that kernel walks them element by element instead. Each element is
 * read and written by one thread only, so the in-place forward stays correct. The sums
 * per thread are in a fixed order, so a result depends only on the inputs and shapes.
 * No atomics. */
#include <math.h>
#include <stdint.h>

#include "cuda/cuda_ops.cuh"

#define CE_THREADS 1024

/* the host side's check of a row stride */
static void ce_check_ld(const char *op, int V, int ldv) {
    if (ldv < V) dr_fail_at(__FILE__, __LINE__, "%s: row stride %d < V %d", op, ldv, V);
}

static __device__ __forceinline__ int n_targets(const int32_t *n_valid, int b, int T) {
    return cu_valid(n_valid, b, T);
}

/* the number of elements of x before its first 16-byte boundary, at most V */
static __device__ __forceinline__ int ce_head(const float *x, int V) {
    int h = (int)((16 - ((uintptr_t)x & 15)) & 15) >> 2;
    return h < V ? h : V;
}
static __device__ __forceinline__ int ce_same_align(const void *a, const void *b) {
    return (((uintptr_t)a ^ (uintptr_t)b) & 15) == 0;
}

/* The online update of a thread's maximum m and its sum s = Σ exp(x − m), for one or four
 * more elements: the new maximum, then the old sum rescaled to it. fmaxf skips a NaN, but
 * exp(NaN − ·) makes s NaN, and s stays NaN (as the whole row's sum then does). While the
 * maximum is −∞ the shift is 0, so a −∞ element adds exp(−∞) = 0 rather than exp(−∞ + ∞). */
static __device__ __forceinline__ void ce_acc1(float &m, float &s, float x) {
    const float mn = fmaxf(m, x), sh = mn == -INFINITY ? 0.0f : mn;
    s = s * expf(m - sh) + expf(x - sh);
    m = mn;
}
static __device__ __forceinline__ void ce_acc4(float &m, float &s, float4 x) {
    const float mn = fmaxf(fmaxf(m, fmaxf(x.x, x.y)), fmaxf(x.z, x.w));
    const float sh = mn == -INFINITY ? 0.0f : mn;
    s = s * expf(m - sh) + ((expf(x.x - sh) + expf(x.y - sh)) + (expf(x.z - sh) + expf(x.w - sh)));
    m = mn;
}
static __device__ __forceinline__ float4 ce_prob4(float4 x, float mx, float inv) {
    float4 p;
    p.x = expf(x.x - mx) * inv;
    p.y = expf(x.y - mx) * inv;
    p.z = expf(x.z - mx) * inv;
    p.w = expf(x.w - mx) * inv;
    return p;
}

/* A row's maximum mx and its exp-sum Σ exp(l − mx), by the block (every thread gets
 * both); every read of l is behind the reductions' barriers when it returns. */
static __device__ __forceinline__ void ce_row_stats(const float *l, int V, float *sh, float &mx,
                                                    float &sum) {
    const int tid = threadIdx.x, nt = blockDim.x;
    /* head [0, h), float4s [h, r), tail [r, V) */
    const int h = ce_head(l, V), n4 = (V - h) >> 2, r = h + 4 * n4;
    const float4 *l4 = (const float4 *)(l + h);
    float m = -INFINITY, s = 0;
    if (tid < h) ce_acc1(m, s, l[tid]);
    if (r + tid < V) ce_acc1(m, s, l[r + tid]);
    for (int i = tid; i < n4; i += nt) ce_acc4(m, s, l4[i]);
    /* the block's maximum, then every thread's sum rescaled to it (a thread whose elements
     * were all −∞ adds s·0 = 0; one whose maximum is +∞ adds NaN, as the CPU's sum has) */
    mx = cu_block_max(m, sh);
    sum = cu_block_sum(s * expf(m - (mx == -INFINITY ? 0.0f : mx)), sh);
}

/* row_loss[bt] = −log softmax(logits[bt])[target] (0 for t ≥ n_valid); probs = softmax
 * unless probs is NULL */
static __global__ void ce_forward_rows_k(float *row_loss, float *probs, const float *logits,
                                         const int32_t *targets, const int32_t *n_valid,
                                         int T, int V, int ldv) {
    __shared__ float sh[32];
    __shared__ float l_target_sh;
    const int bt = blockIdx.x, b = bt / T, t = bt % T, tid = threadIdx.x, nt = blockDim.x;
    const float *l = logits + (size_t)bt * ldv;
    const int valid = t < n_targets(n_valid, b, T);
    if (tid == 0) l_target_sh = valid ? l[targets[bt]] : 0.0f;   /* before any write */
    float mx, sum;
    ce_row_stats(l, V, sh, mx, sum);
    const float inv = 1.0f / sum;
    if (tid == 0) row_loss[bt] = valid ? mx + logf(sum) - l_target_sh : 0.0f;
    if (!probs) return;
    /* every read of l above is behind the reductions' barriers: p may overwrite l now */
    float *p = probs + (size_t)bt * ldv;
    const int h = ce_head(l, V), n4 = (V - h) >> 2, r = h + 4 * n4;
    const float4 *l4 = (const float4 *)(l + h);
    if (ce_same_align(p, l)) {
        float4 *p4 = (float4 *)(p + h);
        if (tid < h) p[tid] = expf(l[tid] - mx) * inv;
        if (r + tid < V) p[r + tid] = expf(l[r + tid] - mx) * inv;
        int i = tid;
        for (; i + nt < n4; i += 2 * nt) {   /* both loads before the stores: p may be l */
            const float4 x0 = l4[i], x1 = l4[i + nt];
            p4[i] = ce_prob4(x0, mx, inv);
            p4[i + nt] = ce_prob4(x1, mx, inv);
        }
        if (i < n4) p4[i] = ce_prob4(l4[i], mx, inv);
    } else {
        for (int v = tid; v < V; v += nt) p[v] = expf(l[v] - mx) * inv;
    }
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
                             const int32_t *targets, const int32_t *n_valid,
                             int B, int T, int V, int ldv) {
    ce_check_ld("crossentropy_forward", V, ldv);
    if (B <= 0) return;
    if (T <= 0) { cudaCheck(cudaMemsetAsync(losses, 0, (size_t)B * sizeof(float), 0)); return; }
    float *row_loss = (float *)cu_scratch(CU_SCR_ROWS, (size_t)B * T * sizeof(float));
    ce_forward_rows_k<<<B * T, CE_THREADS>>>(row_loss, probs, logits, targets, n_valid, T, V, ldv);
    cudaLaunchCheck();
    mean_per_example(losses, row_loss, n_valid, B, T);
}

/* d + c·p, less c at the target (k = the target's place in these four, any int) */
static __device__ __forceinline__ float ce_bwd1(float d, float p, float c, int is_y) {
    float x = d + c * p;
    if (is_y) x -= c;
    return x;
}
static __device__ __forceinline__ float4 ce_bwd4(float4 d, float4 p, float c, int k) {
    d.x = ce_bwd1(d.x, p.x, c, k == 0);
    d.y = ce_bwd1(d.y, p.y, c, k == 1);
    d.z = ce_bwd1(d.z, p.z, c, k == 2);
    d.w = ce_bwd1(d.w, p.w, c, k == 3);
    return d;
}

/* dlogits[bt] += (dl_b/n)(p − onehot(target)), valid rows only */
static __global__ void ce_backward_rows_k(float *dlogits, const float *probs,
                                          const int32_t *targets, const int32_t *n_valid,
                                          const float *dlosses, int T, int V, int ldv) {
    const int bt = blockIdx.x, b = bt / T, t = bt % T, n = n_targets(n_valid, b, T);
    if (t >= n) return;
    const int tid = threadIdx.x, nt = blockDim.x;
    const float *p = probs + (size_t)bt * ldv;
    float *d = dlogits + (size_t)bt * ldv;
    const float c = dlosses[b] / n;
    const int y = targets[bt];
    if (ce_same_align(d, p)) {
        const int h = ce_head(d, V), n4 = (V - h) >> 2, r = h + 4 * n4;
        const float4 *p4 = (const float4 *)(p + h);
        float4 *d4 = (float4 *)(d + h);
        if (tid < h) d[tid] = ce_bwd1(d[tid], p[tid], c, tid == y);
        if (r + tid < V) d[r + tid] = ce_bwd1(d[r + tid], p[r + tid], c, r + tid == y);
        int i = tid;
        for (; i + nt < n4; i += 2 * nt) {   /* four loads in flight per thread */
            const float4 d0 = d4[i], p0 = p4[i], d1 = d4[i + nt], p1 = p4[i + nt];
            d4[i] = ce_bwd4(d0, p0, c, y - h - 4 * i);
            d4[i + nt] = ce_bwd4(d1, p1, c, y - h - 4 * (i + nt));
        }
        if (i < n4) d4[i] = ce_bwd4(d4[i], p4[i], c, y - h - 4 * i);
    } else {
        for (int v = tid; v < V; v += nt) d[v] = ce_bwd1(d[v], p[v], c, v == y);
    }
}

void cu_crossentropy_backward(real *dlogits, const real *probs, const int32_t *targets,
                              const int32_t *n_valid, const real *dlosses,
                              int B, int T, int V, int ldv) {
    ce_check_ld("crossentropy_backward", V, ldv);
    if (B <= 0 || T <= 0) return;
    ce_backward_rows_k<<<B * T, CE_THREADS>>>(dlogits, probs, targets, n_valid, dlosses, T, V, ldv);
    cudaLaunchCheck();
}

/* d[0, V) = 0 by the block, four at a time past the row's first 16-byte boundary */
static __device__ __forceinline__ void ce_zero_row(float *d, int V) {
    const int tid = threadIdx.x, nt = blockDim.x;
    const int h = ce_head(d, V), n4 = (V - h) >> 2, r = h + 4 * n4;
    float4 *d4 = (float4 *)(d + h);
    const float4 zero4 = { 0.0f, 0.0f, 0.0f, 0.0f };
    if (tid < h) d[tid] = 0.0f;
    if (r + tid < V) d[r + tid] = 0.0f;
    for (int i = tid; i < n4; i += nt) d4[i] = zero4;
}

/* x[bt] = (dl_b/n)(p − onehot(target)) on valid rows, 0 on the others, over x = p or, with
 * from_logits, over x = the logits (p = softmax(x) taken as the forward takes it), and then
 * row_loss[bt] (unless NULL) as the forward's kernel gives it. Each element is read and
 * written by one thread, after the row's reductions; the target's logit is read before
 * them. */
static __global__ void ce_backward_in_place_rows_k(float *x, float *row_loss, int from_logits,
                                                   const int32_t *targets, const int32_t *n_valid,
                                                   const float *dlosses, int T, int V, int ldv) {
    __shared__ float sh[32];
    const int bt = blockIdx.x, b = bt / T, t = bt % T, n = n_targets(n_valid, b, T);
    const int tid = threadIdx.x, nt = blockDim.x;
    if (t >= n) {   /* uniform over the block */
        ce_zero_row(x + (size_t)bt * ldv, V);
        if (row_loss && tid == 0) row_loss[bt] = 0.0f;
        return;
    }
    float *d = x + (size_t)bt * ldv;
    const int h = ce_head(d, V), n4 = (V - h) >> 2, r = h + 4 * n4;
    float4 *d4 = (float4 *)(d + h);
    const float4 zero4 = { 0.0f, 0.0f, 0.0f, 0.0f };
    const float c = dlosses[b] / n;
    const int y = targets[bt];
    float mx = 0.0f, inv = 1.0f;
    if (from_logits) {
        /* the target's logit, read before the reductions' barriers, so before any write */
        const float l_target = row_loss && tid == 0 ? d[y] : 0.0f;
        float sum;
        ce_row_stats(d, V, sh, mx, sum);
        inv = 1.0f / sum;
        if (row_loss && tid == 0) row_loss[bt] = mx + logf(sum) - l_target;   /* the forward's */
    }
    /* p: the probability itself, or the forward's expression for it (ce_prob4) */
    if (tid < h) {
        const float v = d[tid];
        d[tid] = ce_bwd1(0.0f, from_logits ? expf(v - mx) * inv : v, c, tid == y);
    }
    if (r + tid < V) {
        const float v = d[r + tid];
        d[r + tid] = ce_bwd1(0.0f, from_logits ? expf(v - mx) * inv : v, c, r + tid == y);
    }
    int i = tid;
    for (; i + nt < n4; i += 2 * nt) {   /* both loads before the stores */
        float4 v0 = d4[i], v1 = d4[i + nt];
        if (from_logits) {
            v0 = ce_prob4(v0, mx, inv);
            v1 = ce_prob4(v1, mx, inv);
        }
        d4[i] = ce_bwd4(zero4, v0, c, y - h - 4 * i);
        d4[i + nt] = ce_bwd4(zero4, v1, c, y - h - 4 * (i + nt));
    }
    if (i < n4) {
        const float4 v = d4[i];
        d4[i] = ce_bwd4(zero4, from_logits ? ce_prob4(v, mx, inv) : v, c, y - h - 4 * i);
    }
}

void cu_crossentropy_backward_in_place(real *x, real *losses, int from_logits,
                                       const int32_t *targets, const int32_t *n_valid,
                                       const real *dlosses, int B, int T, int V, int ldv) {
    ce_check_ld("crossentropy_backward_in_place", V, ldv);
    if (losses && !from_logits)
        dr_fail_at(__FILE__, __LINE__, "crossentropy_backward_in_place: the losses need the logits");
    if (B <= 0) return;
    if (T <= 0) {
        if (losses) cudaCheck(cudaMemsetAsync(losses, 0, (size_t)B * sizeof(float), 0));
        return;
    }
    float *row_loss = losses ? (float *)cu_scratch(CU_SCR_ROWS, (size_t)B * T * sizeof(float)) : NULL;
    ce_backward_in_place_rows_k<<<B * T, CE_THREADS>>>(x, row_loss, from_logits, targets, n_valid,
                                                       dlosses, T, V, ldv);
    cudaLaunchCheck();
    if (losses) mean_per_example(losses, row_loss, n_valid, B, T);
}

/* Σ_v p·ṫl over a row, summed by the block (every thread gets it) */
static __device__ __forceinline__ float ce_row_dot(const float *p, const float *lt, int V,
                                                   float *sh) {
    const int tid = threadIdx.x, nt = blockDim.x;
    float dot = 0;
    if (ce_same_align(p, lt)) {
        const int h = ce_head(p, V), n4 = (V - h) >> 2, r = h + 4 * n4;
        const float4 *p4 = (const float4 *)(p + h), *lt4 = (const float4 *)(lt + h);
        if (tid < h) dot += p[tid] * lt[tid];
        if (r + tid < V) dot += p[r + tid] * lt[r + tid];
        for (int i = tid; i < n4; i += nt) {
            const float4 a = p4[i], x = lt4[i];
            dot += (a.x * x.x + a.y * x.y) + (a.z * x.z + a.w * x.w);
        }
    } else {
        for (int v = tid; v < V; v += nt) dot += p[v] * lt[v];
    }
    return cu_block_sum(dot, sh);
}

/* row_t[bt] = Σ_v p·ṫl − ṫl[target] (0 for t ≥ n_valid) */
static __global__ void ce_tangent_rows_k(float *row_t, const float *probs, const float *tlogits,
                                         const int32_t *targets, const int32_t *n_valid,
                                         int T, int V, int ldv) {
    __shared__ float sh[32];
    int bt = blockIdx.x, b = bt / T, t = bt % T;
    if (t >= n_targets(n_valid, b, T)) {   /* uniform over the block */
        if (threadIdx.x == 0) row_t[bt] = 0.0f;
        return;
    }
    const float *p = probs + (size_t)bt * ldv, *lt = tlogits + (size_t)bt * ldv;
    const float dot = ce_row_dot(p, lt, V, sh);
    if (threadIdx.x == 0) row_t[bt] = dot - lt[targets[bt]];
}

void cu_crossentropy_forward_tangent(real *tlosses, const real *probs, const real *tlogits,
                                     const int32_t *targets, const int32_t *n_valid, int B, int T,
                                     int V, int ldv) {
    ce_check_ld("crossentropy_forward_tangent", V, ldv);
    if (B <= 0) return;
    if (!tlogits || T <= 0) {
        cudaCheck(cudaMemsetAsync(tlosses, 0, (size_t)B * sizeof(float), 0));
        return;
    }
    float *row_t = (float *)cu_scratch(CU_SCR_ROWS, (size_t)B * T * sizeof(float));
    ce_tangent_rows_k<<<B * T, CE_THREADS>>>(row_t, probs, tlogits, targets, n_valid, T, V, ldv);
    cudaLaunchCheck();
    mean_per_example(tlosses, row_t, n_valid, B, T);
}

/* one element of the backward tangent: d + (c·p·(ṫl − dot) + ct·p), less ct at the target */
static __device__ __forceinline__ float ce_bwt1(float d, float p, float lt, float dot, float c,
                                                float ct, int is_y) {
    float x = d + (c * p * (lt - dot) + ct * p);
    if (is_y) x -= ct;
    return x;
}

/* dtlogits[bt] += (dl_b/n)·ṗ + (dl̇_b/n)(p − onehot),  ṗ = p ⊙ (ṫl − Σ_v p·ṫl);
 * without ṫl the first term is 0 and the update is the backward's with ct for c */
static __global__ void ce_backward_tangent_rows_k(float *dtlogits, const float *probs,
                                                  const float *tlogits, const int32_t *targets,
                                                  const int32_t *n_valid, const float *dlosses,
                                                  const float *dtlosses, int T, int V, int ldv) {
    __shared__ float sh[32];
    const int bt = blockIdx.x, b = bt / T, t = bt % T, n = n_targets(n_valid, b, T);
    if (t >= n) return;   /* uniform over the block */
    const int tid = threadIdx.x, nt = blockDim.x;
    const float *p = probs + (size_t)bt * ldv;
    const float *lt = tlogits ? tlogits + (size_t)bt * ldv : NULL;
    float *d = dtlogits + (size_t)bt * ldv;
    const float c = dlosses[b] / n, ct = dtlosses ? dtlosses[b] / n : 0.0f;
    const int y = targets[bt];
    if (lt) {
        const float dot = ce_row_dot(p, lt, V, sh);
        if (ce_same_align(d, p) && ce_same_align(d, lt)) {
            const int h = ce_head(d, V), n4 = (V - h) >> 2, r = h + 4 * n4;
            const float4 *p4 = (const float4 *)(p + h), *lt4 = (const float4 *)(lt + h);
            float4 *d4 = (float4 *)(d + h);
            if (tid < h) d[tid] = ce_bwt1(d[tid], p[tid], lt[tid], dot, c, ct, tid == y);
            if (r + tid < V)
                d[r + tid] = ce_bwt1(d[r + tid], p[r + tid], lt[r + tid], dot, c, ct, r + tid == y);
            for (int i = tid; i < n4; i += nt) {
                const float4 a = p4[i], x = lt4[i];
                float4 o = d4[i];
                const int k = y - h - 4 * i;
                o.x = ce_bwt1(o.x, a.x, x.x, dot, c, ct, k == 0);
                o.y = ce_bwt1(o.y, a.y, x.y, dot, c, ct, k == 1);
                o.z = ce_bwt1(o.z, a.z, x.z, dot, c, ct, k == 2);
                o.w = ce_bwt1(o.w, a.w, x.w, dot, c, ct, k == 3);
                d4[i] = o;
            }
        } else {
            for (int v = tid; v < V; v += nt) d[v] = ce_bwt1(d[v], p[v], lt[v], dot, c, ct, v == y);
        }
    } else if (ce_same_align(d, p)) {   /* d + ct·p, less ct at the target */
        const int h = ce_head(d, V), n4 = (V - h) >> 2, r = h + 4 * n4;
        const float4 *p4 = (const float4 *)(p + h);
        float4 *d4 = (float4 *)(d + h);
        if (tid < h) d[tid] = ce_bwd1(d[tid], p[tid], ct, tid == y);
        if (r + tid < V) d[r + tid] = ce_bwd1(d[r + tid], p[r + tid], ct, r + tid == y);
        for (int i = tid; i < n4; i += nt) d4[i] = ce_bwd4(d4[i], p4[i], ct, y - h - 4 * i);
    } else {
        for (int v = tid; v < V; v += nt) d[v] = ce_bwd1(d[v], p[v], ct, v == y);
    }
}

/* four elements of the backward tangent over ṫl (v), from zeros (k = the target's place) */
static __device__ __forceinline__ float4 ce_bwt4(float4 a, float4 v, float dot, float c, float ct,
                                                 int k) {
    float4 o;
    o.x = ce_bwt1(0.0f, a.x, v.x, dot, c, ct, k == 0);
    o.y = ce_bwt1(0.0f, a.y, v.y, dot, c, ct, k == 1);
    o.z = ce_bwt1(0.0f, a.z, v.z, dot, c, ct, k == 2);
    o.w = ce_bwt1(0.0f, a.w, v.w, dot, c, ct, k == 3);
    return o;
}

/* x[bt] = (dl_b/n)·ṗ + (dl̇_b/n)(p − onehot) over x = ṫl on valid rows, 0 on the others.
 * The row's dot product reads all of ṫl behind its barriers before any write; then each
 * element is read and written by one thread. */
static __global__ void ce_backward_tangent_in_place_rows_k(float *x, const float *probs,
                                                           const int32_t *targets,
                                                           const int32_t *n_valid,
                                                           const float *dlosses,
                                                           const float *dtlosses, int T,
                                                           int V, int ldv) {
    __shared__ float sh[32];
    const int bt = blockIdx.x, b = bt / T, t = bt % T, n = n_targets(n_valid, b, T);
    const int tid = threadIdx.x, nt = blockDim.x;
    if (t >= n) {   /* uniform over the block */
        ce_zero_row(x + (size_t)bt * ldv, V);
        return;
    }
    float *d = x + (size_t)bt * ldv;
    const int h = ce_head(d, V), n4 = (V - h) >> 2, r = h + 4 * n4;
    float4 *d4 = (float4 *)(d + h);
    const float *p = probs + (size_t)bt * ldv;
    const float c = dlosses[b] / n, ct = dtlosses ? dtlosses[b] / n : 0.0f;
    const int y = targets[bt];
    const float dot = ce_row_dot(p, d, V, sh);
    if (ce_same_align(d, p)) {
        const float4 *p4 = (const float4 *)(p + h);
        if (tid < h) d[tid] = ce_bwt1(0.0f, p[tid], d[tid], dot, c, ct, tid == y);
        if (r + tid < V) d[r + tid] = ce_bwt1(0.0f, p[r + tid], d[r + tid], dot, c, ct, r + tid == y);
        int i = tid;
        for (; i + nt < n4; i += 2 * nt) {   /* four loads in flight before the stores */
            const float4 a0 = p4[i], v0 = d4[i], a1 = p4[i + nt], v1 = d4[i + nt];
            d4[i] = ce_bwt4(a0, v0, dot, c, ct, y - h - 4 * i);
            d4[i + nt] = ce_bwt4(a1, v1, dot, c, ct, y - h - 4 * (i + nt));
        }
        if (i < n4) d4[i] = ce_bwt4(p4[i], d4[i], dot, c, ct, y - h - 4 * i);
    } else {
        for (int v = tid; v < V; v += nt) d[v] = ce_bwt1(0.0f, p[v], d[v], dot, c, ct, v == y);
    }
}

void cu_crossentropy_backward_tangent_in_place(real *x, const real *probs, const int32_t *targets,
                                               const int32_t *n_valid, const real *dlosses,
                                               const real *dtlosses, int B, int T, int V, int ldv) {
    ce_check_ld("crossentropy_backward_tangent_in_place", V, ldv);
    if (B <= 0 || T <= 0) return;
    ce_backward_tangent_in_place_rows_k<<<B * T, CE_THREADS>>>(x, probs, targets, n_valid, dlosses,
                                                               dtlosses, T, V, ldv);
    cudaLaunchCheck();
}

void cu_crossentropy_backward_tangent(real *dtlogits, const real *probs, const real *tlogits,
                                      const int32_t *targets, const int32_t *n_valid,
                                      const real *dlosses, const real *dtlosses, int B, int T,
                                      int V, int ldv) {
    ce_check_ld("crossentropy_backward_tangent", V, ldv);
    if (B <= 0 || T <= 0) return;
    ce_backward_tangent_rows_k<<<B * T, CE_THREADS>>>(dtlogits, probs, tlogits, targets, n_valid,
                                                      dlosses, dtlosses, T, V, ldv);
    cudaLaunchCheck();
}
