/* matmul.cu — linear layer with bias, out = inp @ W + b, and its three derivative faces,
 * on cuBLAS: lib/ops/matmul.c product for product (same shapes; the input cotangent's
 * first product with beta = 0, since the backward faces write it (backend.h), every other
 * one accumulating with beta = 1), every GEMM through gemm.cu (cu_gemm, and its pair and
 * ksum forms that share or concatenate bf16 copies), so the fp32 / TF32 / bf16 mode
 * applies to all four faces. W is [C, OC] (MATMUL_W_C_OC) or [OC, C] (MATMUL_W_OC_C, the tied
 * embedding). The bias gradient is a column sum by GEMV (fixed order, no atomics). Rows
 * of out, dout, tout and dtout are ldo ≥ OC apart; the forward faces give the product
 * the whole row (CuGemm.n_room = ldo), so the LM head's x·Eᵀ over V = 50257 runs over
 * 50304 columns straight into the logits (gemm.cu). */
#include "cuda/cuda_ops.cuh"

/* out[N,OC] (rows ldo apart, all of them the product's to write) = x[N,C] @ W + beta·out,
 * as cu_gemm's arguments */
static CuGemm x_times_w_args(float *out, const float *x, const float *w, int N, int C, int OC,
                             int w_layout, float beta, int ldo) {
    if (w_layout == MATMUL_W_OC_C)
        return CuGemm{ 0, 1, N, OC, C, 1, x, C, w, C, beta, out, ldo, ldo };
    return CuGemm{ 0, 0, N, OC, C, 1, x, C, w, OC, beta, out, ldo, ldo };
}

static void x_times_w(float *out, const float *x, const float *w, int N, int C, int OC,
                      int w_layout, float beta, int ldo) {
    const CuGemm g = x_times_w_args(out, x, w, N, C, OC, w_layout, beta, ldo);
    cu_gemm_run(&g);
}

/* dx[N,C] = d[N,OC] (rows ldo apart) @ Wᵀ + beta·dx, as cu_gemm's arguments */
static CuGemm d_times_wt_args(float *dx, const float *d, const float *w, int N, int C, int OC,
                              int w_layout, float beta, int ldo) {
    if (w_layout == MATMUL_W_OC_C)
        return CuGemm{ 0, 0, N, C, OC, 1, d, ldo, w, C, beta, dx, C, 0 };
    return CuGemm{ 0, 1, N, C, OC, 1, d, ldo, w, OC, beta, dx, C, 0 };
}

static void d_times_wt(float *dx, const float *d, const float *w, int N, int C, int OC,
                       int w_layout, float beta, int ldo) {
    const CuGemm g = d_times_wt_args(dx, d, w, N, C, OC, w_layout, beta, ldo);
    cu_gemm_run(&g);
}

/* dW += x[N,C]ᵀ @ d[N,OC] (rows ldo apart; in W's layout), as cu_gemm's arguments */
static CuGemm xt_times_d_args(float *dw, const float *x, const float *d, int N, int C, int OC,
                              int w_layout, int ldo) {
    if (w_layout == MATMUL_W_OC_C) return CuGemm{ 1, 0, OC, C, N, 1, d, ldo, x, C, 1, dw, C, 0 };
    return CuGemm{ 1, 0, C, OC, N, 1, x, C, d, ldo, 1, dw, OC, 0 };
}

static void xt_times_d(float *dw, const float *x, const float *d, int N, int C, int OC,
                       int w_layout, int ldo) {
    const CuGemm g = xt_times_d_args(dw, x, d, N, C, OC, w_layout, ldo);
    cu_gemm_run(&g);
}

static void check_ld(const char *op, int OC, int ldo) {
    if (ldo < OC) dr_fail_at(__FILE__, __LINE__, "%s: row stride %d < OC %d", op, ldo, OC);
}

/* out[r,:] = b (or 0), rows ld apart: rows over blockIdx.y (grid-stride), columns over
 * threads */
static __global__ void fill_rows_k(float *out, const float *b, int N, int OC, int ld) {
    for (int r = blockIdx.y; r < N; r += gridDim.y) {
        float *o = out + (size_t)r * ld;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < OC; c += gridDim.x * blockDim.x)
            o[c] = b ? b[c] : 0.0f;
    }
}

static void fill_rows(float *out, const float *b, int N, int OC, int ld) {
    if (N <= 0 || OC <= 0) return;
    dim3 grid((unsigned)((OC + CU_THREADS - 1) / CU_THREADS), N < 65535 ? N : 65535);
    const double t = cu_prof_begin();
    fill_rows_k<<<grid, CU_THREADS>>>(out, b, N, OC, ld);
    cudaLaunchCheck();
    cu_prof_end(CU_PROF_OTHER, t, 0);
}

/* out = inp W + bias: in bf16 mode the product carries the bias (cu_gemm_bias), else the
 * bias is filled in and the product adds to it */
void cu_matmul_forward(real *out, const real *inp, const real *w, const real *bias, int N, int C,
                       int OC, int w_layout, int ldo) {
    check_ld("matmul_forward", OC, ldo);
    const CuGemm g = x_times_w_args(out, inp, w, N, C, OC, w_layout, 0.0f, ldo);
    if (bias && cu_gemm_bias(&g, bias)) return;
    if (bias) fill_rows(out, bias, N, OC, ldo);
    x_times_w(out, inp, w, N, C, OC, w_layout, bias ? 1.0f : 0.0f, ldo);
}

/* dinp = d Wᵀ + dinp_beta·dinp and dW += inpᵀ d, either or both (NULL: not). With both
 * products, cu_gemm_pair: in bf16 mode d is rounded to bf16 once for both where gemm.cu
 * allows it (the same bits as two products). */
static void matmul_backward_products(float *dinp, float *dw, const float *d, const float *inp,
                                     const float *w, int N, int C, int OC, int w_layout,
                                     float dinp_beta, int ldo) {
    if (dinp && dw) {
        const CuGemm gx = d_times_wt_args(dinp, d, w, N, C, OC, w_layout, dinp_beta, ldo);
        const CuGemm gw = xt_times_d_args(dw, inp, d, N, C, OC, w_layout, ldo);
        cu_gemm_pair(&gx, &gw, d);
    } else if (dinp) {
        d_times_wt(dinp, d, w, N, C, OC, w_layout, dinp_beta, ldo);
    } else if (dw) {
        xt_times_d(dw, inp, d, N, C, OC, w_layout, ldo);
    }
}

/* dinp = dout Wᵀ (written); dW += inpᵀ dout; dbias += Σ_n dout */
void cu_matmul_backward(real *dinp, real *dw, real *dbias, const real *dout, const real *inp,
                        const real *w, int N, int C, int OC, int w_layout, int ldo) {
    check_ld("matmul_backward", OC, ldo);
    matmul_backward_products(dinp, dw, dout, inp, w, N, C, OC, w_layout, 0.0f, ldo);
    if (dbias) cu_column_sum_add(dbias, dout, N, OC, ldo);
}

/* tout = tinp W + inp tW + tb. Without tb the first product writes tout (beta 0): no pass
 * of zeros before it, and a padded output's copy (gemm.cu) does not read tout either,
 * which for the head's logits tangent is two passes over [rows, V] fewer. With all three
 * in bf16 mode, the one product over the concatenated K carries tb (cu_gemm_ksum_bias);
 * otherwise tb is filled in and the products add to it. */
void cu_matmul_forward_tangent(real *tout, const real *inp, const real *tinp, const real *w,
                               const real *tw, const real *tbias, int N, int C, int OC,
                               int w_layout, int ldo) {
    check_ld("matmul_forward_tangent", OC, ldo);
    if (tinp && tw && tbias) {
        const CuGemm g1 = x_times_w_args(tout, tinp, w, N, C, OC, w_layout, 0, ldo);
        const CuGemm g2 = x_times_w_args(tout, inp, tw, N, C, OC, w_layout, 1, ldo);
        if (cu_gemm_ksum_bias(&g1, &g2, tbias)) return;
    }
    const float beta = tbias ? 1.0f : 0.0f;
    if (tbias || (!tinp && !tw)) fill_rows(tout, tbias, N, OC, ldo);
    if (tinp && tw) {   /* in bf16, one product over K = 2C (cu_gemm_ksum) */
        const CuGemm g1 = x_times_w_args(tout, tinp, w, N, C, OC, w_layout, beta, ldo);
        const CuGemm g2 = x_times_w_args(tout, inp, tw, N, C, OC, w_layout, 1, ldo);
        cu_gemm_ksum(&g1, &g2, NULL, NULL);
    } else if (tinp) {
        x_times_w(tout, tinp, w, N, C, OC, w_layout, beta, ldo);
    } else if (tw) {
        x_times_w(tout, inp, tw, N, C, OC, w_layout, beta, ldo);
    }
}

/* dtinp = dtout Wᵀ + dout tWᵀ (written; 0 without either term);  dtW += inpᵀ dtout +
 * tinpᵀ dout;  dtb += Σ_n dtout */
void cu_matmul_backward_tangent(real *dtinp, real *dtw, real *dtbias, const real *dout,
                                const real *dtout, const real *inp, const real *tinp,
                                const real *w, const real *tw, int N, int C, int OC,
                                int w_layout, int ldo) {
    check_ld("matmul_backward_tangent", OC, ldo);
    if (dtinp && dtout && dout && tw && cu_ksum()) {
        /* dtinp's two products as one over K = 2·OC, whose copy of [dtout | dout] dtW's
         * products read (cu_gemm_ksum); dtW gets inpᵀ dtout before tinpᵀ dout */
        const CuGemm gx1 = d_times_wt_args(dtinp, dtout, w, N, C, OC, w_layout, 0.0f, ldo);
        const CuGemm gx2 = d_times_wt_args(dtinp, dout, tw, N, C, OC, w_layout, 1.0f, ldo);
        CuGemm gw1, gw2;
        if (dtw) gw1 = xt_times_d_args(dtw, inp, dtout, N, C, OC, w_layout, ldo);
        if (dtw && tinp) gw2 = xt_times_d_args(dtw, tinp, dout, N, C, OC, w_layout, ldo);
        cu_gemm_ksum(&gx1, &gx2, dtw ? &gw1 : NULL, dtw && tinp ? &gw2 : NULL);
        if (dtbias) cu_column_sum_add(dtbias, dtout, N, OC, ldo);
        return;
    }
    /* otherwise in two pairs, each sharing its d (dtout, then dout): dtinp gets its terms
     * in the order above (the first written), dtW gets inpᵀ dtout before tinpᵀ dout */
    if (dtout)
        matmul_backward_products(dtinp, dtw, dtout, inp, w, N, C, OC, w_layout, 0.0f, ldo);
    if (dout) matmul_backward_products(tw ? dtinp : NULL, tinp ? dtw : NULL, dout, tinp, tw, N, C,
                                       OC, w_layout, dtout ? 1.0f : 0.0f, ldo);
    if (dtinp && !dtout && !(dout && tw))   /* neither term: its tangent is 0 */
        cudaCheck(cudaMemsetAsync(dtinp, 0, (size_t)N * C * sizeof(float), 0));
    if (dtbias && dtout) cu_column_sum_add(dtbias, dtout, N, OC, ldo);
}
