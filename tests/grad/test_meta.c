/* test_meta.c — the whole meta-gradient against finite differences (DESIGN §4.3), in
 * double precision: for J(φ) = L_val(θ_T(φ)) + regularizers, the unroll of T inner steps
 * from the same θ_0, optimizer state and in-memory batches, checks
 *     ⟨∇φ J, v⟩  vs  (J(φ−2hv) − 8J(φ−hv) + 8J(φ+hv) − J(φ+2hv)) / (12h)
 * along a random v to relative error ≤ 1e-6, on micro models (1–2 layers, d 8), T ≥ 3,
 * checkpointing with c < T (segments recomputed), for AdamW with the clip active and
 * SGD with momentum, sigmoid and softmax weights, with and without regularizers, and
 * mode shuffle. Also: the meta-gradient is bit-identical for every checkpoint interval
 * c (the recomputed states equal the forward ones), with the checkpoints in backend or in
 * host memory (meta.host_checkpoints), and the optimizer state starts
 * non-zero at step k > 0 (members are long-lived).
 * Built on the library directly, no files.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "meta.h"
#include "test.h"

#ifndef DR_DOUBLE
#error "tests/grad are built in double precision (make PRECISION=double)"
#endif

/* ---- in-memory batches ------------------------------------------------------------ */

enum { MAX_BATCHES = 16 };

typedef struct {
    DataBatch train[MAX_BATCHES], val[MAX_BATCHES];
    int n_train, n_val;
} Mem;

static uint64_t rng_state = 12345;
static uint64_t rng_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double rng_normal(void) {
    double u1 = ((rng_u64() >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((rng_u64() >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

/* B examples of random tokens, varied lengths (padding in both views). */
static void make_batch(DataBatch *b, int B, int T, int T_rater, int V) {
    memset(b, 0, sizeof *b);
    b->B = b->capacity = B;
    b->T = T;
    b->T_rater = T_rater;
    b->inputs = calloc((size_t)B * T, sizeof(int32_t));
    b->targets = calloc((size_t)B * T, sizeof(int32_t));
    b->n_valid = calloc((size_t)B, sizeof(int32_t));
    b->rater_tokens = calloc((size_t)B * T_rater, sizeof(int32_t));
    b->rater_valid = calloc((size_t)B, sizeof(int32_t));
    for (int i = 0; i < B; i++) {
        int len = T + 1 - (int)(rng_u64() % 3);   /* window of len tokens, 2 ≤ len ≤ T+1 */
        int32_t win[64];
        for (int t = 0; t < len; t++) win[t] = (int32_t)(rng_u64() % (uint64_t)V);
        b->n_valid[i] = len - 1;
        for (int t = 0; t < T; t++) {
            b->inputs[i * T + t] = t < len - 1 ? win[t] : 0;
            b->targets[i * T + t] = t < len - 1 ? win[t + 1] : 0;
        }
        b->rater_valid[i] = len < T_rater ? len : T_rater;
        for (int t = 0; t < T_rater; t++) b->rater_tokens[i * T_rater + t] = t < len ? win[t] : 0;
    }
}

static void free_batch(DataBatch *b) {
    free(b->inputs); free(b->targets); free(b->n_valid); free(b->rater_tokens); free(b->rater_valid);
}

static const DataBatch *mem_train(void *ctx, int t) { return &((Mem *)ctx)->train[t]; }
static const DataBatch *mem_val(void *ctx, int j) { return &((Mem *)ctx)->val[j]; }

/* ---- one case --------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int optimizer;          /* OPTIM_ADAMW / OPTIM_SGD */
    int norm;               /* WEIGHT_NORM_* */
    int mean_normalize;
    double ep, l2;          /* regularizers */
    int n_layer;
    int T, c;
    int mode;
    double clip_frac;       /* clip threshold as a fraction of the first gradient norm */
} Case;

static const Backend *be;

static MetaSpec make_spec(const Case *k) {
    MetaSpec s;
    memset(&s, 0, sizeof s);
    const int V = 11, C = 8;
    s.lm = (LMConfig){ .n_layer = k->n_layer, .d_model = C, .n_head = 2, .d_ff = 4 * C,
                       .vocab = V, .ctx = 6, .init_std = 0.3 };
    s.rater = (LMConfig){ .n_layer = 1, .d_model = C, .n_head = 2, .d_ff = 4 * C,
                          .vocab = V, .ctx = 6, .init_std = 0.3 };
    s.inner = (OptimHyper){ .kind = k->optimizer, .lr = k->optimizer == OPTIM_ADAMW ? 0.02 : 0.3,
                            .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .momentum = 0.9,
                            .weight_decay = 0.1, .clip = 0, .schedule = LR_COSINE,
                            .warmup_steps = 1, .total_steps = 12, .min_lr_frac = 0.1 };
    s.weights = (WeightNormConfig){ .kind = k->norm, .tau = k->norm == WEIGHT_NORM_SOFTMAX ? 0.7 : 1.3,
                                    .w_min = 0.01, .w_max = 0.99,
                                    .mean_normalize = k->mean_normalize };
    s.T = k->T;
    s.checkpoint_every = k->c;
    s.backprop_steps = k->T;
    s.hvp = 1;
    s.mode = k->mode;
    s.entropy_penalty = k->ep;
    s.l2_to_mean = k->l2;
    s.batch = 3;
    s.seq_len = 5;
    s.seq_len_rater = 6;
    return s;
}

typedef struct {
    MetaSpec s;
    MetaWork *w;
    Mem mem;
    MetaBatches data;
    size_t n, n_phi;
    real *theta0, *m0, *v0;   /* member state before the meta-step */
    long step0;
    real *theta;              /* work copy */
    OptimState opt;
} Setup;

static void setup_state(Setup *S) {
    be->vec_copy(S->theta, S->theta0, S->n);
    be->vec_copy(S->opt.m, S->m0, S->n);
    if (S->opt.v) be->vec_copy(S->opt.v, S->v0, S->n);
    S->opt.step = S->step0;
}

/* J(φ) of one meta-step from the saved state; also its gradient when dphi. */
static double objective(Setup *S, const real *phi, real *dphi, MetaStats *st_out) {
    MetaStats st;
    meta_stats_clear(&st);
    setup_state(S);
    CHECK(meta_member_step(S->w, S->theta, &S->opt, phi, &S->data, 777, dphi, &st) == 0,
          "meta_member_step: %s", dr_lasterr());
    if (st_out) *st_out = st;
    return st.objective;
}

static void setup_new(Setup *S, const Case *k) {
    memset(S, 0, sizeof *S);
    S->s = make_spec(k);
    S->n = lm_num_params(&S->s.lm);
    S->n_phi = rater_num_params(&S->s.rater);
    S->mem.n_train = k->T;
    S->mem.n_val = 2;
    for (int t = 0; t < k->T; t++) make_batch(&S->mem.train[t], 3, 5, 6, 11);
    for (int j = 0; j < 2; j++) make_batch(&S->mem.val[j], 3, 5, 6, 11);
    S->data = (MetaBatches){ .train = mem_train, .val = mem_val, .n_val = 2, .ctx = &S->mem };

    S->theta0 = be->alloc(S->n * sizeof(real));
    S->theta = be->alloc(S->n * sizeof(real));
    S->m0 = be->alloc(S->n * sizeof(real));
    S->v0 = be->alloc(S->n * sizeof(real));
    lm_init_params(be, &S->s.lm, S->theta0, 42);
    optim_state_init(&S->opt, be, k->optimizer, S->n);

    /* A member that has trained 2 steps already (non-zero moments, k continues at 3),
     * and a clip threshold below its gradient norm so the clip is active. */
    LMActs *acts = lm_acts_new(be, &S->s.lm, 3, 5, 0);
    real *g = be->alloc(S->n * sizeof(real));
    real dl[3] = { 1.0 / 3, 1.0 / 3, 1.0 / 3 };
    double norm0 = 0;
    for (int step = 0; step < 2; step++) {
        const DataBatch *b = &S->mem.val[step];
        lm_forward(be, &S->s.lm, S->theta0, acts, b->inputs, b->targets, b->n_valid, 3, 5, NULL);
        be->vec_zero(g, S->n);
        lm_backward(be, &S->s.lm, S->theta0, acts, dl, g);
        if (step == 0) norm0 = sqrt(be->vec_sumsq(g, S->n));
        optim_step(be, &S->opt, S->theta0, g, &S->s.inner, lr_at(&S->s.inner, S->opt.step), NULL);
    }
    be->free(g);
    lm_acts_free(be, acts);
    S->s.inner.clip = k->clip_frac > 0 ? k->clip_frac * norm0 : 0;
    be->vec_copy(S->m0, S->opt.m, S->n);
    if (S->opt.v) be->vec_copy(S->v0, S->opt.v, S->n);
    S->step0 = S->opt.step;
    S->w = meta_work_new(be, &S->s);
}

static void setup_free(Setup *S) {
    meta_work_free(S->w);
    for (int t = 0; t < S->mem.n_train; t++) free_batch(&S->mem.train[t]);
    for (int j = 0; j < S->mem.n_val; j++) free_batch(&S->mem.val[j]);
    be->free(S->theta0); be->free(S->theta); be->free(S->m0); be->free(S->v0);
    optim_state_free(&S->opt, be);
}

static void run_case(const Case *k) {
    Setup S;
    setup_new(&S, k);
    real *phi = be->alloc(S.n_phi * sizeof(real));
    real *dphi = be->alloc(S.n_phi * sizeof(real));
    real *v = be->alloc(S.n_phi * sizeof(real));
    real *phi_h = be->alloc(S.n_phi * sizeof(real));
    rater_init_params(be, &S.s.rater, phi, 7);
    for (size_t i = 0; i < S.n_phi; i++) v[i] = rng_normal();

    MetaStats st;
    be->vec_zero(dphi, S.n_phi);
    double J0 = objective(&S, phi, dphi, &st);
    double analytic = be->vec_dot(dphi, v, S.n_phi);

    const double h = getenv("META_H") ? atof(getenv("META_H")) : 1e-4;
    double f[4];
    const double steps[4] = { -2, -1, 1, 2 };
    for (int i = 0; i < 4; i++) {
        be->vec_copy(phi_h, phi, S.n_phi);
        be->vec_axpy(phi_h, steps[i] * h, v, S.n_phi);
        f[i] = objective(&S, phi_h, NULL, NULL);
    }
    double fd = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h);
    double err = test_rel_err(analytic, fd);
    double smean = st.score_sum / st.n_scores;
    printf("  %-44s J %.6f  <dJ,v> %+.12e  fd %+.12e  rel.err %.2e  clipped %.0f%%  "
           "z mean %+.3f  at bounds %ld\n", k->name, J0, analytic, fd, err,
           100 * st.clip_frac, smean, st.at_min + st.at_max);
    TEST_CHECK(err <= 1e-6, "%s: meta-gradient rel. error %.3e > 1e-6 (analytic %.12e, fd %.12e)",
               k->name, err, analytic, fd);
    TEST_CHECK(fabs(analytic) > 1e-6, "%s: directional derivative %.3e too small to test",
               k->name, analytic);
    if (k->clip_frac > 0)
        TEST_CHECK(st.clip_frac > 0, "%s: the clip never triggered", k->name);
    TEST_CHECK(st.at_min + st.at_max == 0, "%s: weights at the clamp bounds", k->name);

    /* Every checkpoint interval gives the same bits (segments recomputed exactly), with
     * the checkpoints in backend memory and in host memory (meta.host_checkpoints), and
     * with 0, 1, 2 or T activation tapes (meta.keep_activations: replayed primal passes). */
    const int keeps[4] = { 0, 1, 2, k->T };
    for (int host = 0; host <= 1; host++)
    for (int c = 1; c <= k->T; c++)
    for (int ki = 0; ki < 4; ki++) {
        if (c == k->c && !host && ki == 0) continue;
        MetaSpec s2 = S.s;
        s2.checkpoint_every = c;
        s2.host_checkpoints = host;
        s2.keep_activations = keeps[ki];
        MetaWork *w_saved = S.w;
        S.w = meta_work_new(be, &s2);
        real *dphi2 = be->alloc(S.n_phi * sizeof(real));
        double J2 = objective(&S, phi, dphi2, NULL);
        TEST_CHECK(J2 == J0 && memcmp(dphi, dphi2, S.n_phi * sizeof(real)) == 0,
                   "%s: c = %d%s, keep_activations %d gives a different meta-gradient than c = %d",
                   k->name, c, host ? " (host checkpoints)" : "", keeps[ki], k->c);
        be->free(dphi2);
        meta_work_free(S.w);
        S.w = w_saved;
    }

    /* Host checkpoints with a truncated reverse pass (backprop_steps < T), and one
     * MetaWork used for two meta-steps: the same bits as backend checkpoints. */
    if (k->T >= 3) {
        MetaSpec sa = S.s, sb;
        sa.backprop_steps = k->T - 2;
        sb = sa;
        sb.host_checkpoints = 1;
        sb.keep_activations = 2;
        real *da = be->alloc(S.n_phi * sizeof(real)), *db = be->alloc(S.n_phi * sizeof(real));
        real *db2 = be->alloc(S.n_phi * sizeof(real));
        MetaWork *w_saved = S.w;
        S.w = meta_work_new(be, &sa);
        double Ja = objective(&S, phi, da, NULL);
        meta_work_free(S.w);
        S.w = meta_work_new(be, &sb);
        double Jb = objective(&S, phi, db, NULL), Jb2 = objective(&S, phi, db2, NULL);
        meta_work_free(S.w);
        S.w = w_saved;
        TEST_CHECK(Ja == Jb && memcmp(da, db, S.n_phi * sizeof(real)) == 0,
                   "%s: host checkpoints and 2 tapes with backprop_steps %d change the meta-gradient", k->name,
                   sa.backprop_steps);
        TEST_CHECK(Jb2 == Jb && memcmp(db, db2, S.n_phi * sizeof(real)) == 0,
                   "%s: a second meta-step on the same MetaWork (host checkpoints, tapes) differs", k->name);
        be->free(da); be->free(db); be->free(db2);
    }

    be->free(phi); be->free(dphi); be->free(v); be->free(phi_h);
    setup_free(&S);
}

/* Exact identities of the options, bit for bit:
 *  - meta.hvp = false changes nothing when T = 1 (H_0 u only reaches θ̄_0, which no
 *    longer depends on φ) and changes the meta-gradient when T > 1;
 *  - meta.backprop_steps = N equals the full meta-gradient of an N-step meta-step run
 *    from the state the first T − N steps reach (on the same batches, lr and AdamW k). */
typedef struct { Mem *mem; int offset; } Shifted;
static const DataBatch *sh_train(void *ctx, int t) {
    Shifted *s = ctx;
    return &s->mem->train[s->offset + t];
}
static const DataBatch *sh_val(void *ctx, int j) { return &((Shifted *)ctx)->mem->val[j]; }

static void test_options(void) {
    const Case k = { "options", OPTIM_ADAMW, WEIGHT_NORM_SIGMOID, 0, 0.1, 0, 1, 5, 2, META_FULL, 0.3 };
    Setup S;
    setup_new(&S, &k);
    real *phi = be->alloc(S.n_phi * sizeof(real));
    real *d1 = be->alloc(S.n_phi * sizeof(real)), *d2 = be->alloc(S.n_phi * sizeof(real));
    rater_init_params(be, &S.s.rater, phi, 7);

    /* hvp at T = 1 and T = 5 */
    for (int T = 1; T <= 5; T += 4) {
        MetaSpec a = S.s, b = S.s;
        a.T = b.T = a.backprop_steps = b.backprop_steps = T;
        a.checkpoint_every = b.checkpoint_every = T == 1 ? 1 : 2;
        b.hvp = 0;
        MetaWork *wa = meta_work_new(be, &a), *wb = meta_work_new(be, &b), *saved = S.w;
        be->vec_zero(d1, S.n_phi);
        be->vec_zero(d2, S.n_phi);
        S.w = wa;
        objective(&S, phi, d1, NULL);
        S.w = wb;
        objective(&S, phi, d2, NULL);
        S.w = saved;
        be->vec_axpy(d2, -1, d1, S.n_phi);
        double rel = sqrt(be->vec_sumsq(d2, S.n_phi) / be->vec_sumsq(d1, S.n_phi));
        printf("  meta.hvp false, T %d: |first order - exact| / |exact| = %.3e\n", T, rel);
        if (T == 1) TEST_CHECK(rel == 0, "hvp false changed the T = 1 meta-gradient (%.3e)", rel);
        else TEST_CHECK(rel > 1e-6, "hvp false did not change the T = 5 meta-gradient");
        meta_work_free(wa);
        meta_work_free(wb);
    }

    /* backprop_steps = 2 of T = 5 vs 3 plain steps, then a 2-step meta-step */
    const int N = 2;
    MetaSpec tr = S.s, pre = S.s, post = S.s;
    tr.backprop_steps = N;
    pre.T = pre.backprop_steps = S.s.T - N;
    post.T = post.backprop_steps = N;
    post.checkpoint_every = 1;
    MetaWork *wt = meta_work_new(be, &tr), *wp = meta_work_new(be, &pre), *wq = meta_work_new(be, &post);
    MetaWork *saved = S.w;
    S.w = wt;
    be->vec_zero(d1, S.n_phi);
    double J1 = objective(&S, phi, d1, NULL);
    S.w = saved;
    setup_state(&S);
    CHECK(meta_member_step(wp, S.theta, &S.opt, phi, &S.data, 777, NULL, NULL) == 0, "%s", dr_lasterr());
    Shifted sh = { &S.mem, S.s.T - N };
    MetaBatches later = { .train = sh_train, .val = sh_val, .n_val = 2, .ctx = &sh };
    MetaStats st;
    meta_stats_clear(&st);
    be->vec_zero(d2, S.n_phi);
    CHECK(meta_member_step(wq, S.theta, &S.opt, phi, &later, 777, d2, &st) == 0, "%s", dr_lasterr());
    TEST_CHECK(st.objective == J1 && memcmp(d1, d2, S.n_phi * sizeof(real)) == 0,
               "backprop_steps %d of T %d differs from a %d-step meta-step after %d plain steps",
               N, S.s.T, N, S.s.T - N);
    printf("  meta.backprop_steps %d of T %d = the exact meta-gradient of the last %d steps, bit for bit\n",
           N, S.s.T, N);
    meta_work_free(wt);
    meta_work_free(wp);
    meta_work_free(wq);
    be->free(phi); be->free(d1); be->free(d2);
    setup_free(&S);
}

int main(void) {
    dr_set_progname("test_meta");
    be = backend_select("cpu");
    const Case cases[] = {
        { "adamw clip, sigmoid",                    OPTIM_ADAMW, WEIGHT_NORM_SIGMOID, 0, 0,   0,   1, 4, 2, META_FULL, 0.3 },
        { "adamw clip, sigmoid, regularizers",      OPTIM_ADAMW, WEIGHT_NORM_SIGMOID, 0, 0.1, 0.3, 1, 4, 2, META_FULL, 0.3 },
        { "adamw clip, softmax",                    OPTIM_ADAMW, WEIGHT_NORM_SOFTMAX, 0, 0,   0,   1, 5, 2, META_FULL, 0.3 },
        { "adamw clip, softmax+mean, regularizers", OPTIM_ADAMW, WEIGHT_NORM_SOFTMAX, 1, 0.1, 0.3, 1, 3, 2, META_FULL, 0.3 },
        { "adamw clip, sigmoid+mean, 2 layers",     OPTIM_ADAMW, WEIGHT_NORM_SIGMOID, 1, 0.1, 0,   2, 4, 3, META_FULL, 0.3 },
        { "sgd momentum clip, sigmoid",             OPTIM_SGD,   WEIGHT_NORM_SIGMOID, 0, 0,   0,   1, 4, 2, META_FULL, 0.1 },
        { "sgd momentum, sigmoid, regularizers",    OPTIM_SGD,   WEIGHT_NORM_SIGMOID, 0, 0.1, 0.3, 1, 5, 2, META_FULL, 0 },
        { "sgd momentum clip, softmax, regularizers", OPTIM_SGD, WEIGHT_NORM_SOFTMAX, 0, 0.1, 0.3, 2, 3, 2, META_FULL, 0.3 },
        { "sgd momentum, softmax",                  OPTIM_SGD,   WEIGHT_NORM_SOFTMAX, 0, 0,   0,   1, 4, 3, META_FULL, 0 },
        { "adamw clip, sigmoid, mode shuffle",      OPTIM_ADAMW, WEIGHT_NORM_SIGMOID, 0, 0.1, 0,   1, 4, 2, META_SHUFFLE, 0.3 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
    test_options();
    return test_finish("test_meta");
}
