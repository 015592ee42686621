/* rater.c — the DataRater R(x; φ) (DESIGN §3): lm.c's trunk without the causal mask,
 * mean pool over the valid positions, a two-layer head, one logit per example.
 * First order only (the meta-gradient pulls z̄ back through it once). Like lm.c, every
 * numeric loop is a backend op and nothing is allocated after rater_acts_new.
 */
#include "rater.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---- layout: the trunk under "rater.", then the head ------------------------------ */

static size_t rater_layout(const RaterConfig *cfg, ParamInfo *table, RaterParams *views,
                           real *flat, int *n_tensors) {
    int nt = 0;
    size_t off = trunk_layout(cfg, "rater.", table, views ? &views->trunk : NULL, flat, &nt);
    const int64_t C = cfg->d_model;
    struct { const char *name; int ndim; int64_t d0, d1; int init; real **view; } head[4] = {
        { "rater.head.fc.weight",  2, C, C, INIT_NORMAL, views ? &views->head_fc_w : NULL },
        { "rater.head.fc.bias",    1, C, 0, INIT_ZEROS,  views ? &views->head_fc_b : NULL },
        { "rater.head.out.weight", 2, C, 1, INIT_NORMAL, views ? &views->head_out_w : NULL },
        { "rater.head.out.bias",   1, 1, 0, INIT_ZEROS,  views ? &views->head_out_b : NULL },
    };
    for (int i = 0; i < 4; i++) {
        size_t numel = (size_t)head[i].d0 * (size_t)(head[i].ndim == 2 ? head[i].d1 : 1);
        if (table) {
            ParamInfo *p = &table[nt];
            memset(p, 0, sizeof *p);
            snprintf(p->name, sizeof p->name, "%s", head[i].name);
            p->ndim = head[i].ndim;
            p->shape[0] = head[i].d0;
            p->shape[1] = head[i].ndim == 2 ? head[i].d1 : 0;
            p->offset = off;
            p->numel = numel;
            p->init = head[i].init;
            p->std = head[i].init == INIT_NORMAL ? cfg->init_std : 0;
        }
        if (head[i].view) *head[i].view = flat ? flat + off : NULL;
        nt++;
        off += numel;
    }
    if (n_tensors) *n_tensors = nt;
    return off;
}

size_t rater_num_params(const RaterConfig *cfg) { return rater_layout(cfg, NULL, NULL, NULL, NULL); }
int rater_num_tensors(const RaterConfig *cfg) { return lm_num_tensors(cfg) + 4; }
void rater_param_table(const RaterConfig *cfg, ParamInfo *table) {
    rater_layout(cfg, table, NULL, NULL, NULL);
}
void rater_point_params(RaterParams *views, real *flat, const RaterConfig *cfg) {
    rater_layout(cfg, NULL, views, flat, NULL);
}

void rater_init_params(const Backend *be, const RaterConfig *cfg, real *phi, uint64_t seed) {
    int n = rater_num_tensors(cfg);
    ParamInfo *table = xmalloc((size_t)n * sizeof *table);
    rater_param_table(cfg, table);
    params_init_from_table(be, table, n, rater_num_params(cfg), phi, seed);
    free(table);
}

/* ---- activations ------------------------------------------------------------------ */

RaterActs *rater_acts_new(const Backend *be, const RaterConfig *cfg, int B, int T) {
    CHECK(lm_config_check(cfg) == 0, "rater_acts_new: %s", dr_lasterr());
    CHECK(B >= 1 && T >= 1 && T <= cfg->ctx, "rater_acts_new: B = %d, T = %d (ctx %d)", B, T,
          cfg->ctx);
    RaterActs *a = xcalloc(1, sizeof *a);
    a->cfg = *cfg;
    a->B = B;
    a->T = T;
    size_t bytes = 0, BC = (size_t)B * cfg->d_model;
    a->tokens = be->alloc((size_t)B * T * sizeof(int32_t));
    a->valid_len = be->alloc((size_t)B * sizeof(int32_t));
    trunk_alloc(be, cfg, &a->fwd, B, T, 0, &bytes);
    trunk_grads_alloc(be, cfg, &a->bwd, B, T, &bytes);
    a->pooled = be->alloc(BC * sizeof(real));
    a->h = be->alloc(BC * sizeof(real));
    a->h_gelu = be->alloc(BC * sizeof(real));
    a->z = be->alloc((size_t)B * sizeof(real));
    a->d_pooled = be->alloc(BC * sizeof(real));
    a->d_h = be->alloc(BC * sizeof(real));
    a->d_h_gelu = be->alloc(BC * sizeof(real));
    a->d_z = be->alloc((size_t)B * sizeof(real));
    return a;
}

void rater_acts_free(const Backend *be, RaterActs *a) {
    if (!a) return;
    be->free(a->tokens);
    be->free(a->valid_len);
    trunk_free(be, &a->fwd, a->cfg.n_layer);
    trunk_grads_free(be, &a->bwd);
    real *bufs[] = { a->pooled, a->h, a->h_gelu, a->z, a->d_pooled, a->d_h, a->d_h_gelu, a->d_z };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->free(bufs[i]);
    free(a);
}

/* ---- forward / backward ----------------------------------------------------------- */

void rater_forward(const Backend *be, const RaterConfig *cfg, const real *phi, RaterActs *a,
                   const int32_t *tokens, const int32_t *valid_len, int B, int T, real *z) {
    CHECK(B >= 1 && B <= a->B && T >= 1 && T <= a->T,
          "rater batch %d×%d exceeds the activations' %d×%d", B, T, a->B, a->T);
    for (int b = 0; b < B; b++) {
        CHECK(valid_len[b] >= 1 && valid_len[b] <= T, "rater valid_len[%d] = %d outside [1, %d]",
              b, valid_len[b], T);
        for (int t = 0; t < T; t++) {
            int32_t x = tokens[(size_t)b * T + t];
            CHECK(x >= 0 && x < cfg->vocab, "rater token %d at [%d,%d] outside the vocabulary (%d)",
                  x, b, t, cfg->vocab);
        }
    }
    const int C = cfg->d_model;
    RaterParams P;
    rater_point_params(&P, (real *)phi, cfg);
    be->to_device(a->tokens, tokens, (size_t)B * T * sizeof(int32_t));
    be->to_device(a->valid_len, valid_len, (size_t)B * sizeof(int32_t));
    a->B_cur = B;
    a->T_cur = T;

    /* bidirectional trunk, keys beyond valid_len masked */
    trunk_forward(be, cfg, &P.trunk, &a->fwd, a->tokens, a->valid_len, 0, B, T);
    /* head: mean pool → Linear d→d → GELU → Linear d→1 */
    be->meanpool_forward(a->pooled, a->fwd.lnf, a->valid_len, B, T, C);             /* [B,C] */
    be->matmul_forward(a->h, a->pooled, P.head_fc_w, P.head_fc_b, B, C, C, MATMUL_W_C_OC, C);
    be->gelu_forward(a->h_gelu, a->h, (size_t)B * C);
    be->matmul_forward(a->z, a->h_gelu, P.head_out_w, P.head_out_b, B, C, 1, MATMUL_W_C_OC, 1);
    if (z) be->to_host(z, a->z, (size_t)B * sizeof(real));                              /* [B] */
}

void rater_backward(const Backend *be, const RaterConfig *cfg, const real *phi, RaterActs *a,
                    const real *dz, real *dphi) {
    CHECK(a->B_cur > 0, "rater_backward before rater_forward");
    const int B = a->B_cur, T = a->T_cur, C = cfg->d_model;
    const size_t BC = (size_t)B * C;
    RaterParams P, G;
    rater_point_params(&P, (real *)phi, cfg);
    rater_point_params(&G, dphi, cfg);
    be->to_device(a->d_z, dz, (size_t)B * sizeof(real));

    /* the head's input cotangents are written by matmul's and GELU's backward (backend.h);
     * mean pooling's backward accumulates, so its output is zeroed first */
    be->matmul_backward(a->d_h_gelu, G.head_out_w, G.head_out_b, a->d_z, a->h_gelu,
                        P.head_out_w, B, C, 1, MATMUL_W_C_OC, 1);
    be->gelu_backward(a->d_h, a->h, a->d_h_gelu, BC);
    be->matmul_backward(a->d_pooled, G.head_fc_w, G.head_fc_b, a->d_h, a->pooled,
                        P.head_fc_w, B, C, C, MATMUL_W_C_OC, C);
    be->vec_zero(a->bwd.lnf, (size_t)B * T * C);
    be->meanpool_backward(a->bwd.lnf, a->d_pooled, a->valid_len, B, T, C);
    trunk_backward(be, cfg, &P.trunk, &G.trunk, &a->fwd, &a->bwd, a->tokens, a->valid_len, 0,
                   B, T);
}
