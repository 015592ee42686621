/* test_meta_sanity.c — the properties of dr-meta's loop that must hold exactly, and that
 * it learns on the toy problem (tests/data/gen_toy.sh's, written here as shards directly):
 *   - mode constant is uniform training bit for bit (meta_member_step vs a hand-written
 *     loop of lm_forward / lm_backward / optim_step, across two meta-steps so the AdamW
 *     step count continues), and the uniform shadow equals it too;
 *   - in a whole run with mode constant, l_val == l_val_uniform on every log line;
 *   - mode detach leaves the rater (and its EMA) bit-identical to its initialization;
 *   - --stop-at + --resume gives the same rater, EMA and metrics (but seconds) as one run;
 *   - Val sharing a document with Train_A is refused;
 *   - on the toy problem (half of Train_A random characters, Val clean), a few meta-steps
 *     give a rater whose scores separate clean from corrupt held-out examples with
 *     AUROC ≥ 0.95, and L_val(rater) < L_val(uniform).
 * Single-threaded (experiment.threads 1): a few seconds on one core.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "check.h"
#include "checkpoint.h"
#include "json.h"
#include "meta.h"
#include "shard.h"
#include "test.h"
#include "tokenizer.h"

static char dir[64];
static const Backend *be;

/* ---- the toy corpus ------------------------------------------------------------- */

static uint64_t rng = 1;
static uint32_t rnd(uint32_t n) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)((z ^ (z >> 31)) % n);
}

/* Clean documents: a..p in a cycle from a random phase; corrupt: random [A-Za-z0-9].
 * len_parity 0/1 keeps clean lengths even/odd so two shards share no clean document. */
static void write_toy(const char *path, int n_clean, int n_corrupt, int len_parity) {
    static const char cyc[] = "abcdefghijklmnop";
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    Tokenizer *tok = tokenizer_load("byte", NULL);
    CHECK(tok, "byte tokenizer: %s", dr_lasterr());
    DrsWriter *w = drs_writer_open(path, tokenizer_vocab_size(tok), tokenizer_fingerprint(tok),
                                   tokenizer_spec(tok));
    CHECK(w, "%s", dr_lasterr());
    int left_c = n_clean, left_x = n_corrupt;
    char text[256];
    uint32_t ids[256];
    while (left_c + left_x > 0) {
        int clean = (int)rnd((uint32_t)(left_c + left_x)) < left_c;
        if (clean) left_c--; else left_x--;
        int len = 48 + (int)rnd(113);
        if (clean) len = (len & ~1) + len_parity;
        int phase = (int)rnd(16);
        for (int i = 0; i < len; i++) text[i] = clean ? cyc[(phase + i) % 16] : al[rnd(62)];
        for (int i = 0; i < len; i++) ids[i] = (uint8_t)text[i];
        CHECK(drs_writer_add(w, XXH64(text, (size_t)len, 0), clean ? "clean" : "corrupt", ids,
                             (size_t)len) == 0, "%s", dr_lasterr());
    }
    CHECK(drs_writer_close(w) == 0, "%s", dr_lasterr());
    tokenizer_free(tok);
}

static char *path_in(const char *name) {
    char *p = xmalloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

/* ---- config and runs --------------------------------------------------------------- */

static const char *toy_sets[] = {
    "experiment.threads=1", "experiment.device=cpu", "experiment.seed=3",
    "data.seq_len=32", "data.batch_size=16", "data.prefetch=0",
    "lm.n_layer=1", "lm.d_model=32", "lm.n_head=2", "lm.vocab_size=0", "lm.lr=3e-3",
    "lm.schedule=constant", "lm.weight_decay=0",
    "rater.n_layer=1", "rater.d_model=32", "rater.n_head=2", "rater.lr=1e-2",
    "rater.weight_decay=0",
    "meta.rounds=10", "meta.population_K=2", "meta.T=4", "meta.val_batches=2",
    "meta.checkpoint_every=2", "meta.reset_every=8", "meta.ema=0.9",
};

/* The toy config plus extra "k=v" overrides. */
static Config toy_config(int n_extra, const char **extra) {
    enum { N = sizeof toy_sets / sizeof *toy_sets };
    char *sets[N + 16];
    for (int i = 0; i < N; i++) sets[i] = (char *)toy_sets[i];
    for (int i = 0; i < n_extra; i++) sets[N + i] = (char *)extra[i];
    Config cfg;
    CHECK(config_load(&cfg, NULL, N + n_extra, sets) == 0, "config: %s", dr_lasterr());
    return cfg;
}

static int run_meta(const Config *cfg, const char *train, const char *val, const char *out,
                    const char *log, int resume, long stop_at) {
    MetaOptions o = { .cfg = *cfg, .out_path = out, .log_path = log, .resume = resume,
                      .stop_at = stop_at };
    char *tr = (char *)train, *va = (char *)val;
    CHECK(meta_resolve_inputs(&o, 0, NULL, 1, &tr, 1, &va) == 0, "%s", dr_lasterr());
    int rc = meta_run(&o);
    meta_options_free(&o);
    return rc;
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = xmalloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    buf[*n] = 0;
    fclose(f);
    return buf;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* The metrics lines of a log as parsed JSON. */
typedef struct { JsonDoc *doc[256]; int n; } Log;

static void log_read(Log *lg, const char *path) {
    size_t n;
    char *text = slurp(path, &n);
    CHECK(text, "cannot read %s", path);
    lg->n = 0;
    for (char *line = strtok(text, "\n"); line && lg->n < 256; line = strtok(NULL, "\n")) {
        lg->doc[lg->n] = json_parse(line, strlen(line), 0);
        CHECK(lg->doc[lg->n], "%s: %s", path, dr_lasterr());
        lg->n++;
    }
    free(text);
}

static void log_free(Log *lg) {
    for (int i = 0; i < lg->n; i++) json_free(lg->doc[i]);
}

static double log_num(const Log *lg, int i, const char *key) {
    const JsonValue *v = json_get(json_root(lg->doc[i]), key);
    return v && v->type == JSON_NUMBER ? v->number : NAN;
}

/* ---- 1. constant = uniform training, bit for bit ------------------------------------ */

typedef struct { DataBatch *train[8], *val[2]; } Fixed;
static const DataBatch *fx_train(void *ctx, int t) { return ((Fixed *)ctx)->train[t]; }
static const DataBatch *fx_val(void *ctx, int j) { return ((Fixed *)ctx)->val[j]; }

static void test_constant_is_uniform(const char *train_path, const char *val_path) {
    const char *extra[] = { "meta.mode=constant", "meta.T=3", "meta.checkpoint_every=2" };
    Config cfg = toy_config(3, extra);
    ShardList tl = { 0 }, vl = { 0 };
    char *tp = (char *)train_path, *vp = (char *)val_path;
    CHECK(shardlist_add_inputs(&tl, 1, &tp) == 0 && shardlist_add_inputs(&vl, 1, &vp) == 0, "inputs");
    DataOptions dopt;
    data_options_from_config(&dopt, &cfg);
    DataLoader *dt = data_open(&tl, &dopt), *dv = data_open(&vl, &dopt);
    CHECK(dt && dv, "%s", dr_lasterr());

    MetaSpec spec;
    CHECK(meta_spec_from_config(&spec, &cfg, 257) == 0, "%s", dr_lasterr());
    MetaSpec spec_full = spec;
    spec_full.mode = META_FULL;
    MetaWork *w = meta_work_new(be, &spec), *w_full = meta_work_new(be, &spec_full);
    const size_t n = lm_num_params(&spec.lm);
    real *theta = be->alloc(n * sizeof(real)), *theta_u = be->alloc(n * sizeof(real));
    real *theta_ref = be->alloc(n * sizeof(real)), *g = be->alloc(n * sizeof(real));
    OptimState st, st_u, st_ref;
    optim_state_init(&st, be, spec.inner.kind, n);
    optim_state_init(&st_u, be, spec.inner.kind, n);
    optim_state_init(&st_ref, be, spec.inner.kind, n);
    lm_init_params(be, &spec.lm, theta, 11);
    be->vec_copy(theta_u, theta, n);
    be->vec_copy(theta_ref, theta, n);
    LMActs *acts = lm_acts_new(be, &spec.lm, 16, 32, 0);
    real losses[16], dl[16];

    Fixed fx;
    for (int t = 0; t < 3; t++) fx.train[t] = data_batch_new(dt);
    for (int j = 0; j < 2; j++) fx.val[j] = data_batch_new(dv);
    MetaBatches data = { .train = fx_train, .val = fx_val, .n_val = 2, .ctx = &fx };
    for (int ms = 0; ms < 2; ms++) {
        for (int t = 0; t < 3; t++) data_range(dt, (uint64_t)(ms * 3 + t) * 16, 16, fx.train[t]);
        for (int j = 0; j < 2; j++) data_range(dv, (uint64_t)(ms * 2 + j) * 16, 16, fx.val[j]);
        MetaStats stats;
        meta_stats_clear(&stats);
        real *phi_unused = NULL;
        CHECK(meta_member_step(w, theta, &st, phi_unused, &data, 0, NULL, &stats) == 0, "%s", dr_lasterr());
        double lu;
        CHECK(meta_uniform_step(w_full, theta_u, &st_u, &data, &lu) == 0, "%s", dr_lasterr());
        /* the hand-written uniform loop */
        for (int t = 0; t < 3; t++) {
            const DataBatch *b = fx.train[t];
            lm_forward(be, &spec.lm, theta_ref, acts, b->inputs, b->targets, b->n_valid, b->B, b->T, NULL);
            for (int i = 0; i < b->B; i++) dl[i] = (real)1 / (real)b->B;
            be->vec_zero(g, n);
            lm_backward(be, &spec.lm, theta_ref, acts, dl, g);
            optim_step(be, &st_ref, theta_ref, g, &spec.inner, lr_at(&spec.inner, st_ref.step), NULL);
        }
        double l_ref = 0;
        for (int j = 0; j < 2; j++) {
            const DataBatch *b = fx.val[j];
            lm_forward(be, &spec.lm, theta_ref, acts, b->inputs, b->targets, b->n_valid, b->B, b->T, losses);
            double s = 0;
            for (int i = 0; i < b->B; i++) s += losses[i];
            l_ref += s / b->B;
        }
        l_ref /= 2;
        TEST_CHECK(memcmp(theta, theta_ref, n * sizeof(real)) == 0,
                   "meta-step %d: mode constant θ differs from uniform training", ms);
        TEST_CHECK(memcmp(st.m, st_ref.m, n * sizeof(real)) == 0 && memcmp(st.v, st_ref.v, n * sizeof(real)) == 0 &&
                   st.step == st_ref.step, "meta-step %d: optimizer state differs", ms);
        TEST_CHECK(memcmp(theta_u, theta_ref, n * sizeof(real)) == 0,
                   "meta-step %d: the uniform shadow differs from uniform training", ms);
        TEST_CHECK(stats.l_val == l_ref && lu == l_ref, "meta-step %d: l_val %.17g, shadow %.17g, reference %.17g",
                   ms, stats.l_val, lu, l_ref);
    }
    printf("  mode constant = uniform training bit for bit (2 meta-steps, AdamW step %ld)\n", st.step);
    for (int t = 0; t < 3; t++) data_batch_free(fx.train[t]);
    for (int j = 0; j < 2; j++) data_batch_free(fx.val[j]);
    lm_acts_free(be, acts);
    be->free(theta); be->free(theta_u); be->free(theta_ref); be->free(g);
    optim_state_free(&st, be); optim_state_free(&st_u, be); optim_state_free(&st_ref, be);
    meta_work_free(w);
    meta_work_free(w_full);
    data_close(dt);
    data_close(dv);
    shardlist_free(&tl);
    shardlist_free(&vl);
}

/* ---- 2. whole runs ------------------------------------------------------------------- */

static void test_constant_run(const char *train, const char *val) {
    const char *extra[] = { "meta.mode=constant", "meta.rounds=3" };
    Config cfg = toy_config(2, extra);
    char *out = path_in("const.safetensors"), *log = path_in("const.jsonl");
    TEST_CHECK(run_meta(&cfg, train, val, out, log, 0, 0) == 0, "constant run: %s", dr_lasterr());
    Log lg;
    log_read(&lg, log);
    TEST_CHECK(lg.n == 3, "constant run: %d log lines", lg.n);
    for (int i = 0; i < lg.n; i++)
        TEST_CHECK(log_num(&lg, i, "l_val") == log_num(&lg, i, "l_val_uniform"),
                   "constant run, line %d: l_val %.17g != l_val_uniform %.17g", i,
                   log_num(&lg, i, "l_val"), log_num(&lg, i, "l_val_uniform"));
    log_free(&lg);
    free(out);
    free(log);
}

static void test_detach(const char *train, const char *val) {
    const char *extra[] = { "meta.mode=detach", "meta.rounds=3" };
    Config cfg = toy_config(2, extra);
    char *out = path_in("detach.safetensors"), *log = path_in("detach.jsonl");
    TEST_CHECK(run_meta(&cfg, train, val, out, log, 0, 0) == 0, "detach run: %s", dr_lasterr());
    RaterConfig rc;
    real *phi = NULL, *ema = NULL;
    char *ema_path = meta_ema_path(out);
    CHECK(rater_load(out, &rc, &phi) == 0 && rater_load(ema_path, &rc, &ema) == 0, "%s", dr_lasterr());
    size_t n = rater_num_params(&rc);
    real *init = be->alloc(n * sizeof(real));
    meta_rater_init(be, &rc, init, cfg.seed);
    TEST_CHECK(memcmp(phi, init, n * sizeof(real)) == 0, "mode detach changed the rater");
    TEST_CHECK(memcmp(ema, init, n * sizeof(real)) == 0, "mode detach changed the rater's EMA");
    Log lg;
    log_read(&lg, log);
    TEST_CHECK(lg.n == 3 && log_num(&lg, 2, "meta_grad_norm") == 0, "detach: meta_grad_norm not 0");
    log_free(&lg);
    printf("  mode detach: rater and EMA bit-identical to the initialization after 3 meta-steps\n");
    be->free(init);
    free(phi); free(ema); free(ema_path); free(out); free(log);
}

static void test_resume(const char *train, const char *val) {
    const char *extra[] = { "meta.rounds=5", "meta.reset_every=3", "meta.combine=per_member_adam",
                            "rater.entropy_penalty=0.01", "meta.checkpoint_every=3" };
    Config cfg = toy_config(5, extra);
    char *a = path_in("a.safetensors"), *b = path_in("b.safetensors");
    char *la = path_in("a.jsonl"), *lb = path_in("b.jsonl");
    TEST_CHECK(run_meta(&cfg, train, val, a, la, 0, 0) == 0, "run: %s", dr_lasterr());
    TEST_CHECK(run_meta(&cfg, train, val, b, lb, 0, 2) == 0, "--stop-at 2 (a requested stop: 0): %s", dr_lasterr());
    TEST_CHECK(run_meta(&cfg, train, val, b, lb, 1, 0) == 0, "--resume: %s", dr_lasterr());
    char *ea = meta_ema_path(a), *eb = meta_ema_path(b);
    TEST_CHECK(same_file(a, b), "resumed rater differs from the uninterrupted one");
    TEST_CHECK(same_file(ea, eb), "resumed EMA differs from the uninterrupted one");
    Log x, y;
    log_read(&x, la);
    log_read(&y, lb);
    TEST_CHECK(x.n == 5 && y.n == 5, "log lines: %d and %d, expected 5", x.n, y.n);
    for (int i = 0; i < x.n && i < y.n; i++) {
        const JsonValue *rx = json_root(x.doc[i]);
        for (size_t k = 0; k < rx->len; k++) {
            if (!strcmp(rx->keys[k], "seconds") || !strcmp(rx->keys[k], "step_seconds")) continue;
            double vx = rx->items[k].number, vy = log_num(&y, i, rx->keys[k]);
            TEST_CHECK(vx == vy || (isnan(vx) && isnan(vy)), "line %d: %s %.17g vs resumed %.17g", i,
                       rx->keys[k], vx, vy);
        }
    }
    printf("  --stop-at 2 + --resume: rater, EMA and metrics identical to one run of 5 meta-steps\n");
    log_free(&x);
    log_free(&y);
    free(a); free(b); free(la); free(lb); free(ea); free(eb);
}

/* combine per_member_adam with K = 1 is the outer AdamW up to rounding. */
static void test_per_member_adam(const char *train, const char *val) {
    char *paths[2];
    for (int i = 0; i < 2; i++) {
        const char *extra[] = { "meta.rounds=3", "meta.population_K=1", "meta.ema=0",
                                i ? "meta.combine=per_member_adam" : "meta.combine=mean" };
        Config cfg = toy_config(4, extra);
        paths[i] = path_in(i ? "pma.safetensors" : "mean.safetensors");
        TEST_CHECK(run_meta(&cfg, train, val, paths[i], NULL, 0, 0) == 0, "%s", dr_lasterr());
    }
    RaterConfig rc;
    real *a = NULL, *b = NULL;
    CHECK(rater_load(paths[0], &rc, &a) == 0 && rater_load(paths[1], &rc, &b) == 0, "%s", dr_lasterr());
    size_t n = rater_num_params(&rc);
    real *init = be->alloc(n * sizeof(real));
    meta_rater_init(be, &rc, init, 3);
    double diff = 0, moved = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)a[i] - b[i]));
        moved = fmax(moved, fabs((double)a[i] - init[i]));
    }
    printf("  per_member_adam, K = 1: max |phi - phi(mean)| = %.2e (the updates moved phi by up to %.2e)\n",
           diff, moved);
    TEST_CHECK(moved > 1e-3 && diff < 1e-3 * moved, "per_member_adam (K = 1) differs from AdamW: %.3e of %.3e",
               diff, moved);
    be->free(init);
    free(a); free(b); free(paths[0]); free(paths[1]);
}

static void test_overlap(const char *train, const char *heldout) {
    Config cfg = toy_config(0, NULL);
    char *out = path_in("overlap.safetensors");
    /* heldout shares documents with itself: Val = Train_A */
    TEST_CHECK(run_meta(&cfg, heldout, heldout, out, NULL, 0, 0) == -1 &&
               strstr(dr_lasterr(), "share"), "Val = Train_A was not refused (%s)", dr_lasterr());
    printf("  refused: %s\n", dr_lasterr());
    (void)train;
    free(out);
}

/* AUROC of the rater's logits, clean (positive) vs corrupt, over every example of path. */
static double auroc(const char *rater_path, const char *path, const Config *cfg) {
    RaterConfig rc;
    real *phi_h = NULL;
    CHECK(rater_load(rater_path, &rc, &phi_h) == 0, "%s", dr_lasterr());
    size_t n = rater_num_params(&rc);
    real *phi = be->alloc(n * sizeof(real));
    be->to_device(phi, phi_h, n * sizeof(real));
    ShardList l = { 0 };
    char *p = (char *)path;
    CHECK(shardlist_add_inputs(&l, 1, &p) == 0, "%s", dr_lasterr());
    DataOptions dopt;
    data_options_from_config(&dopt, cfg);
    DataLoader *d = data_open(&l, &dopt);
    CHECK(d, "%s", dr_lasterr());
    const uint64_t N = data_num_examples(d);
    double *z = xmalloc(N * sizeof *z);
    int *pos = xmalloc(N * sizeof *pos);
    DataBatch *b = data_batch_new(d);
    RaterActs *acts = rater_acts_new(be, &rc, 16, cfg->data.seq_len_rater);
    real zb[16];
    for (uint64_t s = 0; s < N; s += 16) {
        int m = N - s < 16 ? (int)(N - s) : 16;
        CHECK(data_range(d, s, m, b) == 0, "%s", dr_lasterr());
        rater_forward(be, &rc, phi, acts, b->rater_tokens, b->rater_valid, m, b->T_rater, zb);
        for (int i = 0; i < m; i++) {
            z[s + i] = zb[i];
            pos[s + i] = strcmp(data_example_source(d, s + i), "clean") == 0;
        }
    }
    double wins = 0, np = 0, nn = 0;
    for (uint64_t i = 0; i < N; i++) np += pos[i], nn += !pos[i];
    for (uint64_t i = 0; i < N; i++)
        if (pos[i])
            for (uint64_t j = 0; j < N; j++)
                if (!pos[j]) wins += z[i] > z[j] ? 1 : z[i] == z[j] ? 0.5 : 0;
    rater_acts_free(be, acts);
    data_batch_free(b);
    data_close(d);
    shardlist_free(&l);
    be->free(phi);
    free(phi_h); free(z); free(pos);
    return wins / (np * nn);
}

/* The means of l_val and l_val_uniform over the last `last` lines of a dr-meta log;
 * returns the number of lines. */
static int mean_of_last(const char *log, int last, double *lv, double *lu) {
    Log lg;
    log_read(&lg, log);
    *lv = *lu = 0;
    for (int i = lg.n - last; i < lg.n; i++) {
        *lv += log_num(&lg, i, "l_val") / last;
        *lu += log_num(&lg, i, "l_val_uniform") / last;
    }
    int n = lg.n;
    log_free(&lg);
    return n;
}

static void test_toy_learns(const char *train, const char *val, const char *heldout) {
    Config cfg = toy_config(0, NULL);
    char *out = path_in("toy.safetensors"), *log = path_in("toy.jsonl");
    TEST_CHECK(run_meta(&cfg, train, val, out, log, 0, 0) == 0, "toy run: %s", dr_lasterr());
    double a = auroc(out, heldout, &cfg);
    char *ema = meta_ema_path(out);
    double a_ema = auroc(ema, heldout, &cfg);
    double lv, lu;
    const int last = 4, n = mean_of_last(log, last, &lv, &lu);
    printf("  toy problem, %d meta-steps: AUROC clean vs corrupt (held out) %.4f (EMA %.4f); "
           "last %d steps: L_val %.4f, uniform %.4f, gain %.4f nats\n",
           n, a, a_ema, last, lv, lu, lu - lv);
    TEST_CHECK(a >= 0.95, "toy AUROC %.4f < 0.95", a);
    TEST_CHECK(lv < lu, "toy: L_val(rater) %.4f is not below L_val(uniform) %.4f", lv, lu);
    free(out); free(log); free(ema);
}

/* test_meta_sanity --set k=v …: the toy problem alone with those options (docs/meta.md's
 * variants), its AUROC on Train_A and on the held-out documents, and its gain. */
static void toy_variant(const char *train, const char *val, const char *heldout, int n, const char **sets) {
    Config cfg = toy_config(n, sets);
    char *out = path_in("variant.safetensors"), *log = path_in("variant.jsonl");
    TEST_CHECK(run_meta(&cfg, train, val, out, log, 0, 0) == 0, "variant run: %s", dr_lasterr());
    double lv, lu;
    const int last = 4, n_logged = mean_of_last(log, last, &lv, &lu);
    printf("  toy problem with");
    for (int i = 0; i < n; i++) printf(" %s", sets[i]);
    printf(", %d meta-steps: AUROC clean vs corrupt on Train_A %.4f (held out %.4f); last %d "
           "steps: L_val %.4f, uniform %.4f, gain %.4f nats\n", n_logged, auroc(out, train, &cfg),
           auroc(out, heldout, &cfg), last, lv, lu, lu - lv);
    free(out); free(log);
}

int main(int argc, char **argv) {
    dr_set_progname("test_meta_sanity");
    const char *sets[16];
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        CHECK(!strcmp(argv[i], "--set") && i + 1 < argc && n_sets < 16,
              "usage: test_meta_sanity [--set k=v ...] (with --set: the toy problem alone, so changed)");
        sets[n_sets++] = argv[++i];
    }
    be = backend_select("cpu");
    snprintf(dir, sizeof dir, "/tmp/dr-meta-test-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp failed");
    char *train = path_in("train_a.drs"), *val = path_in("val.drs"), *heldout = path_in("heldout.drs");
    rng = 1;
    write_toy(train, 300, 300, 0);
    write_toy(val, 150, 0, 1);
    write_toy(heldout, 100, 100, 0);

    if (n_sets) {
        toy_variant(train, val, heldout, n_sets, sets);
    } else {
        test_constant_is_uniform(train, val);
        test_constant_run(train, val);
        test_detach(train, val);
        test_resume(train, val);
        test_per_member_adam(train, val);
        test_overlap(train, heldout);
        test_toy_learns(train, val, heldout);
    }

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(train); free(val); free(heldout);
    return test_finish("test_meta_sanity");
}
