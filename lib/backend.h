/* backend.h — the one interface between model code and compute (DESIGN §5).
 *
 * Model code (lm.c, rater.c, optim.c, meta.c) never loops over tensor memory itself:
 * it calls the ops of a Backend on buffers the backend allocated. The CPU backend
 * (lib/ops/, OpenBLAS + OpenMP) is `backend_cpu`; a CUDA backend fills the same table.
 *
 * Conventions, the same for every op (llm.c's, extended to second order):
 *  - `*_forward` writes (=) its outputs.
 *  - `*_backward` ACCUMULATES (+=) into every gradient it is given, so zeroing
 *    gradients is one vec_zero; a NULL gradient pointer means "not wanted".
 *    The exceptions, where the cotangent has exactly one producer in a model:
 *      · the input cotangents of matmul (dinp), GELU (dinp) and attention (dqkv) are
 *        WRITTEN (=), every element (llm.c's CUDA convention), so the model need not
 *        zero them and the op need not read the zeros back (two passes over the
 *        activations per op and step); their parameter gradients still accumulate;
 *      · `crossentropy_backward_in_place` and `crossentropy_backward_tangent_in_place`
 *        overwrite their input.
 *  - `*_forward_tangent` is the forward-mode derivative: given the tangents t* of the
 *    inputs and parameters (NULL = zero tangent), it writes (=) the output tangent.
 *  - `*_backward_tangent` is the forward-mode derivative of `*_backward`: given the
 *    primal inputs, their tangents, the output cotangent d* and its tangent dt*, it
 *    accumulates (+=) the tangents dt* of the parameter cotangents, and treats the input
 *    cotangents' tangents as `*_backward` treats the input cotangents (written for
 *    matmul, GELU and attention, accumulated elsewhere).
 *  Together they give the forward-over-reverse pass: gradient g, H·u and ⟨∇ℓ_i,u⟩.
 *  - Shapes are explicit ints; N = number of rows (B*T), C = channels.
 *  - Weights of linear layers are [C, OC] used as x @ W (Hugging Face GPT-2 Conv1D
 *    layout) unless `w_layout` says MATMUL_W_OC_C (the tied token embedding [V, C]).
 *  - Row strides: matmul's out / dout / tout / dtout have rows `ldo` ≥ OC floats apart,
 *    the cross-entropy faces' [B,T,V] arguments rows `ldv` ≥ V apart (every other model
 *    buffer is dense: ldo = OC). The columns past OC (past V) are never read; the
 *    cross-entropy faces never write them, while matmul's forward faces may write
 *    anything there (a GPU computes the LM head's x·Eᵀ over a vocabulary padded to
 *    `logits_row_multiple` straight into the logits' rows). An input cotangent's padding
 *    columns need not be 0.
 *  - valid_len[b] = number of valid (non-padding) positions of example b; NULL = all T.
 *  - Per-op scratch (a row of attention scores) is the backend's business; callers
 *    pass only the tensors listed.
 */
#ifndef DR_BACKEND_H
#define DR_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "real.h"

enum matmul_w_layout { MATMUL_W_C_OC = 0, MATMUL_W_OC_C = 1 };

/* How rater logits z become example weights w (DESIGN §3). */
enum weight_norm { WEIGHT_NORM_SIGMOID = 0, WEIGHT_NORM_SOFTMAX = 1 };
typedef struct {
    int kind;            /* enum weight_norm */
    double tau;          /* temperature: z/τ */
    double w_min, w_max; /* clamp bounds (sigmoid only) */
    int mean_normalize;  /* divide by the batch mean of w */
} WeightNormConfig;

/* torch.optim.AdamW, one parameter group: with k = step (1-based),
 * θ ← θ(1 − lr·wd); m ← β1 m + (1−β1) ĝ; v ← β2 v + (1−β2) ĝ²;
 * θ ← θ − (lr/(1−β1^k)) · m / (sqrt(v)/sqrt(1−β2^k) + eps). */
typedef struct { double lr, beta1, beta2, eps, weight_decay; long step; } AdamWHyper;
/* torch.optim.SGD (dampening 0, no Nesterov): g ← ĝ + wd θ; buf ← μ buf + g; θ ← θ − lr buf. */
typedef struct { double lr, momentum, weight_decay; } SGDHyper;

typedef struct Backend Backend;
struct Backend {
    const char *name;   /* "cpu", "cuda" */
    /* The LM gives each row of its logits (and their tangent and cotangents) a length
     * of V rounded up to a multiple of this, the ldo / ldv of the head's ops: 1 on the
     * CPU; 64 on CUDA, where cuBLAS writes a [rows, 50304] product about 7 times as fast
     * as one with rows of 50257 (docs/cuda.md, "GEMM precision") */
    int logits_row_multiple;

    /* ---- memory ---------------------------------------------------------------- */
    void *(*alloc)(size_t bytes);                       /* zero-filled */
    void (*free)(void *p);
    void (*to_device)(void *dst, const void *src_host, size_t bytes);
    void (*to_host)(void *dst_host, const void *src, size_t bytes);
    void (*synchronize)(void);
    /* bytes it could still allocate now, an estimate (0: unknown): the CPU's MemAvailable,
     * a GPU's free device memory; for sizing optional buffers (activation tapes) */
    double (*mem_available)(void);

    /* ---- vectors (flat parameter/gradient/tangent/moment buffers) -------------- */
    void (*vec_zero)(real *x, size_t n);
    void (*vec_copy)(real *dst, const real *src, size_t n);
    void (*vec_scale)(real *x, double a, size_t n);                 /* x *= a */
    void (*vec_axpy)(real *y, double a, const real *x, size_t n);   /* y += a x */
    double (*vec_dot)(const real *a, const real *b, size_t n);      /* in double */
    double (*vec_sumsq)(const real *x, size_t n);                   /* Σ x², in double */
    int (*vec_all_finite)(const real *x, size_t n);

    /* ---- optimizer updates and their reverse (the meta-gradient's optimizer Jacobian)
     * ĝ = g_scale · g (g_scale < 1 when the global-norm clip is active).
     * *_backward: dtheta, dm/dv/dbuf hold the cotangents of the UPDATED θ and state on
     * entry and are overwritten (=) with those of the state before the update; dg
     * receives (=) the cotangent of ĝ. m_old, v_old, g are the update's inputs.
     * AdamW's backward is finite where v = 0 (the 0·∞ term is taken as 0). */
    void (*adamw_forward)(real *theta, real *m, real *v, const real *g, double g_scale,
                          size_t n, const AdamWHyper *h);
    void (*adamw_backward)(real *dtheta, real *dm, real *dv, real *dg,
                           const real *m_old, const real *v_old, const real *g, double g_scale,
                           size_t n, const AdamWHyper *h);
    void (*sgd_forward)(real *theta, real *buf, const real *g, double g_scale,
                        size_t n, const SGDHyper *h);
    void (*sgd_backward)(real *dtheta, real *dbuf, real *dg, size_t n, const SGDHyper *h);

    /* ---- embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:] ------------------ */
    void (*embedding_forward)(real *out /*[B,T,C]*/, const int32_t *tokens /*[B,T]*/,
                              const real *wte /*[V,C]*/, const real *wpe /*[maxT,C]*/,
                              int B, int T, int C);
    void (*embedding_backward)(real *dwte /*[V,C]*/, real *dwpe /*[maxT,C]*/,
                               const real *dout /*[B,T,C]*/, const int32_t *tokens /*[B,T]*/,
                               int B, int T, int C);
    void (*embedding_forward_tangent)(real *tout /*[B,T,C]*/, const int32_t *tokens /*[B,T]*/,
                                      const real *twte /*[V,C]*/, const real *twpe /*[maxT,C]*/,
                                      int B, int T, int C);
    void (*embedding_backward_tangent)(real *dtwte /*[V,C]*/, real *dtwpe /*[maxT,C]*/,
                                       const real *dtout /*[B,T,C]*/, const int32_t *tokens /*[B,T]*/,
                                       int B, int T, int C);

    /* ---- matmul with bias: out = inp @ W + b; out-side rows ldo ≥ OC apart --------- */
    void (*matmul_forward)(real *out /*[N,OC]*/, const real *inp /*[N,C]*/,
                           const real *w /*[C,OC] or [OC,C]*/, const real *bias /*[OC] or NULL*/,
                           int N, int C, int OC, int w_layout, int ldo);
    /* dinp = dout Wᵀ (written); dW += inpᵀ dout; dbias += Σ_n dout */
    void (*matmul_backward)(real *dinp /*[N,C] or NULL*/, real *dw /*like w, or NULL*/,
                            real *dbias /*[OC] or NULL*/, const real *dout /*[N,OC]*/,
                            const real *inp /*[N,C]*/, const real *w,
                            int N, int C, int OC, int w_layout, int ldo);
    /* tout = tinp @ W + inp @ tW + tb */
    void (*matmul_forward_tangent)(real *tout /*[N,OC]*/, const real *inp /*[N,C]*/,
                                   const real *tinp /*[N,C] or NULL*/, const real *w,
                                   const real *tw /*or NULL*/, const real *tbias /*[OC] or NULL*/,
                                   int N, int C, int OC, int w_layout, int ldo);
    /* dtinp = dtout @ Wᵀ + dout @ tWᵀ (written);  dtW += tinpᵀ dout + inpᵀ dtout;
     * dtb += Σ dtout */
    void (*matmul_backward_tangent)(real *dtinp /*[N,C] or NULL*/, real *dtw /*or NULL*/,
                                    real *dtbias /*[OC] or NULL*/,
                                    const real *dout /*[N,OC]*/, const real *dtout /*[N,OC]*/,
                                    const real *inp /*[N,C]*/, const real *tinp /*[N,C] or NULL*/,
                                    const real *w, const real *tw /*or NULL*/,
                                    int N, int C, int OC, int w_layout, int ldo);

    /* ---- layernorm (eps 1e-5): out = (inp - mean) * rstd * w + b ----------------- */
    void (*layernorm_forward)(real *out /*[N,C]*/, real *mean /*[N]*/, real *rstd /*[N]*/,
                              const real *inp /*[N,C]*/, const real *w /*[C]*/,
                              const real *b /*[C]*/, int N, int C);
    void (*layernorm_backward)(real *dinp /*[N,C]*/, real *dw /*[C]*/, real *db /*[C]*/,
                               const real *dout /*[N,C]*/, const real *inp /*[N,C]*/,
                               const real *w /*[C]*/, const real *mean /*[N]*/,
                               const real *rstd /*[N]*/, int N, int C);
    void (*layernorm_forward_tangent)(real *tout /*[N,C]*/, const real *inp /*[N,C]*/,
                                      const real *tinp /*[N,C] or NULL*/, const real *w /*[C]*/,
                                      const real *tw /*[C] or NULL*/, const real *tb /*[C] or NULL*/,
                                      const real *mean /*[N]*/, const real *rstd /*[N]*/,
                                      int N, int C);
    void (*layernorm_backward_tangent)(real *dtinp /*[N,C]*/, real *dtw /*[C]*/, real *dtb /*[C]*/,
                                       const real *dout /*[N,C]*/, const real *dtout /*[N,C]*/,
                                       const real *inp /*[N,C]*/, const real *tinp /*[N,C] or NULL*/,
                                       const real *w /*[C]*/, const real *tw /*[C] or NULL*/,
                                       const real *mean /*[N]*/, const real *rstd /*[N]*/,
                                       int N, int C);

    /* ---- multi-head attention from fused qkv (q | k | v along the last axis) -----
     * scale 1/sqrt(C/NH); causal masks keys j > t; valid_len masks keys j >= valid_len[b]
     * (rows of padded queries give zero output). att holds the softmax probabilities on
     * the CPU: it is the backend's state from the forward to the other faces, and tatt the
     * forward tangent's state to the backward tangent; attention_state_floats says how many
     * floats each needs (a backend may keep less than [B,NH,T,T]: the CUDA backend's flash
     * mode keeps per-row statistics and a copy of the output, lib/cuda/attention.cu).
     * Model code allocates att and tatt with that count, and the backend's answer must not
     * change between that allocation and the last face given the buffer (CUDA: the GEMM
     * precision and the flash switch stay as they were). For B' ≤ B and T' ≤ T the count is
     * at most that of (B, T), so the prefix of a buffer sized for the largest batch serves
     * every smaller one. */
    size_t (*attention_state_floats)(int B, int T, int C, int NH);
    void (*attention_forward)(real *out /*[B,T,C]*/, real *att /*[B,NH,T,T]*/,
                              const real *qkv /*[B,T,3C]*/, const int32_t *valid_len /*[B] or NULL*/,
                              int causal, int B, int T, int C, int NH);
    /* attention's backward faces write (=) all of dqkv / dtqkv, 0 at padded positions */
    void (*attention_backward)(real *dqkv /*[B,T,3C]*/, const real *dout /*[B,T,C]*/,
                               const real *qkv /*[B,T,3C]*/, const real *att /*[B,NH,T,T]*/,
                               const int32_t *valid_len, int causal, int B, int T, int C, int NH);
    void (*attention_forward_tangent)(real *tout /*[B,T,C]*/, real *tatt /*[B,NH,T,T]*/,
                                      const real *qkv /*[B,T,3C]*/, const real *tqkv /*[B,T,3C]*/,
                                      const real *att /*[B,NH,T,T]*/, const int32_t *valid_len,
                                      int causal, int B, int T, int C, int NH);
    void (*attention_backward_tangent)(real *dtqkv /*[B,T,3C]*/, const real *dout /*[B,T,C]*/,
                                       const real *dtout /*[B,T,C]*/, const real *qkv /*[B,T,3C]*/,
                                       const real *tqkv /*[B,T,3C]*/, const real *att /*[B,NH,T,T]*/,
                                       const real *tatt /*[B,NH,T,T]*/, const int32_t *valid_len,
                                       int causal, int B, int T, int C, int NH);

    /* ---- GELU, tanh approximation (the backward faces write dinp / dtinp) ------- */
    void (*gelu_forward)(real *out, const real *inp, size_t n);
    void (*gelu_backward)(real *dinp, const real *inp, const real *dout, size_t n);
    void (*gelu_forward_tangent)(real *tout, const real *inp, const real *tinp, size_t n);
    void (*gelu_backward_tangent)(real *dtinp, const real *inp, const real *tinp,
                                  const real *dout, const real *dtout, size_t n);

    /* ---- residual: out = a + b (linear: the tangent faces are the same maps) ---- */
    void (*residual_forward)(real *out, const real *a, const real *b, size_t n);
    void (*residual_backward)(real *da, real *db, const real *dout, size_t n);
    void (*residual_forward_tangent)(real *tout, const real *ta, const real *tb, size_t n);
    void (*residual_backward_tangent)(real *dta, real *dtb, const real *dtout, size_t n);

    /* ---- softmax cross-entropy, per-example mean over valid targets (rows ldv apart) -
     * losses[b] = (1/n_valid[b]) Σ_{t<n_valid[b]} -log softmax(logits[b,t])[targets[b,t]]
     * (targets at t >= n_valid[b] are ignored; n_valid[b] = 0 gives loss 0).
     * probs may alias logits (softmax in place), or be NULL (the losses only). Backward
     * takes the cotangent of each example's loss (dlosses[b] = w_b / B for the weighted
     * inner loss). */
    void (*crossentropy_forward)(real *losses /*[B]*/, real *probs /*[B,T,V] or NULL*/,
                                 const real *logits /*[B,T,V]*/, const int32_t *targets /*[B,T]*/,
                                 const int32_t *n_valid /*[B]*/, int B, int T, int V, int ldv);
    void (*crossentropy_backward)(real *dlogits /*[B,T,V]*/, const real *probs /*[B,T,V]*/,
                                  const int32_t *targets, const int32_t *n_valid,
                                  const real *dlosses /*[B]*/, int B, int T, int V, int ldv);
    /* The backward written over its input, for a caller that needs neither the
     * probabilities nor the logits afterwards (the exception to "backward accumulates"):
     * x holds the forward's probabilities (from_logits = 0) or the logits themselves
     * (from_logits = 1: the softmax is taken here, as the forward takes it), and becomes
     * dlogits = (dlosses[b]/n_b)(p − onehot(target)) on valid rows, 0 on the others: the
     * value crossentropy_backward adds to zeros. One pass over x instead of a zeroing
     * and an accumulating pass (and a forward's probabilities written and read again).
     * With from_logits, losses (when not NULL) gets what crossentropy_forward gives, bit
     * for bit: the forward and the backward in one op, for a caller that knows dlosses
     * before the losses (one read of each row for the softmax's statistics, one read and
     * write for the cotangent). losses must be NULL when x holds probabilities. */
    void (*crossentropy_backward_in_place)(real *x /*[B,T,V]*/, real *losses /*[B] or NULL*/,
                                           int from_logits,
                                           const int32_t *targets, const int32_t *n_valid,
                                           const real *dlosses /*[B]*/,
                                           int B, int T, int V, int ldv);
    /* tlosses[b] = (1/n_b) Σ_t (Σ_v p·tlogit − tlogit[target]) */
    void (*crossentropy_forward_tangent)(real *tlosses /*[B]*/, const real *probs /*[B,T,V]*/,
                                         const real *tlogits /*[B,T,V]*/, const int32_t *targets,
                                         const int32_t *n_valid, int B, int T, int V, int ldv);
    void (*crossentropy_backward_tangent)(real *dtlogits /*[B,T,V]*/, const real *probs /*[B,T,V]*/,
                                          const real *tlogits /*[B,T,V]*/, const int32_t *targets,
                                          const int32_t *n_valid, const real *dlosses /*[B]*/,
                                          const real *dtlosses /*[B] or NULL*/,
                                          int B, int T, int V, int ldv);
    /* The same written over tlogits, which nothing reads afterwards: x holds ṫl and becomes
     * dtlogits on valid rows, 0 on the others (what the op above adds to zeros). */
    void (*crossentropy_backward_tangent_in_place)(real *x /*[B,T,V]*/,
                                                   const real *probs /*[B,T,V]*/,
                                                   const int32_t *targets, const int32_t *n_valid,
                                                   const real *dlosses /*[B]*/,
                                                   const real *dtlosses /*[B] or NULL*/,
                                                   int B, int T, int V, int ldv);

    /* ---- rater-only ops (first order: the rater is differentiated once) --------- */
    void (*meanpool_forward)(real *out /*[B,C]*/, const real *inp /*[B,T,C]*/,
                             const int32_t *valid_len /*[B]*/, int B, int T, int C);
    void (*meanpool_backward)(real *dinp /*[B,T,C]*/, const real *dout /*[B,C]*/,
                              const int32_t *valid_len /*[B]*/, int B, int T, int C);
    void (*weights_forward)(real *w /*[B]*/, const real *z /*[B]*/,
                            const WeightNormConfig *cfg, int B);
    void (*weights_backward)(real *dz /*[B]*/, const real *dw /*[B]*/, const real *z /*[B]*/,
                             const WeightNormConfig *cfg, int B);
};

extern const Backend backend_cpu;

/* "cpu", "cuda" or "auto"; returns NULL with dr_seterr when the device is unavailable. */
const Backend *backend_select(const char *device);
/* The tools' choice: the --device option when given, else the config's
 * experiment.device; an error names the one that chose ("experiment.device cuda: …"). */
const Backend *backend_select_from(const char *option, const char *config_device);
/* experiment.precision on be: "fp32" anywhere; "bf16" (and "tf32") only on the CUDA
 * backend (bf16 GEMM inputs, fp32 accumulation, fp32 master weights, optimizer state and
 * meta-gradient). 0, or -1 + dr_seterr. */
int backend_set_precision(const Backend *be, const char *precision);

#endif
