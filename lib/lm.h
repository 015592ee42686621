/* lm.h — the inner language model M(θ) of DESIGN §3: a GPT-2 decoder, and the
 * transformer trunk it shares with the rater (rater.h).
 *
 *   tokens ─▶ wte[tok] + wpe[t] ─▶ n_layer × { x += attn(LN1(x)); x += mlp(LN2(x)) }
 *          ─▶ LN_f ─▶ logits = x · wteᵀ (tied) ─▶ ℓ_i = mean CE over example i's n_valid targets
 *
 * LN eps 1e-5; causal multi-head attention from a fused qkv projection [C,3C] + bias,
 * scale 1/sqrt(d_head); output projection [C,C] + bias; MLP C → d_ff, GELU (tanh), d_ff → C.
 * Every weight is used as x @ W (Hugging Face Conv1D layout), so a checkpoint is
 * GPT2LMHeadModel's state dict as is (checkpoint.h).
 *
 * Memory (DESIGN §5): parameters, gradients, tangents and optimizer moments are each ONE
 * flat buffer of lm_num_params() reals allocated by the backend (be->alloc), in the
 * same layout; LMParams is a struct of named views into one of them (llm.c's
 * point_parameters), and the ParamInfo table gives names, shapes and offsets for
 * save/load. The flat layout is the Hugging Face file order:
 *   wte, wpe, then per layer i: ln_1.{w,b}, attn.c_attn.{w,b}, attn.c_proj.{w,b},
 *   ln_2.{w,b}, mlp.c_fc.{w,b}, mlp.c_proj.{w,b}; then ln_f.{w,b}.
 *
 * Host vs backend memory: flat parameter/gradient/tangent buffers are backend memory.
 * Token arrays and per-example vectors ([B]: losses, dlosses, dloss_dir) are HOST
 * memory; the model copies them to/from its activations (a few bytes per example).
 *
 * Calls never allocate: activations are allocated once (lm_acts_new) for a maximal
 * batch B×T and any smaller B, T (length-trimmed batches) runs in a prefix of them.
 * This file never touches tensor memory itself: every numeric loop is a backend op.
 */
#ifndef DR_LM_H
#define DR_LM_H

#include <stddef.h>
#include <stdint.h>
#include "backend.h"
#include "config.h"
#include "real.h"

#define DR_MAX_LAYERS 48   /* GPT-2 XL; lm_config_check refuses more */

/* Shape of a transformer (the LM's and the rater's: same fields). */
typedef struct {
    int n_layer, d_model, n_head, d_ff;
    int vocab;           /* V */
    int ctx;             /* max positions: rows of wpe */
    double init_std;     /* 0.02 */
    int checkpointing;   /* activation recomputation: keep only each block's output and
                          * one block of internals; the backward rebuilds block l from
                          * its input first (one more trunk forward, and its tangent in a
                          * forward-over-reverse pass); results are bit-identical.
                          * −1 (lm.checkpointing: auto) counts as on until
                          * lm_resolve_checkpointing decides (dr-train) */
    int head_chunk;      /* > 0: the head's [rows, V] logits buffers hold head_chunk
                          * examples, not the batch (lm.head_chunk; see lm.c) */
} LMConfig;

/* From the config file's section (config.h) and the vocabulary size of the shards. */
LMConfig lm_config_from_shape(const ModelShape *shape, int vocab);
/* A checkpoint holds a model's shape; how it runs (lm.checkpointing, lm.head_chunk) is
 * the config's: copies those two from the config's section into c (a loaded model's). */
void lm_config_run_as(LMConfig *c, const ModelShape *shape);
/* -1 + dr_seterr("what is wrong") on a shape the model cannot run. */
int lm_config_check(const LMConfig *cfg);

/* ---- parameter layout --------------------------------------------------------- */

/* Named views into a flat buffer (parameters, gradients, tangents or moments alike).
 * Per-layer arrays are indexed by layer l < n_layer. Shapes: C = d_model, F = d_ff. */
typedef struct {
    real *wte;                          /* [V, C]   token embedding (tied output)  */
    real *wpe;                          /* [ctx, C] position embedding             */
    real *ln1_w[DR_MAX_LAYERS];         /* [C]      ln_1.weight                    */
    real *ln1_b[DR_MAX_LAYERS];         /* [C]      ln_1.bias                      */
    real *qkv_w[DR_MAX_LAYERS];         /* [C, 3C]  attn.c_attn.weight (q | k | v) */
    real *qkv_b[DR_MAX_LAYERS];         /* [3C]     attn.c_attn.bias               */
    real *attn_proj_w[DR_MAX_LAYERS];   /* [C, C]   attn.c_proj.weight             */
    real *attn_proj_b[DR_MAX_LAYERS];   /* [C]      attn.c_proj.bias               */
    real *ln2_w[DR_MAX_LAYERS];         /* [C]      ln_2.weight                    */
    real *ln2_b[DR_MAX_LAYERS];         /* [C]      ln_2.bias                      */
    real *fc_w[DR_MAX_LAYERS];          /* [C, F]   mlp.c_fc.weight                */
    real *fc_b[DR_MAX_LAYERS];          /* [F]      mlp.c_fc.bias                  */
    real *fc_proj_w[DR_MAX_LAYERS];     /* [F, C]   mlp.c_proj.weight              */
    real *fc_proj_b[DR_MAX_LAYERS];     /* [C]      mlp.c_proj.bias                */
    real *lnf_w;                        /* [C]      ln_f.weight                    */
    real *lnf_b;                        /* [C]      ln_f.bias                      */
} LMParams;

/* How a tensor is initialized (DESIGN §3). */
enum param_init { INIT_NORMAL = 0, INIT_ZEROS = 1, INIT_ONES = 2 };

/* One row of the tensor table: the checkpoint name, shape and place in the flat buffer. */
typedef struct {
    char name[96];        /* "transformer.h.3.attn.c_attn.weight" */
    int ndim;             /* 1 or 2 */
    int64_t shape[2];
    size_t offset;        /* in elements from the start of the flat buffer */
    size_t numel;
    int init;             /* enum param_init */
    double std;           /* INIT_NORMAL: standard deviation */
} ParamInfo;

size_t lm_num_params(const LMConfig *cfg);       /* total reals in the flat buffer */
int lm_num_tensors(const LMConfig *cfg);         /* 2 + 12·n_layer + 2 */
/* Fills table[lm_num_tensors(cfg)] in flat-buffer (= file) order. */
void lm_param_table(const LMConfig *cfg, ParamInfo *table);
/* Points every view of *views into flat (flat may be NULL: all views NULL). */
void lm_point_params(LMParams *views, real *flat, const LMConfig *cfg);

/* Init of DESIGN §3 into backend memory `params`: normal(0, init_std), biases 0,
 * LN weights 1, attn.c_proj/mlp.c_proj weights normal(0, init_std/sqrt(2·n_layer)).
 * Deterministic in `seed` alone: the same values in float and double builds and for
 * any thread count (a counter-based generator, drawn in double on the host). */
void lm_init_params(const Backend *be, const LMConfig *cfg, real *params, uint64_t seed);

/* Counter-based normal(0,1) draw number `index` of stream `seed` (splitmix64 +
 * Box–Muller); exposed for tests and for any other deterministic init. */
double dr_normal(uint64_t seed, uint64_t index);

/* ---- activations ---------------------------------------------------------------
 * Everything the backward and the tangent passes read, for one batch. The same struct
 * holds forward activations (`fwd`), their tangents (`tan`), the cotangents of the
 * backward pass (`bwd`) and the tangents of those (`tbwd`): one field list, four uses.
 * Fields not needed by a use are NULL (e.g. tan.ln1_mean: LN statistics are primal). */
typedef struct {
    real *encoded;                      /* [B,T,C]  token + position embedding       */
    real *ln1[DR_MAX_LAYERS];           /* [B,T,C]  LN1 output                        */
    real *ln1_mean[DR_MAX_LAYERS];      /* [B,T]                                      */
    real *ln1_rstd[DR_MAX_LAYERS];      /* [B,T]                                      */
    real *qkv[DR_MAX_LAYERS];           /* [B,T,3C]                                   */
    real *att[DR_MAX_LAYERS];           /* attention's state: the softmax probabilities
                                         * [B,NH,T,T] on the CPU, be->attention_state_floats */
    real *atty[DR_MAX_LAYERS];          /* [B,T,C]  attention output before c_proj    */
    real *res2[DR_MAX_LAYERS];          /* [B,T,C]  residual after the attention half */
    real *ln2[DR_MAX_LAYERS];           /* [B,T,C]                                    */
    real *ln2_mean[DR_MAX_LAYERS];      /* [B,T]                                      */
    real *ln2_rstd[DR_MAX_LAYERS];      /* [B,T]                                      */
    real *fch[DR_MAX_LAYERS];           /* [B,T,F]  c_fc output                       */
    real *fch_gelu[DR_MAX_LAYERS];      /* [B,T,F]  after GELU                        */
    real *res3[DR_MAX_LAYERS];          /* [B,T,C]  block output                      */
    real *branch;                       /* [B,T,C]  scratch: c_proj output before the residual add */
    real *lnf;                          /* [B,T,C]  final LN output                   */
    real *lnf_mean, *lnf_rstd;          /* [B,T]                                      */
    real *logits;                       /* [B,T,Vp] (fwd: softmax probs, in place)    */
    real *losses;                       /* [B]                                        */
    int block_held;                     /* with lm.checkpointing, whose internals the
                                         * shared set holds: a block, or -1 for none */
} LMTensors;

/* Cotangent buffers of the backward pass: one layer's worth, reused layer by layer
 * (backward ops accumulate, so each is zeroed right before use). */
typedef struct {
    real *res;                          /* [B,T,C]  d of the residual stream (in place) */
    real *ln;                           /* [B,T,C]  d of an LN output                 */
    real *qkv;                          /* [B,T,3C]                                   */
    real *atty;                         /* [B,T,C]                                    */
    real *fch;                          /* [B,T,F]                                    */
    real *fch_gelu;                     /* [B,T,F]                                    */
    real *lnf;                          /* [B,T,C]                                    */
    real *logits;                       /* [B,T,Vp] LMActs: only for a tape (lm.c)    */
    real *losses;                       /* [B]      dlosses as given                   */
} LMGrads;

typedef struct {
    LMConfig cfg;
    int B, T;                 /* allocated maximum */
    int with_tangents;
    int B_cur, T_cur;         /* the batch of the last forward */
    int head_held;            /* first example of the head chunk the logits hold (-1: none) */
    int32_t *inputs, *targets, *n_valid;    /* backend copies of the last batch */
    LMTensors fwd, tan;       /* tan: only with_tangents */
    LMGrads bwd, tbwd;        /* tbwd: only with_tangents */
    size_t bytes;             /* backend memory held */
} LMActs;

/* Allocates activations for up to B examples of T ≤ cfg->ctx positions; tangent
 * buffers (for lm_forward_over_reverse) only when with_tangents. */
LMActs *lm_acts_new(const Backend *be, const LMConfig *cfg, int B, int T, int with_tangents);
void lm_acts_free(const Backend *be, LMActs *acts);
size_t lm_acts_bytes(const LMActs *acts);   /* backend memory held, for logs */
/* The backend memory lm_acts_new(be, cfg, B, T, with_tangents) would hold, counted
 * without allocating. */
size_t lm_acts_bytes_needed(const Backend *be, const LMConfig *cfg, int B, int T, int with_tangents);
/* lm.checkpointing: auto (cfg->checkpointing −1) for training: 0 when the activations of
 * B × T without recomputation plus other_bytes (what else the caller will allocate) fit
 * in 80% of what the backend has available now (be->mem_available), else 1; sets
 * cfg->checkpointing and returns it, with the bytes compared in *need and *avail (both 0
 * when cfg said 0 or 1, which stays). */
int lm_resolve_checkpointing(const Backend *be, LMConfig *cfg, int B, int T, double other_bytes,
                             double *need, double *avail);

/* ---- passes ------------------------------------------------------------------- */

/* losses[b] = ℓ_b = mean over t < n_valid[b] of −log p(targets[b,t] | inputs[b,≤t]).
 * inputs, targets: [B,T] host; n_valid: [B] host (0 ≤ n_valid ≤ T); losses: [B] host
 * out (may be NULL). Padding inputs (t ≥ n_valid) must still be valid ids (e.g. 0): they
 * are embedded, but no valid position attends to them (causal) and their targets are
 * never read. Keeps what lm_backward needs. */
void lm_forward(const Backend *be, const LMConfig *cfg, const real *params, LMActs *acts,
                const int32_t *inputs, const int32_t *targets, const int32_t *n_valid,
                int B, int T, real *losses);

/* grads += ∇θ Σ_b dlosses[b]·ℓ_b, for the batch of the last lm_forward (same params).
 * dlosses: [B] host, e.g. w_b/B for the weighted inner loss L = (1/B) Σ w_b ℓ_b. */
void lm_backward(const Backend *be, const LMConfig *cfg, const real *params, LMActs *acts,
                 const real *dlosses, real *grads);

/* lm_forward then lm_backward, for a caller that knows dlosses before the losses (a
 * training step): losses[b] = ℓ_b ([B] host out, may be NULL), grads += ∇θ Σ_b
 * dlosses[b]·ℓ_b, the same bits as the two calls. Each head chunk's backward runs right
 * after its logits, with the losses taken on the way (crossentropy_backward_in_place from
 * the logits): no chunk's logits are computed twice and no probabilities are written,
 * three passes over the logits where the two calls take five (with the head in chunks:
 * four, and x·Eᵀ again for every chunk but the last). Leaves acts as the two calls do. */
void lm_forward_backward(const Backend *be, const LMConfig *cfg, const real *params,
                         LMActs *acts, const int32_t *inputs, const int32_t *targets,
                         const int32_t *n_valid, int B, int T, const real *dlosses,
                         real *losses, real *grads);

/* One forward-over-reverse pass (DESIGN §4.2 step 2) at θ = params along the parameter
 * tangent u, with the loss weights dlosses held fixed. L(θ) = Σ_b dlosses[b]·ℓ_b(θ):
 *   losses[b]     = ℓ_b                        ([B] host out, may be NULL)
 *   grads        += ∇θ L                       (may be NULL: not accumulated)
 *   hvp          += ∇²θ L · u                  (H·u; may be NULL: no backward tangent)
 *   dloss_dir[b]  = ⟨∇θ ℓ_b, u⟩                ([B] host out, may be NULL)
 * One forward carrying tangents, one backward carrying tangents. acts must have been
 * made with_tangents. u, grads and hvp are backend flat buffers like params. With grads
 * and hvp both NULL only the forward and its tangent run (a first-order meta-gradient
 * needs just ℓ_b and d_b): 3 of the 9 GEMM passes of the full pass. */
void lm_forward_over_reverse(const Backend *be, const LMConfig *cfg, const real *params,
                             const real *u, LMActs *acts,
                             const int32_t *inputs, const int32_t *targets,
                             const int32_t *n_valid, int B, int T, const real *dlosses,
                             real *losses, real *grads, real *hvp, real *dloss_dir);

/* ---- the activation tape ---------------------------------------------------------
 * A forward-over-reverse pass at (θ, batch, dlosses) starts by recomputing the primal
 * forward and backward that the training step at the same (θ, batch, dlosses) already
 * ran: 2 of its 8 GEMM passes (without g), and their attention, softmax and LN work.
 * A tape keeps that primal pass instead: lm_backward_record is lm_backward that also
 * leaves the forward activations (handed over by pointer swaps, not copied) and every
 * cotangent the backward's tangent reads (per layer) in the tape; and
 * lm_forward_over_reverse_replay then runs only the tangent halves. The results are
 * bit-identical to lm_forward_over_reverse's. One tape holds one batch: about the
 * forward's activations plus 8C + 2F reals per token and layer (lm_tape_bytes).
 * Not available with lm.checkpointing or lm.head_chunk (they exist to not hold this). */
typedef struct {                 /* layer l's primal cotangents, as the backward left them */
    real *res3, *res2;           /* [B,T,C]  d(res3[l]), d(res2[l])  */
    real *fch_gelu, *fch;        /* [B,T,F]                          */
    real *ln2, *ln1;             /* [B,T,C]  d of the LN outputs      */
    real *atty;                  /* [B,T,C]                          */
    real *qkv;                   /* [B,T,3C]                         */
} LMTapeLayer;

typedef struct {
    int B, T, n_layer;           /* allocated */
    int B_cur, T_cur;            /* the recorded batch; B_cur = 0: empty */
    int head_held;
    LMTensors fwd;               /* its forward activations */
    int32_t *inputs, *targets, *n_valid;   /* its batch (backend) */
    real *lnf;                   /* [B,T,C]  d of the LN_f output */
    LMTapeLayer layer[DR_MAX_LAYERS];
    real *dlosses;               /* [B] host: the dlosses it was recorded with */
    size_t bytes;
} LMTape;

int lm_tape_supported(const LMConfig *cfg);
LMTape *lm_tape_new(const Backend *be, const LMConfig *cfg, int B, int T);
void lm_tape_free(const Backend *be, LMTape *tape);
size_t lm_tape_bytes(const LMTape *tape);
void lm_tape_clear(LMTape *tape);              /* forget the recorded pass */
/* lm_backward, recording the pass into tape (which must fit acts' B×T; acts made
 * with_tangents). Afterwards acts hold no forward (the next lm_backward needs an lm_forward
 * first). */
void lm_backward_record(const Backend *be, const LMConfig *cfg, const real *params, LMActs *acts,
                        const real *dlosses, real *grads, LMTape *tape);
/* lm_forward_over_reverse(…, losses = NULL, grads = NULL, hvp, dloss_dir) for the pass the
 * tape recorded, which must have been at these params, on the same batch, with these
 * dlosses (checked: the dlosses). Leaves the tape as it was. */
void lm_forward_over_reverse_replay(const Backend *be, const LMConfig *cfg, const real *params,
                                    const real *u, LMActs *acts, LMTape *tape,
                                    const real *dlosses, real *hvp, real *dloss_dir);

/* ---- the trunk, shared with rater.c ---------------------------------------------
 * embedding → n_layer blocks → final LN, output in acts->fwd.lnf. Attention is causal
 * or not, with keys j ≥ valid_len[b] masked (valid_len: backend [B], or NULL). The
 * backward takes the cotangent of the LN_f output in acts->bwd.lnf (complete, =) and
 * accumulates the parameter gradients into the views G. tokens: backend [B,T]. */
void trunk_forward(const Backend *be, const LMConfig *cfg, const LMParams *P, LMTensors *F,
                   const int32_t *tokens, const int32_t *valid_len, int causal, int B, int T);
void trunk_backward(const Backend *be, const LMConfig *cfg, const LMParams *P,
                    const LMParams *G, LMTensors *F, LMGrads *D,
                    const int32_t *tokens, const int32_t *valid_len, int causal, int B, int T);
/* The trunk's tensors under `prefix` ("transformer." / "rater.") in file order: fills
 * table (if non-NULL), points views into flat (if both non-NULL), returns the number of
 * reals and writes the number of tensors. */
size_t trunk_layout(const LMConfig *cfg, const char *prefix, ParamInfo *table,
                    LMParams *views, real *flat, int *n_tensors);
/* Writes the init the table describes into backend memory params (total reals). */
void params_init_from_table(const Backend *be, const ParamInfo *table, int n_tensors,
                            size_t total, real *params, uint64_t seed);
/* Allocation of the trunk's buffers (used by lm_acts_new and rater_acts_new). */
void trunk_alloc(const Backend *be, const LMConfig *cfg, LMTensors *F, int B, int T,
                 int tangent, size_t *bytes);
void trunk_grads_alloc(const Backend *be, const LMConfig *cfg, LMGrads *D, int B, int T,
                       size_t *bytes);
void trunk_free(const Backend *be, LMTensors *F, int n_layer);
void trunk_grads_free(const Backend *be, LMGrads *D);

#endif
