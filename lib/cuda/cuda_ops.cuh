/* cuda_ops.cuh — the CUDA implementations of the Backend ops (lib/backend.h) as free
 * functions, one .cu per op like lib/ops/, prefixed cu_. backend_cuda.cu puts them in
 * the table. Semantics (= vs +=, NULL meaning) are the header's; every pointer is device
 * memory. */
#ifndef DR_CUDA_OPS_CUH
#define DR_CUDA_OPS_CUH

#include <math.h>

#include "cuda/cuda_common.cuh"

/* context.cu */
void *cu_alloc(size_t bytes);
void cu_free(void *p);
/* bytes of the cu_alloc block that starts at p (rounded up to 256); 0 when p is not the start
 * of one (an interior pointer, or not the backend's) */
size_t cu_block_bytes(const void *p);
void cu_to_device(void *dst, const void *src_host, size_t bytes);
void cu_to_host(void *dst_host, const void *src, size_t bytes);
void cu_synchronize(void);
double cu_mem_available(void);

/* vec.cu */
void cu_vec_zero(real *x, size_t n);
void cu_vec_copy(real *dst, const real *src, size_t n);
void cu_vec_scale(real *x, double a, size_t n);
void cu_vec_axpy(real *y, double a, const real *x, size_t n);
double cu_vec_dot(const real *a, const real *b, size_t n);
double cu_vec_sumsq(const real *x, size_t n);
int cu_vec_all_finite(const real *x, size_t n);

/* optimizer.cu */
void cu_adamw_forward(real *theta, real *m, real *v, const real *g, double g_scale,
                      size_t n, const AdamWHyper *h);
void cu_adamw_backward(real *dtheta, real *dm, real *dv, real *dg,
                       const real *m_old, const real *v_old, const real *g, double g_scale,
                       size_t n, const AdamWHyper *h);
void cu_sgd_forward(real *theta, real *buf, const real *g, double g_scale, size_t n,
                    const SGDHyper *h);
void cu_sgd_backward(real *dtheta, real *dbuf, real *dg, size_t n, const SGDHyper *h);

/* embedding.cu */
void cu_embedding_forward(real *out, const int32_t *tokens, const real *wte, const real *wpe,
                          int B, int T, int C);
void cu_embedding_backward(real *dwte, real *dwpe, const real *dout, const int32_t *tokens,
                           int B, int T, int C);
void cu_embedding_forward_tangent(real *tout, const int32_t *tokens, const real *twte,
                                  const real *twpe, int B, int T, int C);
void cu_embedding_backward_tangent(real *dtwte, real *dtwpe, const real *dtout,
                                   const int32_t *tokens, int B, int T, int C);

/* matmul.cu */
void cu_matmul_forward(real *out, const real *inp, const real *w, const real *bias,
                       int N, int C, int OC, int w_layout, int ldo);
void cu_matmul_backward(real *dinp, real *dw, real *dbias, const real *dout, const real *inp,
                        const real *w, int N, int C, int OC, int w_layout, int ldo);
void cu_matmul_forward_tangent(real *tout, const real *inp, const real *tinp, const real *w,
                               const real *tw, const real *tbias, int N, int C, int OC,
                               int w_layout, int ldo);
void cu_matmul_backward_tangent(real *dtinp, real *dtw, real *dtbias, const real *dout,
                                const real *dtout, const real *inp, const real *tinp,
                                const real *w, const real *tw,
                                int N, int C, int OC, int w_layout, int ldo);

/* layernorm.cu */
void cu_layernorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *w,
                          const real *b, int N, int C);
void cu_layernorm_backward(real *dinp, real *dw, real *db, const real *dout, const real *inp,
                           const real *w, const real *mean, const real *rstd, int N, int C);
void cu_layernorm_forward_tangent(real *tout, const real *inp, const real *tinp, const real *w,
                                  const real *tw, const real *tb, const real *mean,
                                  const real *rstd, int N, int C);
void cu_layernorm_backward_tangent(real *dtinp, real *dtw, real *dtb, const real *dout,
                                   const real *dtout, const real *inp, const real *tinp,
                                   const real *w, const real *tw, const real *mean,
                                   const real *rstd, int N, int C);

/* attention.cu */
size_t cu_attention_state_floats(int B, int T, int C, int NH);
void cu_attention_forward(real *out, real *att, const real *qkv, const int32_t *valid_len,
                          int causal, int B, int T, int C, int NH);
void cu_attention_backward(real *dqkv, const real *dout, const real *qkv, const real *att,
                           const int32_t *valid_len, int causal, int B, int T, int C, int NH);
void cu_attention_forward_tangent(real *tout, real *tatt, const real *qkv, const real *tqkv,
                                  const real *att, const int32_t *valid_len, int causal,
                                  int B, int T, int C, int NH);
void cu_attention_backward_tangent(real *dtqkv, const real *dout, const real *dtout,
                                   const real *qkv, const real *tqkv, const real *att,
                                   const real *tatt, const int32_t *valid_len, int causal,
                                   int B, int T, int C, int NH);

/* Attention's shape, for attention.cu and attention_flash.cu (kernels take it by value). */
typedef struct {
    int B, T, C, NH, hs;        /* hs = C / NH */
    float scale;                /* 1 / sqrt(hs) */
    const int32_t *valid_len;   /* [B] or NULL */
    int causal;
} AttShape;

static inline AttShape att_shape(const int32_t *valid_len, int causal, int B, int T, int C, int NH) {
    AttShape s;
    s.B = B; s.T = T; s.C = C; s.NH = NH; s.hs = C / NH;
    s.scale = (float)(1.0 / sqrt((double)s.hs));
    s.valid_len = valid_len;
    s.causal = causal;
    return s;
}

/* attention_flash.cu (called by attention.cu; the att contract is that file's): 1 when the
 * flash path applies to this shape now (switch on, bf16 GEMM mode, hs ∈ {16, 32, 48, 64},
 * B·NH ≤ 65535, T ≥ hs + 1 so that lse and O fit in att) */
int cu_att_flash_eligible(int B, int T, int C, int NH);
void cu_attention_flash_forward(float *out /*[B,T,C]*/, float *att /*[B,NH,T,T]: lse, O*/,
                                const float *qkv /*[B,T,3C]*/,
                                const int32_t *valid_len /*[B] or NULL*/, int causal, int B,
                                int T, int C, int NH);
void cu_attention_flash_backward(float *dqkv /*[B,T,3C], +=*/, const float *dout /*[B,T,C]*/,
                                 const float *qkv /*[B,T,3C]*/,
                                 const float *att /*[B,NH,T,T]: lse, O*/,
                                 const int32_t *valid_len /*[B] or NULL*/, int causal, int B,
                                 int T, int C, int NH);
/* tatt NULL: r and Ȯ not kept; tqkv not NULL (attention.cu handles a zero tangent) */
void cu_attention_flash_forward_tangent(float *tout /*[B,T,C]*/,
                                        float *tatt /*[B,NH,T,T]: r, Ȯ; or NULL*/,
                                        const float *qkv /*[B,T,3C]*/,
                                        const float *tqkv /*[B,T,3C]*/,
                                        const float *att /*[B,NH,T,T]: lse, O*/,
                                        const int32_t *valid_len /*[B] or NULL*/, int causal,
                                        int B, int T, int C, int NH);
/* dtout, tqkv NULL: zero tangents; tatt NULL only together with tqkv NULL (Ṗ = 0) */
void cu_attention_flash_backward_tangent(float *dtqkv /*[B,T,3C], +=*/,
                                         const float *dout /*[B,T,C]*/,
                                         const float *dtout /*[B,T,C] or NULL*/,
                                         const float *qkv /*[B,T,3C]*/,
                                         const float *tqkv /*[B,T,3C] or NULL*/,
                                         const float *att /*[B,NH,T,T]: lse, O*/,
                                         const float *tatt /*[B,NH,T,T]: r, Ȯ; or NULL*/,
                                         const int32_t *valid_len /*[B] or NULL*/, int causal,
                                         int B, int T, int C, int NH);

/* gelu.cu */
void cu_gelu_forward(real *out, const real *inp, size_t n);
void cu_gelu_backward(real *dinp, const real *inp, const real *dout, size_t n);
void cu_gelu_forward_tangent(real *tout, const real *inp, const real *tinp, size_t n);
void cu_gelu_backward_tangent(real *dtinp, const real *inp, const real *tinp, const real *dout,
                              const real *dtout, size_t n);

/* residual.cu */
void cu_residual_forward(real *out, const real *a, const real *b, size_t n);
void cu_residual_backward(real *da, real *db, const real *dout, size_t n);
void cu_residual_forward_tangent(real *tout, const real *ta, const real *tb, size_t n);
void cu_residual_backward_tangent(real *dta, real *dtb, const real *dtout, size_t n);

/* crossentropy.cu */
void cu_crossentropy_forward(real *losses, real *probs, const real *logits,
                             const int32_t *targets, const int32_t *n_valid,
                             int B, int T, int V, int ldv);
void cu_crossentropy_backward(real *dlogits, const real *probs, const int32_t *targets,
                              const int32_t *n_valid, const real *dlosses,
                              int B, int T, int V, int ldv);
void cu_crossentropy_backward_in_place(real *x, real *losses, int from_logits,
                                       const int32_t *targets, const int32_t *n_valid,
                                       const real *dlosses, int B, int T, int V, int ldv);
void cu_crossentropy_forward_tangent(real *tlosses, const real *probs, const real *tlogits,
                                     const int32_t *targets, const int32_t *n_valid,
                                     int B, int T, int V, int ldv);
void cu_crossentropy_backward_tangent(real *dtlogits, const real *probs, const real *tlogits,
                                      const int32_t *targets, const int32_t *n_valid,
                                      const real *dlosses, const real *dtlosses,
                                      int B, int T, int V, int ldv);
void cu_crossentropy_backward_tangent_in_place(real *x, const real *probs, const int32_t *targets,
                                               const int32_t *n_valid, const real *dlosses,
                                               const real *dtlosses, int B, int T, int V, int ldv);

/* meanpool.cu */
void cu_meanpool_forward(real *out, const real *inp, const int32_t *valid_len, int B, int T, int C);
void cu_meanpool_backward(real *dinp, const real *dout, const int32_t *valid_len,
                          int B, int T, int C);

/* weights.cu */
void cu_weights_forward(real *w, const real *z, const WeightNormConfig *cfg, int B);
void cu_weights_backward(real *dz, const real *dw, const real *z, const WeightNormConfig *cfg,
                         int B);

#endif
