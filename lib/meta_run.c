/* meta_run.c — dr-meta's outer loop (DESIGN §4.1) around meta.c's member meta-step:
 * the population, each member's own Train_A and Val streams, resets, the combination of
 * the K meta-gradients, the outer AdamW with clip, the EMA, metrics and progress, the
 * state file for a bit-exact --resume, Ctrl-C, and `dr-meta grad`.
 *
 * A meta-step m (0-based), for each member k in order:
 *   reset k if (m + k·R/K) mod R == 0 (R = meta.reset_every; and at m = 0): fresh
 *   seed-derived θ, optimizer state zero, the uniform shadow a copy;
 *   draw T·B Train_A and val_batches·B Val example numbers from k's streams;
 *   meta_member_step (and meta_uniform_step for the shadow) on them;
 * then combine (mean, or each member's φ̄ through its own Adam moments), one outer update
 * of φ, EMA, one metrics line. Everything is a function of the seed and the state, so a
 * resumed run is bit-identical to an uninterrupted one.
 *
 * Over MPI ranks (dist.h, docs/scale-out.md): member k lives on rank k mod N (only its
 * owner holds its θ and optimizer state); every rank draws every member's example
 * numbers, so the streams stay in step everywhere; after a rank has run its members, the
 * members' φ̄_k, statistics and shadow losses are broadcast from their owners and EVERY
 * rank combines them in member order, exactly as one process does: the same φ on every
 * rank after every meta-step, bit for bit the one-process φ. Rank 0 alone writes the
 * rater, the EMA, the state (gathering the members' tensors from their owners) and logs.
 *
 * Must never: write a half file (all outputs are atomic), overwrite the last good rater
 * with a non-finite one, let Val and Train_A share a document, or let the combination of
 * the members' meta-gradients depend on how they were spread over ranks.
 */
#include "meta.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "dist.h"
#include "json.h"
#include "metrics.h"
#include "progress.h"
#include "safetensors.h"

/* ================================================================================
 * Inputs, paths
 * ================================================================================ */

int meta_resolve_inputs(MetaOptions *o, int n_inputs, char **inputs, int n_train,
                        char **train, int n_val, char **val) {
    static const char *const hint[2] = {"; give a manifest with train_a lines (dr-split) or --train",
                                        "; give a manifest with val lines (dr-split) or --val"};
    static const char *const split[2] = {"train_a", "val"}, *const for_what[2] = {" for Train_A", " for Val"};
    if (n_inputs > 0) {
        ShardList all = { 0 };
        int rc = shardlist_add_inputs(&all, n_inputs, inputs);
        for (int which = 0; which < 2 && rc == 0; which++) {
            ShardList *dst = which ? &o->val : &o->train;
            if (which ? n_val : n_train) continue;   /* given by --train / --val */
            shardlist_copy_split(dst, &all, split[which]);
            if (dst->n == 0) rc = shardlist_no_split(&all, split[which], for_what[which], NULL, hint[which]);
        }
        shardlist_free(&all);
        if (rc != 0) return -1;
    }
    for (int which = 0; which < 2; which++) {
        int n = which ? n_val : n_train;
        if (n == 0) continue;
        ShardList l = { 0 }, *dst = which ? &o->val : &o->train;
        int rc = shardlist_add_inputs(&l, n, which ? val : train);
        /* a manifest as --train/--val: its train_a / val lines */
        if (rc == 0) shardlist_copy_split(dst, &l, shardlist_has_split(&l, NULL) ? split[which] : NULL);
        if (rc == 0 && dst->n == 0) rc = shardlist_no_split(&l, split[which], for_what[which], NULL, "");
        shardlist_free(&l);
        if (rc != 0) return -1;
    }
    if (o->train.n == 0)
        return dr_seterr("no Train_A shards: give a manifest with train_a lines (dr-split) or --train");
    if (o->val.n == 0)
        return dr_seterr("no Val shards: give a manifest with val lines (dr-split) or --val");
    return 0;
}

void meta_options_free(MetaOptions *o) {
    shardlist_free(&o->train);
    shardlist_free(&o->val);
}

void meta_grad_options_free(MetaGradOptions *o) {
    shardlist_free(&o->train);
    shardlist_free(&o->val);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

char *meta_ema_path(const char *out) {
    size_t n = strlen(out);
    if (ends_with(out, ".safetensors")) n -= strlen(".safetensors");
    char *p = xmalloc(n + sizeof ".ema.safetensors");
    memcpy(p, out, n);
    strcpy(p + n, ".ema.safetensors");
    return p;
}

char *meta_state_path(const char *out) {
    char *p = xmalloc(strlen(out) + sizeof ".state");
    strcpy(p, out);
    strcat(p, ".state");
    return p;
}

/* ================================================================================
 * Data: loaders, Val/Train_A disjointness, per-member streams
 * ================================================================================ */

/* bf16 products and the meta-gradient through AdamW: the reverse of an AdamW step
 * multiplies by d(m̂/(√v̂ + ε))/dg, about 1/ε for a weight whose gradient is near ε, so the
 * meta-gradient leans on gradients far below what bf16 products resolve. Measured on the
 * CPU emulator of CUDA (tests/cuda/emu/, which rounds like the hardware), configs/tiny.yaml,
 * `dr-meta grad`, T 8, B 8, from an LM at its init: cosine with the exact (double)
 * meta-gradient 0.46 at lm.eps 1e-8, 0.998 at 1e-6, 0.9999 at 1e-5 (the float build:
 * 0.9999999; SGD in bf16: 0.999998); from an LM trained 3 steps (T 3, B 4): 0.05, 0.78, 0.99; trained 100
 * steps: 0.995 at 1e-8. With GPT-2's vocabulary (tests/cuda/meta_grad_precision.sh, 2
 * layers d64), against the fp32 meta-gradient from the LM's init: 0.56 at 1e-8, 0.998 at
 * 1e-5 (docs/cuda.md, "bf16 and the meta-gradient"). So a warning, once, below 1e-5. */
static void warn_bf16_meta_gradient(const Config *cfg) {
    if (strcmp(cfg->precision, "bf16") != 0 || strcmp(cfg->lm.optimizer, "adamw") != 0 ||
        cfg->lm.eps >= 1e-5 || dist_rank() != 0)
        return;
    fprintf(dist_log(), "%s: warning: experiment.precision bf16 with AdamW at lm.eps %g: the "
            "meta-gradient through AdamW amplifies gradients near eps, which bf16 products do not "
            "resolve (a GPT-2-vocabulary LM at its init: cosine with the fp32 meta-gradient 0.56 at "
            "lm.eps 1e-8, 0.998 at 1e-5, configs/gpu.yaml's value); precision fp32 or lm.eps >= "
            "1e-5 keeps it close (docs/cuda.md, \"bf16 and the meta-gradient\")\n", dr_progname(),
            cfg->lm.eps);
}

static DataLoader *open_loader(const ShardList *shards, const Config *cfg, const char *what) {
    DataOptions opt;
    data_options_from_config(&opt, cfg);
    opt.shuffle = 0;        /* dr-meta draws its own per-member orders (Stream below) */
    opt.prefetch = 0;       /* and reads by example number (data_get) */
    DataLoader *d = data_open(shards, &opt);
    if (!d) dr_seterr("%s: %s", what, dr_lasterr());
    return d;
}

/* Refuses Val and Train_A sharing a document (by document id, DESIGN §2.1). */
static int check_disjoint(const DataLoader *train, const DataLoader *val) {
    uint64_t first, shared = data_shared_documents(val, train, &first);
    if (shared)
        return dr_seterr("Val and Train_A share %" PRIu64 " document%s (e.g. document id %016" PRIx64
                         "): the meta-objective must be measured on held-out documents; split "
                         "them with dr-split", shared, shared == 1 ? "" : "s", first);
    return 0;
}

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t seed_of(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    return mix64(seed ^ mix64(a ^ mix64(b ^ mix64(c))));
}

/* A member's stream over n examples: epoch e walks a pseudo-random permutation drawn
 * from (key, e) — a 4-round Feistel network on the next even power of two, cycle-walked
 * into [0, n) — so no order is stored and a position is just (epoch, cursor).
 * Unshuffled: shard order starting at `offset`. */
typedef struct {
    uint64_t key, n, offset, epoch, cursor;
    int shuffle;
} Stream;

static uint64_t feistel(uint64_t x, int half_bits, uint64_t key) {
    const uint64_t mask = (1ULL << half_bits) - 1;
    uint64_t l = x >> half_bits, r = x & mask;
    for (int round = 0; round < 4; round++) {
        uint64_t f = mix64(r ^ mix64(key + (uint64_t)round)) & mask;
        uint64_t nl = r;
        r = l ^ f;
        l = nl;
    }
    return (l << half_bits) | r;
}

static uint64_t stream_next(Stream *s) {
    uint64_t i;
    if (s->shuffle) {
        int bits = 2;
        while (bits < 64 && (1ULL << bits) < s->n) bits += 2;
        uint64_t key = mix64(s->key ^ mix64(s->epoch + 1)), x = s->cursor;
        do x = feistel(x, bits / 2, key); while (x >= s->n);
        i = x;
    } else {
        i = (s->cursor + s->offset) % s->n;
    }
    if (++s->cursor == s->n) {
        s->cursor = 0;
        s->epoch++;
    }
    return i;
}

/* The batches of one meta-step: example numbers drawn before the step, batches rebuilt
 * from them (data_get) whenever meta.c asks — the reverse pass asks again for each t. */
typedef struct {
    DataLoader *train, *val;
    DataBatch *tb, *vb;
    uint64_t *train_idx;   /* [T·B] */
    uint64_t *val_idx;     /* [n_val·B] */
    int B, T, n_val;
    int by_range;          /* dr-meta grad: batch t = examples tB … tB+B−1 in shard order */
} StepData;

static const DataBatch *sd_train(void *ctx, int t) {
    StepData *d = ctx;
    int rc = d->by_range ? data_range(d->train, (uint64_t)t * d->B, d->B, d->tb)
                         : data_get(d->train, d->train_idx + (size_t)t * d->B, d->B, d->tb);
    return rc ? NULL : d->tb;
}

static const DataBatch *sd_val(void *ctx, int j) {
    StepData *d = ctx;
    int rc = d->by_range ? data_range(d->val, (uint64_t)j * d->B, d->B, d->vb)
                         : data_get(d->val, d->val_idx + (size_t)j * d->B, d->B, d->vb);
    return rc ? NULL : d->vb;
}

static void stepdata_init(StepData *d, DataLoader *train, DataLoader *val, int B, int T, int n_val) {
    memset(d, 0, sizeof *d);
    d->train = train;
    d->val = val;
    d->tb = data_batch_new(train);
    d->vb = data_batch_new(val);
    d->B = B;
    d->T = T;
    d->n_val = n_val;
    d->train_idx = xcalloc((size_t)T * B, sizeof *d->train_idx);
    d->val_idx = xcalloc((size_t)n_val * B, sizeof *d->val_idx);
}

static void stepdata_free(StepData *d) {
    data_batch_free(d->tb);
    data_batch_free(d->vb);
    free(d->train_idx);
    free(d->val_idx);
}

/* ================================================================================
 * The run: population and outer optimizer
 * ================================================================================ */

typedef struct {
    real *theta;            /* θ (backend) */
    OptimState opt;
    real *theta_u;          /* uniform shadow (track_uniform) */
    OptimState opt_u;
    real *meta_m, *meta_v;  /* per_member_adam: this member's moments of φ̄ */
    Stream train, val;
} Member;

typedef struct {
    MetaOptions *o;
    const Config *cfg;
    const Backend *be;
    MetaSpec spec;
    DataLoader *train, *val;
    StepData sd;
    MetaWork *work;
    int K, combine, track_uniform, has_grad;
    Member *mem;
    size_t n, n_phi;
    real *phi, *phi_ema, *dphi, *dphi_k, *dir, *dir_sum;   /* backend, |φ| */
    OptimState outer;       /* AdamW on φ (combine mean) */
    OptimHyper outer_h;
    /* one meta-step's per-member results, combined in member order (population_step) */
    MetaStats *mstats;      /* [K] */
    double *lu;             /* [K] L_val of the uniform shadows */
    real *h_dphi;           /* host [K·|φ|]: φ̄_k (rows of members this rank runs, or receives) */
    long meta_step;         /* meta-steps done */
    double seconds_before;  /* wall time of the run before this process (resume) */
    char *config_json;
    char *log_line;         /* rank 0, on resume: the line of meta_step that the saving run
                             * could not write (state metadata "log_line"), or NULL */
} Run;

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
    interrupted = sig;
    dr_install_cleanup_signals_after_stop();   /* a second Ctrl-C ends the process, removing temp files */
    if (dist_rank() == 0) dr_say_stopping("meta-step");
}

/* Member k runs on rank k mod N; only that rank holds its θ and optimizer state. */
static int owner_of(int k) { return k % dist_size(); }
static int owns(int k) { return owner_of(k) == dist_rank(); }

static void member_reset(Run *r, int k, long m) {
    Member *mb = &r->mem[k];
    lm_init_params(r->be, &r->spec.lm, mb->theta, seed_of(r->cfg->seed, 0x4c4d, (uint64_t)k, (uint64_t)m));
    optim_state_zero(&mb->opt, r->be);
    if (r->track_uniform) {
        r->be->vec_copy(mb->theta_u, mb->theta, r->n);
        optim_state_zero(&mb->opt_u, r->be);
    }
}

void meta_rater_init(const Backend *be, const RaterConfig *rc, real *phi, uint64_t seed) {
    rater_init_params(be, rc, phi, seed_of(seed, 0x5241544552, 0, 0));
}

static int reset_due(const Run *r, int k, long m) {
    long R = r->cfg->meta.reset_every;
    return m == 0 || (m + (long)k * R / r->K) % R == 0;
}

static void run_alloc(Run *r) {
    const Backend *be = r->be;
    r->mem = xcalloc((size_t)r->K, sizeof *r->mem);
    for (int k = 0; k < r->K; k++) {
        Member *mb = &r->mem[k];
        if (owns(k)) {   /* the LM of member k lives on its rank only */
            mb->theta = be->alloc(r->n * sizeof(real));
            optim_state_init(&mb->opt, be, r->spec.inner.kind, r->n);
            if (r->track_uniform) {
                mb->theta_u = be->alloc(r->n * sizeof(real));
                optim_state_init(&mb->opt_u, be, r->spec.inner.kind, r->n);
            }
        }
        if (r->combine == META_COMBINE_PER_MEMBER_ADAM) {
            mb->meta_m = be->alloc(r->n_phi * sizeof(real));
            mb->meta_v = be->alloc(r->n_phi * sizeof(real));
        }
        uint64_t nt = data_num_examples(r->train), nv = data_num_examples(r->val);
        mb->train = (Stream){ .key = seed_of(r->cfg->seed, 0x5452, (uint64_t)k, 0), .n = nt,
                              .offset = nt * (uint64_t)k / (uint64_t)r->K, .shuffle = r->cfg->data.shuffle };
        mb->val = (Stream){ .key = seed_of(r->cfg->seed, 0x56414c, (uint64_t)k, 0), .n = nv,
                            .offset = nv * (uint64_t)k / (uint64_t)r->K, .shuffle = r->cfg->data.shuffle };
    }
    r->phi = be->alloc(r->n_phi * sizeof(real));
    r->phi_ema = be->alloc(r->n_phi * sizeof(real));
    r->dphi = be->alloc(r->n_phi * sizeof(real));
    r->dphi_k = be->alloc(r->n_phi * sizeof(real));
    r->dir = be->alloc(r->n_phi * sizeof(real));
    r->dir_sum = be->alloc(r->n_phi * sizeof(real));
    optim_state_init(&r->outer, be, OPTIM_ADAMW, r->n_phi);
    r->mstats = xcalloc((size_t)r->K, sizeof *r->mstats);
    r->lu = xcalloc((size_t)r->K, sizeof *r->lu);
    r->h_dphi = xcalloc((size_t)r->K * r->n_phi, sizeof *r->h_dphi);
}

static void run_free(Run *r) {
    const Backend *be = r->be;
    free(r->log_line);
    if (r->mem)
        for (int k = 0; k < r->K; k++) {
            Member *mb = &r->mem[k];
            if (mb->theta) be->free(mb->theta);
            optim_state_free(&mb->opt, be);
            if (mb->theta_u) be->free(mb->theta_u);
            optim_state_free(&mb->opt_u, be);
            if (mb->meta_m) be->free(mb->meta_m);
            if (mb->meta_v) be->free(mb->meta_v);
        }
    free(r->mem);
    real *bufs[] = { r->phi, r->phi_ema, r->dphi, r->dphi_k, r->dir, r->dir_sum };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) be->free(bufs[i]);
    optim_state_free(&r->outer, be);
    free(r->mstats);
    free(r->lu);
    free(r->h_dphi);
    meta_work_free(r->work);
    stepdata_free(&r->sd);
    if (r->train) data_close(r->train);
    if (r->val) data_close(r->val);
    free(r->config_json);
}

/* ================================================================================
 * Files: rater + EMA, and the state for --resume
 * ================================================================================ */

static real *to_host_copy(const Backend *be, const real *x, size_t n) {
    real *h = xmalloc(n * sizeof(real));
    be->to_host(h, x, n * sizeof(real));
    return h;
}

static int save_raters(Run *r, const real *phi, const real *phi_ema) {
    if (dist_rank() != 0) return 0;   /* every rank holds the same φ */
    real *h = to_host_copy(r->be, phi, r->n_phi);
    TokenizerTag tag = data_tokenizer_tag(r->train);
    int rc = rater_save(r->o->out_path, &r->spec.rater, h, r->config_json, &tag);
    free(h);
    if (rc) return -1;
    char *ema_path = meta_ema_path(r->o->out_path);
    h = to_host_copy(r->be, phi_ema, r->n_phi);
    rc = rater_save(ema_path, &r->spec.rater, h, r->config_json, &tag);
    free(h);
    free(ema_path);
    return rc;
}

static void st_add_flat(StWriter *w, const Backend *be, const char *name, const real *x, size_t n) {
    real *h = to_host_copy(be, x, n);
    int64_t shape[1] = { (int64_t)n };
    st_writer_add_real(w, name, 1, shape, h);
    free(h);
}

/* Member k's flat tensor x (n reals on its owner's backend) added to rank 0's writer w:
 * the owner copies it out and sends it (every rank calls this; w is NULL but on rank 0). */
static void st_add_member(StWriter *w, const Backend *be, int k, const char *name, const real *x,
                          size_t n) {
    const int owner = owner_of(k), me = dist_rank();
    if (me != 0 && me != owner) return;
    real *h = xmalloc(n * sizeof(real));
    if (me == owner) be->to_host(h, x, n * sizeof(real));
    dist_move(h, n * sizeof(real), owner, 0);
    if (me == 0) {
        int64_t shape[1] = { (int64_t)n };
        st_writer_add_real(w, name, 1, shape, h);
    }
    free(h);
}

static void meta_kv(StWriter *w, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void meta_kv(StWriter *w, const char *key, const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    st_writer_metadata(w, key, buf);
}

/* Everything the next meta-step depends on. Real tensors in the build's precision
 * (F32/F64), so a resume of the same build restores the same bits. log_line: the log
 * line of this meta-step that could not be written (NULL: none), for the resume to write. */
static int state_save(Run *r, const char *path, double seconds, const char *log_line) {
    const Backend *be = r->be;
    const int root = dist_rank() == 0;
    StWriter *w = root ? st_writer_new() : NULL;   /* rank 0 writes; owners send it their members */
    char name[96];
    if (root) {
        st_writer_metadata(w, "format", "datarater.meta.state");
        st_writer_metadata(w, "precision", REAL_NAME);
        st_writer_metadata(w, "config", r->config_json);
        meta_kv(w, "meta_step", "%ld", r->meta_step);
        meta_kv(w, "outer_step", "%ld", r->outer.step);
        meta_kv(w, "seconds", "%.17g", seconds);
        meta_kv(w, "population_K", "%d", r->K);
        meta_kv(w, "train_examples", "%" PRIu64, data_num_examples(r->train));
        meta_kv(w, "val_examples", "%" PRIu64, data_num_examples(r->val));
        if (log_line) st_writer_metadata(w, "log_line", log_line);
        st_add_flat(w, be, "phi", r->phi, r->n_phi);
        st_add_flat(w, be, "phi_ema", r->phi_ema, r->n_phi);
        st_add_flat(w, be, "outer.m", r->outer.m, r->n_phi);
        st_add_flat(w, be, "outer.v", r->outer.v, r->n_phi);
    }
    const int adamw = r->spec.inner.kind == OPTIM_ADAMW;
    for (int k = 0; k < r->K; k++) {
        const Member *mb = &r->mem[k];
#define ADD(suffix, x, n) do { snprintf(name, sizeof name, "member.%d.%s", k, suffix); \
                               st_add_member(w, be, k, name, x, n); } while (0)
        ADD("theta", mb->theta, r->n);
        ADD("m", mb->opt.m, r->n);
        if (adamw) ADD("v", mb->opt.v, r->n);
        if (r->track_uniform) {
            ADD("uniform.theta", mb->theta_u, r->n);
            ADD("uniform.m", mb->opt_u.m, r->n);
            if (adamw) ADD("uniform.v", mb->opt_u.v, r->n);
        }
#undef ADD
        long steps[2] = { mb->opt.step, mb->opt_u.step };   /* the owner's */
        dist_move(steps, sizeof steps, owner_of(k), 0);
        if (!root) continue;
        if (mb->meta_m) {   /* per_member_adam: every rank holds every member's moments */
            snprintf(name, sizeof name, "member.%d.meta_m", k);
            st_add_flat(w, be, name, mb->meta_m, r->n_phi);
            snprintf(name, sizeof name, "member.%d.meta_v", k);
            st_add_flat(w, be, name, mb->meta_v, r->n_phi);
        }
        snprintf(name, sizeof name, "member.%d.steps", k);
        meta_kv(w, name, "%ld %ld", steps[0], steps[1]);
        snprintf(name, sizeof name, "member.%d.streams", k);
        meta_kv(w, name, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, mb->train.epoch,
                mb->train.cursor, mb->val.epoch, mb->val.cursor);
    }
    if (!root) return 0;
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    return rc;
}

/* Rater, EMA and state are one checkpoint: all new or all old (signals wait). */
static int save_all(Run *r, const char *state_path, double seconds, const char *log_line) {
    dr_signals_hold();
    int failed = save_raters(r, r->phi, r->phi_ema) || state_save(r, state_path, seconds, log_line);
    dr_signals_release();
    return failed;
}

static int parse_longs(const char *s, long *out, int n) {
    if (!s) return -1;
    for (int i = 0; i < n; i++) {
        char *end;
        while (*s == ' ') s++;
        if (*s < '0' || *s > '9') return -1;   /* every counter is a count: no sign */
        errno = 0;
        out[i] = strtol(s, &end, 10);
        if (errno == ERANGE) return -1;
        s = end;
    }
    while (*s == ' ') s++;
    return *s ? -1 : 0;                       /* nothing after the n numbers */
}

/* A flat tensor of the state, read by rank 0 and delivered to rank `to` (−1: every rank),
 * which copies it to its backend buffer x. Every rank calls it. -1 (rank 0) on a read error,
 * -2 when it holds a NaN or an infinity (st_read_real). */
static int st_get_to(const SafeTensors *st, const Backend *be, const char *name, real *x, size_t n,
                     int to) {
    const int me = dist_rank();
    if (me != 0 && to >= 0 && me != to) return 0;
    int rc = 0;
    real *h = xmalloc(n * sizeof(real));
    if (me == 0) rc = st_read_real(st, name, h, n);
    if (rc == 0) {   /* rank 0 failing stops the job: the others never get here unpaired */
        if (to < 0) dist_bcast(h, n * sizeof(real), 0);
        else dist_move(h, n * sizeof(real), 0, to);
        if (to < 0 || me == to) be->to_device(x, h, n * sizeof(real));
    }
    free(h);
    return rc;
}

/* The keys a --resume may change (config_diff's skip list, docs/meta.md §4): the run's
 * length, the inner LMs' lr and clip (the way on after a divergence, §3), where and how fast
 * it runs, how often it logs and saves, and the memory options whose arithmetic is the same
 * (§1.4); dr-train's and dr-filter's sections are not dr-meta's. */
static const char *const resume_may_change[] = {
    "experiment.name", "experiment.device", "experiment.threads", "data.prefetch", "lm.lr",
    "lm.clip", "lm.checkpointing", "lm.head_chunk", "rater.checkpointing", "meta.rounds",
    "meta.checkpoint_every", "meta.host_checkpoints", "meta.keep_activations", "meta.log_every",
    "meta.save_every", "meta.save_minutes", "train.", "deploy.", NULL,
};

/* A run started without --resume over the state of an unfinished run would replace it
 * without a word (the interrupt message says --resume; an Up-arrow and Enter repeat the
 * command without it): refused unless --restart. A state that cannot be read, or of a
 * finished run, is replaced as before. */
static int check_no_unfinished_run(const char *path) {
    if (access(path, F_OK) != 0) return 0;
    SafeTensors *st = st_open(path);
    const char *cj = st ? st_metadata(st, "config") : NULL;
    long done = 0;
    Config saved;
    int rc = 0;
    if (cj && parse_longs(st_metadata(st, "meta_step"), &done, 1) == 0 &&
        config_load_json(&saved, cj, strlen(cj), path) == 0 && done < saved.meta.rounds)
        rc = dr_seterr("%s holds an unfinished run (meta-step %ld of %d): --resume continues it, "
                       "--restart starts over and replaces it", path, done, saved.meta.rounds);
    st_close(st);
    return rc;
}

/* Every rank calls it: rank 0 opens and checks the file (-o need only be on its disk),
 * sends each member's tensors to the member's owner and the rest to every rank. */
static int state_load(Run *r, const char *path, double *seconds) {
    const Backend *be = r->be;
    const int root = dist_rank() == 0;
    SafeTensors *st = NULL;
    int rc = -1;
    char name[96];
    long v[4];
    /* what every rank needs besides tensors, filled by rank 0 and broadcast */
    long counters[2] = { 0, 0 };   /* meta_step, outer_step */
    long *mem_v = xcalloc((size_t)r->K * 6, sizeof *mem_v);   /* per member: steps ×2, streams ×4 */
    if (root) {
        st = st_open(path);
        if (!st) {
            dr_seterr("--resume: %s", dr_lasterr());   /* st_open names the file */
            goto done;
        }
        const char *fmt = st_metadata(st, "format"), *prec = st_metadata(st, "precision");
        if (!fmt || strcmp(fmt, "datarater.meta.state") != 0) {
            dr_seterr("--resume: %s is not a dr-meta state file", path);
            goto done;
        }
        if (!prec || strcmp(prec, REAL_NAME) != 0) {
            dr_seterr("--resume: %s was written by a %s build, this is a %s build", path,
                      prec ? prec : "?", REAL_NAME);
            goto done;
        }
        if (parse_longs(st_metadata(st, "population_K"), v, 1) || v[0] != r->K) {
            dr_seterr("--resume: %s holds %s members, the config asks for %d", path,
                      st_metadata(st, "population_K") ? st_metadata(st, "population_K") : "?", r->K);
            goto done;
        }
        char buf[64];
        snprintf(buf, sizeof buf, "%" PRIu64, data_num_examples(r->train));
        const char *te = st_metadata(st, "train_examples"), *ve = st_metadata(st, "val_examples");
        if (!te || strcmp(te, buf) != 0) {
            dr_seterr("--resume: %s was made on %s Train_A examples, these shards hold %s", path,
                      te ? te : "?", buf);
            goto done;
        }
        snprintf(buf, sizeof buf, "%" PRIu64, data_num_examples(r->val));
        if (!ve || strcmp(ve, buf) != 0) {
            dr_seterr("--resume: %s was made on %s Val examples, these shards hold %s", path,
                      ve ? ve : "?", buf);
            goto done;
        }
        if (parse_longs(st_metadata(st, "meta_step"), &counters[0], 1)) goto bad;
        if (parse_longs(st_metadata(st, "outer_step"), &counters[1], 1)) goto bad;
        const char *sec = st_metadata(st, "seconds");
        char *sec_end = NULL;
        *seconds = sec ? strtod(sec, &sec_end) : 0;
        if (sec && (sec_end == sec || *sec_end || !(*seconds >= 0 && *seconds < 1e15))) goto bad;   /* NaN too */
        /* the log line of this meta-step that the saving run could not write: it goes into
         * the log as it is, so it must be one flat JSON object of this meta-step (a damaged
         * state would put other text into the log) */
        const char *line = st_metadata(st, "log_line");
        if (line) {
            JsonDoc *jd = strchr(line, '\n') ? NULL : json_parse(line, strlen(line), 0);
            const JsonValue *ms = jd ? json_get(json_root(jd), "meta_step") : NULL;
            int ok = ms && ms->type == JSON_NUMBER && ms->number == (double)counters[0];
            json_free(jd);
            if (!ok) goto bad;
            r->log_line = xstrdup(line);
        }
        for (int k = 0; k < r->K; k++) {
            snprintf(name, sizeof name, "member.%d.steps", k);
            if (parse_longs(st_metadata(st, name), mem_v + 6 * k, 2)) goto bad;
            snprintf(name, sizeof name, "member.%d.streams", k);
            if (parse_longs(st_metadata(st, name), mem_v + 6 * k + 2, 4)) goto bad;
            if ((uint64_t)mem_v[6 * k + 3] >= r->mem[k].train.n ||
                (uint64_t)mem_v[6 * k + 5] >= r->mem[k].val.n)
                goto bad;
        }
    }
    dist_bcast(counters, sizeof counters, 0);
    dist_bcast(seconds, sizeof *seconds, 0);
    dist_bcast(mem_v, (size_t)r->K * 6 * sizeof *mem_v, 0);
    r->meta_step = counters[0];
    r->outer.step = counters[1];
    int get_rc = 0;
    if ((get_rc = st_get_to(st, be, "phi", r->phi, r->n_phi, -1)) ||
        (get_rc = st_get_to(st, be, "phi_ema", r->phi_ema, r->n_phi, -1)) ||
        (get_rc = st_get_to(st, be, "outer.m", r->outer.m, r->n_phi, -1)) ||
        (get_rc = st_get_to(st, be, "outer.v", r->outer.v, r->n_phi, -1)))
        goto fail;
    for (int k = 0; k < r->K; k++) {
        Member *mb = &r->mem[k];
        const int to = owner_of(k);
#define GET(suffix, x, n, dest) do { snprintf(name, sizeof name, "member.%d.%s", k, suffix); \
                                     if ((get_rc = st_get_to(st, be, name, x, n, dest))) goto fail; } while (0)
        GET("theta", mb->theta, r->n, to);
        GET("m", mb->opt.m, r->n, to);
        if (r->spec.inner.kind == OPTIM_ADAMW) GET("v", mb->opt.v, r->n, to);
        if (r->track_uniform) {
            GET("uniform.theta", mb->theta_u, r->n, to);
            GET("uniform.m", mb->opt_u.m, r->n, to);
            if (r->spec.inner.kind == OPTIM_ADAMW) GET("uniform.v", mb->opt_u.v, r->n, to);
        }
        if (mb->meta_m) {
            GET("meta_m", mb->meta_m, r->n_phi, -1);
            GET("meta_v", mb->meta_v, r->n_phi, -1);
        }
#undef GET
        const long *mv = mem_v + 6 * k;
        mb->opt.step = mv[0];
        mb->opt_u.step = mv[1];
        mb->train.epoch = (uint64_t)mv[2];
        mb->train.cursor = (uint64_t)mv[3];
        mb->val.epoch = (uint64_t)mv[4];
        mb->val.cursor = (uint64_t)mv[5];
    }
    /* the same run: every key that changes its numbers as saved (after the checks above,
     * which name a mismatch in the state's own terms; a state of an earlier version without
     * "config" is taken as it is) */
    int other = 0;
    if (root) {
        const char *cj = st_metadata(st, "config");
        Config saved;
        char was[256], now[256];
        const char *key = NULL;
        if (cj && config_load_json(&saved, cj, strlen(cj), path)) {
            dr_seterr("--resume: %s", dr_lasterr());
            other = 1;
        } else if (cj && (key = config_diff(&saved, r->cfg, resume_may_change, was, now, sizeof was))) {
            dr_seterr("--resume: %s was written with %s = %s, the config has %s: a resumed run "
                      "continues the same run (only meta.rounds, lm.lr, lm.clip, the log and save "
                      "intervals, threads, device and memory options may change)", path, key, was, now);
            other = 1;
        }
    }
    dist_bcast(&other, sizeof other, 0);
    if (other) {
        if (!root) dr_seterr("--resume: %s does not match the config (rank 0 says why)", path);
        goto done;
    }
    rc = 0;
    goto done;
bad:
    dr_seterr("--resume: %s: malformed metadata", path);
    goto done;
fail:
    if (get_rc == -2) dr_seterr("--resume: %s", dr_lasterr());
    else dr_seterr("--resume: %s (was the state written with another config?)", dr_lasterr());
done:
    if (st) st_close(st);
    free(mem_v);
    return rc;
}

/* ================================================================================
 * One meta-step of the population
 * ================================================================================ */

typedef struct {
    MetaStats stats;
    double l_val_uniform;   /* mean over members (NaN when not tracked) */
    double grad_norm;       /* ‖mean_k φ̄_k‖ */
} StepResult;

/* φ̄_k through member k's own Adam moments (per_member_adam): the clipped φ̄_k updates
 * (m_k, v_k) as AdamW would, and dir_sum += the AdamW update of a zero vector with lr 1
 * and no weight decay, −(m_k/(1−β1^k)) / (sqrt(v_k)/sqrt(1−β2^k) + eps): member k's Adam
 * step, applied as φ ← φ(1 − lr·wd) + (lr/K)·dir_sum (K = 1: AdamW up to rounding). */
static void member_adam_direction(Run *r, Member *mb, long step) {
    const Backend *be = r->be;
    double s = clip_factor(be, r->dphi_k, r->n_phi, r->outer_h.clip, NULL);
    AdamWHyper a = optim_adamw_hyper(&r->outer_h, 1.0, step);
    a.weight_decay = 0;
    be->vec_zero(r->dir, r->n_phi);
    be->adamw_forward(r->dir, mb->meta_m, mb->meta_v, r->dphi_k, s, r->n_phi, &a);
    be->vec_axpy(r->dir_sum, 1.0, r->dir, r->n_phi);
}

/* The members' example numbers of this meta-step: member k's T·B Train_A and
 * val_batches·B Val draws into sd. Every rank draws for every member (and discards the
 * draws of members it does not run), so all ranks' streams stay where one process's are. */
static void draw_batches(Run *r, Member *mb) {
    const Config *cfg = r->cfg;
    const size_t nt = (size_t)r->spec.T * cfg->data.batch_size;
    const size_t nv = (size_t)cfg->meta.val_batches * cfg->data.batch_size;
    for (size_t i = 0; i < nt; i++) r->sd.train_idx[i] = stream_next(&mb->train);
    for (size_t i = 0; i < nv; i++) r->sd.val_idx[i] = stream_next(&mb->val);
}

static int population_step(Run *r, StepResult *res) {
    const Backend *be = r->be;
    const Config *cfg = r->cfg;
    const long m = r->meta_step;
    const int n_val = cfg->meta.val_batches;
    const size_t n_phi = r->n_phi;
    meta_stats_clear(&res->stats);
    double lu_sum = 0;
    be->vec_zero(r->dphi, n_phi);
    be->vec_zero(r->dir_sum, n_phi);

    /* 1. the members this rank runs (all of them in one process): φ̄_k, statistics and
     *    the shadow's L_val, each on its own. A failure (a shard one rank cannot read) is
     *    every rank's before the combining collectives below (dist_agree_failure). */
    int failed = 0;
    for (int k = 0; k < r->K && !failed; k++) {
        Member *mb = &r->mem[k];
        draw_batches(r, mb);
        if (!owns(k)) continue;
        if (reset_due(r, k, m)) member_reset(r, k, m);
        MetaBatches data = { .train = sd_train, .val = sd_val, .n_val = n_val, .ctx = &r->sd };
        meta_stats_clear(&r->mstats[k]);
        be->vec_zero(r->dphi_k, n_phi);
        uint64_t key = seed_of(cfg->seed, 0x5348, (uint64_t)k, (uint64_t)m);
        if (meta_member_step(r->work, mb->theta, &mb->opt, r->phi, &data, key,
                             r->has_grad ? r->dphi_k : NULL, &r->mstats[k])) {
            failed = 1;
            break;
        }
        r->lu[k] = NAN;
        if (r->track_uniform && meta_uniform_step(r->work, mb->theta_u, &mb->opt_u, &data, &r->lu[k])) {
            failed = 1;
            break;
        }
        if (r->has_grad) be->to_host(r->h_dphi + (size_t)k * n_phi, r->dphi_k, n_phi * sizeof(real));
    }
    if (dist_agree_failure(failed ? -1 : 0)) return -1;

    /* 2. on every rank, member by member in order: each from its owner, then combined as
     *    one process combines them, so every rank computes the same φ̄ */
    for (int k = 0; k < r->K; k++) {
        const int from = owner_of(k);
        dist_bcast(&r->mstats[k], sizeof r->mstats[k], from);
        dist_bcast(&r->lu[k], sizeof r->lu[k], from);
        meta_stats_merge(&res->stats, &r->mstats[k]);
        lu_sum += r->lu[k];
        if (!r->has_grad) continue;
        real *h = r->h_dphi + (size_t)k * n_phi;
        dist_bcast(h, n_phi * sizeof(real), from);
        be->to_device(r->dphi_k, h, n_phi * sizeof(real));
        be->vec_axpy(r->dphi, 1.0 / r->K, r->dphi_k, n_phi);
        if (r->combine == META_COMBINE_PER_MEMBER_ADAM) member_adam_direction(r, &r->mem[k], r->outer.step + 1);
    }
    res->l_val_uniform = r->track_uniform ? lu_sum / r->K : NAN;
    res->grad_norm = r->has_grad ? sqrt(be->vec_sumsq(r->dphi, n_phi)) : 0;
    return 0;
}

/* The outer update of φ from the combined meta-gradient, and the EMA. */
static void outer_update(Run *r) {
    const Backend *be = r->be;
    const double lr = r->outer_h.lr;
    if (r->combine == META_COMBINE_PER_MEMBER_ADAM) {
        be->vec_scale(r->phi, 1.0 - lr * r->outer_h.weight_decay, r->n_phi);
        be->vec_axpy(r->phi, lr / r->K, r->dir_sum, r->n_phi);
        r->outer.step++;
    } else {
        optim_step(be, &r->outer, r->phi, r->dphi, &r->outer_h, lr, NULL);
    }
    const double ema = r->cfg->meta.ema;
    if (ema > 0) {
        be->vec_scale(r->phi_ema, ema, r->n_phi);
        be->vec_axpy(r->phi_ema, 1.0 - ema, r->phi, r->n_phi);
    } else {
        be->vec_copy(r->phi_ema, r->phi, r->n_phi);
    }
}

static int log_step(Metrics *mt, const Run *r, const StepResult *res, double seconds,
                    double step_seconds) {
    const MetaStats *s = &res->stats;
    const double K = s->members > 0 ? s->members : 1, n = (double)s->n_scores;
    metrics_begin(mt);
    metrics_int(mt, "meta_step", r->meta_step);
    metrics_int(mt, "step", r->meta_step);   /* DESIGN §2.6: every line has its step */
    metrics_num(mt, "l_train", s->l_train / K);
    metrics_num(mt, "l_val", s->l_val / K);
    if (r->track_uniform) {
        metrics_num(mt, "l_val_uniform", res->l_val_uniform);
        metrics_num(mt, "l_val_gain", res->l_val_uniform - s->l_val / K);
    }
    metrics_num(mt, "objective", s->objective / K);
    if (s->n_scores > 0) {
        double mean = s->score_sum / n, var = s->score_sumsq / n - mean * mean;
        metrics_num(mt, "score_mean", mean);
        metrics_num(mt, "score_std", sqrt(var > 0 ? var : 0));
        metrics_num(mt, "score_min", s->score_min);
        metrics_num(mt, "score_max", s->score_max);
        metrics_num(mt, "score_entropy", s->entropy_sum / n);
        metrics_num(mt, "frac_at_min", (double)s->at_min / n);
        metrics_num(mt, "frac_at_max", (double)s->at_max / n);
    } else {
        const char *keys[] = { "score_mean", "score_std", "score_min", "score_max",
                               "score_entropy", "frac_at_min", "frac_at_max" };
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) metrics_num(mt, keys[i], NAN);
    }
    metrics_num(mt, "meta_grad_norm", res->grad_norm);
    metrics_num(mt, "inner_clip_frac", s->clip_frac / K);
    metrics_num(mt, "seconds", seconds);
    metrics_num(mt, "step_seconds", step_seconds);
    return metrics_end(mt);
}

/* ================================================================================
 * meta_run
 * ================================================================================ */

static int open_data(const Config *cfg, const ShardList *train, const ShardList *val,
                     DataLoader **dt, DataLoader **dv) {
    *dt = open_loader(train, cfg, "Train_A");
    if (!*dt) return -1;
    *dv = open_loader(val, cfg, "Val");
    if (!*dv) return -1;
    if (data_fingerprint(*dt) != data_fingerprint(*dv))
        return dr_seterr("Train_A (%s) and Val (%s) were made with different tokenizers",
                         data_shard_path(*dt, 0), data_shard_path(*dv, 0));
    return check_disjoint(*dt, *dv);
}

/* The vocabulary of the models: lm.vocab_size, or the shards' when 0. */
static int model_vocab(const Config *cfg, const DataLoader *dt, const DataLoader *dv, int *vocab) {
    uint32_t v = data_vocab_size(dt) > data_vocab_size(dv) ? data_vocab_size(dt) : data_vocab_size(dv);
    if (cfg->lm.vocab_size > 0 && (uint32_t)cfg->lm.vocab_size < v)
        return dr_seterr("lm.vocab_size = %d is smaller than the shards' vocabulary (%u ids)",
                         cfg->lm.vocab_size, v);
    *vocab = cfg->lm.vocab_size > 0 ? cfg->lm.vocab_size : (int)v;
    return 0;
}

/* The buffers a meta-run will hold that grow with meta.T, meta.checkpoint_every,
 * meta.population_K and meta.val_batches, counted before any of them is allocated: a
 * configuration that cannot fit (T = 1e8 with checkpoint_every 1 is 1e8 copies of the
 * LM's state) is refused with the key to change, instead of filling the machine's memory
 * one checkpoint at a time until the backend gives up. On the CPU backend every buffer
 * is in RAM; on a GPU the host-side ones (indices, host checkpoints, φ̄ rows). K_local:
 * the members this process holds. */
static int check_meta_memory(const Backend *be, const MetaSpec *s, int K, int K_local, int track_uniform,
                             int per_member_adam, int n_val) {
    const double limit = dr_machine_bytes();
    if (!(limit > 0)) return 0;
    const double R = sizeof(real), n = (double)lm_num_params(&s->lm), n_phi = (double)rater_num_params(&s->rater);
    const double T = s->T, c = s->checkpoint_every, B = s->batch;
    const int adam = s->inner.kind == OPTIM_ADAMW;
    const int reverse = s->mode == META_FULL || s->mode == META_SHUFFLE;
    const int on_host = strcmp(be->name, "cpu") == 0;
    struct { double bytes; int host; const char *what, *fix; } part[] = {
        { reverse ? ceil(T / c) * (adam ? 4 : 3) * n * R : 0, on_host || s->host_checkpoints,
          "the ceil(meta.T / meta.checkpoint_every) checkpoints of the inner state",
          "raise meta.checkpoint_every (0 = sqrt(T)) or lower meta.T" },
        { reverse ? (c - 1) * (adam ? 4 : 3) * n * R : 0, on_host,
          "the meta.checkpoint_every states of a recomputed segment",
          "lower meta.checkpoint_every (0 = sqrt(T))" },
        { (double)K_local * (track_uniform ? 2 : 1) * (adam ? 3 : 2) * n * R, on_host,
          "the meta.population_K members' LMs and optimizer states",
          "lower meta.population_K (or spread the members over MPI ranks)" },
        { (T + n_val) * B * 8.0, 1, "the example indices of meta.T + meta.val_batches batches",
          "lower meta.T or meta.val_batches" },
        { (double)K * n_phi * R * (per_member_adam ? 3 : 1) + 8 * n_phi * R, on_host, "the rater's buffers",
          "lower meta.population_K or the rater's size" },
    };
    double total = 0, big = 0;
    int which = 0;
    for (int i = 0; i < (int)(sizeof part / sizeof *part); i++) {
        if (!part[i].host) continue;
        total += part[i].bytes;
        if (part[i].bytes > big) { big = part[i].bytes; which = i; }
    }
    if (total <= limit) return 0;
    return dr_seterr("out of memory: the meta-run needs %.4g GB (%.4g GB of them for %s), more than "
                     "this machine's %.4g GB (RAM + swap): %s", total / 1e9, big / 1e9, part[which].what,
                     limit / 1e9, part[which].fix);
}

int meta_run(MetaOptions *o) {
    Run run, *r = &run;
    memset(r, 0, sizeof *r);
    r->o = o;
    r->cfg = &o->cfg;
    const Config *cfg = r->cfg;
    int rc = -1, failed_together = 0;   /* failed_together: every rank stopped at one point */
    Metrics *mt = NULL;
    char *state_path = meta_state_path(o->out_path);
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    /* the rater, its EMA and the state go next to -o: a missing directory is found now,
     * not after the meta-steps */
    if (dist_rank() == 0 && dr_check_output_dir(o->out_path) != 0) goto done;
    if (dist_rank() == 0) {   /* and the EMA's and the state's names (a directory there was
                               * found at the first save, after the meta-steps) */
        char *ema = meta_ema_path(o->out_path);
        int bad = dr_check_output_dir(ema) != 0 || dr_check_output_dir(state_path) != 0;
        free(ema);
        if (bad) goto done;
        if (!o->resume && !o->restart && check_no_unfinished_run(state_path) != 0) goto done;
    }

    r->be = backend_select_from(o->device, cfg->device);
    if (!r->be || backend_set_precision(r->be, cfg->precision) != 0) goto done;
    warn_bf16_meta_gradient(cfg);
    if (dist_size() > 1) {   /* every rank repeats the outer update: the same threads, the same bits */
        long th = omp_get_max_threads();
        long most = dist_allreduce_max_long(th), least = -dist_allreduce_max_long(-th);
        if (most != least) {
            dr_seterr("the %d ranks run between %ld and %ld threads: set experiment.threads (or "
                      "OMP_NUM_THREADS) so that every rank runs the same number", dist_size(), least, most);
            if (dist_rank() != 0) dist_await_root_exit();   /* every rank's failure: rank 0 says it */
            goto done;
        }
        /* the same run on every rank: the config as loaded (--set included), the options
         * that change what is computed, the inputs (-o and --log are rank 0's alone) */
        char *cj = config_to_json(cfg), opts[64];
        snprintf(opts, sizeof opts, "resume %d stop_at %ld", o->resume, o->stop_at);
        int same_config = dist_same_on_all_ranks(cj, strlen(cj)), same_options = dist_same_on_all_ranks(opts, strlen(opts));
        free(cj);
        if (!same_config || !same_options) {
            dr_seterr("the %d ranks were started with different %s: every rank must run the same "
                      "command", dist_size(), !same_config ? "configs (--config, --set)"
                      : "options (--resume, --stop-at)");
            if (dist_rank() != 0) dist_await_root_exit();
            goto done;
        }
    }
    if (open_data(cfg, &o->train, &o->val, &r->train, &r->val)) goto done;
    if (dist_size() > 1) {   /* the same data on every rank, as far as the shard indexes tell */
        uint64_t v[3] = {data_num_examples(r->train), data_num_examples(r->val), data_fingerprint(r->train)};
        if (!dist_same_on_all_ranks(v, sizeof v)) {
            dr_seterr("the %d ranks read different data (Train_A %llu, Val %llu examples on this "
                      "rank): every rank must read the same shards", dist_size(),
                      (unsigned long long)v[0], (unsigned long long)v[1]);
            if (dist_rank() != 0) dist_await_root_exit();
            goto done;
        }
    }
    int vocab = 0;
    if (model_vocab(cfg, r->train, r->val, &vocab)) goto done;
    if (meta_spec_from_config(&r->spec, cfg, vocab)) goto done;
    r->K = cfg->meta.population_K;
    r->combine = strcmp(cfg->meta.combine, "per_member_adam") == 0 ? META_COMBINE_PER_MEMBER_ADAM
                                                                    : META_COMBINE_MEAN;
    r->track_uniform = cfg->meta.track_uniform;
    r->has_grad = r->spec.mode == META_FULL || r->spec.mode == META_SHUFFLE ||
                  r->spec.mode == META_CLASSIFIER;
    r->n = lm_num_params(&r->spec.lm);
    r->n_phi = rater_num_params(&r->spec.rater);
    r->outer_h = optim_hyper_rater(cfg, cfg->meta.rounds);
    r->config_json = config_to_json(cfg);
    {
        int k_local = 0;
        for (int k = 0; k < r->K; k++) k_local += owns(k);
        if (check_meta_memory(r->be, &r->spec, r->K, k_local, r->track_uniform,
                              r->combine == META_COMBINE_PER_MEMBER_ADAM, cfg->meta.val_batches))
            goto done;
    }
    r->work = meta_work_new(r->be, &r->spec);
    stepdata_init(&r->sd, r->train, r->val, cfg->data.batch_size, r->spec.T, cfg->meta.val_batches);
    run_alloc(r);

    double seconds0 = 0;
    dr_install_cleanup_signals();   /* as in train.c: metrics_truncate writes a temporary file */
    if (o->resume) {
        TokenizerTag tag = data_tokenizer_tag(r->train);
        if (access(o->out_path, F_OK) == 0 &&
            checkpoint_check_tokenizer(o->out_path, "--resume", &tag, data_shard_path(r->train, 0)))
            goto done;
        if (state_load(r, state_path, &seconds0)) goto done;
        if (r->meta_step > cfg->meta.rounds) {   /* as dr-train refuses a step beyond --steps */
            dr_seterr("--resume: %s is after meta-step %ld, beyond the %d meta-steps of this run "
                      "(meta.rounds)", state_path, r->meta_step, cfg->meta.rounds);
            goto done;
        }
        /* a line the saving run could not write is written again, in its place */
        if (dist_rank() == 0 && o->log_path &&
            metrics_truncate(o->log_path, "meta_step", r->meta_step - (r->log_line != NULL)) != 0)
            goto done;
    } else {
        meta_rater_init(r->be, &r->spec.rater, r->phi, cfg->seed);
        r->be->vec_copy(r->phi_ema, r->phi, r->n_phi);
    }

    mt = metrics_open(dist_rank() == 0 ? o->log_path : NULL, o->resume);   /* rank 0 logs */
    if (!mt) goto done;
    if (r->log_line && metrics_raw_line(mt, r->log_line) != 0) goto done;

    char ranks[96] = "", host_note[96] = "";
    if (meta_work_host_bytes(r->work) > 0)
        snprintf(host_note, sizeof host_note, " + %.1f MB of checkpoints in host memory",
                 meta_work_host_bytes(r->work) / 1e6);
    if (dist_size() > 1)
        snprintf(ranks, sizeof ranks, " over %d ranks (member k on rank k mod %d)", dist_size(), dist_size());
    fprintf(dist_log(),
            "%s: LM %.2fM params, rater %.2fM params, %d member%s%s, T %d, checkpoint every %d, "
            "%d activation tape%s, backprop %d, mode %s, %s; Train_A %" PRIu64 " examples, Val %" PRIu64
            " examples; %.1f MB meta-step buffers on %s (%s)%s%s\n",
            dr_progname(), r->n / 1e6, r->n_phi / 1e6, r->K, r->K == 1 ? "" : "s", ranks, r->spec.T,
            r->spec.checkpoint_every, meta_work_tapes(r->work), meta_work_tapes(r->work) == 1 ? "" : "s",
            r->spec.backprop_steps, meta_mode_name(r->spec.mode),
            r->spec.inner.kind == OPTIM_ADAMW ? "adamw" : "sgd", data_num_examples(r->train),
            data_num_examples(r->val),
            (meta_work_bytes(r->work) - meta_work_host_bytes(r->work)) / 1e6, r->be->name, REAL_NAME,
            host_note, o->resume ? "; resumed" : "");
    uint64_t val_slots = (uint64_t)cfg->meta.val_batches * (uint64_t)cfg->data.batch_size;
    if (data_num_examples(r->val) < val_slots)
        fprintf(dist_log(), "%s: note: Val has %" PRIu64 " examples, fewer than the %" PRIu64
                " (meta.val_batches %d × data.batch_size %d) each L_val reads: they repeat within it\n",
                dr_progname(), data_num_examples(r->val), val_slots, cfg->meta.val_batches,
                cfg->data.batch_size);

    interrupted = 0;
    dr_install_stop_signals(on_interrupt);
    long saved_step = o->resume ? r->meta_step : -1;   /* the newest state on disk, of this run */
    Progress prog;
    progress_start(&prog, "meta-step", "steps", cfg->meta.rounds);
    if (dist_rank() != 0) {
        prog.out = dist_log();
        prog.is_tty = 0;
    }
    progress_resume(&prog, (double)r->meta_step);
    progress_show(&prog);
    const double t0 = dr_now();
    double last_save = t0;
    int stopped = 0;
    while (r->meta_step < cfg->meta.rounds) {
        if (o->stop_at > 0 && r->meta_step >= o->stop_at) {   /* a resumed state already there */
            stopped = 1;
            break;
        }
        StepResult res;
        const double t_step = dr_now();
        if (population_step(r, &res)) {   /* the members moved: only a saved state is whole */
            if (saved_step >= 0)   /* every rank failed here together: rank 0 reports it */
                dr_seterr("%s; the state after meta-step %ld is saved in %s (once the cause is "
                          "fixed, --resume continues from there)", dr_lasterr(), saved_step, state_path);
            failed_together = 1;
            goto done;
        }
        const long step_no = r->meta_step + 1;
        /* the inner LMs diverged (their losses, the same numbers on every rank), or the
         * meta-gradient did: stop with the last good rater, never log or keep garbage */
        const double lt = res.stats.l_train / r->K, lv_step = res.stats.l_val / r->K;
        const int losses_bad = !isfinite(lt) || !isfinite(lv_step) ||
                               (r->track_uniform && !isfinite(res.l_val_uniform));
        if (losses_bad ||
            (r->has_grad && !(isfinite(res.grad_norm) && r->be->vec_all_finite(r->dphi, r->n_phi)))) {
            char what[320], a[32], b[32], c[48] = "";
            dr_number(a, sizeof a, lt);
            dr_number(b, sizeof b, lv_step);
            if (r->track_uniform)
                snprintf(c, sizeof c, isnan(res.l_val_uniform) ? ", uniform l_val NaN" : ", uniform l_val %g",
                         res.l_val_uniform);
            if (losses_bad)
                snprintf(what, sizeof what, "the inner losses are not finite (l_train %s, l_val %s%s): "
                         "the inner LMs diverged (lower lm.lr, or set lm.clip)", a, b, c);
            else
                snprintf(what, sizeof what, "the meta-gradient is not finite (l_val %s)", b);
            int saved = save_raters(r, r->phi, r->phi_ema);   /* rank 0 */
            dist_bcast(&saved, sizeof saved, 0);   /* no rank exits before the rater is saved */
            char resume[700];
            if (saved_step >= 0)   /* the rater alone was saved now: the members diverged */
                snprintf(resume, sizeof resume, "; the state after meta-step %ld is in %s (--resume "
                         "with the same settings meets this again)", saved_step, state_path);
            else
                resume[0] = 0;
            if (saved == 0)
                dr_seterr("meta-step %ld: %s; the last good rater is kept in %s%s", step_no, what,
                          o->out_path, resume);
            else if (dist_rank() != 0)
                dr_seterr("meta-step %ld: %s; saving the last good rater failed on rank 0", step_no, what);
            failed_together = 1;   /* every rank met it: rank 0 reports, the others wait for it */
            goto done;
        }
        if (r->has_grad) outer_update(r);
        r->meta_step = step_no;
        const double seconds = seconds0 + dr_now() - t0;
        if (r->meta_step % cfg->meta.log_every == 0 || r->meta_step == cfg->meta.rounds) {
            int log_failed = log_step(mt, r, &res, seconds, dr_now() - t_step) != 0;   /* rank 0's */
            if (dist_size() > 1) dist_bcast(&log_failed, sizeof log_failed, 0);
            if (log_failed) {   /* a full disk, a pipe's reader gone: save, with the line */
                char err[1024], msg[2048];
                snprintf(err, sizeof err, "%s", dr_lasterr());
                const int root = dist_rank() == 0;
                if (save_all(r, state_path, seconds0 + dr_now() - t0, root ? metrics_last_line(mt) : NULL))
                    snprintf(msg, sizeof msg, "%s; saving the state after meta-step %ld failed too: %s", err,
                             r->meta_step, dr_lasterr());
                else
                    snprintf(msg, sizeof msg, "%s; the state after meta-step %ld is saved in %s with that "
                             "line (once the cause is fixed, --resume continues from there and writes the "
                             "line first)", err, r->meta_step, state_path);
                if (dist_size() > 1) dist_bcast(msg, sizeof msg, 0);   /* every rank says rank 0's words */
                dr_seterr("%s", msg);
                goto done;
            }
        }
        const double lv = res.stats.l_val / r->K;
        if (r->track_uniform)
            progress_set_extra(&prog, "l_val %.4f (uniform %.4f)", lv, res.l_val_uniform);
        else
            progress_set_extra(&prog, "l_val %.4f", lv);
        progress_update(&prog, (double)r->meta_step);
        /* a signal reaching some ranks stops all of them after the same meta-step */
        if (dist_size() > 1) interrupted = (sig_atomic_t)dist_allreduce_max_long(interrupted);
        if (interrupted || (o->stop_at > 0 && r->meta_step >= o->stop_at)) {
            stopped = r->meta_step < cfg->meta.rounds;
            break;
        }
        int save_due = (cfg->meta.save_every > 0 && r->meta_step % cfg->meta.save_every == 0) ||
                       (cfg->meta.save_minutes > 0 && dr_now() - last_save >= 60 * cfg->meta.save_minutes);
        if (dist_size() > 1) dist_bcast(&save_due, sizeof save_due, 0);   /* the save is collective */
        if (save_due && r->meta_step < cfg->meta.rounds) {   /* the last one is saved below */
            if (save_all(r, state_path, seconds0 + dr_now() - t0, NULL)) goto done;
            saved_step = r->meta_step;
            last_save = dr_now();
        }
    }
    progress_finish(&prog);
    /* (a --resume with nothing left to run leaves the files as they are, as dr-train does) */
    const int saved_now = saved_step != r->meta_step;
    if (saved_now && save_all(r, state_path, seconds0 + dr_now() - t0, NULL)) goto done;
    if (stopped) {
        fprintf(dist_log(), "%s: %s after meta-step %ld of %d; state saved to %s (--resume continues)\n",
                dr_progname(), interrupted ? "interrupted" : "stopped", r->meta_step, cfg->meta.rounds,
                state_path);
    } else if (saved_now) {   /* what the run leaves, as dr-train's last line says */
        char *ema = meta_ema_path(o->out_path);
        fprintf(dist_log(), "%s: done: %ld meta-steps; saved %s (its EMA %s, the state %s)\n",
                dr_progname(), r->meta_step, o->out_path, ema, state_path);
        free(ema);
    }
    rc = stopped && interrupted ? META_INTERRUPTED : 0;   /* --stop-at is a requested end: 0 */
done:
    rc = metrics_close(mt, rc);
    dr_stop_signals_reset();
    if (rc < 0 && failed_together && dist_rank() != 0) dist_await_root_exit();
    if (r->be) run_free(r);
    free(state_path);
    return rc;
}

/* ================================================================================
 * dr-meta grad
 * ================================================================================ */

int meta_grad_run(MetaGradOptions *o) {
    if (dist_size() > 1)
        return dr_seterr("grad computes one member's meta-gradient: run it as one process, "
                         "without mpirun");
    const Config *cfg = &o->cfg;
    int rc = -1;
    DataLoader *dt = NULL, *dv = NULL;
    real *lm_host = NULL, *phi_host = NULL, *theta = NULL, *phi = NULL, *dphi = NULL;
    MetaWork *work = NULL;
    StepData sd = { 0 };
    OptimState opt = { 0 };
    int have_sd = 0;
    dr_install_cleanup_signals();   /* Ctrl-C removes -o's temporary file */
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    const Backend *be = backend_select_from(o->device, cfg->device);
    if (!be || backend_set_precision(be, cfg->precision) != 0) return -1;
    warn_bf16_meta_gradient(cfg);
    if (dr_check_output_dir(o->out_path) != 0) return -1;

    LMConfig lc;
    RaterConfig rcfg;
    if (lm_load(o->lm_init, &lc, &lm_host)) goto done;
    if (rater_load(o->rater_init, &rcfg, &phi_host)) goto done;
    if (open_data(cfg, &o->train, &o->val, &dt, &dv)) goto done;
    TokenizerTag tag = data_tokenizer_tag(dt);
    if (checkpoint_check_tokenizer(o->lm_init, "--lm-init", &tag, data_shard_path(dt, 0)) ||
        checkpoint_check_tokenizer(o->rater_init, "--rater-init", &tag, data_shard_path(dt, 0)))
        goto done;
    uint32_t shard_vocab = data_vocab_size(dt) > data_vocab_size(dv) ? data_vocab_size(dt) : data_vocab_size(dv);
    if ((uint32_t)lc.vocab < shard_vocab || (uint32_t)rcfg.vocab < shard_vocab) {
        int lm_short = (uint32_t)lc.vocab < shard_vocab;
        dr_seterr("%s: the %s's vocabulary (%d ids) is smaller than the shards' (%u ids)",
                  lm_short ? o->lm_init : o->rater_init, lm_short ? "LM" : "rater",
                  lm_short ? lc.vocab : rcfg.vocab, shard_vocab);
        goto done;
    }
    MetaSpec spec;
    if (meta_spec_from_config(&spec, cfg, lc.vocab)) goto done;
    lm_config_run_as(&lc, &cfg->lm.shape);   /* the checkpoints decide the shapes, the config */
    lm_config_run_as(&rcfg, &cfg->rater.shape);   /* how they run (recomputation, head chunks) */
    spec.lm = lc;
    spec.rater = rcfg;
    if (spec.seq_len > lc.ctx) {
        dr_seterr("%s: the LM has %d positions, data.seq_len is %d: use the config it was trained with",
                  o->lm_init, lc.ctx, spec.seq_len);
        goto done;
    }
    if (spec.seq_len_rater > rcfg.ctx) {
        dr_seterr("%s: the rater has %d positions, data.seq_len_rater is %d: use the config it was "
                  "trained with", o->rater_init, rcfg.ctx, spec.seq_len_rater);
        goto done;
    }
    if (spec.mode == META_DETACH || spec.mode == META_CONSTANT) {
        dr_seterr("meta.mode = %s has no meta-gradient", meta_mode_name(spec.mode));
        goto done;
    }
    const size_t n = lm_num_params(&lc), n_phi = rater_num_params(&rcfg);
    theta = be->alloc(n * sizeof(real));
    phi = be->alloc(n_phi * sizeof(real));
    dphi = be->alloc(n_phi * sizeof(real));
    be->to_device(theta, lm_host, n * sizeof(real));
    be->to_device(phi, phi_host, n_phi * sizeof(real));
    optim_state_init(&opt, be, spec.inner.kind, n);
    if (check_meta_memory(be, &spec, 1, 1, 0, 0, cfg->meta.val_batches)) goto done;
    work = meta_work_new(be, &spec);
    stepdata_init(&sd, dt, dv, cfg->data.batch_size, spec.T, cfg->meta.val_batches);
    have_sd = 1;
    sd.by_range = 1;
    MetaBatches data = { .train = sd_train, .val = sd_val, .n_val = cfg->meta.val_batches, .ctx = &sd };
    MetaStats st;
    meta_stats_clear(&st);
    if (meta_member_step(work, theta, &opt, phi, &data, seed_of(cfg->seed, 0x5348, 0, 0), dphi, &st))
        goto done;

    /* the gradient under the rater's tensor names, plus the scalars */
    real *g = to_host_copy(be, dphi, n_phi);
    size_t bad = 0;
    while (bad < n_phi && isfinite(g[bad])) bad++;
    if (bad < n_phi || !isfinite(st.l_val) || !isfinite(st.objective)) {
        dr_seterr("the meta-gradient is not finite (l_val %g, objective %g%s): the inner run diverged "
                  "(lower lm.lr, or set lm.clip); %s not written", st.l_val, st.objective,
                  bad < n_phi ? ", a non-finite dJ/dphi element" : "", o->out_path);
        free(g);
        goto done;
    }
    int nt = rater_num_tensors(&rcfg);
    ParamInfo *table = xmalloc((size_t)nt * sizeof *table);
    rater_param_table(&rcfg, table);
    StWriter *w = st_writer_new();
    char *cj = config_to_json(cfg);
    st_writer_metadata(w, "format", "datarater.meta.grad");
    st_writer_metadata(w, "config", cj);
    for (int i = 0; i < nt; i++)
        st_writer_add_real(w, table[i].name, table[i].ndim, table[i].shape, g + table[i].offset);
    double l_val = st.l_val, objective = st.objective;
    st_writer_add(w, "l_val", ST_F64, 0, NULL, &l_val);
    st_writer_add(w, "objective", ST_F64, 0, NULL, &objective);
    int save_rc = st_writer_save(w, o->out_path);
    st_writer_free(w);
    free(cj);
    free(table);
    free(g);
    if (save_rc) goto done;   /* the error alone: no summary of a gradient not saved */
    char head[64] = "";
    if (lc.head_chunk > 0 && lc.head_chunk < spec.batch)
        snprintf(head, sizeof head, ", head in chunks of %d examples", lc.head_chunk);
    fprintf(stderr, "%s: grad: LM %.2fM params (blocks %s%s), rater %.2fM params, T %d, checkpoint "
            "every %d, %d activation tape%s; %.1f MB meta-step buffers on %s (%s)%s\n", dr_progname(),
            n / 1e6, lc.checkpointing ? "recomputed" : "kept", head, n_phi / 1e6, spec.T,
            spec.checkpoint_every, meta_work_tapes(work), meta_work_tapes(work) == 1 ? "" : "s",
            (meta_work_bytes(work) - meta_work_host_bytes(work)) / 1e6, be->name, REAL_NAME,
            meta_work_host_bytes(work) > 0 ? " + checkpoints in host memory" : "");
    fprintf(stderr, "%s: grad: l_val %.6f, objective %.6f, |dJ/dphi| %.6e, inner clip %.0f%% -> %s\n",
            dr_progname(), l_val, objective, sqrt(be->vec_sumsq(dphi, n_phi)), 100 * st.clip_frac,
            o->out_path);
    rc = 0;
done:
    if (work) meta_work_free(work);
    if (have_sd) stepdata_free(&sd);
    optim_state_free(&opt, be);
    if (theta) be->free(theta);
    if (phi) be->free(phi);
    if (dphi) be->free(dphi);
    free(lm_host);
    free(phi_host);
    if (dt) data_close(dt);
    if (dv) data_close(dv);
    return rc;
}
