/* lm.c — the GPT-2 inner LM (DESIGN §3) and the transformer trunk the rater shares:
 * parameter layout, deterministic init, activations, forward, backward and the
 * forward-over-reverse pass (gradient, H·u and ⟨∇ℓ_i, u⟩ in one forward + one backward).
 *
 * Read it top to bottom like llm.c's train_gpt2.c: layout, init, activations, the
 * forward, the tangent forward, the backward (with the tangent of every op right after
 * the op, when asked), then the LM entry points. Every numeric loop is a backend op;
 * this file only decides which op runs on which buffer, and never allocates after
 * lm_acts_new.
 */
#include "lm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"

/* ================================================================================
 * Configuration
 * ================================================================================ */

void lm_config_run_as(LMConfig *c, const ModelShape *shape) {
    c->checkpointing = shape->checkpointing;
    c->head_chunk = shape->head_chunk;
}

LMConfig lm_config_from_shape(const ModelShape *shape, int vocab) {
    LMConfig c = {
        .n_layer = shape->n_layer, .d_model = shape->d_model, .n_head = shape->n_head,
        .d_ff = shape->d_ff, .vocab = vocab, .ctx = shape->ctx, .init_std = shape->init_std,
    };
    lm_config_run_as(&c, shape);   /* the run settings: one list of them */
    return c;
}

int lm_config_check(const LMConfig *c) {
    if (c->n_layer < 1 || c->n_layer > DR_MAX_LAYERS)
        return dr_seterr("n_layer = %d: must be in [1, %d]", c->n_layer, DR_MAX_LAYERS);
    if (c->d_model < 1 || c->n_head < 1 || c->d_model % c->n_head != 0)
        return dr_seterr("d_model = %d must be a positive multiple of n_head = %d",
                         c->d_model, c->n_head);
    if (c->d_ff < 1) return dr_seterr("d_ff = %d: must be positive", c->d_ff);
    if (c->vocab < 1) return dr_seterr("vocab = %d: must be positive", c->vocab);
    if (c->ctx < 1) return dr_seterr("ctx = %d: must be positive", c->ctx);
    if (!(c->init_std > 0) || !isfinite(c->init_std))
        return dr_seterr("init_std = %g: must be positive", c->init_std);
    return 0;
}

/* ================================================================================
 * Parameter layout: one walk over the tensors in file order fills the table and/or
 * points the views (llm.c's fill_in_parameter_sizes + point_parameters in one).
 * ================================================================================ */

typedef struct {
    ParamInfo *table;   /* or NULL */
    int n;              /* tensors so far */
    size_t total;       /* reals so far */
    real *flat;         /* or NULL */
} Walk;

/* Adds one tensor; returns its view (NULL when walking without a buffer). */
static real *walk_add(Walk *w, const char *prefix, const char *name, int ndim,
                      int64_t d0, int64_t d1, int init, double std) {
    size_t numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    if (w->table) {
        ParamInfo *p = &w->table[w->n];
        memset(p, 0, sizeof *p);
        int len = snprintf(p->name, sizeof p->name, "%s%s", prefix, name);
        CHECK(len > 0 && (size_t)len < sizeof p->name, "tensor name too long: %s%s", prefix, name);
        p->ndim = ndim;
        p->shape[0] = d0;
        p->shape[1] = ndim == 2 ? d1 : 0;
        p->offset = w->total;
        p->numel = numel;
        p->init = init;
        p->std = std;
    }
    real *view = w->flat ? w->flat + w->total : NULL;
    w->n++;
    w->total += numel;
    return view;
}

/* The trunk's tensors under `prefix` ("transformer." or "rater."), views into P. */
static void walk_trunk(Walk *w, const LMConfig *cfg, const char *prefix, LMParams *P) {
    LMParams dummy;
    if (!P) P = &dummy;
    const int64_t V = cfg->vocab, C = cfg->d_model, F = cfg->d_ff, L = cfg->n_layer;
    const double std = cfg->init_std, std_res = cfg->init_std / sqrt(2.0 * (double)L);
    char name[64];
    P->wte = walk_add(w, prefix, "wte.weight", 2, V, C, INIT_NORMAL, std);
    P->wpe = walk_add(w, prefix, "wpe.weight", 2, cfg->ctx, C, INIT_NORMAL, std);
    for (int l = 0; l < L; l++) {
#define T_(field, suffix, ndim, d0, d1, init, sd)                      \
        snprintf(name, sizeof name, "h.%d.%s", l, suffix);             \
        P->field[l] = walk_add(w, prefix, name, ndim, d0, d1, init, sd)
        T_(ln1_w,       "ln_1.weight",        1, C, 0,     INIT_ONES,   0);
        T_(ln1_b,       "ln_1.bias",          1, C, 0,     INIT_ZEROS,  0);
        T_(qkv_w,       "attn.c_attn.weight", 2, C, 3 * C, INIT_NORMAL, std);
        T_(qkv_b,       "attn.c_attn.bias",   1, 3 * C, 0, INIT_ZEROS,  0);
        T_(attn_proj_w, "attn.c_proj.weight", 2, C, C,     INIT_NORMAL, std_res);
        T_(attn_proj_b, "attn.c_proj.bias",   1, C, 0,     INIT_ZEROS,  0);
        T_(ln2_w,       "ln_2.weight",        1, C, 0,     INIT_ONES,   0);
        T_(ln2_b,       "ln_2.bias",          1, C, 0,     INIT_ZEROS,  0);
        T_(fc_w,        "mlp.c_fc.weight",    2, C, F,     INIT_NORMAL, std);
        T_(fc_b,        "mlp.c_fc.bias",      1, F, 0,     INIT_ZEROS,  0);
        T_(fc_proj_w,   "mlp.c_proj.weight",  2, F, C,     INIT_NORMAL, std_res);
        T_(fc_proj_b,   "mlp.c_proj.bias",    1, C, 0,     INIT_ZEROS,  0);
#undef T_
    }
    for (int l = (int)L; l < DR_MAX_LAYERS; l++) {
        P->ln1_w[l] = P->ln1_b[l] = P->qkv_w[l] = P->qkv_b[l] = NULL;
        P->attn_proj_w[l] = P->attn_proj_b[l] = P->ln2_w[l] = P->ln2_b[l] = NULL;
        P->fc_w[l] = P->fc_b[l] = P->fc_proj_w[l] = P->fc_proj_b[l] = NULL;
    }
    P->lnf_w = walk_add(w, prefix, "ln_f.weight", 1, C, 0, INIT_ONES, 0);
    P->lnf_b = walk_add(w, prefix, "ln_f.bias", 1, C, 0, INIT_ZEROS, 0);
}

size_t trunk_layout(const LMConfig *cfg, const char *prefix, ParamInfo *table,
                    LMParams *views, real *flat, int *n_tensors) {
    Walk w = { .table = table, .flat = flat };
    walk_trunk(&w, cfg, prefix, views);
    if (n_tensors) *n_tensors = w.n;
    return w.total;
}

size_t lm_num_params(const LMConfig *cfg) {
    return trunk_layout(cfg, "transformer.", NULL, NULL, NULL, NULL);
}
int lm_num_tensors(const LMConfig *cfg) { return 2 + 12 * cfg->n_layer + 2; }
void lm_param_table(const LMConfig *cfg, ParamInfo *table) {
    trunk_layout(cfg, "transformer.", table, NULL, NULL, NULL);
}
void lm_point_params(LMParams *views, real *flat, const LMConfig *cfg) {
    trunk_layout(cfg, "transformer.", NULL, views, flat, NULL);
}

/* ================================================================================
 * Deterministic init: draw k of stream `seed` is a pure function of (seed, k), made in
 * double on the host, so float and double builds and every thread count agree.
 * ================================================================================ */

static uint64_t splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in (0, 1): 53 random bits, offset by half a step so log() never sees 0 */
static double uniform01(uint64_t seed, uint64_t k) {
    uint64_t x = splitmix64(splitmix64(seed) ^ (k * 0xd1b54a32d192ed03ULL));
    return ((double)(x >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double dr_normal(uint64_t seed, uint64_t index) {
    double u1 = uniform01(seed, 2 * index), u2 = uniform01(seed, 2 * index + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void params_init_from_table(const Backend *be, const ParamInfo *table, int n_tensors,
                            size_t total, real *params, uint64_t seed) {
    real *host = xmalloc(total * sizeof(real));
    for (int i = 0; i < n_tensors; i++) {
        const ParamInfo *p = &table[i];
        real *x = host + p->offset;
        for (size_t j = 0; j < p->numel; j++) {
            switch (p->init) {
            case INIT_ONES:  x[j] = 1; break;
            case INIT_ZEROS: x[j] = 0; break;
            default:         x[j] = (real)(p->std * dr_normal(seed, p->offset + j)); break;
            }
        }
    }
    be->to_device(params, host, total * sizeof(real));
    free(host);
}

void lm_init_params(const Backend *be, const LMConfig *cfg, real *params, uint64_t seed) {
    int n = lm_num_tensors(cfg);
    ParamInfo *table = xmalloc((size_t)n * sizeof *table);
    lm_param_table(cfg, table);
    params_init_from_table(be, table, n, lm_num_params(cfg), params, seed);
    free(table);
}

/* ================================================================================
 * Activations: allocated once for the largest batch (B, T); smaller batches use the
 * prefix of every buffer (all are contiguous [B,T,…] or [B,NH,T,T]).
 * ================================================================================ */

static real *balloc(const Backend *be, size_t n, size_t *bytes) {
    *bytes += n * sizeof(real);
    return be->alloc(n * sizeof(real));
}

void trunk_alloc(const Backend *be, const LMConfig *cfg, LMTensors *F, int B, int T,
                 int tangent, size_t *bytes) {
    memset(F, 0, sizeof *F);
    F->block_held = -1;
    const size_t BT = (size_t)B * T, C = cfg->d_model, FF = cfg->d_ff;
    /* attention's state (att [B,NH,T,T] on the CPU; less where the backend keeps less) */
    const size_t att = be->attention_state_floats(B, T, (int)C, cfg->n_head);
    F->encoded = balloc(be, BT * C, bytes);
    for (int l = 0; l < cfg->n_layer; l++) {
        F->res3[l] = balloc(be, BT * C, bytes);
        if (cfg->checkpointing && l > 0) {   /* one block of internals, shared */
            F->ln1[l] = F->ln1[0]; F->qkv[l] = F->qkv[0]; F->att[l] = F->att[0];
            F->atty[l] = F->atty[0]; F->res2[l] = F->res2[0]; F->ln2[l] = F->ln2[0];
            F->fch[l] = F->fch[0]; F->fch_gelu[l] = F->fch_gelu[0];
            F->ln1_mean[l] = F->ln1_mean[0]; F->ln1_rstd[l] = F->ln1_rstd[0];
            F->ln2_mean[l] = F->ln2_mean[0]; F->ln2_rstd[l] = F->ln2_rstd[0];
            continue;
        }
        F->ln1[l] = balloc(be, BT * C, bytes);
        F->qkv[l] = balloc(be, BT * 3 * C, bytes);
        F->att[l] = balloc(be, att, bytes);
        F->atty[l] = balloc(be, BT * C, bytes);
        F->res2[l] = balloc(be, BT * C, bytes);
        F->ln2[l] = balloc(be, BT * C, bytes);
        F->fch[l] = balloc(be, BT * FF, bytes);
        F->fch_gelu[l] = balloc(be, BT * FF, bytes);
        if (!tangent) {   /* LN statistics are primal only */
            F->ln1_mean[l] = balloc(be, BT, bytes);
            F->ln1_rstd[l] = balloc(be, BT, bytes);
            F->ln2_mean[l] = balloc(be, BT, bytes);
            F->ln2_rstd[l] = balloc(be, BT, bytes);
        }
    }
    F->branch = balloc(be, BT * C, bytes);
    F->lnf = balloc(be, BT * C, bytes);
    if (!tangent) {
        F->lnf_mean = balloc(be, BT, bytes);
        F->lnf_rstd = balloc(be, BT, bytes);
    }
}

void trunk_grads_alloc(const Backend *be, const LMConfig *cfg, LMGrads *D, int B, int T,
                       size_t *bytes) {
    memset(D, 0, sizeof *D);
    const size_t BT = (size_t)B * T, C = cfg->d_model, FF = cfg->d_ff;
    D->res = balloc(be, BT * C, bytes);
    D->ln = balloc(be, BT * C, bytes);
    D->qkv = balloc(be, BT * 3 * C, bytes);
    D->atty = balloc(be, BT * C, bytes);
    D->fch = balloc(be, BT * FF, bytes);
    D->fch_gelu = balloc(be, BT * FF, bytes);
    D->lnf = balloc(be, BT * C, bytes);
}

static void bfree(const Backend *be, real **p) {
    if (*p) be->free(*p);
    *p = NULL;
}

void trunk_free(const Backend *be, LMTensors *F, int n_layer) {
    bfree(be, &F->encoded);
    for (int l = n_layer - 1; l >= 0; l--) {   /* layers > 0 may share layer 0's internals */
        bfree(be, &F->res3[l]);
        if (l > 0 && F->ln1[l] == F->ln1[0]) continue;
        bfree(be, &F->ln1[l]); bfree(be, &F->ln1_mean[l]); bfree(be, &F->ln1_rstd[l]);
        bfree(be, &F->qkv[l]); bfree(be, &F->att[l]); bfree(be, &F->atty[l]);
        bfree(be, &F->res2[l]);
        bfree(be, &F->ln2[l]); bfree(be, &F->ln2_mean[l]); bfree(be, &F->ln2_rstd[l]);
        bfree(be, &F->fch[l]); bfree(be, &F->fch_gelu[l]);
    }
    bfree(be, &F->branch);
    bfree(be, &F->lnf); bfree(be, &F->lnf_mean); bfree(be, &F->lnf_rstd);
    bfree(be, &F->logits); bfree(be, &F->losses);
}

void trunk_grads_free(const Backend *be, LMGrads *D) {
    bfree(be, &D->res); bfree(be, &D->ln); bfree(be, &D->qkv); bfree(be, &D->atty);
    bfree(be, &D->fch); bfree(be, &D->fch_gelu); bfree(be, &D->lnf);
    bfree(be, &D->logits); bfree(be, &D->losses);
}

/* examples per head chunk (lm.head_chunk; the whole batch when 0 or ≥ B) */
static int head_chunk_examples(const LMConfig *cfg, int B) {
    return cfg->head_chunk > 0 && cfg->head_chunk < B ? cfg->head_chunk : B;
}

/* the row length of the logits buffers (and their tangent's and cotangent's): V rounded
 * up to the backend's logits_row_multiple (backend.h), the head's ldo / ldv */
static int logits_ld(const Backend *be, const LMConfig *cfg) {
    const int m = be->logits_row_multiple > 1 ? be->logits_row_multiple : 1;
    return (cfg->vocab + m - 1) / m * m;
}

LMActs *lm_acts_new(const Backend *be, const LMConfig *cfg, int B, int T, int with_tangents) {
    CHECK(lm_config_check(cfg) == 0, "lm_acts_new: %s", dr_lasterr());
    CHECK(B >= 1 && T >= 1 && T <= cfg->ctx, "lm_acts_new: B = %d, T = %d (ctx %d)", B, T, cfg->ctx);
    LMActs *a = xcalloc(1, sizeof *a);
    a->cfg = *cfg;
    a->B = B;
    a->T = T;
    a->with_tangents = with_tangents;
    size_t bytes = 0;
    const size_t BT = (size_t)B * T, Vp = logits_ld(be, cfg);
    const size_t HR = (size_t)head_chunk_examples(cfg, B) * T;   /* rows of a logits buffer */
    a->head_held = -1;
    a->inputs = be->alloc(BT * sizeof(int32_t));
    a->targets = be->alloc(BT * sizeof(int32_t));
    a->n_valid = be->alloc((size_t)B * sizeof(int32_t));
    bytes += (2 * BT + B) * sizeof(int32_t);

    trunk_alloc(be, cfg, &a->fwd, B, T, 0, &bytes);
    a->fwd.logits = balloc(be, HR * Vp, &bytes);
    a->fwd.losses = balloc(be, B, &bytes);
    trunk_grads_alloc(be, cfg, &a->bwd, B, T, &bytes);
    if (with_tangents && lm_tape_supported(cfg))   /* a tape's cotangent (head_chunk_backward) */
        a->bwd.logits = balloc(be, HR * Vp, &bytes);
    a->bwd.losses = balloc(be, B, &bytes);
    if (with_tangents) {
        trunk_alloc(be, cfg, &a->tan, B, T, 1, &bytes);
        a->tan.logits = balloc(be, HR * Vp, &bytes);
        a->tan.losses = balloc(be, B, &bytes);
        trunk_grads_alloc(be, cfg, &a->tbwd, B, T, &bytes);   /* its logits: over tan.logits */
    }
    a->bytes = bytes;
    return a;
}

size_t lm_acts_bytes(const LMActs *a) { return a->bytes; }

/* A backend that only counts: its blocks are one PROT_NONE page (lm_acts_new never touches
 * what it allocates; anything that did would fault), freed by nothing. */
static void *count_page;
static void *count_alloc(size_t bytes) { (void)bytes; return count_page; }
static void count_free(void *p) { (void)p; }

size_t lm_acts_bytes_needed(const Backend *be, const LMConfig *cfg, int B, int T, int with_tangents) {
    if (!count_page) {
        count_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(count_page != MAP_FAILED, "lm_acts_bytes_needed: mmap failed");
    }
    Backend counting = *be;   /* the backend's own answers (e.g. how big attention's state is) */
    counting.alloc = count_alloc;
    counting.free = count_free;
    LMActs *a = lm_acts_new(&counting, cfg, B, T, with_tangents);
    const size_t bytes = a->bytes;
    lm_acts_free(&counting, a);
    return bytes;
}

int lm_resolve_checkpointing(const Backend *be, LMConfig *cfg, int B, int T, double other_bytes,
                             double *need, double *avail) {
    *need = *avail = 0;
    if (cfg->checkpointing >= 0) return cfg->checkpointing;
    LMConfig whole = *cfg;
    whole.checkpointing = 0;
    *need = (double)lm_acts_bytes_needed(be, &whole, B, T, 0) + other_bytes;
    *avail = be->mem_available ? be->mem_available() : 0;
    cfg->checkpointing = !(*avail > 0 && *need <= 0.8 * *avail);
    return cfg->checkpointing;
}

void lm_acts_free(const Backend *be, LMActs *a) {
    if (!a) return;
    be->free(a->inputs);
    be->free(a->targets);
    be->free(a->n_valid);
    trunk_free(be, &a->fwd, a->cfg.n_layer);
    trunk_grads_free(be, &a->bwd);
    if (a->with_tangents) {
        trunk_free(be, &a->tan, a->cfg.n_layer);
        trunk_grads_free(be, &a->tbwd);
    }
    free(a);
}

/* ================================================================================
 * Trunk forward: embedding → n_layer pre-LN blocks → LN_f
 * ================================================================================ */

/* Block l of the trunk: res2 = x + attn half, res3[l] = res2 + MLP half, x = the block
 * input (encoded or res3[l − 1]). */
static void block_forward(const Backend *be, const LMConfig *cfg, const LMParams *P,
                          LMTensors *F, int l, const int32_t *valid_len, int causal,
                          int B, int T) {
    const int C = cfg->d_model, FF = cfg->d_ff, NH = cfg->n_head, N = B * T;
    const size_t NC = (size_t)N * C;
    const real *x = l == 0 ? F->encoded : F->res3[l - 1];                /* [B,T,C] */
    /* attention half: res2 = x + c_proj(attn(c_attn(LN1(x)))) */
    be->layernorm_forward(F->ln1[l], F->ln1_mean[l], F->ln1_rstd[l], x,
                          P->ln1_w[l], P->ln1_b[l], N, C);
    be->matmul_forward(F->qkv[l], F->ln1[l], P->qkv_w[l], P->qkv_b[l],
                       N, C, 3 * C, MATMUL_W_C_OC, 3 * C);               /* [B,T,3C] */
    be->attention_forward(F->atty[l], F->att[l], F->qkv[l], valid_len, causal,
                          B, T, C, NH);                                  /* [B,T,C]  */
    be->matmul_forward(F->branch, F->atty[l], P->attn_proj_w[l], P->attn_proj_b[l],
                       N, C, C, MATMUL_W_C_OC, C);
    be->residual_forward(F->res2[l], x, F->branch, NC);
    /* MLP half: res3 = res2 + c_proj(gelu(c_fc(LN2(res2)))) */
    be->layernorm_forward(F->ln2[l], F->ln2_mean[l], F->ln2_rstd[l], F->res2[l],
                          P->ln2_w[l], P->ln2_b[l], N, C);
    be->matmul_forward(F->fch[l], F->ln2[l], P->fc_w[l], P->fc_b[l],
                       N, C, FF, MATMUL_W_C_OC, FF);                     /* [B,T,F]  */
    be->gelu_forward(F->fch_gelu[l], F->fch[l], (size_t)N * FF);
    be->matmul_forward(F->branch, F->fch_gelu[l], P->fc_proj_w[l], P->fc_proj_b[l],
                       N, FF, C, MATMUL_W_C_OC, C);                      /* [B,T,C]  */
    be->residual_forward(F->res3[l], F->res2[l], F->branch, NC);
    F->block_held = l;
}

void trunk_forward(const Backend *be, const LMConfig *cfg, const LMParams *P, LMTensors *F,
                   const int32_t *tokens, const int32_t *valid_len, int causal, int B, int T) {
    const int C = cfg->d_model, N = B * T;
    be->embedding_forward(F->encoded, tokens, P->wte, P->wpe, B, T, C);   /* [B,T,C] */
    for (int l = 0; l < cfg->n_layer; l++)
        block_forward(be, cfg, P, F, l, valid_len, causal, B, T);
    const real *xL = F->res3[cfg->n_layer - 1];
    be->layernorm_forward(F->lnf, F->lnf_mean, F->lnf_rstd, xL, P->lnf_w, P->lnf_b, N, C);
}

/* The same walk on tangents: Tt holds the tangent of every activation of F along the
 * parameter tangent U (inputs are integers: no tangent). Block l alone: */
static void block_forward_tangent(const Backend *be, const LMConfig *cfg, const LMParams *P,
                                  const LMParams *U, const LMTensors *F, LMTensors *Tt, int l,
                                  const int32_t *valid_len, int causal, int B, int T) {
    const int C = cfg->d_model, FF = cfg->d_ff, NH = cfg->n_head, N = B * T;
    const size_t NC = (size_t)N * C;
    const real *x = l == 0 ? F->encoded : F->res3[l - 1];
    const real *tx = l == 0 ? Tt->encoded : Tt->res3[l - 1];
    be->layernorm_forward_tangent(Tt->ln1[l], x, tx, P->ln1_w[l], U->ln1_w[l], U->ln1_b[l],
                                  F->ln1_mean[l], F->ln1_rstd[l], N, C);
    be->matmul_forward_tangent(Tt->qkv[l], F->ln1[l], Tt->ln1[l], P->qkv_w[l],
                               U->qkv_w[l], U->qkv_b[l], N, C, 3 * C, MATMUL_W_C_OC, 3 * C);
    be->attention_forward_tangent(Tt->atty[l], Tt->att[l], F->qkv[l], Tt->qkv[l],
                                  F->att[l], valid_len, causal, B, T, C, NH);
    be->matmul_forward_tangent(Tt->branch, F->atty[l], Tt->atty[l], P->attn_proj_w[l],
                               U->attn_proj_w[l], U->attn_proj_b[l], N, C, C, MATMUL_W_C_OC, C);
    be->residual_forward_tangent(Tt->res2[l], tx, Tt->branch, NC);

    be->layernorm_forward_tangent(Tt->ln2[l], F->res2[l], Tt->res2[l], P->ln2_w[l],
                                  U->ln2_w[l], U->ln2_b[l], F->ln2_mean[l], F->ln2_rstd[l],
                                  N, C);
    be->matmul_forward_tangent(Tt->fch[l], F->ln2[l], Tt->ln2[l], P->fc_w[l], U->fc_w[l],
                               U->fc_b[l], N, C, FF, MATMUL_W_C_OC, FF);
    be->gelu_forward_tangent(Tt->fch_gelu[l], F->fch[l], Tt->fch[l], (size_t)N * FF);
    be->matmul_forward_tangent(Tt->branch, F->fch_gelu[l], Tt->fch_gelu[l], P->fc_proj_w[l],
                               U->fc_proj_w[l], U->fc_proj_b[l], N, FF, C, MATMUL_W_C_OC, C);
    be->residual_forward_tangent(Tt->res3[l], Tt->res2[l], Tt->branch, NC);
    Tt->block_held = l;
}

/* The trunk forward and its tangent, block by block (with checkpointing the blocks share
 * their internals, so block l's tangent must run while its primal values are there).
 * primal = 0: F already holds this forward (a tape's); only the tangent runs. */
static void trunk_forward_and_tangent(const Backend *be, const LMConfig *cfg, const LMParams *P,
                                      const LMParams *U, LMTensors *F, LMTensors *Tt,
                                      const int32_t *tokens, const int32_t *valid_len,
                                      int causal, int primal, int B, int T) {
    const int C = cfg->d_model, N = B * T, L = cfg->n_layer;
    if (primal) be->embedding_forward(F->encoded, tokens, P->wte, P->wpe, B, T, C);
    be->embedding_forward_tangent(Tt->encoded, tokens, U->wte, U->wpe, B, T, C);
    for (int l = 0; l < L; l++) {
        if (primal) block_forward(be, cfg, P, F, l, valid_len, causal, B, T);
        block_forward_tangent(be, cfg, P, U, F, Tt, l, valid_len, causal, B, T);
    }
    if (primal)
        be->layernorm_forward(F->lnf, F->lnf_mean, F->lnf_rstd, F->res3[L - 1], P->lnf_w,
                              P->lnf_b, N, C);
    be->layernorm_forward_tangent(Tt->lnf, F->res3[L - 1], Tt->res3[L - 1], P->lnf_w, U->lnf_w,
                                  U->lnf_b, F->lnf_mean, F->lnf_rstd, N, C);
}

/* ================================================================================
 * Trunk backward, optionally carrying tangents.
 *
 * On entry D->lnf holds the cotangent of the LN_f output (and, with tangents, DT->lnf
 * its tangent). The residual stream's cotangent lives in D->res and is updated in place:
 * for x_out = x + branch(x), d(branch output) = d(x_out) is read straight from D->res,
 * then the branch's LN backward accumulates its input cotangent into D->res, which
 * becomes d(x) = d(x_out) + J_branchᵀ d(x_out) — the residual's backward (identity) costs
 * nothing. With tangents (Tt, U, HV, DT non-NULL), every op's *_backward_tangent runs
 * right after its *_backward, while the cotangents it reads are still there.
 * ================================================================================ */

typedef struct {                /* the tangent half of a forward-over-reverse pass */
    const LMParams *U;          /* parameter tangent u                    */
    LMTensors *Tt;              /* activation tangents (trunk_forward_tangent) */
    const LMParams *HV;         /* += H·u views                           */
    LMGrads *DT;                /* tangents of the cotangents             */
} TangentPass;

/* Where layer l's backward keeps its primal cotangents: D's one-layer buffers (the
 * residual stream's updated in place), or, when a tape records or replays the pass, the
 * tape's buffers of layer l (the residual's three values apart: d(res3[l]), d(res2[l])
 * and d(x), the last being layer l − 1's d(res3), or D->res for layer 0). */
typedef struct {
    real *res3, *res2, *res_in;     /* [B,T,C] */
    real *fch_gelu, *fch;           /* [B,T,F] */
    real *ln2, *ln1, *atty;         /* [B,T,C] */
    real *qkv;                      /* [B,T,3C] */
} LayerCotangents;

static LayerCotangents layer_cotangents(LMGrads *D, LMTapeLayer *tape, int l) {
    if (!tape)
        return (LayerCotangents){ D->res, D->res, D->res, D->fch_gelu, D->fch, D->ln, D->ln,
                                  D->atty, D->qkv };
    LMTapeLayer *k = &tape[l];
    return (LayerCotangents){ k->res3, k->res2, l > 0 ? tape[l - 1].res3 : D->res, k->fch_gelu,
                              k->fch, k->ln2, k->ln1, k->atty, k->qkv };
}

/* tape: NULL, or per-layer cotangent buffers that this pass records into (replay = 0)
 * or reads, skipping every primal op (replay = 1: only the tangent ops run; G must be
 * NULL, and D->lnf is not read). */
static void trunk_backward_impl(const Backend *be, const LMConfig *cfg, const LMParams *P,
                                const LMParams *G, LMTensors *F, LMGrads *D,
                                const TangentPass *tp, LMTapeLayer *tape, int replay,
                                const int32_t *tokens, const int32_t *valid_len, int causal,
                                int B, int T) {
    const int C = cfg->d_model, FF = cfg->d_ff, NH = cfg->n_head, N = B * T, L = cfg->n_layer;
    const size_t NC = (size_t)N * C, NF = (size_t)N * FF;
    const LMParams *U = tp ? tp->U : NULL, *HV = tp ? tp->HV : NULL;
    LMTensors *Tt = tp ? tp->Tt : NULL;
    LMGrads *DT = tp ? tp->DT : NULL;
    const int primal = !replay;
    CHECK(!replay || (tape && !G && !cfg->checkpointing), "trunk backward: bad tape replay");
    /* G may be NULL (forward-over-reverse without the gradient): ops get NULL pointers */
#define GV(field) (G ? G->field : NULL)

    /* LN_f: d(x_L), layer L − 1's d(res3) */
    real *dtop = layer_cotangents(D, tape, L - 1).res3;
    if (primal) {
        be->vec_zero(dtop, NC);
        be->layernorm_backward(dtop, GV(lnf_w), GV(lnf_b), D->lnf, F->res3[L - 1], P->lnf_w,
                               F->lnf_mean, F->lnf_rstd, N, C);
    }
    if (tp) {
        be->vec_zero(DT->res, NC);
        be->layernorm_backward_tangent(DT->res, HV->lnf_w, HV->lnf_b, D->lnf, DT->lnf,
                                       F->res3[L - 1], Tt->res3[L - 1], P->lnf_w, U->lnf_w,
                                       F->lnf_mean, F->lnf_rstd, N, C);
    }

    for (int l = L - 1; l >= 0; l--) {
        const real *x = l == 0 ? F->encoded : F->res3[l - 1];
        const real *tx = tp ? (l == 0 ? Tt->encoded : Tt->res3[l - 1]) : NULL;
        const LayerCotangents k = layer_cotangents(D, tape, l);
        /* activation checkpointing: the blocks share one set of internals, which holds
         * block L − 1's after the forward; rebuild block l's (bit for bit) from its input
         * where they hold another's (every l < L − 1, and L − 1 too in a second backward
         * after one forward) */
        if (cfg->checkpointing && F->block_held != l)
            block_forward(be, cfg, P, F, l, valid_len, causal, B, T);
        if (cfg->checkpointing && tp && Tt->block_held != l)
            block_forward_tangent(be, cfg, P, U, F, Tt, l, valid_len, causal, B, T);

        /* ---- MLP half; k.res3 = d(res3) = d(mlp c_proj output). The cotangents of the
         * matmuls', GELU's and attention's inputs (and their tangents) are written by
         * those ops (backend.h), so none is zeroed first; LayerNorm's backward adds onto
         * the residual stream's ---- */
        if (primal)
            be->matmul_backward(k.fch_gelu, GV(fc_proj_w[l]), GV(fc_proj_b[l]), k.res3,
                                F->fch_gelu[l], P->fc_proj_w[l], N, FF, C, MATMUL_W_C_OC, C);
        if (tp)
            be->matmul_backward_tangent(DT->fch_gelu, HV->fc_proj_w[l], HV->fc_proj_b[l],
                                        k.res3, DT->res, F->fch_gelu[l], Tt->fch_gelu[l],
                                        P->fc_proj_w[l], U->fc_proj_w[l], N, FF, C,
                                        MATMUL_W_C_OC, C);
        if (primal)
            be->gelu_backward(k.fch, F->fch[l], k.fch_gelu, NF);
        if (tp)
            be->gelu_backward_tangent(DT->fch, F->fch[l], Tt->fch[l], k.fch_gelu,
                                      DT->fch_gelu, NF);
        if (primal)
            be->matmul_backward(k.ln2, GV(fc_w[l]), GV(fc_b[l]), k.fch, F->ln2[l], P->fc_w[l],
                                N, C, FF, MATMUL_W_C_OC, FF);
        if (tp)
            be->matmul_backward_tangent(DT->ln, HV->fc_w[l], HV->fc_b[l], k.fch, DT->fch,
                                        F->ln2[l], Tt->ln2[l], P->fc_w[l], U->fc_w[l],
                                        N, C, FF, MATMUL_W_C_OC, FF);
        /* k.res2 = d(res3) + LN2ᵀ(…) = d(res2) */
        if (primal) {
            if (k.res2 != k.res3) be->vec_copy(k.res2, k.res3, NC);
            be->layernorm_backward(k.res2, GV(ln2_w[l]), GV(ln2_b[l]), k.ln2, F->res2[l],
                                   P->ln2_w[l], F->ln2_mean[l], F->ln2_rstd[l], N, C);
        }
        if (tp)
            be->layernorm_backward_tangent(DT->res, HV->ln2_w[l], HV->ln2_b[l], k.ln2, DT->ln,
                                           F->res2[l], Tt->res2[l], P->ln2_w[l], U->ln2_w[l],
                                           F->ln2_mean[l], F->ln2_rstd[l], N, C);

        /* ---- attention half; k.res2 = d(res2) = d(attn c_proj output) ---- */
        if (primal)
            be->matmul_backward(k.atty, GV(attn_proj_w[l]), GV(attn_proj_b[l]), k.res2,
                                F->atty[l], P->attn_proj_w[l], N, C, C, MATMUL_W_C_OC, C);
        if (tp)
            be->matmul_backward_tangent(DT->atty, HV->attn_proj_w[l], HV->attn_proj_b[l],
                                        k.res2, DT->res, F->atty[l], Tt->atty[l],
                                        P->attn_proj_w[l], U->attn_proj_w[l], N, C, C,
                                        MATMUL_W_C_OC, C);
        if (primal)
            be->attention_backward(k.qkv, k.atty, F->qkv[l], F->att[l], valid_len, causal,
                                   B, T, C, NH);
        if (tp)
            be->attention_backward_tangent(DT->qkv, k.atty, DT->atty, F->qkv[l], Tt->qkv[l],
                                           F->att[l], Tt->att[l], valid_len, causal,
                                           B, T, C, NH);
        if (primal)
            be->matmul_backward(k.ln1, GV(qkv_w[l]), GV(qkv_b[l]), k.qkv, F->ln1[l],
                                P->qkv_w[l], N, C, 3 * C, MATMUL_W_C_OC, 3 * C);
        if (tp)
            be->matmul_backward_tangent(DT->ln, HV->qkv_w[l], HV->qkv_b[l], k.qkv, DT->qkv,
                                        F->ln1[l], Tt->ln1[l], P->qkv_w[l], U->qkv_w[l],
                                        N, C, 3 * C, MATMUL_W_C_OC, 3 * C);
        /* k.res_in = d(res2) + LN1ᵀ(…) = d(x), the block input */
        if (primal) {
            if (k.res_in != k.res2) be->vec_copy(k.res_in, k.res2, NC);
            be->layernorm_backward(k.res_in, GV(ln1_w[l]), GV(ln1_b[l]), k.ln1, x, P->ln1_w[l],
                                   F->ln1_mean[l], F->ln1_rstd[l], N, C);
        }
        if (tp)
            be->layernorm_backward_tangent(DT->res, HV->ln1_w[l], HV->ln1_b[l], k.ln1, DT->ln,
                                           x, tx, P->ln1_w[l], U->ln1_w[l],
                                           F->ln1_mean[l], F->ln1_rstd[l], N, C);
    }

    /* embedding: scatter d(x_0) into the token and position tables */
    if (G) be->embedding_backward(G->wte, G->wpe, D->res, tokens, B, T, C);
    if (tp) be->embedding_backward_tangent(HV->wte, HV->wpe, DT->res, tokens, B, T, C);
#undef GV
}

void trunk_backward(const Backend *be, const LMConfig *cfg, const LMParams *P,
                    const LMParams *G, LMTensors *F, LMGrads *D,
                    const int32_t *tokens, const int32_t *valid_len, int causal, int B, int T) {
    trunk_backward_impl(be, cfg, P, G, F, D, NULL, NULL, 0, tokens, valid_len, causal, B, T);
}

/* ================================================================================
 * The LM: trunk (causal) + tied head + per-example cross-entropy
 * ================================================================================ */

/* Copies the batch into the backend and checks its shape against the allocation. */
static void lm_set_batch(const Backend *be, const LMConfig *cfg, LMActs *a,
                         const int32_t *inputs, const int32_t *targets, const int32_t *n_valid,
                         int B, int T) {
    CHECK(B >= 1 && B <= a->B && T >= 1 && T <= a->T,
          "LM batch %d×%d exceeds the activations' %d×%d", B, T, a->B, a->T);
    for (int b = 0; b < B; b++)
        CHECK(n_valid[b] >= 0 && n_valid[b] <= T, "n_valid[%d] = %d outside [0, %d]", b,
              n_valid[b], T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t x = inputs[(size_t)b * T + t], y = targets[(size_t)b * T + t];
            CHECK(x >= 0 && x < cfg->vocab, "input token %d at [%d,%d] outside the vocabulary (%d)",
                  x, b, t, cfg->vocab);
            CHECK(t >= n_valid[b] || (y >= 0 && y < cfg->vocab),
                  "target token %d at [%d,%d] outside the vocabulary (%d)", y, b, t, cfg->vocab);
        }
    be->to_device(a->inputs, inputs, (size_t)B * T * sizeof(int32_t));
    be->to_device(a->targets, targets, (size_t)B * T * sizeof(int32_t));
    be->to_device(a->n_valid, n_valid, (size_t)B * sizeof(int32_t));
    a->B_cur = B;
    a->T_cur = T;
}

/* ---- the head: tied wte, softmax cross-entropy, in chunks of examples ----------------
 * cfg->head_chunk = E > 0 computes the [rows, V] logits (and their tangent and
 * cotangents) for E examples at a time, so those buffers hold E·T rows, not B·T.
 * The losses of lm_forward and d_i come chunk by chunk; lm_backward recomputes a chunk's
 * logits unless the buffers still hold it (the last chunk of the forward); the
 * forward-over-reverse pass, which knows dlosses up front, runs each chunk's backward
 * right after its forward: nothing is recomputed. One chunk (E = 0 or E ≥ B) is the
 * unchunked head, bit for bit.
 * The logits' cotangent is written over the probabilities (or, for a recomputed chunk,
 * over the logits themselves), which nothing reads after the chunk's backward: one pass
 * over the rows instead of zeroing, accumulating and, when recomputing, writing and
 * reading the probabilities. Only a tape, whose replay reads its probabilities again,
 * takes the cotangent apart, in bwd.logits, which acts hold only when a tape can be.
 * Likewise the cotangent's tangent is written over the logits' tangent (tan.logits).
 * Rows of these buffers are Vp = logits_ld() floats apart, V of them used: on a GPU the
 * product x·Eᵀ runs over the vocabulary padded to 64 straight into them (backend.h). */

/* examples [b0, b1): the logits alone (a->head_held is not set: no probabilities) */
static void head_chunk_logits(const Backend *be, const LMConfig *cfg, const LMParams *P,
                              LMActs *a, int b0, int b1) {
    const int C = cfg->d_model, V = cfg->vocab, T = a->T_cur, Nc = (b1 - b0) * T;
    LMTensors *F = &a->fwd;
    be->matmul_forward(F->logits, F->lnf + (size_t)b0 * T * C, P->wte, NULL, Nc, C, V,
                       MATMUL_W_OC_C, logits_ld(be, cfg));               /* [Nc,Vp]  */
}

/* examples [b0, b1): logits, with_probs: softmax in place; losses[b0, b1) */
static void head_chunk_forward(const Backend *be, const LMConfig *cfg, const LMParams *P,
                               LMActs *a, int b0, int b1, int with_probs) {
    const int V = cfg->vocab, Vp = logits_ld(be, cfg), T = a->T_cur;
    LMTensors *F = &a->fwd;
    const size_t r0 = (size_t)b0 * T;
    head_chunk_logits(be, cfg, P, a, b0, b1);
    be->crossentropy_forward(F->losses + b0, with_probs ? F->logits /* in place */ : NULL,
                             F->logits, a->targets + r0, a->n_valid + b0, b1 - b0, T, V, Vp);
    a->head_held = with_probs ? b0 : -1;
}

/* its tangent along U: Tt->logits, d_i = Tt->losses[b0, b1) */
static void head_chunk_tangent(const Backend *be, const LMConfig *cfg, const LMParams *P,
                               const LMParams *U, LMActs *a, int b0, int b1) {
    const int C = cfg->d_model, V = cfg->vocab, Vp = logits_ld(be, cfg), T = a->T_cur;
    const int Nc = (b1 - b0) * T;
    LMTensors *F = &a->fwd, *Tt = &a->tan;
    const size_t r0 = (size_t)b0 * T;
    be->matmul_forward_tangent(Tt->logits, F->lnf + r0 * C, Tt->lnf + r0 * C, P->wte, U->wte,
                               NULL, Nc, C, V, MATMUL_W_OC_C, Vp);
    be->crossentropy_forward_tangent(Tt->losses + b0, F->logits, Tt->logits, a->targets + r0,
                                     a->n_valid + b0, b1 - b0, T, V, Vp);
}

/* What F->logits holds when a chunk's backward starts, and what becomes of it */
enum head_logits {
    HEAD_PROBS_KEPT,   /* the probabilities, kept (a tape's): the cotangent goes to D->logits */
    HEAD_PROBS,        /* the probabilities, overwritten by the cotangent */
    HEAD_LOGITS,       /* the logits only (recomputed without the softmax), overwritten */
    HEAD_LOGITS_LOSSES,/* the logits of a chunk whose losses come with the backward */
};

/* its backward (D->losses = dlosses on the backend): D->lnf's rows of the chunk written,
 * G->wte += …; with tp the tangents too (DT->lnf's rows written, HV->wte +=). replay: D->lnf already holds the
 * recorded cotangent; only dlogits (elementwise, from the softmax) is rebuilt for the
 * tangent, the GEMMs of the primal backward are skipped. */
static void head_chunk_backward(const Backend *be, const LMConfig *cfg, const LMParams *P,
                                const LMParams *G, LMActs *a, LMGrads *D,
                                const TangentPass *tp, int replay, enum head_logits held,
                                int b0, int b1) {
    const int C = cfg->d_model, V = cfg->vocab, Vp = logits_ld(be, cfg), T = a->T_cur;
    const int Nc = (b1 - b0) * T;
    const size_t r0 = (size_t)b0 * T, NcVp = (size_t)Nc * Vp;
    LMTensors *F = &a->fwd;
    CHECK(!replay || tp, "head backward: a replay is for the tangents");
    CHECK(!tp || held == HEAD_PROBS || held == HEAD_PROBS_KEPT,
          "head backward: the tangents need the probabilities");
    CHECK(held != HEAD_PROBS_KEPT || D->logits,
          "head backward: keeping the probabilities needs activations made for a tape");
    if (tp)   /* first, while F->logits holds the probabilities; the cotangent's tangent
               * over the logits' tangent; dlosses are held fixed: their tangent is 0 (NULL) */
        be->crossentropy_backward_tangent_in_place(tp->Tt->logits, F->logits, a->targets + r0,
                                                   a->n_valid + b0, D->losses + b0, NULL,
                                                   b1 - b0, T, V, Vp);
    real *dlogits = F->logits;                                           /* [Nc,Vp]  */
    if (held == HEAD_PROBS_KEPT) {
        dlogits = D->logits;
        be->vec_zero(dlogits, NcVp);
        be->crossentropy_backward(dlogits, F->logits, a->targets + r0, a->n_valid + b0,
                                  D->losses + b0, b1 - b0, T, V, Vp);
    } else {
        be->crossentropy_backward_in_place(F->logits,
                                           held == HEAD_LOGITS_LOSSES ? F->losses + b0 : NULL,
                                           held != HEAD_PROBS, a->targets + r0,
                                           a->n_valid + b0, D->losses + b0, b1 - b0, T, V, Vp);
        a->head_held = -1;   /* the buffer holds the cotangent now */
    }
    if (!replay)
        be->matmul_backward(D->lnf + r0 * C, G ? G->wte : NULL, NULL, dlogits,
                            F->lnf + r0 * C, P->wte, Nc, C, V, MATMUL_W_OC_C, Vp);
    if (tp)
        be->matmul_backward_tangent(tp->DT->lnf + r0 * C, tp->HV->wte, NULL, dlogits,
                                    tp->Tt->logits, F->lnf + r0 * C, tp->Tt->lnf + r0 * C,
                                    P->wte, tp->U->wte, Nc, C, V, MATMUL_W_OC_C, Vp);
}

/* The LM's attention is causal; padded positions (t ≥ n_valid) come after every valid
 * one, so no valid position sees them and no key mask is needed (valid_len = NULL). */
static void lm_forward_impl(const Backend *be, const LMConfig *cfg, const LMParams *P,
                            LMActs *a, int B, int T) {
    trunk_forward(be, cfg, P, &a->fwd, a->inputs, NULL, 1, B, T);
    const int E = head_chunk_examples(cfg, B);
    for (int b0 = 0; b0 < B; b0 += E) {   /* the last chunk's probabilities are kept */
        int b1 = b0 + E < B ? b0 + E : B;
        head_chunk_forward(be, cfg, P, a, b0, b1, b1 == B);
    }
}

void lm_forward(const Backend *be, const LMConfig *cfg, const real *params, LMActs *a,
                const int32_t *inputs, const int32_t *targets, const int32_t *n_valid,
                int B, int T, real *losses) {
    LMParams P;
    lm_point_params(&P, (real *)params, cfg);
    lm_set_batch(be, cfg, a, inputs, targets, n_valid, B, T);
    lm_forward_impl(be, cfg, &P, a, B, T);
    if (losses) be->to_host(losses, a->fwd.losses, (size_t)B * sizeof(real));
}

/* lm_backward, recording into tape when non-NULL (its LN_f cotangent and every layer's) */
static void lm_backward_impl(const Backend *be, const LMConfig *cfg, const real *params,
                             LMActs *a, const real *dlosses, real *grads, LMTape *tape) {
    CHECK(a->B_cur > 0, "lm_backward before lm_forward");
    LMParams P, G;
    lm_point_params(&P, (real *)params, cfg);
    lm_point_params(&G, grads, cfg);
    const int B = a->B_cur, T = a->T_cur, E = head_chunk_examples(cfg, B);
    LMGrads D = a->bwd;
    if (tape) D.lnf = tape->lnf;
    be->to_device(D.losses, dlosses, (size_t)B * sizeof(real));
    for (int b0 = 0; b0 < B; b0 += E) {
        int b1 = b0 + E < B ? b0 + E : B;
        enum head_logits held = HEAD_PROBS;
        if (tape) {   /* its replay reads the probabilities */
            if (a->head_held != b0) head_chunk_forward(be, cfg, &P, a, b0, b1, 1);
            held = HEAD_PROBS_KEPT;
        } else if (a->head_held != b0) {   /* recompute the logits; the softmax comes with
                                            * the backward */
            head_chunk_logits(be, cfg, &P, a, b0, b1);
            held = HEAD_LOGITS;
        }
        head_chunk_backward(be, cfg, &P, &G, a, &D, NULL, 0, held, b0, b1);
    }
    trunk_backward_impl(be, cfg, &P, &G, &a->fwd, &D, NULL, tape ? tape->layer : NULL, 0,
                        a->inputs, NULL, 1, B, T);
}

void lm_backward(const Backend *be, const LMConfig *cfg, const real *params, LMActs *a,
                 const real *dlosses, real *grads) {
    lm_backward_impl(be, cfg, params, a, dlosses, grads, NULL);
}

void lm_forward_backward(const Backend *be, const LMConfig *cfg, const real *params, LMActs *a,
                         const int32_t *inputs, const int32_t *targets, const int32_t *n_valid,
                         int B, int T, const real *dlosses, real *losses, real *grads) {
    LMParams P, G;
    lm_point_params(&P, (real *)params, cfg);
    lm_point_params(&G, grads, cfg);
    lm_set_batch(be, cfg, a, inputs, targets, n_valid, B, T);
    trunk_forward(be, cfg, &P, &a->fwd, a->inputs, NULL, 1, B, T);
    be->to_device(a->bwd.losses, dlosses, (size_t)B * sizeof(real));
    const int E = head_chunk_examples(cfg, B);
    for (int b0 = 0; b0 < B; b0 += E) {   /* each chunk's logits, then its losses and backward */
        int b1 = b0 + E < B ? b0 + E : B;
        head_chunk_logits(be, cfg, &P, a, b0, b1);
        head_chunk_backward(be, cfg, &P, &G, a, &a->bwd, NULL, 0, HEAD_LOGITS_LOSSES, b0, b1);
    }
    trunk_backward_impl(be, cfg, &P, &G, &a->fwd, &a->bwd, NULL, NULL, 0, a->inputs, NULL, 1,
                        B, T);
    if (losses) be->to_host(losses, a->fwd.losses, (size_t)B * sizeof(real));
}

void lm_forward_over_reverse(const Backend *be, const LMConfig *cfg, const real *params,
                             const real *u, LMActs *a,
                             const int32_t *inputs, const int32_t *targets,
                             const int32_t *n_valid, int B, int T, const real *dlosses,
                             real *losses, real *grads, real *hvp, real *dloss_dir) {
    CHECK(a->with_tangents, "lm_forward_over_reverse needs activations made with_tangents");
    LMParams P, U, G, HV;
    lm_point_params(&P, (real *)params, cfg);
    lm_point_params(&U, (real *)u, cfg);
    lm_point_params(&G, grads, cfg);
    lm_point_params(&HV, hvp, cfg);
    lm_set_batch(be, cfg, a, inputs, targets, n_valid, B, T);

    /* forward, then its tangent along u: ℓ and d_i = ⟨∇ℓ_i, u⟩; with g or H·u wanted,
     * each head chunk's backward (carrying tangents) right after it, then the trunk's */
    LMTensors *F = &a->fwd, *Tt = &a->tan;
    const int backward = grads || hvp, E = head_chunk_examples(cfg, B);
    TangentPass tp = { .U = &U, .Tt = Tt, .HV = &HV, .DT = &a->tbwd };
    trunk_forward_and_tangent(be, cfg, &P, &U, F, Tt, a->inputs, NULL, 1, 1, B, T);
    if (backward) {
        be->to_device(a->bwd.losses, dlosses, (size_t)B * sizeof(real));
    }
    for (int b0 = 0; b0 < B; b0 += E) {
        int b1 = b0 + E < B ? b0 + E : B;
        head_chunk_forward(be, cfg, &P, a, b0, b1, 1);
        head_chunk_tangent(be, cfg, &P, &U, a, b0, b1);
        if (backward)
            head_chunk_backward(be, cfg, &P, grads ? &G : NULL, a, &a->bwd, hvp ? &tp : NULL,
                                0, HEAD_PROBS, b0, b1);
    }
    if (backward)
        trunk_backward_impl(be, cfg, &P, grads ? &G : NULL, F, &a->bwd, hvp ? &tp : NULL,
                            NULL, 0, a->inputs, NULL, 1, B, T);

    if (losses) be->to_host(losses, F->losses, (size_t)B * sizeof(real));
    if (dloss_dir) be->to_host(dloss_dir, Tt->losses, (size_t)B * sizeof(real));
}

/* ================================================================================
 * The activation tape
 * ================================================================================ */

int lm_tape_supported(const LMConfig *cfg) { return !cfg->checkpointing && cfg->head_chunk <= 0; }

LMTape *lm_tape_new(const Backend *be, const LMConfig *cfg, int B, int T) {
    CHECK(lm_tape_supported(cfg), "lm_tape_new: no tape with lm.checkpointing or lm.head_chunk");
    CHECK(B >= 1 && T >= 1 && T <= cfg->ctx, "lm_tape_new: B = %d, T = %d (ctx %d)", B, T, cfg->ctx);
    LMTape *tp = xcalloc(1, sizeof *tp);
    tp->B = B;
    tp->T = T;
    tp->head_held = -1;
    size_t bytes = 0;
    const size_t BT = (size_t)B * T, C = cfg->d_model, FF = cfg->d_ff;
    tp->inputs = be->alloc(BT * sizeof(int32_t));
    tp->targets = be->alloc(BT * sizeof(int32_t));
    tp->n_valid = be->alloc((size_t)B * sizeof(int32_t));
    bytes += (2 * BT + B) * sizeof(int32_t);
    trunk_alloc(be, cfg, &tp->fwd, B, T, 0, &bytes);
    tp->fwd.logits = balloc(be, BT * logits_ld(be, cfg), &bytes);
    tp->fwd.losses = balloc(be, B, &bytes);
    tp->lnf = balloc(be, BT * C, &bytes);
    for (int l = 0; l < cfg->n_layer; l++) {
        LMTapeLayer *k = &tp->layer[l];
        real **c_sized[] = { &k->res3, &k->res2, &k->ln2, &k->ln1, &k->atty };
        for (size_t i = 0; i < sizeof c_sized / sizeof *c_sized; i++)
            *c_sized[i] = balloc(be, BT * C, &bytes);
        k->fch_gelu = balloc(be, BT * FF, &bytes);
        k->fch = balloc(be, BT * FF, &bytes);
        k->qkv = balloc(be, BT * 3 * C, &bytes);
    }
    tp->dlosses = xcalloc((size_t)B, sizeof(real));
    tp->n_layer = cfg->n_layer;
    tp->bytes = bytes + (size_t)B * sizeof(real);
    return tp;
}

size_t lm_tape_bytes(const LMTape *tp) { return tp ? tp->bytes : 0; }

void lm_tape_free(const Backend *be, LMTape *tp) {
    if (!tp) return;
    be->free(tp->inputs);
    be->free(tp->targets);
    be->free(tp->n_valid);
    trunk_free(be, &tp->fwd, tp->n_layer);
    bfree(be, &tp->lnf);
    for (int l = 0; l < tp->n_layer; l++) {
        LMTapeLayer *k = &tp->layer[l];
        bfree(be, &k->res3); bfree(be, &k->res2); bfree(be, &k->ln2); bfree(be, &k->ln1);
        bfree(be, &k->atty); bfree(be, &k->fch_gelu); bfree(be, &k->fch); bfree(be, &k->qkv);
    }
    free(tp->dlosses);
    free(tp);
}

/* The forward activations and the batch change hands between acts and tape: pointer
 * swaps, nothing copied. */
static void tape_swap(LMActs *a, LMTape *tp) {
    LMTensors f = a->fwd;
    a->fwd = tp->fwd;
    tp->fwd = f;
    int32_t *p;
    p = a->inputs; a->inputs = tp->inputs; tp->inputs = p;
    p = a->targets; a->targets = tp->targets; tp->targets = p;
    p = a->n_valid; a->n_valid = tp->n_valid; tp->n_valid = p;
    int n;
    n = a->B_cur; a->B_cur = tp->B_cur; tp->B_cur = n;
    n = a->T_cur; a->T_cur = tp->T_cur; tp->T_cur = n;
    n = a->head_held; a->head_held = tp->head_held; tp->head_held = n;
}

void lm_backward_record(const Backend *be, const LMConfig *cfg, const real *params, LMActs *a,
                        const real *dlosses, real *grads, LMTape *tape) {
    CHECK(lm_tape_supported(cfg) && a->B == tape->B && a->T == tape->T,
          "lm_backward_record: the tape does not fit these activations");
    CHECK(a->with_tangents, "lm_backward_record needs activations made with_tangents");
    lm_backward_impl(be, cfg, params, a, dlosses, grads, tape);
    tape_swap(a, tape);
    a->B_cur = a->T_cur = 0;       /* acts hold no forward now: the tape has it */
    a->head_held = -1;
    memcpy(tape->dlosses, dlosses, (size_t)tape->B_cur * sizeof(real));
}

void lm_tape_clear(LMTape *tape) {
    if (!tape) return;
    tape->B_cur = tape->T_cur = 0;
    tape->head_held = -1;
}

void lm_forward_over_reverse_replay(const Backend *be, const LMConfig *cfg, const real *params,
                                    const real *u, LMActs *a, LMTape *tape,
                                    const real *dlosses, real *hvp, real *dloss_dir) {
    CHECK(a->with_tangents, "lm_forward_over_reverse_replay needs activations made with_tangents");
    CHECK(tape->B_cur > 0, "lm_forward_over_reverse_replay: the tape holds no pass");
    CHECK(!memcmp(tape->dlosses, dlosses, (size_t)tape->B_cur * sizeof(real)),
          "lm_forward_over_reverse_replay: dlosses differ from the recorded ones");
    LMParams P, U, HV;
    lm_point_params(&P, (real *)params, cfg);
    lm_point_params(&U, (real *)u, cfg);
    lm_point_params(&HV, hvp, cfg);
    tape_swap(a, tape);
    const int B = a->B_cur, T = a->T_cur;
    LMTensors *Tt = &a->tan;
    TangentPass tp = { .U = &U, .Tt = Tt, .HV = &HV, .DT = &a->tbwd };
    LMGrads D = a->bwd;
    D.lnf = tape->lnf;
    trunk_forward_and_tangent(be, cfg, &P, &U, &a->fwd, Tt, a->inputs, NULL, 1, 0, B, T);
    head_chunk_tangent(be, cfg, &P, &U, a, 0, B);
    if (hvp) {
        be->to_device(D.losses, dlosses, (size_t)B * sizeof(real));
        head_chunk_backward(be, cfg, &P, NULL, a, &D, &tp, 1, HEAD_PROBS_KEPT, 0, B);
        trunk_backward_impl(be, cfg, &P, NULL, &a->fwd, &D, &tp, tape->layer, 1, a->inputs,
                            NULL, 1, B, T);
    }
    if (dloss_dir) be->to_host(dloss_dir, Tt->losses, (size_t)B * sizeof(real));
    tape_swap(a, tape);
}
