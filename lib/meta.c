/* meta.c — one population member's meta-step and its exact meta-gradient (DESIGN §4.2).
 *
 * Read it in the order it runs:
 *   1. the forward unroll: T inner steps from (θ_0, state_0), weights from the rater,
 *      keeping (θ, optimizer state) every c steps and the example weights of every step;
 *   2. L_val(θ_T) and its gradient θ̄_T; J = L_val + regularizers;
 *   3. the reverse pass, segment by segment (last first): recompute the segment's states
 *      from its checkpoint, then for t = e−1 … s0 the three steps of §4.2 — through the
 *      optimizer's Jacobian and the clip, one forward-over-reverse pass of the LM, back
 *      through the weights and the rater.
 * Memory: ceil(T/c) checkpoints of (θ, m, v, g) plus c − 1 segment states and
 * gradients, so O((T/c + c)·|θ|); activations of one batch at a time, never T of them.
 * The checkpoint also keeps g of the segment's LAST step (the gradient that produced the
 * next checkpoint), so a segment is recomputed in c − 1 inner steps, not c: its last
 * step's state comes from step c − 2's update and its gradient from the checkpoint.
 * meta.host_checkpoints keeps the ceil(T/c) checkpoints in host memory instead and copies
 * one at a time to the backend (a GPU then holds (4·c + 5)·|θ| of states and buffers,
 * not (4·(⌈T/c⌉ + c − 1) + 5)·|θ|); the arithmetic, and so every bit of the result, is
 * the same.
 *
 * Must never: keep T × activations, touch the member's state outside the unroll (the
 * reverse pass works on copies), or give a meta-gradient that differs from the finite
 * differences of J (tests/grad/test_meta.c checks it in double to 1e-6).
 */
#include "meta.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "progress.h"

/* ================================================================================
 * Spec
 * ================================================================================ */

static const char *const mode_names[] = { "full", "detach", "shuffle", "constant", "classifier" };

const char *meta_mode_name(int mode) {
    return mode >= 0 && mode < 5 ? mode_names[mode] : "?";
}

int meta_default_checkpoint_every(int T) {
    int c = (int)lround(sqrt((double)T));
    return c < 1 ? 1 : c > T ? T : c;
}

int meta_spec_from_config(MetaSpec *s, const Config *cfg, int vocab) {
    memset(s, 0, sizeof *s);
    s->lm = lm_config_from_shape(&cfg->lm.shape, vocab);
    s->rater = lm_config_from_shape(&cfg->rater.shape, vocab);
    if (lm_config_check(&s->lm)) return dr_seterr("lm: %s", dr_lasterr());
    if (lm_config_check(&s->rater)) return dr_seterr("rater: %s", dr_lasterr());
    if (cfg->meta.T < 1) return dr_seterr("meta.T = %d: must be at least 1", cfg->meta.T);
    s->T = cfg->meta.T;
    s->inner = optim_hyper_lm(cfg, (long)cfg->meta.T * (long)cfg->meta.reset_every);
    s->weights.kind = strcmp(cfg->rater.normalize, "softmax") == 0 ? WEIGHT_NORM_SOFTMAX
                                                                   : WEIGHT_NORM_SIGMOID;
    s->weights.tau = cfg->rater.tau;
    s->weights.w_min = cfg->rater.clamp_min;
    s->weights.w_max = cfg->rater.clamp_max;
    s->weights.mean_normalize = cfg->rater.mean_normalize;
    s->checkpoint_every = cfg->meta.checkpoint_every > 0 ? cfg->meta.checkpoint_every
                                                         : meta_default_checkpoint_every(s->T);
    if (s->checkpoint_every > s->T) s->checkpoint_every = s->T;
    s->host_checkpoints = cfg->meta.host_checkpoints;
    s->keep_activations = cfg->meta.keep_activations;
    if (s->keep_activations > s->T) s->keep_activations = s->T;
    if (s->keep_activations > 0 && !lm_tape_supported(&s->lm))
        return dr_seterr("meta.keep_activations = %d: not with lm.checkpointing or lm.head_chunk",
                         s->keep_activations);
    s->backprop_steps = cfg->meta.backprop_steps > 0 && cfg->meta.backprop_steps < s->T
                            ? cfg->meta.backprop_steps : s->T;
    s->hvp = cfg->meta.hvp;
    s->mode = -1;
    for (int m = 0; m < 5; m++)
        if (strcmp(cfg->meta.mode, mode_names[m]) == 0) s->mode = m;
    if (s->mode < 0) return dr_seterr("meta.mode = %s: unknown", cfg->meta.mode);
    s->entropy_penalty = cfg->rater.entropy_penalty;
    s->l2_to_mean = cfg->rater.l2_to_mean;
    s->batch = cfg->data.batch_size;
    s->seq_len = cfg->data.seq_len;
    s->seq_len_rater = cfg->data.seq_len_rater > 0 ? cfg->data.seq_len_rater : cfg->data.seq_len;
    if (s->batch < 1) return dr_seterr("data.batch_size = %d: must be at least 1", s->batch);
    if (s->seq_len > s->lm.ctx)
        return dr_seterr("data.seq_len = %d exceeds the LM context %d", s->seq_len, s->lm.ctx);
    if (s->seq_len_rater > s->rater.ctx)
        return dr_seterr("data.seq_len_rater = %d exceeds the rater context %d (its position "
                         "table has seq_len_rater rows)", s->seq_len_rater, s->rater.ctx);
    return 0;
}

void meta_stats_clear(MetaStats *st) {
    memset(st, 0, sizeof *st);
    st->score_min = INFINITY;
    st->score_max = -INFINITY;
}

void meta_stats_merge(MetaStats *a, const MetaStats *b) {
    a->members += b->members;
    a->l_train += b->l_train;
    a->l_val += b->l_val;
    a->objective += b->objective;
    a->clip_frac += b->clip_frac;
    a->n_scores += b->n_scores;
    a->score_sum += b->score_sum;
    a->score_sumsq += b->score_sumsq;
    if (b->score_min < a->score_min) a->score_min = b->score_min;
    if (b->score_max > a->score_max) a->score_max = b->score_max;
    a->entropy_sum += b->entropy_sum;
    a->at_min += b->at_min;
    a->at_max += b->at_max;
    a->sec_unroll += b->sec_unroll;
    a->sec_val += b->sec_val;
    a->sec_recompute += b->sec_recompute;
    a->sec_reverse += b->sec_reverse;
    a->sec_rater += b->sec_rater;
}

/* ================================================================================
 * Work buffers
 * ================================================================================ */

struct MetaWork {
    const Backend *be;
    MetaSpec s;
    size_t n;                   /* |θ| */
    size_t n_phi;               /* |φ| */
    int adam;                   /* the inner optimizer is AdamW (has v) */
    int reverse;                /* mode full or shuffle: checkpoints + reverse buffers */
    LMActs *lm;                 /* with tangents when reverse */
    RaterActs *rater;           /* NULL in mode constant */

    /* checkpoints: the state before step k·c, k < n_ckpt, and ck_g[k] = g of step
     * k·c + c − 1, the segment's last step. host_ck: they are host memory, and the
     * segment being recomputed or reversed works on a backend copy of its checkpoint
     * (st_*, loaded by load_checkpoint) */
    int n_ckpt, host_ck;
    real **ck_theta, **ck_m, **ck_v, **ck_g;
    real *st_theta, *st_m, *st_v, *st_g;
    /* segment states: the state before step s0 + j for 1 ≤ j < c, and g_{s0+j} for
     * 0 ≤ j < c − 1 (c > 1); j = 0's state is the checkpoint itself */
    real **sg_theta, **sg_m, **sg_v, **sg_g;

    /* activation tapes: tape[i] holds the primal pass of step tape_step[i] (−1: none) of
     * the current meta-step, i = t mod n_tape; the reverse pass replays them */
    int n_tape;
    LMTape **tape;
    int *tape_step;

    real *grad;                 /* g_t of a step whose gradient is not kept */
    real *dtheta, *dm, *dv;     /* θ̄_t, m̄_t, v̄_t (dm: SGD's momentum buffer) */
    real *u;                    /* cotangent of ĝ_t, then of g_t */

    /* host records of the unroll: per step t the batch size, the rater logits z_t and
     * the weights w_t ([T·B], row t), the clip factor s_t and the learning rate */
    int *nb;
    real *z, *w;
    double *clip_s, *lr;
    long step0;                 /* the member's optimizer step before the meta-step */
    int have_z;                 /* z recorded (mode ≠ constant) */

    /* host [B] scratch */
    real *dlosses, *losses, *dloss_dir, *dw, *dw_raw, *dz, *w_raw;
    int *perm;

    double sec_recompute, sec_reverse, sec_rater;   /* of the last reverse pass */
    size_t bytes, host_bytes;
};

static real *flat_alloc(MetaWork *w, size_t n) {
    w->bytes += n * sizeof(real);
    return w->be->alloc(n * sizeof(real));
}

static real **flat_array(MetaWork *w, int count, size_t n, int first) {
    real **a = xcalloc((size_t)(count > 0 ? count : 1), sizeof *a);
    for (int i = first; i < count; i++) a[i] = flat_alloc(w, n);
    return a;
}

static void flat_array_free(const Backend *be, real **a, int count) {
    if (!a) return;
    for (int i = 0; i < count; i++)
        if (a[i]) be->free(a[i]);
    free(a);
}

/* count host buffers of n reals (host_checkpoints); NULL if the memory is not there */
static real **host_array(int count, size_t n) {
    real **a = calloc((size_t)(count > 0 ? count : 1), sizeof *a);
    for (int i = 0; a && i < count; i++)
        if (!(a[i] = malloc(n * sizeof(real)))) {
            while (i > 0) free(a[--i]);
            free(a);
            return NULL;
        }
    return a;
}

static void host_array_free(real **a, int count) {
    if (!a) return;
    for (int i = 0; i < count; i++) free(a[i]);
    free(a);
}

/* host_checkpoints: the host buffers of the checkpoints, made on the first meta-step
 * that keeps them (so that a MetaWork made only to count bytes holds none). 0, or -1 +
 * dr_seterr when the machine cannot hold them. */
static int host_checkpoints_alloc(MetaWork *w) {
    if (w->ck_theta) return 0;
    const double need = (double)w->host_bytes, avail = backend_cpu.mem_available();   /* host memory */
    const double gib = 1073741824.0;
    if (avail > 0 && need > 0.9 * avail)
        return dr_seterr("meta.host_checkpoints: %d checkpoints of %zu parameters need %.1f GiB "
                         "of host memory, more than 90%% of the %.1f GiB available to this "
                         "process now (each process of a population holds its own): raise "
                         "meta.checkpoint_every (now %d) or set meta.host_checkpoints: false",
                         w->n_ckpt, w->n, need / gib, avail / gib, w->s.checkpoint_every);
    w->ck_theta = host_array(w->n_ckpt, w->n);
    w->ck_m = host_array(w->n_ckpt, w->n);
    w->ck_v = w->adam ? host_array(w->n_ckpt, w->n) : NULL;
    w->ck_g = host_array(w->n_ckpt, w->n);
    if (!w->ck_theta || !w->ck_m || (w->adam && !w->ck_v) || !w->ck_g) {
        host_array_free(w->ck_theta, w->n_ckpt); host_array_free(w->ck_m, w->n_ckpt);
        host_array_free(w->ck_v, w->n_ckpt); host_array_free(w->ck_g, w->n_ckpt);
        w->ck_theta = w->ck_m = w->ck_v = w->ck_g = NULL;
        return dr_seterr("meta.host_checkpoints: out of host memory for %.1f GiB of checkpoints",
                         need / gib);
    }
    return 0;
}

/* The activation tapes: keep_activations of them, or for -1 min(c, 4) where the tape is
 * supported, no more than half of what the backend had available holds (measured on the
 * first tape, whose pages the CPU backend only maps). */
static void tapes_alloc(MetaWork *w) {
    const MetaSpec *s = &w->s;
    int n = s->keep_activations;
    const double avail = n < 0 && w->be->mem_available ? w->be->mem_available() : 0;
    if (n < 0) n = !lm_tape_supported(&s->lm) ? 0 : s->checkpoint_every < 4 ? s->checkpoint_every : 4;
    if (n > s->T) n = s->T;
    if (n == 0) return;
    w->tape = xcalloc((size_t)n, sizeof *w->tape);
    w->tape_step = xcalloc((size_t)n, sizeof *w->tape_step);
    w->tape[0] = lm_tape_new(w->be, &s->lm, s->batch, s->seq_len);
    const double per = (double)lm_tape_bytes(w->tape[0]);
    if (avail > 0 && 0.5 * avail < n * per) n = (int)(0.5 * avail / per);
    if (n == 0) {
        lm_tape_free(w->be, w->tape[0]);
        free(w->tape);
        free(w->tape_step);
        w->tape = NULL;
        w->tape_step = NULL;
        return;
    }
    for (int i = 0; i < n; i++) {
        if (i > 0) w->tape[i] = lm_tape_new(w->be, &s->lm, s->batch, s->seq_len);
        w->tape_step[i] = -1;
        w->bytes += lm_tape_bytes(w->tape[i]);
    }
    w->n_tape = n;
}

MetaWork *meta_work_new(const Backend *be, const MetaSpec *s) {
    MetaWork *w = xcalloc(1, sizeof *w);
    w->be = be;
    w->s = *s;
    w->n = lm_num_params(&s->lm);
    w->n_phi = rater_num_params(&s->rater);
    w->adam = s->inner.kind == OPTIM_ADAMW;
    w->reverse = s->mode == META_FULL || s->mode == META_SHUFFLE;
    const int T = s->T, B = s->batch, c = s->checkpoint_every;
    CHECK(c >= 1 && c <= T, "meta_work_new: checkpoint_every %d outside [1, %d]", c, T);

    w->lm = lm_acts_new(be, &s->lm, B, s->seq_len, w->reverse);
    w->bytes += lm_acts_bytes(w->lm);
    if (s->mode != META_CONSTANT) w->rater = rater_acts_new(be, &s->rater, B, s->seq_len_rater);
    w->grad = flat_alloc(w, w->n);
    if (w->reverse) {
        w->n_ckpt = (T + c - 1) / c;
        w->host_ck = s->host_checkpoints;
        if (w->host_ck) {   /* the host checkpoints themselves: host_checkpoints_alloc */
            w->host_bytes = (size_t)w->n_ckpt * (w->adam ? 4 : 3) * w->n * sizeof(real);
            w->bytes += w->host_bytes;
            w->st_theta = flat_alloc(w, w->n);
            w->st_m = flat_alloc(w, w->n);
            w->st_v = w->adam ? flat_alloc(w, w->n) : NULL;
            w->st_g = flat_alloc(w, w->n);
        } else {
            w->ck_theta = flat_array(w, w->n_ckpt, w->n, 0);
            w->ck_m = flat_array(w, w->n_ckpt, w->n, 0);
            w->ck_v = w->adam ? flat_array(w, w->n_ckpt, w->n, 0) : NULL;
            w->ck_g = flat_array(w, w->n_ckpt, w->n, 0);
        }
        w->sg_theta = flat_array(w, c, w->n, 1);
        w->sg_m = flat_array(w, c, w->n, 1);
        w->sg_v = w->adam ? flat_array(w, c, w->n, 1) : NULL;
        w->sg_g = c > 1 ? flat_array(w, c - 1, w->n, 0) : NULL;
        w->dtheta = flat_alloc(w, w->n);
        w->dm = flat_alloc(w, w->n);
        w->dv = w->adam ? flat_alloc(w, w->n) : NULL;
        w->u = flat_alloc(w, w->n);
        tapes_alloc(w);
    }
    w->nb = xcalloc((size_t)T, sizeof *w->nb);
    w->z = xcalloc((size_t)T * B, sizeof *w->z);
    w->w = xcalloc((size_t)T * B, sizeof *w->w);
    w->clip_s = xcalloc((size_t)T, sizeof *w->clip_s);
    w->lr = xcalloc((size_t)T, sizeof *w->lr);
    w->bytes += (size_t)T * (sizeof(int) + 2 * sizeof(double) + 2 * (size_t)B * sizeof(real));
    real **host[] = { &w->dlosses, &w->losses, &w->dloss_dir, &w->dw, &w->dw_raw, &w->dz, &w->w_raw };
    for (size_t i = 0; i < sizeof host / sizeof *host; i++) *host[i] = xcalloc((size_t)B, sizeof(real));
    w->perm = xcalloc((size_t)B, sizeof *w->perm);
    w->bytes += 7 * (size_t)B * sizeof(real) + (size_t)B * sizeof(int);
    return w;
}

void meta_work_free(MetaWork *w) {
    if (!w) return;
    const Backend *be = w->be;
    const int c = w->s.checkpoint_every;
    lm_acts_free(be, w->lm);
    rater_acts_free(be, w->rater);
    for (int i = 0; i < w->n_tape; i++) lm_tape_free(be, w->tape[i]);
    free(w->tape);
    free(w->tape_step);
    be->free(w->grad);
    if (w->reverse) {
        if (w->host_ck) {
            host_array_free(w->ck_theta, w->n_ckpt);
            host_array_free(w->ck_m, w->n_ckpt);
            host_array_free(w->ck_v, w->n_ckpt);
            host_array_free(w->ck_g, w->n_ckpt);
            be->free(w->st_theta);
            be->free(w->st_m);
            if (w->st_v) be->free(w->st_v);
            be->free(w->st_g);
        } else {
            flat_array_free(be, w->ck_theta, w->n_ckpt);
            flat_array_free(be, w->ck_m, w->n_ckpt);
            flat_array_free(be, w->ck_v, w->n_ckpt);
            flat_array_free(be, w->ck_g, w->n_ckpt);
        }
        flat_array_free(be, w->sg_theta, c);
        flat_array_free(be, w->sg_m, c);
        flat_array_free(be, w->sg_v, c);
        flat_array_free(be, w->sg_g, c - 1);
        be->free(w->dtheta);
        be->free(w->dm);
        if (w->dv) be->free(w->dv);
        be->free(w->u);
    }
    free(w->nb); free(w->z); free(w->w); free(w->clip_s); free(w->lr);
    free(w->dlosses); free(w->losses); free(w->dloss_dir); free(w->dw); free(w->dw_raw);
    free(w->dz); free(w->w_raw); free(w->perm);
    free(w);
}

size_t meta_work_bytes(const MetaWork *w) { return w->bytes; }
size_t meta_work_host_bytes(const MetaWork *w) { return w->host_bytes; }
int meta_work_tapes(const MetaWork *w) { return w->n_tape; }

/* The stored state before step t = k·c + j: checkpoint k for j = 0, segment slot j
 * otherwise; and where g_t is kept (checkpoint k for the segment's last step j = c − 1,
 * segment slot j else). */
typedef struct { real *theta, *m, *v, *g; } Slot;

static Slot slot_of(const MetaWork *w, int t) {
    const int c = w->s.checkpoint_every, k = t / c, j = t % c;
    Slot s;
    if (w->host_ck) {   /* checkpoint k's backend copy (load_checkpoint) */
        s.theta = j == 0 ? w->st_theta : w->sg_theta[j];
        s.m = j == 0 ? w->st_m : w->sg_m[j];
        s.v = !w->adam ? NULL : j == 0 ? w->st_v : w->sg_v[j];
        s.g = j == c - 1 ? w->st_g : w->sg_g[j];
        return s;
    }
    s.theta = j == 0 ? w->ck_theta[k] : w->sg_theta[j];
    s.m = j == 0 ? w->ck_m[k] : w->sg_m[j];
    s.v = !w->adam ? NULL : j == 0 ? w->ck_v[k] : w->sg_v[j];
    s.g = j == c - 1 ? w->ck_g[k] : w->sg_g[j];
    return s;
}

/* host_checkpoints: checkpoint k (state and, for a segment of all c steps, its last
 * step's g; a shorter last segment keeps every g in segment slots) to its backend copy */
static void load_checkpoint(MetaWork *w, int k) {
    const Backend *be = w->be;
    const size_t bytes = w->n * sizeof(real);
    const int c = w->s.checkpoint_every;
    be->to_device(w->st_theta, w->ck_theta[k], bytes);
    be->to_device(w->st_m, w->ck_m[k], bytes);
    if (w->adam) be->to_device(w->st_v, w->ck_v[k], bytes);
    if ((k + 1) * c <= w->s.T) be->to_device(w->st_g, w->ck_g[k], bytes);
}

/* ================================================================================
 * Pieces of an inner step
 * ================================================================================ */

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Mode shuffle: w_t[i] = w_raw[perm[i]], a Fisher–Yates permutation of the batch drawn
 * from (key, t) alone, so the reverse pass redraws the same one. */
static void shuffle_perm(int *perm, int B, uint64_t key, int t) {
    for (int i = 0; i < B; i++) perm[i] = i;
    uint64_t state = mix64(key ^ mix64((uint64_t)t + 0x5348554646ULL));
    for (int i = B - 1; i > 0; i--) {
        state = mix64(state);
        int j = (int)(state % (uint64_t)(i + 1));
        int tmp = perm[i]; perm[i] = perm[j]; perm[j] = tmp;
    }
}

static double sigmoid(double x) {
    if (x >= 0) return 1 / (1 + exp(-x));
    double e = exp(x);
    return e / (1 + e);
}

/* Wall clock at a phase boundary (the backend finishes its queued work first). */
static double clock_now(const Backend *be) {
    be->synchronize();
    return dr_now();
}

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* −H(s) = s·log s + (1 − s)·log(1 − s) of s = σ(x), as −s·softplus(−x) − (1 − s)·softplus(x)
 * with 1 − s = σ(−x): two terms of one sign, each accurate, where 1 − s from s would cancel
 * (exact to the last bits for every x; the limit 0 where s rounds to 0 or 1). *one_minus = σ(−x). */
static double neg_entropy(double x, double *s_out, double *one_minus) {
    double sg = sigmoid(x), sm = sigmoid(-x);
    if (s_out) *s_out = sg;
    if (one_minus) *one_minus = sm;
    return -sg * softplus(-x) - sm * softplus(x);
}

/* Regularizers of one example: value r(z) = ep·(−H(s)) + l2·(s − ½)², s = σ(z/τ), and
 * dr/dz = (ep·z/τ + 2·l2·(s − ½))·s(1 − s)/τ (d(−H)/ds = logit(s) = z/τ). */
static double reg_value(const MetaSpec *s, double z, double *dr_dz) {
    double tau = s->weights.tau, sg, sm;
    double neg_h = neg_entropy(z / tau, &sg, &sm);
    if (dr_dz)
        *dr_dz = (s->entropy_penalty * z / tau + 2 * s->l2_to_mean * (sg - 0.5)) * sg * sm / tau;
    return s->entropy_penalty * neg_h + s->l2_to_mean * (sg - 0.5) * (sg - 0.5);
}

static int has_reg(const MetaSpec *s) { return s->entropy_penalty > 0 || s->l2_to_mean > 0; }

/* z_t and w_t of Train_A batch t (recorded in w->z, w->w), and dlosses = w_t/B.
 * Mode constant and the uniform shadow: w = 1, the rater is not run. The [B] weight
 * vectors are host memory, so the normalization runs as the CPU op. */
static void step_weights(MetaWork *w, const real *phi, const DataBatch *b, int t,
                         int uniform, uint64_t key) {
    const MetaSpec *s = &w->s;
    const int B = b->B;
    real *zt = w->z + (size_t)t * s->batch, *wt = w->w + (size_t)t * s->batch;
    w->nb[t] = B;
    if (uniform) {
        for (int i = 0; i < B; i++) { zt[i] = 0; wt[i] = 1; }
    } else {
        rater_forward(w->be, &s->rater, phi, w->rater, b->rater_tokens, b->rater_valid, B,
                      b->T_rater, zt);
        if (s->mode == META_SHUFFLE) {
            backend_cpu.weights_forward(w->w_raw, zt, &s->weights, B);
            shuffle_perm(w->perm, B, key, t);
            for (int i = 0; i < B; i++) wt[i] = w->w_raw[w->perm[i]];
        } else {
            backend_cpu.weights_forward(wt, zt, &s->weights, B);
        }
    }
}

static void step_dlosses(MetaWork *w, int t) {
    const int B = w->nb[t];
    const real *wt = w->w + (size_t)t * w->s.batch;
    for (int i = 0; i < B; i++) w->dlosses[i] = wt[i] / (real)B;
}

/* g = ∇θ (1/B) Σ_i w_i ℓ_i at θ on batch b (dlosses already set); returns mean_i ℓ_i.
 * record ≥ 0: step `record`'s pass goes into its tape for the reverse pass. */
static double inner_gradient(MetaWork *w, const real *theta, const DataBatch *b, real *g,
                             int record) {
    const Backend *be = w->be;
    be->vec_zero(g, w->n);
    if (record >= 0 && w->n_tape > 0) {   /* the tape keeps the probabilities */
        const int i = record % w->n_tape;
        lm_forward(be, &w->s.lm, theta, w->lm, b->inputs, b->targets, b->n_valid, b->B, b->T,
                   w->losses);
        lm_backward_record(be, &w->s.lm, theta, w->lm, w->dlosses, g, w->tape[i]);
        w->tape_step[i] = record;
    } else {
        lm_forward_backward(be, &w->s.lm, theta, w->lm, b->inputs, b->targets, b->n_valid,
                            b->B, b->T, w->dlosses, w->losses, g);
    }
    double sum = 0;
    for (int i = 0; i < b->B; i++) sum += w->losses[i];
    return sum / b->B;
}

/* (θ, m, v) ← U(θ, m, v, s·g) at inner step t of the meta-step: exactly optim_step's
 * arithmetic (clip_factor, lr_at, AdamW step k = step0 + t + 1). Records s_t and lr_t. */
static void inner_update(MetaWork *w, real *theta, real *m, real *v, const real *g, int t) {
    const Backend *be = w->be;
    const OptimHyper *h = &w->s.inner;
    const long step = w->step0 + t;
    double s = clip_factor(be, g, w->n, h->clip, NULL), lr = lr_at(h, step);
    if (w->adam) {
        AdamWHyper a = optim_adamw_hyper(h, lr, step + 1);
        be->adamw_forward(theta, m, v, g, s, w->n, &a);
    } else {
        SGDHyper sh = optim_sgd_hyper(h, lr);
        be->sgd_forward(theta, m, g, s, w->n, &sh);
    }
    w->clip_s[t] = s;
    w->lr[t] = lr;
}

/* Scores of step t into the statistics: the logits z, the entropy of σ(z/τ), and how
 * many sigmoid weights sit at a clamp bound. */
static void stats_scores(const MetaWork *w, int t, MetaStats *st) {
    const MetaSpec *s = &w->s;
    const real *zt = w->z + (size_t)t * s->batch;
    for (int i = 0; i < w->nb[t]; i++) {
        double z = zt[i], sg, neg_h = neg_entropy(z / s->weights.tau, &sg, NULL);
        st->n_scores++;
        st->score_sum += z;
        st->score_sumsq += z * z;
        if (z < st->score_min) st->score_min = z;
        if (z > st->score_max) st->score_max = z;
        st->entropy_sum -= neg_h;
        if (s->weights.kind == WEIGHT_NORM_SIGMOID) {
            if (sg <= s->weights.w_min) st->at_min++;
            if (sg >= s->weights.w_max) st->at_max++;
        }
    }
}

/* ================================================================================
 * 1. The forward unroll
 * ================================================================================ */

/* T inner steps from (theta, opt), advancing them in place; uniform: w = 1, rater not
 * run. keep: store what the reverse pass needs — the checkpoints with the gradient of
 * each segment's last step, and the states and gradients of the last segment (which is therefore never recomputed); segments the
 * reverse pass never reaches (t < T − backprop_steps) keep nothing. Writes the mean
 * training loss and the fraction of clipped steps. */
static int unroll(MetaWork *w, real *theta, OptimState *opt, const real *phi,
                  const MetaBatches *data, uint64_t key, int uniform, int keep,
                  double *l_train, double *clip_frac) {
    const Backend *be = w->be;
    const MetaSpec *s = &w->s;
    const int T = s->T, c = s->checkpoint_every, last_seg = (T - 1) / c;
    const int t_stop = T - s->backprop_steps;
    CHECK(opt->kind == s->inner.kind && opt->n == w->n, "meta: optimizer state does not match");
    if (keep && w->host_ck && host_checkpoints_alloc(w)) return -1;
    w->step0 = opt->step;
    w->have_z = !uniform;
    for (int i = 0; i < w->n_tape; i++) w->tape_step[i] = -1;   /* θ moves: old tapes are void */
    const int record_from = keep ? (T - w->n_tape > t_stop ? T - w->n_tape : t_stop) : T;
    double loss_sum = 0;
    int clipped = 0;
    for (int t = 0; t < T; t++) {
        const DataBatch *b = data->train(data->ctx, t);
        if (!b) return -1;
        step_weights(w, phi, b, t, uniform, key);
        step_dlosses(w, t);

        const int k = t / c, j = t % c;
        const int seg_used = keep && (k + 1) * c > t_stop;   /* the reverse pass reaches it */
        const int keep_state = seg_used && (j == 0 || k == last_seg);
        const int keep_g = seg_used && (j == c - 1 || k == last_seg);
        Slot sl = keep_state || keep_g ? slot_of(w, t) : (Slot){ 0 };
        if (keep_state && w->host_ck && j == 0) {   /* checkpoint k, to host memory */
            be->to_host(w->ck_theta[k], theta, w->n * sizeof(real));
            be->to_host(w->ck_m[k], opt->m, w->n * sizeof(real));
            if (w->adam) be->to_host(w->ck_v[k], opt->v, w->n * sizeof(real));
        } else if (keep_state) {
            be->vec_copy(sl.theta, theta, w->n);
            be->vec_copy(sl.m, opt->m, w->n);
            if (w->adam) be->vec_copy(sl.v, opt->v, w->n);
        }
        real *g = keep_g ? sl.g : w->grad;
        loss_sum += inner_gradient(w, theta, b, g, t >= record_from ? t : -1);
        if (keep_g && w->host_ck && j == c - 1) be->to_host(w->ck_g[k], g, w->n * sizeof(real));
        inner_update(w, theta, opt->m, opt->v, g, t);
        clipped += w->clip_s[t] < 1;
    }
    opt->step += T;
    *l_train = loss_sum / T;
    *clip_frac = (double)clipped / T;
    return 0;
}

/* ================================================================================
 * 2. The outer loss
 * ================================================================================ */

/* L_val(θ) = mean over the Val batches of the mean example loss; with dtheta, also
 * dtheta = ∇θ L_val (overwritten). */
static int val_loss(MetaWork *w, const real *theta, const MetaBatches *data, real *dtheta,
                    double *l_val) {
    const Backend *be = w->be;
    const int nv = data->n_val;
    CHECK(nv >= 1, "meta: no Val batches");
    if (dtheta) be->vec_zero(dtheta, w->n);
    double total = 0;
    for (int j = 0; j < nv; j++) {
        const DataBatch *b = data->val(data->ctx, j);
        if (!b) return -1;
        if (dtheta) {
            for (int i = 0; i < b->B; i++) w->dlosses[i] = (real)(1.0 / ((double)nv * b->B));
            lm_forward_backward(be, &w->s.lm, theta, w->lm, b->inputs, b->targets, b->n_valid,
                                b->B, b->T, w->dlosses, w->losses, dtheta);
        } else {
            lm_forward(be, &w->s.lm, theta, w->lm, b->inputs, b->targets, b->n_valid, b->B,
                       b->T, w->losses);
        }
        double sum = 0;
        for (int i = 0; i < b->B; i++) sum += w->losses[i];
        total += sum / b->B;
    }
    *l_val = total / nv;
    return 0;
}

/* The regularizers' value over the steps the reverse pass covers (t ≥ T − N). */
static double reg_total(const MetaWork *w, long *n_out) {
    const MetaSpec *s = &w->s;
    long n = 0;
    double sum = 0;
    for (int t = s->T - s->backprop_steps; t < s->T; t++) {
        const real *zt = w->z + (size_t)t * s->batch;
        for (int i = 0; i < w->nb[t]; i++) sum += reg_value(s, zt[i], NULL);
        n += w->nb[t];
    }
    *n_out = n;
    return n > 0 ? sum / n : 0;
}

/* ================================================================================
 * 3. The reverse pass
 * ================================================================================ */

/* Rebuilds the states and gradients of segment seg, steps [s0, e), from its checkpoint:
 * the same arithmetic as the unroll on the same batches and recorded weights, so the
 * states are bit-identical to the forward ones. */
static int recompute_segment(MetaWork *w, int seg, const MetaBatches *data) {
    const Backend *be = w->be;
    const int c = w->s.checkpoint_every, s0 = seg * c;
    const int e = s0 + c < w->s.T ? s0 + c : w->s.T;
    /* steps s0 … e − 2; the last step's g was kept by the unroll (ck_g), so c == 1
     * recomputes nothing */
    for (int t = s0; t + 1 < e; t++) {
        const DataBatch *b = data->train(data->ctx, t);
        if (!b) return -1;
        Slot cur = slot_of(w, t), next = slot_of(w, t + 1);
        step_dlosses(w, t);
        inner_gradient(w, cur.theta, b, cur.g, t);
        be->vec_copy(next.theta, cur.theta, w->n);
        be->vec_copy(next.m, cur.m, w->n);
        if (w->adam) be->vec_copy(next.v, cur.v, w->n);
        inner_update(w, next.theta, next.m, next.v, cur.g, t);
    }
    return 0;
}

/* Step (1): through U's Jacobian at step t, then through the clip.
 * In: dtheta = θ̄_{t+1}, dm/dv = statē_{t+1}. Out: dtheta = θ̄_t's direct part,
 * dm/dv = statē_t, u = ḡ_t (the cotangent of the unclipped gradient g_t). */
static void optimizer_backward(MetaWork *w, int t, const Slot *sl) {
    const Backend *be = w->be;
    const OptimHyper *h = &w->s.inner;
    if (w->adam) {
        AdamWHyper a = optim_adamw_hyper(h, w->lr[t], w->step0 + t + 1);
        be->adamw_backward(w->dtheta, w->dm, w->dv, w->u, sl->m, sl->v, sl->g, w->clip_s[t],
                           w->n, &a);
    } else {
        SGDHyper sh = optim_sgd_hyper(h, w->lr[t]);
        be->sgd_backward(w->dtheta, w->dm, w->u, w->n, &sh);
    }
    clip_backward(be, w->u, w->u, sl->g, w->n, h->clip);
}

/* Step (3): w̄_t → z̄_t (weights, shuffle, regularizers) → φ̄ += (∂z_t/∂φ)ᵀ z̄_t. */
static void rater_backward_step(MetaWork *w, int t, const DataBatch *b, const real *phi,
                                uint64_t key, double reg_scale, real *dphi) {
    const MetaSpec *s = &w->s;
    const int B = b->B;
    const real *zt = w->z + (size_t)t * s->batch;
    for (int i = 0; i < B; i++) w->dz[i] = 0;
    if (has_reg(s))
        for (int i = 0; i < B; i++) {
            double d;
            reg_value(s, zt[i], &d);
            w->dz[i] = (real)(reg_scale * d);
        }
    const real *dw = w->dw;
    if (s->mode == META_SHUFFLE) {   /* w_t[i] = w_raw[perm[i]] */
        shuffle_perm(w->perm, B, key, t);
        for (int i = 0; i < B; i++) w->dw_raw[i] = 0;
        for (int i = 0; i < B; i++) w->dw_raw[w->perm[i]] += w->dw[i];
        dw = w->dw_raw;
    }
    backend_cpu.weights_backward(w->dz, dw, zt, &s->weights, B);   /* += */
    rater_forward(w->be, &s->rater, phi, w->rater, b->rater_tokens, b->rater_valid, B,
                  b->T_rater, NULL);
    rater_backward(w->be, &s->rater, phi, w->rater, w->dz, dphi);
}

/* θ̄_T = ∇L_val(θ_T) is in w->dtheta; accumulates φ̄ into dphi. */
static int reverse_pass(MetaWork *w, const real *phi, const MetaBatches *data, uint64_t key,
                        double reg_scale, real *dphi) {
    const Backend *be = w->be;
    const MetaSpec *s = &w->s;
    const int T = s->T, c = s->checkpoint_every, t_stop = T - s->backprop_steps;
    be->vec_zero(w->dm, w->n);                 /* statē_T = 0 */
    if (w->dv) be->vec_zero(w->dv, w->n);
    w->sec_recompute = w->sec_reverse = w->sec_rater = 0;
    double t0 = clock_now(be), t1;

    for (int seg = (T - 1) / c; seg >= 0 && (seg + 1) * c > t_stop; seg--) {
        const int s0 = seg * c, e = s0 + c < T ? s0 + c : T;
        if (w->host_ck) load_checkpoint(w, seg);
        if (seg != (T - 1) / c && recompute_segment(w, seg, data)) return -1;
        t1 = clock_now(be);
        w->sec_recompute += t1 - t0;
        t0 = t1;

        for (int t = e - 1; t >= s0 && t >= t_stop; t--) {
            const DataBatch *b = data->train(data->ctx, t);
            if (!b) return -1;
            const Slot sl = slot_of(w, t);

            /* (1) optimizer Jacobian and clip: θ̄_t (direct), statē_t, u = ḡ_t */
            optimizer_backward(w, t, &sl);

            /* (2) forward-over-reverse at (θ_t, batch t, dlosses = w_t/B) along u:
             *     θ̄_t += H_t u;  w̄_ti = ⟨∇ℓ_i, u⟩ / B */
            step_dlosses(w, t);
            const int ti = w->n_tape > 0 ? t % w->n_tape : -1;
            if (ti >= 0 && w->tape_step[ti] == t)   /* its primal pass is on tape */
                lm_forward_over_reverse_replay(be, &s->lm, sl.theta, w->u, w->lm, w->tape[ti],
                                               w->dlosses, s->hvp ? w->dtheta : NULL,
                                               w->dloss_dir);
            else
                lm_forward_over_reverse(be, &s->lm, sl.theta, w->u, w->lm, b->inputs,
                                        b->targets, b->n_valid, b->B, b->T, w->dlosses, NULL,
                                        NULL, s->hvp ? w->dtheta : NULL /* += H_t u */,
                                        w->dloss_dir);
            for (int i = 0; i < b->B; i++) w->dw[i] = w->dloss_dir[i] / (real)b->B;
            t1 = clock_now(be);
            w->sec_reverse += t1 - t0;
            t0 = t1;

            /* (3) weights and rater: φ̄ += (∂w_t/∂φ)ᵀ w̄_t */
            rater_backward_step(w, t, b, phi, key, reg_scale, dphi);
            t1 = clock_now(be);
            w->sec_rater += t1 - t0;
            t0 = t1;
        }
    }
    return 0;
}

/* ================================================================================
 * Mode classifier: the rater as a Val (1) vs Train_A (0) classifier, BCE on z, the two
 * classes weighted equally: ½·mean_Val softplus(−z) + ½·mean_TrainA softplus(z), on
 * the meta-step's Val batches and its last n_val Train_A batches.
 * ================================================================================ */

static int classifier_grad(MetaWork *w, const real *phi, const MetaBatches *data, real *dphi,
                           double *bce) {
    const MetaSpec *s = &w->s;
    const int n_train = data->n_val < s->T ? data->n_val : s->T;
    long n_pos = 0, n_neg = 0;
    for (int j = 0; j < data->n_val; j++) {
        const DataBatch *b = data->val(data->ctx, j);
        if (!b) return -1;
        n_pos += b->B;
    }
    for (int t = s->T - n_train; t < s->T; t++) n_neg += w->nb[t];
    double loss = 0;
    for (int pass = 0; pass < 2; pass++) {
        const int count = pass == 0 ? data->n_val : n_train;
        const double scale = 0.5 / (double)(pass == 0 ? n_pos : n_neg);
        for (int j = 0; j < count; j++) {
            const DataBatch *b = pass == 0 ? data->val(data->ctx, j)
                                           : data->train(data->ctx, s->T - n_train + j);
            if (!b) return -1;
            rater_forward(w->be, &s->rater, phi, w->rater, b->rater_tokens, b->rater_valid,
                          b->B, b->T_rater, w->dz);
            for (int i = 0; i < b->B; i++) {
                double z = w->dz[i];
                loss += scale * (pass == 0 ? softplus(-z) : softplus(z));
                w->dz[i] = (real)(scale * (sigmoid(z) - (pass == 0 ? 1.0 : 0.0)));
            }
            if (dphi) rater_backward(w->be, &s->rater, phi, w->rater, w->dz, dphi);
        }
    }
    *bce = loss;
    return 0;
}

/* ================================================================================
 * Entry points
 * ================================================================================ */

int meta_member_step(MetaWork *w, real *theta, OptimState *opt, const real *phi,
                     const MetaBatches *data, uint64_t key, real *dphi, MetaStats *stats) {
    const MetaSpec *s = &w->s;
    const int uniform = s->mode == META_CONSTANT;
    const int reverse = w->reverse && dphi != NULL;
    double l_train, clip_frac, l_val;
    double t0 = clock_now(w->be);
    if (unroll(w, theta, opt, phi, data, key, uniform, reverse, &l_train, &clip_frac)) return -1;
    double t1 = clock_now(w->be);
    if (val_loss(w, theta, data, reverse ? w->dtheta : NULL, &l_val)) return -1;
    double t2 = clock_now(w->be);

    long n_reg = 0;
    double objective = l_val;
    if (!uniform && has_reg(s)) objective += reg_total(w, &n_reg);
    if (reverse && reverse_pass(w, phi, data, key, n_reg > 0 ? 1.0 / (double)n_reg : 0, dphi))
        return -1;
    if (s->mode == META_CLASSIFIER && classifier_grad(w, phi, data, dphi, &objective)) return -1;

    if (stats) {
        stats->members++;
        stats->l_train += l_train;
        stats->l_val += l_val;
        stats->objective += objective;
        stats->clip_frac += clip_frac;
        stats->sec_unroll += t1 - t0;
        stats->sec_val += t2 - t1;
        if (reverse) {
            stats->sec_recompute += w->sec_recompute;
            stats->sec_reverse += w->sec_reverse;
            stats->sec_rater += w->sec_rater;
        }
        if (w->have_z)
            for (int t = 0; t < s->T; t++) stats_scores(w, t, stats);
    }
    return 0;
}

int meta_uniform_step(MetaWork *w, real *theta, OptimState *opt, const MetaBatches *data,
                      double *l_val) {
    double l_train, clip_frac;
    if (unroll(w, theta, opt, NULL, data, 0, 1, 0, &l_train, &clip_frac)) return -1;
    return val_loss(w, theta, data, NULL, l_val);
}
