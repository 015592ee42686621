/* layernorm.cu — LayerNorm (eps 1e-5, biased variance) and its derivatives up to the
 * tangent of the backward on the GPU; formulas and derivation in lib/ops/layernorm.c,
 * whose per-element expressions the kernels repeat.
 *  - Row quantities: one warp per row, lanes striding over the channels, row sums by a
 *    warp butterfly (fixed order).
 *  - Parameter gradients (sums over rows): rows are cut into chunks of a length that
 *    depends only on N; one thread per (chunk, channel) sums its chunk in row order into
 *    a partial, then one thread per channel adds the partials in chunk order. No atomics,
 *    same bits on every run. */
#include "cuda/cuda_ops.cuh"

#define LN_EPS 1e-5f
#define ROWS_PER_BLOCK 8   /* warps per block, one row each */

static inline unsigned row_blocks(int N) { return (unsigned)((N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

/* rows per chunk of the parameter sums: at most ~256 chunks, at least 32 rows each */
static inline int chunk_rows(int N) {
    int r = (N + 255) / 256;
    return r < 32 ? 32 : r;
}

static __global__ void ln_forward_k(float *out, float *mean, float *rstd, const float *inp,
                                    const float *w, const float *b, int N, int C) {
    int n = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (n >= N) return;
    const float *x = inp + (size_t)n * C;
    float *y = out + (size_t)n * C;
    float mu = 0;
    for (int c = lane; c < C; c += 32) mu += x[c];
    mu = cu_warp_sum(mu) / C;
    float var = 0;
    for (int c = lane; c < C; c += 32) { float d = x[c] - mu; var += d * d; }
    var = cu_warp_sum(var) / C;
    float s = 1.0f / sqrtf(var + LN_EPS);
    for (int c = lane; c < C; c += 32) y[c] = (x[c] - mu) * s * w[c] + b[c];
    if (lane == 0) {
        if (mean) mean[n] = mu;
        if (rstd) rstd[n] = s;
    }
}

void cu_layernorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *w,
                          const real *b, int N, int C) {
    if (N <= 0) return;
    ln_forward_k<<<row_blocks(N), 32 * ROWS_PER_BLOCK>>>(out, mean, rstd, inp, w, b, N, C);
    cudaLaunchCheck();
}

/* dx += σ(g − mean(g) − x̂ mean(x̂ g)), g = dy ⊙ w */
static __global__ void ln_backward_dinp_k(float *dinp, const float *dout, const float *inp,
                                          const float *w, const float *mean, const float *rstd,
                                          int N, int C) {
    int n = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (n >= N) return;
    const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
    float *dx = dinp + (size_t)n * C;
    float mu = mean[n], s = rstd[n];
    float mg = 0, mxg = 0;
    for (int c = lane; c < C; c += 32) {
        float g = dy[c] * w[c];
        mg += g;
        mxg += (x[c] - mu) * s * g;
    }
    mg = cu_warp_sum(mg) / C;
    mxg = cu_warp_sum(mxg) / C;
    for (int c = lane; c < C; c += 32) dx[c] += s * (dy[c] * w[c] - mg - (x[c] - mu) * s * mxg);
}

/* partial[chunk, c] of Σ_n dy x̂ (pw) and Σ_n dy (pb) */
static __global__ void ln_param_partial_k(float *pw, float *pb, const float *dout,
                                          const float *inp, const float *mean,
                                          const float *rstd, int N, int C, int rows) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (c >= C) return;
    int n0 = chunk * rows, n1 = n0 + rows < N ? n0 + rows : N;
    float sw = 0, sb = 0;
    for (int n = n0; n < n1; n++) {
        float dy = dout[(size_t)n * C + c];
        sw += dy * (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
        sb += dy;
    }
    pw[(size_t)chunk * C + c] = sw;
    pb[(size_t)chunk * C + c] = sb;
}

/* dst[c] += Σ_chunk part[chunk, c], chunks in order (one or two outputs) */
static __global__ void add_partials_k(float *dst0, const float *part0, float *dst1,
                                      const float *part1, int nchunks, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    if (dst0) {
        float s = 0;
        for (int k = 0; k < nchunks; k++) s += part0[(size_t)k * C + c];
        dst0[c] += s;
    }
    if (dst1) {
        float s = 0;
        for (int k = 0; k < nchunks; k++) s += part1[(size_t)k * C + c];
        dst1[c] += s;
    }
}

void cu_layernorm_backward(real *dinp, real *dw, real *db, const real *dout, const real *inp,
                           const real *w, const real *mean, const real *rstd, int N, int C) {
    if (N <= 0) return;
    if (dinp) {
        ln_backward_dinp_k<<<row_blocks(N), 32 * ROWS_PER_BLOCK>>>(dinp, dout, inp, w, mean,
                                                                   rstd, N, C);
        cudaLaunchCheck();
    }
    if (dw || db) {
        int rows = chunk_rows(N), nchunks = (N + rows - 1) / rows;
        float *pw = (float *)cu_scratch(CU_SCR_PARTIAL, 2 * (size_t)nchunks * C * sizeof(float));
        float *pb = pw + (size_t)nchunks * C;
        dim3 grid((unsigned)((C + 127) / 128), (unsigned)nchunks);
        ln_param_partial_k<<<grid, 128>>>(pw, pb, dout, inp, mean, rstd, N, C, rows);
        cudaLaunchCheck();
        add_partials_k<<<(C + 127) / 128, 128>>>(dw, pw, db, pb, nchunks, C);
        cudaLaunchCheck();
    }
}

/* ẏ = σ(ẋ − mean(ẋ) − x̂ a) ⊙ w + x̂ ⊙ ẇ + ḃ,  a = mean(x̂ ẋ) */
static __global__ void ln_forward_tangent_k(float *tout, const float *inp, const float *tinp,
                                            const float *w, const float *tw, const float *tb,
                                            const float *mean, const float *rstd, int N, int C) {
    int n = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (n >= N) return;
    const float *x = inp + (size_t)n * C;
    const float *xt = tinp ? tinp + (size_t)n * C : NULL;
    float *yt = tout + (size_t)n * C;
    float mu = mean[n], s = rstd[n];
    float mxt = 0, a = 0;
    if (xt) {
        for (int c = lane; c < C; c += 32) { mxt += xt[c]; a += (x[c] - mu) * s * xt[c]; }
        mxt = cu_warp_sum(mxt) / C;
        a = cu_warp_sum(a) / C;
    }
    for (int c = lane; c < C; c += 32) {
        float xh = (x[c] - mu) * s;
        float v = tb ? tb[c] : 0.0f;
        if (xt) v += s * (xt[c] - mxt - xh * a) * w[c];
        if (tw) v += xh * tw[c];
        yt[c] = v;
    }
}

void cu_layernorm_forward_tangent(real *tout, const real *inp, const real *tinp, const real *w,
                                  const real *tw, const real *tb, const real *mean,
                                  const real *rstd, int N, int C) {
    if (N <= 0) return;
    ln_forward_tangent_k<<<row_blocks(N), 32 * ROWS_PER_BLOCK>>>(tout, inp, tinp, w, tw, tb,
                                                                 mean, rstd, N, C);
    cudaLaunchCheck();
}

/* row_mxt[n] = mean(ẋ), row_a[n] = mean(x̂ ẋ) */
static __global__ void ln_tangent_rows_k(float *row_mxt, float *row_a, const float *inp,
                                         const float *tinp, const float *mean, const float *rstd,
                                         int N, int C) {
    int n = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (n >= N) return;
    const float *x = inp + (size_t)n * C, *xt = tinp + (size_t)n * C;
    float mu = mean[n], s = rstd[n], mxt = 0, a = 0;
    for (int c = lane; c < C; c += 32) { mxt += xt[c]; a += (x[c] - mu) * s * xt[c]; }
    mxt = cu_warp_sum(mxt);
    a = cu_warp_sum(a);
    if (lane == 0) {
        row_mxt[n] = mxt / C;
        row_a[n] = a / C;
    }
}

/* dẋ = −σ a · dx + σ(ġ − mean(ġ) − x̂̇ mean(x̂ g) − x̂ (mean(x̂̇ g) + mean(x̂ ġ))) */
static __global__ void ln_backward_tangent_dinp_k(float *dtinp, const float *dout,
                                                  const float *dtout, const float *inp,
                                                  const float *tinp, const float *w,
                                                  const float *tw, const float *mean,
                                                  const float *rstd, const float *row_mxt,
                                                  const float *row_a, int N, int C) {
    int n = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (n >= N) return;
    const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
    const float *dyt = dtout ? dtout + (size_t)n * C : NULL;
    const float *xt = tinp ? tinp + (size_t)n * C : NULL;
    float *dxt = dtinp + (size_t)n * C;
    float mu = mean[n], s = rstd[n];
    float mxt = tinp ? row_mxt[n] : 0.0f, a = tinp ? row_a[n] : 0.0f;
    float mg = 0, mxg = 0, mgt = 0, mxgt = 0, mxtg = 0;
    for (int c = lane; c < C; c += 32) {
        float xh = (x[c] - mu) * s;
        float g = dy[c] * w[c];
        float gt = (dyt ? dyt[c] * w[c] : 0.0f) + (tw ? dy[c] * tw[c] : 0.0f);
        float xht = xt ? s * (xt[c] - mxt - xh * a) : 0.0f;
        mg += g; mxg += xh * g; mgt += gt; mxgt += xh * gt; mxtg += xht * g;
    }
    mg = cu_warp_sum(mg) / C;
    mxg = cu_warp_sum(mxg) / C;
    mgt = cu_warp_sum(mgt) / C;
    mxgt = cu_warp_sum(mxgt) / C;
    mxtg = cu_warp_sum(mxtg) / C;
    for (int c = lane; c < C; c += 32) {
        float xh = (x[c] - mu) * s;
        float g = dy[c] * w[c];
        float gt = (dyt ? dyt[c] * w[c] : 0.0f) + (tw ? dy[c] * tw[c] : 0.0f);
        float xht = xt ? s * (xt[c] - mxt - xh * a) : 0.0f;
        float dx = s * (g - mg - xh * mxg);
        dxt[c] += -s * a * dx + s * (gt - mgt - xht * mxg - xh * (mxtg + mxgt));
    }
}

/* partials of dẇ = Σ_n (dẏ x̂ + dy x̂̇) and dḃ = Σ_n dẏ */
static __global__ void ln_tangent_param_partial_k(float *pw, float *pb, const float *dout,
                                                  const float *dtout, const float *inp,
                                                  const float *tinp, const float *mean,
                                                  const float *rstd, const float *row_mxt,
                                                  const float *row_a, int N, int C, int rows) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (c >= C) return;
    int n0 = chunk * rows, n1 = n0 + rows < N ? n0 + rows : N;
    float sw = 0, sb = 0;
    for (int n = n0; n < n1; n++) {
        size_t i = (size_t)n * C + c;
        float mu = mean[n], s = rstd[n];
        float xh = (inp[i] - mu) * s;
        float v = dtout ? dtout[i] * xh : 0.0f;
        if (tinp) v += dout[i] * s * (tinp[i] - row_mxt[n] - xh * row_a[n]);
        sw += v;
        if (dtout) sb += dtout[i];
    }
    pw[(size_t)chunk * C + c] = sw;
    pb[(size_t)chunk * C + c] = sb;
}

void cu_layernorm_backward_tangent(real *dtinp, real *dtw, real *dtb, const real *dout,
                                   const real *dtout, const real *inp, const real *tinp,
                                   const real *w, const real *tw, const real *mean,
                                   const real *rstd, int N, int C) {
    if (N <= 0) return;
    float *row_mxt = NULL, *row_a = NULL;
    if (tinp) {
        row_mxt = (float *)cu_scratch(CU_SCR_ROWS, 2 * (size_t)N * sizeof(float));
        row_a = row_mxt + N;
        ln_tangent_rows_k<<<row_blocks(N), 32 * ROWS_PER_BLOCK>>>(row_mxt, row_a, inp, tinp, mean,
                                                                  rstd, N, C);
        cudaLaunchCheck();
    }
    if (dtinp) {
        ln_backward_tangent_dinp_k<<<row_blocks(N), 32 * ROWS_PER_BLOCK>>>(
            dtinp, dout, dtout, inp, tinp, w, tw, mean, rstd, row_mxt, row_a, N, C);
        cudaLaunchCheck();
    }
    float *dtb_used = dtout ? dtb : NULL;   /* dḃ = Σ dẏ: nothing to add without dẏ */
    if (dtw || dtb_used) {
        int rows = chunk_rows(N), nchunks = (N + rows - 1) / rows;
        float *pw = (float *)cu_scratch(CU_SCR_PARTIAL, 2 * (size_t)nchunks * C * sizeof(float));
        float *pb = pw + (size_t)nchunks * C;
        dim3 grid((unsigned)((C + 127) / 128), (unsigned)nchunks);
        ln_tangent_param_partial_k<<<grid, 128>>>(pw, pb, dout, dtout, inp, tinp, mean, rstd,
                                                   row_mxt, row_a, N, C, rows);
        cudaLaunchCheck();
        add_partials_k<<<(C + 127) / 128, 128>>>(dtw, pw, dtb_used, pb, nchunks, C);
        cudaLaunchCheck();
    }
}
