/* optim.c — clipping, learning-rate schedule and optimizer state (see optim.h).
 * The update arithmetic itself is the backend's (adamw_forward / sgd_forward); this file
 * only computes scalars (norm, clip factor, learning rate) and keeps the state. */
#include "optim.h"

#include <math.h>
#include <string.h>

#include "check.h"

OptimHyper optim_hyper_lm(const Config *cfg, long total_steps) {
    OptimHyper h = {
        .kind = strcmp(cfg->lm.optimizer, "sgd") == 0 ? OPTIM_SGD : OPTIM_ADAMW,
        .lr = cfg->lm.lr, .beta1 = cfg->lm.beta1, .beta2 = cfg->lm.beta2, .eps = cfg->lm.eps,
        .momentum = cfg->lm.momentum, .weight_decay = cfg->lm.weight_decay,
        .clip = cfg->lm.clip,
        .schedule = strcmp(cfg->lm.schedule, "constant") == 0 ? LR_CONSTANT : LR_COSINE,
        .warmup_steps = cfg->lm.warmup_steps, .total_steps = total_steps,
        .min_lr_frac = cfg->lm.min_lr_frac,
    };
    return h;
}

OptimHyper optim_hyper_rater(const Config *cfg, long total_steps) {
    OptimHyper h = {
        .kind = OPTIM_ADAMW,
        .lr = cfg->rater.lr, .beta1 = cfg->rater.beta1, .beta2 = cfg->rater.beta2,
        .eps = cfg->rater.eps, .weight_decay = cfg->rater.weight_decay, .clip = cfg->rater.clip,
        .schedule = LR_CONSTANT, .warmup_steps = 0, .total_steps = total_steps,
        .min_lr_frac = 1.0,
    };
    return h;
}

double lr_at(const OptimHyper *h, long step) {
    if (step < 0) step = 0;
    if (h->warmup_steps > 0 && step < h->warmup_steps)
        return h->lr * (double)(step + 1) / (double)h->warmup_steps;
    if (h->schedule == LR_CONSTANT || h->total_steps <= h->warmup_steps) return h->lr;
    double p = (double)(step - h->warmup_steps) / (double)(h->total_steps - h->warmup_steps);
    if (p > 1) p = 1;
    double lr_min = h->min_lr_frac * h->lr;
    return lr_min + 0.5 * (h->lr - lr_min) * (1.0 + cos(M_PI * p));
}

double clip_factor(const Backend *be, const real *g, size_t n, double clip, double *norm_out) {
    double norm = sqrt(be->vec_sumsq(g, n));
    if (norm_out) *norm_out = norm;
    return clip > 0 && norm > clip ? clip / norm : 1.0;
}

/* ĝ = s g with s = c/‖g‖: ∂ĝ/∂g = s (I − g gᵀ/‖g‖²), symmetric, so
 * dg = s (dĝ − g ⟨g, dĝ⟩/‖g‖²). */
void clip_backward(const Backend *be, real *dg, const real *dghat, const real *g, size_t n,
                   double clip) {
    double sumsq = be->vec_sumsq(g, n), norm = sqrt(sumsq);
    if (dg != dghat) be->vec_copy(dg, dghat, n);
    if (!(clip > 0 && norm > clip)) return;
    double s = clip / norm, gd = be->vec_dot(g, dghat, n);
    be->vec_scale(dg, s, n);
    be->vec_axpy(dg, -s * gd / sumsq, g, n);
}

void optim_state_init(OptimState *st, const Backend *be, int kind, size_t n) {
    memset(st, 0, sizeof *st);
    st->kind = kind;
    st->n = n;
    st->m = be->alloc(n * sizeof(real));
    if (kind == OPTIM_ADAMW) st->v = be->alloc(n * sizeof(real));
}

void optim_state_free(OptimState *st, const Backend *be) {
    if (st->m) be->free(st->m);
    if (st->v) be->free(st->v);
    st->m = st->v = NULL;
}

void optim_state_zero(OptimState *st, const Backend *be) {
    be->vec_zero(st->m, st->n);
    if (st->v) be->vec_zero(st->v, st->n);
    st->step = 0;
}

void optim_state_copy(OptimState *dst, const OptimState *src, const Backend *be) {
    CHECK(dst->kind == src->kind && dst->n == src->n, "optim_state_copy: different states");
    be->vec_copy(dst->m, src->m, src->n);
    if (src->v) be->vec_copy(dst->v, src->v, src->n);
    dst->step = src->step;
}

AdamWHyper optim_adamw_hyper(const OptimHyper *h, double lr, long k) {
    AdamWHyper a = { .lr = lr, .beta1 = h->beta1, .beta2 = h->beta2, .eps = h->eps,
                     .weight_decay = h->weight_decay, .step = k };
    return a;
}

SGDHyper optim_sgd_hyper(const OptimHyper *h, double lr) {
    SGDHyper s = { .lr = lr, .momentum = h->momentum, .weight_decay = h->weight_decay };
    return s;
}

void optim_step(const Backend *be, OptimState *st, real *params, const real *grads,
                const OptimHyper *h, double lr, OptimStepInfo *info) {
    CHECK(st->kind == h->kind, "optim_step: state is %s, hyper-parameters %s",
          st->kind == OPTIM_SGD ? "sgd" : "adamw", h->kind == OPTIM_SGD ? "sgd" : "adamw");
    double norm;
    double s = clip_factor(be, grads, st->n, h->clip, &norm);
    if (st->kind == OPTIM_ADAMW) {
        AdamWHyper a = optim_adamw_hyper(h, lr, st->step + 1);
        be->adamw_forward(params, st->m, st->v, grads, s, st->n, &a);
    } else {
        SGDHyper g = optim_sgd_hyper(h, lr);
        be->sgd_forward(params, st->m, grads, s, st->n, &g);
    }
    st->step++;
    if (info) {
        info->grad_norm = norm;
        info->clip_scale = s;
        info->lr = lr;
    }
}
