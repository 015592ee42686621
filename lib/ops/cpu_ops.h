/* cpu_ops.h — the CPU implementations of the Backend ops (lib/backend.h), as plain free
 * functions: one file per op under lib/ops/, its four faces next to each other.
 * Model code goes through the Backend table (backend_cpu); tests and benchmarks may call
 * these directly. Semantics (= vs +=, NULL meaning) are the header's. */
#ifndef DR_OPS_CPU_OPS_H
#define DR_OPS_CPU_OPS_H

#include "backend.h"

/* vec.c */
void vec_zero(real *x, size_t n);
void vec_copy(real *dst, const real *src, size_t n);
void vec_scale(real *x, double a, size_t n);
void vec_axpy(real *y, double a, const real *x, size_t n);
double vec_dot(const real *a, const real *b, size_t n);
double vec_sumsq(const real *x, size_t n);
int vec_all_finite(const real *x, size_t n);

/* optimizer.c */
void adamw_forward(real *theta, real *m, real *v, const real *g, double g_scale,
                   size_t n, const AdamWHyper *h);
void adamw_backward(real *dtheta, real *dm, real *dv, real *dg,
                    const real *m_old, const real *v_old, const real *g, double g_scale,
                    size_t n, const AdamWHyper *h);
void sgd_forward(real *theta, real *buf, const real *g, double g_scale, size_t n,
                 const SGDHyper *h);
void sgd_backward(real *dtheta, real *dbuf, real *dg, size_t n, const SGDHyper *h);

/* embedding.c */
void embedding_forward(real *out, const int32_t *tokens, const real *wte, const real *wpe,
                       int B, int T, int C);
void embedding_backward(real *dwte, real *dwpe, const real *dout, const int32_t *tokens,
                        int B, int T, int C);
void embedding_forward_tangent(real *tout, const int32_t *tokens, const real *twte,
                               const real *twpe, int B, int T, int C);
void embedding_backward_tangent(real *dtwte, real *dtwpe, const real *dtout,
                                const int32_t *tokens, int B, int T, int C);

/* matmul.c */
void matmul_forward(real *out, const real *inp, const real *w, const real *bias,
                    int N, int C, int OC, int w_layout, int ldo);
void matmul_backward(real *dinp, real *dw, real *dbias, const real *dout, const real *inp,
                     const real *w, int N, int C, int OC, int w_layout, int ldo);
void matmul_forward_tangent(real *tout, const real *inp, const real *tinp, const real *w,
                            const real *tw, const real *tbias, int N, int C, int OC,
                            int w_layout, int ldo);
void matmul_backward_tangent(real *dtinp, real *dtw, real *dtbias, const real *dout,
                             const real *dtout, const real *inp, const real *tinp,
                             const real *w, const real *tw,
                             int N, int C, int OC, int w_layout, int ldo);

/* layernorm.c */
void layernorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *w,
                       const real *b, int N, int C);
void layernorm_backward(real *dinp, real *dw, real *db, const real *dout, const real *inp,
                        const real *w, const real *mean, const real *rstd, int N, int C);
void layernorm_forward_tangent(real *tout, const real *inp, const real *tinp, const real *w,
                               const real *tw, const real *tb, const real *mean,
                               const real *rstd, int N, int C);
void layernorm_backward_tangent(real *dtinp, real *dtw, real *dtb, const real *dout,
                                const real *dtout, const real *inp, const real *tinp,
                                const real *w, const real *tw, const real *mean,
                                const real *rstd, int N, int C);

/* attention.c */
size_t attention_state_floats(int B, int T, int C, int NH);   /* B·NH·T·T: att holds P */
void attention_forward(real *out, real *att, const real *qkv, const int32_t *valid_len,
                       int causal, int B, int T, int C, int NH);
void attention_backward(real *dqkv, const real *dout, const real *qkv, const real *att,
                        const int32_t *valid_len, int causal, int B, int T, int C, int NH);
void attention_forward_tangent(real *tout, real *tatt, const real *qkv, const real *tqkv,
                               const real *att, const int32_t *valid_len, int causal,
                               int B, int T, int C, int NH);
void attention_backward_tangent(real *dtqkv, const real *dout, const real *dtout,
                                const real *qkv, const real *tqkv, const real *att,
                                const real *tatt, const int32_t *valid_len, int causal,
                                int B, int T, int C, int NH);

/* gelu.c */
void gelu_forward(real *out, const real *inp, size_t n);
void gelu_backward(real *dinp, const real *inp, const real *dout, size_t n);
void gelu_forward_tangent(real *tout, const real *inp, const real *tinp, size_t n);
void gelu_backward_tangent(real *dtinp, const real *inp, const real *tinp, const real *dout,
                           const real *dtout, size_t n);

/* residual.c */
void residual_forward(real *out, const real *a, const real *b, size_t n);
void residual_backward(real *da, real *db, const real *dout, size_t n);
void residual_forward_tangent(real *tout, const real *ta, const real *tb, size_t n);
void residual_backward_tangent(real *dta, real *dtb, const real *dtout, size_t n);

/* crossentropy.c */
void crossentropy_forward(real *losses, real *probs, const real *logits,
                          const int32_t *targets, const int32_t *n_valid,
                          int B, int T, int V, int ldv);
void crossentropy_backward(real *dlogits, const real *probs, const int32_t *targets,
                           const int32_t *n_valid, const real *dlosses,
                           int B, int T, int V, int ldv);
void crossentropy_backward_in_place(real *x, real *losses, int from_logits, const int32_t *targets,
                                    const int32_t *n_valid, const real *dlosses, int B, int T,
                                    int V, int ldv);
void crossentropy_forward_tangent(real *tlosses, const real *probs, const real *tlogits,
                                  const int32_t *targets, const int32_t *n_valid,
                                  int B, int T, int V, int ldv);
void crossentropy_backward_tangent(real *dtlogits, const real *probs, const real *tlogits,
                                   const int32_t *targets, const int32_t *n_valid,
                                   const real *dlosses, const real *dtlosses,
                                   int B, int T, int V, int ldv);
void crossentropy_backward_tangent_in_place(real *x, const real *probs, const int32_t *targets,
                                            const int32_t *n_valid, const real *dlosses,
                                            const real *dtlosses, int B, int T, int V, int ldv);

/* meanpool.c */
void meanpool_forward(real *out, const real *inp, const int32_t *valid_len, int B, int T, int C);
void meanpool_backward(real *dinp, const real *dout, const int32_t *valid_len,
                       int B, int T, int C);

/* weights.c */
void weights_forward(real *w, const real *z, const WeightNormConfig *cfg, int B);
void weights_backward(real *dz, const real *dw, const real *z, const WeightNormConfig *cfg,
                      int B);

#endif
