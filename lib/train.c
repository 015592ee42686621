/* train.c — the LM training loop of dr-train, its checkpoints and resume, the curated
 * modes (re-weighting by scores, online filtering by a rater), the compute accounting,
 * and the evaluation of a checkpoint (see train.h).
 *
 * Read top to bottom: inputs → FLOPs → setup (data, model, optimizer, curation, checks)
 * → evaluation → checkpoint save/load → the step's batch and loss weights → the loop.
 * Data-parallel over MPI ranks (dist.h, docs/scale-out.md): every rank walks the same
 * Train stream (the same global batches: example numbers only) but reads and decodes only
 * its contiguous slice of each batch (data_set_part), runs the LM on that slice, the
 * gradients (each a sum of w_i/B·∇ℓ_i over the slice) are summed over ranks in a fixed
 * order and every rank applies the same update; per-example losses are gathered, so the
 * loss is summed in the single process's order. Rank 0 alone writes checkpoints and logs.
 *
 * Must never: save a model whose last loss was not finite, log a step twice after a
 * resume, resume under another curation, let two ranks hold different parameters, or let
 * anything but (config, data, seed, thread count, rank count, scores/rater) decide a
 * number it logs.
 */
#include "train.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "backend.h"
#include "check.h"
#include "checkpoint.h"
#include "data.h"
#include "dist.h"
#include "json.h"
#include "lm.h"
#include "metrics.h"
#include "optim.h"
#include "progress.h"
#include "rater.h"
#include "safetensors.h"
#include "score.h"
#include "scores.h"

/* dr_seterr("<prefix>: <the last error>"): the message is copied first, since
 * dr_lasterr() points into the buffer dr_seterr writes. */
static int seterr_prefixed(const char *fmt_prefix, const char *arg) {
    char last[1024];
    snprintf(last, sizeof last, "%s", dr_lasterr());
    char prefix[600];
    snprintf(prefix, sizeof prefix, fmt_prefix, arg);
    return dr_seterr("%s: %s", prefix, last);
}

/* ================================================================================
 * Inputs: positional (manifest splits) and --train / --val
 * ================================================================================ */

/* The split training takes from a manifest when none is named: Train = its train_b
 * lines, else train_a; Val = its val lines. */
static const char *default_split(const ShardList *l, int val) {
    return val ? "val" : shardlist_has_split(l, "train_b") ? "train_b" : "train_a";
}

/* "m.tsv: no shards of split 'S' for Train (its splits: …)" for a list without the split
 * asked for (a typo, --train-split), naming the manifests it was read from; positional:
 * the list of the positional inputs (then Val may come from --val instead) */
static int no_split(const ShardList *l, int val, const char *split, int positional) {
    return shardlist_no_split(l, split, val ? " for Val" : " for Train", val ? "--val-split" : "--train-split",
                              val && positional ? "; give Val with --val" : "");
}

int train_resolve_inputs(TrainOptions *o, int n_inputs, char **inputs,
                         int n_train, char **train_inputs, int n_val, char **val_inputs,
                         const char *train_split, const char *val_split) {
    ShardList all = {0};
    const char *ts = NULL, *vs = NULL;
    int rc = 0;
    if (n_inputs > 0) {
        if (shardlist_add_inputs(&all, n_inputs, inputs) != 0) { shardlist_free(&all); return -1; }
        if (!shardlist_has_split(&all, NULL) && !train_split && !val_split) {
            shardlist_copy_split(&o->train, &all, NULL);   /* plain shards: all of them are Train */
        } else {
            ts = train_split ? train_split : default_split(&all, 0);
            vs = val_split ? val_split : default_split(&all, 1);
            shardlist_copy_split(&o->train, &all, ts);
            shardlist_copy_split(&o->val, &all, vs);
        }
    }
    for (int which = 0; which < 2 && rc == 0; which++) {
        int n = which ? n_val : n_train;
        if (n == 0) continue;
        ShardList l = {0};
        const char *sp = which ? val_split : train_split;
        ShardList *dst = which ? &o->val : &o->train;
        if (shardlist_add_inputs(&l, n, which ? val_inputs : train_inputs) != 0) rc = -1;
        else {
            /* a manifest given as --train/--val: the lines a positional one would give */
            if (!sp && shardlist_has_split(&l, NULL)) sp = default_split(&l, which);
            shardlist_copy_split(dst, &l, sp);
            if (dst->n == 0) rc = no_split(&l, which, sp ? sp : "(any)", 0);
        }
        shardlist_free(&l);
    }
    /* the positional inputs without the split asked for, and nothing from --train/--val */
    if (rc == 0 && ts && o->train.n == 0) rc = no_split(&all, 0, ts, 1);
    if (rc == 0 && vs && o->val.n == 0) rc = no_split(&all, 1, vs, 1);
    shardlist_free(&all);
    return rc;
}

void train_options_free(TrainOptions *o) {
    shardlist_free(&o->train);
    shardlist_free(&o->val);
}

/* ================================================================================
 * Compute accounting (train.h): the per-position formulas
 * ================================================================================ */

double train_flops_lm(const LMConfig *lm, int B, int T) {
    double N = (double)lm_num_params(lm);
    double per_pos = 6.0 * N + 6.0 * lm->n_layer * (double)lm->d_model * T;
    return per_pos * (double)B * (double)T;
}

double train_flops_lm_forward(const LMConfig *lm, int B, int T) {
    return train_flops_lm(lm, B, T) / 3.0;
}

double train_flops_rater(const RaterConfig *rc, int n, int T) {
    double d = rc->d_model;
    double head = d * d + d + d + 1;                       /* fc [d,d] + b, out [d,1] + b */
    double embed = ((double)rc->vocab + (double)rc->ctx) * d;   /* wte, wpe: lookups */
    double trunk = (double)rater_num_params(rc) - embed - head;
    double per_pos = 2.0 * trunk + 2.0 * rc->n_layer * d * T;
    return per_pos * (double)n * (double)T + 2.0 * (d * d + d) * (double)n;
}

/* ================================================================================
 * Ctrl-C: the first SIGINT/SIGTERM/SIGHUP asks for a checkpoint at the end of the step;
 * a second one removes temporary files and ends the process (check.h's handler).
 * ================================================================================ */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) {
    interrupted = sig;
    dr_install_cleanup_signals_after_stop();   /* async-signal-safe */
    dr_say_stopping("step");
}

/* ================================================================================
 * The trainer's state
 * ================================================================================ */

/* Everything besides tensors that a bit-exact resume needs. */
typedef struct {
    long step;              /* updates done */
    long tokens;            /* training target tokens so far */
    DataPosition pos;       /* of the Train stream: the next batch */
    double acc_sum;         /* Σ batch losses since the last log line */
    long acc_n;
    double seconds;         /* training wall time before this process */
    double flops_lm;        /* LM training compute so far (train_flops_lm) */
    double flops_rater;     /* online scoring compute so far (train_flops_rater) */
    /* curation statistics since the last log line: online: [0] Σ z of the trained
     * examples, [1] Σ z of all candidates; weights: [0] Σ w */
    double cur_sum[2];
    long cur_n[2];
} Counters;

struct Candidate { real z; int pos; };
   /* online: a candidate's logit and stream slot */

enum curation { CURATE_NONE = 0, CURATE_WEIGHTS = 1, CURATE_ONLINE = 2 };
static const char *const curation_names[] = {"none", "weights", "online"};

typedef struct {
    TrainOptions *o;
    const Config *cfg;
    const Backend *be;
    LMConfig lmc;
    size_t P;
    int n_tensors;
    ParamInfo *table;
    real *params, *grads;           /* backend */
    OptimState opt;
    OptimHyper hyper;
    long total_steps;
    LMActs *acts;
    DataLoader *train, *val;
    DataBatch *batch, *val_batch;
    real *losses, *dlosses;         /* host [B] */
    real *h_params, *h_m, *h_v;     /* host copies for saving */
    real *h_grads;                  /* host staging of the gradient all-reduce (not CPU) */
    Counters c;
    /* the last state whose loss and gradient were finite */
    real *good_params;
    OptimState good_opt;
    Counters good_c;
    int failed_together;    /* an error every rank stopped on (agree): rank 0 reports it */
    int have_good;
    char *config_json;

    /* curation (train.h) */
    int curation;                   /* enum curation */
    uint64_t curation_key;          /* xxh64 of the aligned scores / of the rater */
    double *scores;                 /* weights: z of every Train example (shard order) */
    WeightNormConfig wnorm;         /* weights: normalization of the config's rater section */
    real *z, *w;                    /* host [C]: logits, weights of the batch */
    struct Candidate *rank;         /* online: [C] the candidates by score */
    RaterConfig rc;                 /* online: the rater */
    real *phi;                      /* online: backend */
    RaterActs **racts;              /* online: one per scoring thread */
    int n_racts;
    int sub;                        /* online: candidates per rater forward */
    int n_cand;                     /* online: C = ceil(B / keep); else B */
    DataBatch *cand;                /* online: the candidates of the step */
    uint64_t *pick;                 /* online: [B] example numbers of the kept */
} Trainer;


static void free_trainer(Trainer *t) {
    const Backend *be = t->be;
    if (be) {
        if (t->acts) lm_acts_free(be, t->acts);
        if (t->params) be->free(t->params);
        if (t->grads) be->free(t->grads);
        if (t->good_params) be->free(t->good_params);
        optim_state_free(&t->opt, be);
        optim_state_free(&t->good_opt, be);
        for (int k = 0; k < t->n_racts; k++) rater_acts_free(be, t->racts[k]);
        free(t->racts);
        if (t->phi) be->free(t->phi);
    }
    data_batch_free(t->cand);
    free(t->scores); free(t->z); free(t->w); free(t->pick); free(t->rank);
    data_batch_free(t->batch);
    data_batch_free(t->val_batch);
    data_close(t->train);
    data_close(t->val);
    free(t->losses); free(t->dlosses);
    free(t->h_params); free(t->h_m); free(t->h_v); free(t->h_grads);
    free(t->table);
    free(t->config_json);
}

/* ================================================================================
 * Setup: data, checks that need the data, model buffers
 * ================================================================================ */

static int open_data(Trainer *t, int need_train) {
    const Config *cfg = t->cfg;
    DataOptions dopt;
    data_options_from_config(&dopt, cfg);
    dopt.seq_len_rater = 0;   /* the LM needs no rater view */
    if (need_train) {
        if (t->o->train.n == 0)
            return dr_seterr("no Train shards (a manifest's train_b/train_a split, --train-split, or --train)");
        DataOptions topt = dopt;
        if (t->curation == CURATE_ONLINE) {   /* the stream yields the candidates */
            topt.batch_size = t->n_cand;
            topt.seq_len_rater = t->rc.ctx;
        }
        t->train = data_open(&t->o->train, &topt);
        if (!t->train) return seterr_prefixed("Train data", NULL);
    }
    if (t->o->val.n == 0)
        return dr_seterr("no Val shards (a manifest's val split, --val-split, or --val)");
    DataOptions vopt = dopt;
    vopt.prefetch = 0;
    vopt.shuffle = 0;
    t->val = data_open(&t->o->val, &vopt);
    if (!t->val) return seterr_prefixed("Val data", NULL);
    if (t->train && data_fingerprint(t->train) != data_fingerprint(t->val))
        return dr_seterr("Train (%s) and Val (%s) shards were made with different tokenizers",
                         data_shard_path(t->train, 0), data_shard_path(t->val, 0));
    uint64_t first;
    uint64_t shared = t->train ? data_shared_documents(t->val, t->train, &first) : 0;
    if (shared)
        return dr_seterr("Val and Train share %" PRIu64 " document%s (e.g. document id %016" PRIx64
                         "): L_val must be measured on held-out documents; split them with "
                         "dr-split", shared, shared == 1 ? "" : "s", first);
    return 0;
}

/* The model's vocabulary and context must hold the data. ckpt: the checkpoint the LM
 * came from (--eval-only), named in the message; NULL: the config's LM. */
static int check_model_vs_data(const Trainer *t, const char *ckpt) {
    uint32_t vocab = t->train ? data_vocab_size(t->train) : 0;
    if (data_vocab_size(t->val) > vocab) vocab = data_vocab_size(t->val);
    if (ckpt && (uint32_t)t->lmc.vocab < vocab)
        return dr_seterr("%s: the LM's vocabulary (%d ids) is smaller than the shards' (%u ids)",
                         ckpt, t->lmc.vocab, vocab);
    if ((uint32_t)t->lmc.vocab < vocab)
        return dr_seterr("lm.vocab_size = %d is smaller than the shards' vocabulary (%u ids): "
                         "set it to at least %u, or 0 to take it from the shards",
                         t->lmc.vocab, vocab, vocab);
    if (ckpt && t->lmc.ctx < t->cfg->data.seq_len)
        return dr_seterr("%s: the LM has %d positions, data.seq_len is %d: evaluate with the "
                         "config it was trained with", ckpt, t->lmc.ctx, t->cfg->data.seq_len);
    if (t->lmc.ctx < t->cfg->data.seq_len)
        return dr_seterr("data.seq_len = %d exceeds the LM's context (lm.ctx = %d)",
                         t->cfg->data.seq_len, t->lmc.ctx);
    return 0;
}

static void alloc_model(Trainer *t, int with_optimizer) {
    const Backend *be = t->be;
    t->P = lm_num_params(&t->lmc);
    t->n_tensors = lm_num_tensors(&t->lmc);
    t->table = xcalloc((size_t)t->n_tensors, sizeof *t->table);
    lm_param_table(&t->lmc, t->table);
    t->params = be->alloc(t->P * sizeof(real));
    int B = t->cfg->data.batch_size;
    /* a rank runs the LM on its slice of each batch: at most ceil(B / ranks) examples */
    int B_rank = (B + dist_size() - 1) / dist_size();
    if (t->lmc.checkpointing < 0) {   /* lm.checkpointing: auto */
        /* besides the activations: the gradient, the last good θ and two optimizer states
         * (AdamW's m and v each) */
        const double other = (with_optimizer ? 6.0 : 0.0) * (double)t->P * sizeof(real);
        double need, avail;
        lm_resolve_checkpointing(be, &t->lmc, B_rank, t->cfg->data.seq_len, other, &need, &avail);
        fprintf(dist_log(), "%s: lm.checkpointing auto: %s (without recomputation %.1f GiB, %.1f GiB "
                "available on %s)\n", dr_progname(), t->lmc.checkpointing ? "on" : "off",
                need / 1073741824.0, avail / 1073741824.0, be->name);
    }
    t->acts = lm_acts_new(be, &t->lmc, B_rank, t->cfg->data.seq_len, 0);
    t->losses = xcalloc((size_t)B, sizeof *t->losses);
    t->dlosses = xcalloc((size_t)B, sizeof *t->dlosses);
    t->val_batch = data_batch_new(t->val);
    t->h_params = xmalloc(t->P * sizeof(real));
    if (!with_optimizer) return;
    t->grads = be->alloc(t->P * sizeof(real));
    t->good_params = be->alloc(t->P * sizeof(real));
    t->hyper = optim_hyper_lm(t->cfg, t->total_steps);
    optim_state_init(&t->opt, be, t->hyper.kind, t->P);
    optim_state_init(&t->good_opt, be, t->hyper.kind, t->P);
    t->h_m = xmalloc(t->P * sizeof(real));
    t->h_v = xmalloc(t->P * sizeof(real));
    if (dist_size() > 1 && be != &backend_cpu) t->h_grads = xmalloc(t->P * sizeof(real));
    t->batch = data_batch_new(t->train);
    if (t->curation == CURATE_ONLINE) t->cand = data_batch_new(t->train);
}

/* Steps of the run: --steps, --tokens, train.steps, train.tokens (in that order); a
 * token budget becomes steps at the Train split's mean target tokens per batch; with
 * none of them, one pass over the Train examples (online: over the candidates, C per
 * step). */
static long total_steps_of(const TrainOptions *o, const Config *cfg, const DataLoader *train,
                           int per_step) {
    if (o->steps > 0) return o->steps;
    long tokens = o->tokens > 0 ? o->tokens : cfg->train.steps > 0 ? 0 : cfg->train.tokens;
    if (tokens <= 0 && cfg->train.steps > 0) return cfg->train.steps;
    if (tokens <= 0) {
        uint64_t C = (uint64_t)per_step;
        return (long)((data_num_examples(train) + C - 1) / C);
    }
    double per_batch = (double)cfg->data.batch_size * (double)data_num_target_tokens(train) /
                       (double)data_num_examples(train);
    long steps = (long)ceil((double)tokens / per_batch);
    return steps > 0 ? steps : 1;
}

/* ================================================================================
 * Curation: the scores of --weights, the rater of --rater/--online-keep
 * ================================================================================ */

/* Before the data is opened: the mode, and for online filtering the rater (its positions
 * decide the candidates' rater view; *phi_host receives its parameters) and C. */
static int curation_begin(Trainer *t, real **phi_host) {
    TrainOptions *o = t->o;
    int B = t->cfg->data.batch_size;
    t->n_cand = B;
    if (o->weights_path && o->rater_path)
        return dr_seterr("--weights and --rater do not go together: re-weight by scores or "
                         "filter online, not both");
    if (!o->rater_path && o->online_keep != 0)
        return dr_seterr("--online-keep needs --rater R.safetensors");
    if (o->weights_path) { t->curation = CURATE_WEIGHTS; return 0; }
    if (!o->rater_path) { t->curation = CURATE_NONE; return 0; }
    double keep = o->online_keep != 0 ? o->online_keep : t->cfg->deploy.keep;
    if (!(keep > 0 && keep <= 1))
        return dr_seterr("--online-keep: keep fraction %g is outside (0, 1]", keep);
    o->online_keep = keep;
    double c = ceil((double)B / keep - 1e-9);
    if (c > (double)(1 << 20))
        return dr_seterr("--online-keep %g: %.4g candidates per batch of %d is too many (at most "
                         "2^20 = %d)", keep, c, B, 1 << 20);
    t->n_cand = (int)c;
    if (rater_load(o->rater_path, &t->rc, phi_host) != 0) return seterr_prefixed("--rater", NULL);
    t->curation = CURATE_ONLINE;
    return 0;
}

/* After the data is opened: the scores aligned to the Train examples, or the rater on
 * the backend with its activations for C candidates. */
static int curation_setup(Trainer *t, const real *phi_host) {
    const Config *cfg = t->cfg;
    if (t->curation == CURATE_WEIGHTS) {
        uint64_t n = data_num_examples(t->train);
        t->scores = xmalloc(n * sizeof *t->scores);
        if (scores_read_aligned(t->o->weights_path, t->train, t->scores, NULL) != 0)
            return seterr_prefixed("--weights", NULL);
        t->curation_key = XXH64(t->scores, n * sizeof *t->scores, 0);
        t->wnorm.kind = strcmp(cfg->rater.normalize, "softmax") == 0 ? WEIGHT_NORM_SOFTMAX
                                                                     : WEIGHT_NORM_SIGMOID;
        t->wnorm.tau = cfg->rater.tau;
        t->wnorm.w_min = cfg->rater.clamp_min;
        t->wnorm.w_max = cfg->rater.clamp_max;
        t->wnorm.mean_normalize = cfg->rater.mean_normalize;
        t->z = xcalloc((size_t)cfg->data.batch_size, sizeof *t->z);
        t->w = xcalloc((size_t)cfg->data.batch_size, sizeof *t->w);
    } else if (t->curation == CURATE_ONLINE) {
        if (data_vocab_size(t->train) > (uint32_t)t->rc.vocab)
            return dr_seterr("--rater %s: the Train shards' vocabulary (%u ids) is larger than "
                             "the rater's (%d)", t->o->rater_path, data_vocab_size(t->train),
                             t->rc.vocab);
        size_t n = rater_num_params(&t->rc);
        t->phi = t->be->alloc(n * sizeof(real));
        t->be->to_device(t->phi, phi_host, n * sizeof(real));
        t->curation_key = XXH64(phi_host, n * sizeof(real), 0);
        /* CPU: sub-batches of TRAIN_ONLINE_SUB candidates, one per thread (score_rater_split) */
        int cpu = t->be == &backend_cpu;
        t->sub = cpu && t->n_cand > TRAIN_ONLINE_SUB ? TRAIN_ONLINE_SUB : t->n_cand;
        int n_sub = (t->n_cand + t->sub - 1) / t->sub;
        t->n_racts = cpu ? omp_get_max_threads() : 1;
        if (t->n_racts > n_sub) t->n_racts = n_sub;
        t->racts = xcalloc((size_t)t->n_racts, sizeof *t->racts);
        for (int k = 0; k < t->n_racts; k++)
            t->racts[k] = rater_acts_new(t->be, &t->rc, t->sub, t->rc.ctx);
        t->z = xcalloc((size_t)t->n_cand, sizeof *t->z);
        t->pick = xcalloc((size_t)cfg->data.batch_size, sizeof *t->pick);
        t->rank = xcalloc((size_t)t->n_cand, sizeof *t->rank);
    }
    return 0;
}

/* ================================================================================
 * Data parallelism (dist.h): the rank's slice of a batch, the exact gather of the
 * per-example losses, the gradient all-reduce, one state on every rank
 * ================================================================================ */

/* This rank's slice [lo, hi) of a batch of n examples, in whole units of `unit`
 * (dist_slice): the rows it reads (data_*_part) and runs the LM or the rater on. */
static void rank_part(int n, int unit, int *lo, int *hi) {
    long a, b;
    dist_slice(n, unit, dist_rank(), &a, &b);
    *lo = (int)a;
    *hi = (int)b;
}

/* Forward of this rank's slice [lo, hi) of batch b (dist_slice), its losses written to
 * losses[lo..hi); then every rank holds all B losses, bit for bit as computed. With one
 * rank: lm_forward on the whole batch. */
static void forward_slice(Trainer *t, const real *params, const DataBatch *b, real *losses) {
    long lo, hi;
    dist_slice(b->B, 1, dist_rank(), &lo, &hi);
    if (hi > lo)
        lm_forward(t->be, &t->lmc, params, t->acts, b->inputs + lo * b->T, b->targets + lo * b->T,
                   b->n_valid + lo, (int)(hi - lo), b->T, losses + lo);
    dist_allgather(losses, sizeof *losses, b->B, 1);
}

/* Forward and backward of this rank's slice [lo, hi) of batch b in one pass
 * (lm_forward_backward): losses[lo..hi) and grads += Σ_{i in slice} dlosses_i ∇ℓ_i
 * (dlosses = w_i / B with the GLOBAL B). Then every rank holds all B losses, and the
 * gradient summed over ranks in rank order (dist_allreduce_sum_real): the same bits of the
 * global gradient on every rank. */
static void step_slice(Trainer *t, const DataBatch *b, real *losses) {
    long lo, hi;
    dist_slice(b->B, 1, dist_rank(), &lo, &hi);
    if (hi > lo)
        lm_forward_backward(t->be, &t->lmc, t->params, t->acts, b->inputs + lo * b->T,
                            b->targets + lo * b->T, b->n_valid + lo, (int)(hi - lo), b->T,
                            t->dlosses + lo, losses + lo, t->grads);
    dist_allgather(losses, sizeof *losses, b->B, 1);
    if (dist_size() == 1) return;
    if (t->be == &backend_cpu) {
        dist_allreduce_sum_real(t->grads, t->P);
    } else {
        t->be->to_host(t->h_grads, t->grads, t->P * sizeof(real));
        dist_allreduce_sum_real(t->h_grads, t->P);
        t->be->to_device(t->grads, t->h_grads, t->P * sizeof(real));
    }
}

/* Every rank gets rank 0's n reals of backend buffer x (staged through `host`). */
static void bcast_backend(const Backend *be, real *x, real *host, size_t n) {
    if (be == &backend_cpu) {
        dist_bcast(x, n * sizeof(real), 0);
        return;
    }
    if (dist_rank() == 0) be->to_host(host, x, n * sizeof(real));
    dist_bcast(host, n * sizeof(real), 0);
    if (dist_rank() != 0) be->to_device(x, host, n * sizeof(real));
}

/* After init or --resume (done by rank 0 alone: outputs may be on its disk only): every
 * rank takes rank 0's parameters, optimizer state, counters and Train stream position. */
static int share_state(Trainer *t) {
    if (dist_size() == 1) return 0;
    bcast_backend(t->be, t->params, t->h_params, t->P);
    bcast_backend(t->be, t->opt.m, t->h_m, t->P);
    if (t->opt.v) bcast_backend(t->be, t->opt.v, t->h_v, t->P);
    dist_bcast(&t->opt.step, sizeof t->opt.step, 0);
    dist_bcast(&t->c, sizeof t->c, 0);
    if (dist_rank() != 0 && data_set_position(t->train, &t->c.pos) != 0)
        return seterr_prefixed("--resume", NULL);
    return 0;
}

/* Ranks must agree on the thread count: the update after the all-reduce (clip norm,
 * optimizer) runs on every rank and must give every rank the same bits. */
static int check_ranks_agree(const TrainOptions *o) {
    if (dist_size() == 1) return 0;
    long th = omp_get_max_threads();
    long most = dist_allreduce_max_long(th), least = -dist_allreduce_max_long(-th);
    if (most != least)
        return dr_seterr("the %d ranks run between %ld and %ld threads: set experiment.threads "
                         "(or OMP_NUM_THREADS) so that every rank runs the same number",
                         dist_size(), least, most);
    /* the same run on every rank: the config as loaded (--set included), the options that
     * change what is computed, the inputs (-o, --log and --init are rank 0's alone) */
    char *cj = config_to_json(&o->cfg);
    int same = dist_same_on_all_ranks(cj, strlen(cj));
    free(cj);
    if (!same)
        return dr_seterr("the %d ranks were started with different configs (--config, --set): "
                         "every rank must run the same command", dist_size());
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL, "open_memstream failed");
    fprintf(f, "resume %d steps %ld tokens %ld stop_at %ld keep %a weights %s rater %s", o->resume,
            o->steps, o->tokens, o->stop_at, o->online_keep, o->weights_path ? o->weights_path : "-",
            o->rater_path ? o->rater_path : "-");
    fclose(f);
    same = dist_same_on_all_ranks(buf, len);
    free(buf);
    if (!same)
        return dr_seterr("the %d ranks were started with different options (--steps, --tokens, "
                         "--stop-at, --resume, --weights, --rater, --online-keep): every rank "
                         "must run the same command", dist_size());
    return 0;
}

/* The same data on every rank, as far as the shard indexes tell: the examples of Train and
 * Val and the tokenizer (a node's copy may sit at another path; its contents are read
 * later, and a damaged block there is an agreed read error). */
static int check_ranks_same_data(const Trainer *t) {
    if (dist_size() == 1) return 0;
    uint64_t v[3] = {data_num_examples(t->train), data_num_examples(t->val), data_fingerprint(t->train)};
    if (dist_same_on_all_ranks(v, sizeof v)) return 0;
    return dr_seterr("the %d ranks read different data (Train %llu, Val %llu examples on this "
                     "rank): every rank must read the same shards", dist_size(),
                     (unsigned long long)v[0], (unsigned long long)v[1]);
}

/* ================================================================================
 * Evaluation: L_val = mean over Val examples of the per-example loss
 * ================================================================================ */

typedef struct { double l_val; long examples, tokens; } EvalResult;

/* The Val split cut in nb batches of B in shard order (batch k = examples [kB, kB + B),
 * the last one short). train.eval_batches = E > 0 (and E < nb) evaluates E of them spread
 * evenly over the whole split, batch floor(j·nb/E) for j = 0 … E−1 (the first batch, then
 * one every nb/E): Val shards are in corpus order, often sorted by source, so the first E
 * batches would measure one part of Val only. The same batches at every evaluation. */
/* A read or log error on one rank is every rank's: they stop at the same point, rank 0
 * saves and reports it (dist_agree_failure). One process: rc. */
static int agree(Trainer *t, int rc) {
    rc = dist_agree_failure(rc);
    if (rc != 0) t->failed_together = 1;
    return rc;
}

/* label: on rank 0 with a terminal, a bar over the Val batches under that label (the
 * step-0 evaluation: half a minute at GPT-2 scale before anything else is shown), cleared
 * when done; NULL: none. */
static int evaluate_shown(Trainer *t, const real *params, EvalResult *r, const char *label) {
    int B = t->cfg->data.batch_size;
    uint64_t N = data_num_examples(t->val);
    uint64_t nb = (N + (uint64_t)B - 1) / (uint64_t)B, E = nb;
    if (t->cfg->train.eval_batches > 0 && nb > (uint64_t)t->cfg->train.eval_batches)
        E = (uint64_t)t->cfg->train.eval_batches;
    double sum = 0;
    memset(r, 0, sizeof *r);
    Progress bar;
    progress_start(&bar, label ? label : "", "batches", (double)E);
    const int shown = label && dist_rank() == 0 && bar.is_tty;   /* no plain lines: a bar only */
    if (shown) progress_show(&bar);
    for (uint64_t j = 0; j < E; j++) {
        uint64_t k = j * nb / E;   /* E = nb: k = j, the whole split */
        uint64_t start = k * (uint64_t)B;
        int n = N - start < (uint64_t)B ? (int)(N - start) : B, lo, hi;
        DataBatch *vb = t->val_batch;
        rank_part(n, 1, &lo, &hi);   /* ranks split the batch: each reads its slice */
        if (agree(t, data_range_part(t->val, start, n, lo, hi, vb)) != 0) {
            if (shown) progress_abort(&bar);
            return -1;
        }
        forward_slice(t, params, vb, t->losses);
        for (int i = 0; i < vb->B; i++) sum += (double)t->losses[i];
        r->examples += vb->B;
        r->tokens += vb->n_tokens;
        if (shown) progress_update(&bar, (double)(j + 1));
    }
    if (shown) progress_abort(&bar);   /* the line that reports the result replaces the bar */
    r->l_val = sum / (double)r->examples;
    return 0;
}

static int evaluate(Trainer *t, const real *params, EvalResult *r) { return evaluate_shown(t, params, r, NULL); }

/* ================================================================================
 * Checkpoints: <out> (the LM) + <out>.state (moments + counters)
 * ================================================================================ */

static char *state_path_of(const char *out) {
    size_t n = strlen(out) + 8;
    char *p = xmalloc(n);
    snprintf(p, n, "%s.state", out);
    return p;
}

/* <out>.state.prev: the state of the model on disk while a save is under way. A save moves
 * the old .state aside, writes the new .state, then the new model (each under a temporary
 * name, renamed when complete), then removes the old one: a process killed at any moment
 * (SIGKILL cannot be held off) leaves either a matching model + .state, or the old model
 * with its old state here, which --resume then takes (load_checkpoint). */
static char *prev_state_path_of(const char *out) {
    size_t n = strlen(out) + 16;
    char *p = xmalloc(n);
    snprintf(p, n, "%s.state.prev", out);
    return p;
}

/* Rank 0 writes; every rank holds the same state, so the other ranks have nothing to do. */
static int save_checkpoint(Trainer *t, const real *params, const OptimState *opt,
                           const Counters *c) {
    if (dist_rank() != 0) return 0;
    const Backend *be = t->be;
    const char *out = t->o->out_path;
    be->to_host(t->h_params, params, t->P * sizeof(real));
    be->to_host(t->h_m, opt->m, t->P * sizeof(real));
    if (opt->v) be->to_host(t->h_v, opt->v, t->P * sizeof(real));

    double seconds = c->seconds;
    char state[2048];
    snprintf(state, sizeof state,
             "{\"step\":%ld,\"total_steps\":%ld,\"tokens\":%ld,"
             "\"data_epoch\":\"%" PRIu64 "\",\"data_cursor\":\"%" PRIu64 "\","
             "\"data_seed\":\"%" PRIu64 "\",\"data_examples\":\"%" PRIu64 "\","
             "\"acc_sum\":\"%a\",\"acc_n\":%ld,\"seconds\":%.3f,"
             "\"flops_lm\":\"%a\",\"flops_rater\":\"%a\","
             "\"cur_sum0\":\"%a\",\"cur_sum1\":\"%a\",\"cur_n0\":%ld,\"cur_n1\":%ld,"
             "\"curation\":\"%s\",\"online_keep\":\"%a\",\"curation_key\":\"%016" PRIx64 "\"}",
             c->step, t->total_steps, c->tokens, c->pos.epoch, c->pos.cursor, c->pos.seed,
             c->pos.n_examples, c->acc_sum, c->acc_n, seconds, c->flops_lm, c->flops_rater,
             c->cur_sum[0], c->cur_sum[1], c->cur_n[0], c->cur_n[1],
             curation_names[t->curation], t->curation == CURATE_ONLINE ? t->o->online_keep : 0.0,
             t->curation_key);
    size_t n = strlen(t->config_json) + 128;
    char *meta = xmalloc(n);
    snprintf(meta, n, "{\"step\":%ld,\"tokens\":%ld,\"config\":%s}", c->step, c->tokens,
             t->config_json);
    char *sp = state_path_of(out), *prev = prev_state_path_of(out);
    TokenizerTag tag = data_tokenizer_tag(t->train);
    dr_signals_hold();   /* the model and its .state are one checkpoint: never one without the other */
    int rc = 0;
    if (rename(sp, prev) != 0 && errno != ENOENT)   /* the old pair stays whole: see prev_state_path_of */
        rc = dr_seterr("%s: cannot move it to %s: %s", sp, prev, strerror(errno));
    if (rc == 0)
        rc = optim_state_save(sp, t->table, t->n_tensors, opt->kind, t->h_m,
                              opt->v ? t->h_v : NULL, opt->step, state);
    if (rc == 0) rc = lm_save(out, &t->lmc, t->h_params, meta, &tag);
    if (rc == 0) unlink(prev);
    dr_signals_release();
    free(sp);
    free(prev);
    free(meta);
    return rc;
}

/* ---- the counters of a .state, read strictly -------------------------------------------
 * save_checkpoint alone writes them: counts as JSON whole numbers (%ld), the Train stream
 * position as strings of decimal digits (PRIu64), sums as strings of C99 hex floats (%a),
 * the optimizer's step as decimal digits in __metadata__. Anything else (a sign, a
 * fraction, junk after the digits, an empty string, a count past 2^53, the most a JSON
 * number holds exactly, a position past 2^64 - 1, NaN or an infinity, a step past the
 * run's total, counters that contradict each other) is a damaged or edited file: refused
 * with the state file and the field named, before any work and before anything is written
 * (a resumed run must go on exactly as the interrupted one would have). */

#define STATE_COUNT_MAX 9007199254740992.0   /* 2^53 */

/* "--resume: SP: missing or malformed training counters in its metadata: WHAT" */
static int bad_counters(const char *sp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad_counters(const char *sp, const char *fmt, ...) {
    char what[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return dr_seterr("--resume: %s: missing or malformed training counters in its metadata: %s",
                     sp, what);
}

/* A value as a message shows it, on one line: "2junk" (control bytes as '?', at most 40
 * bytes), -3, 2.5, 1e+20, null, true, an array, an object. */
static const char *shown(const JsonValue *v, char *buf, size_t n) {
    switch (v->type) {
    case JSON_NUMBER: snprintf(buf, n, "%.16g", v->number); break;
    case JSON_STRING: {
        size_t k = 0, i = 0;
        buf[k++] = '"';
        for (; i < v->len && i < 40 && k + 6 < n; i++) {
            unsigned char ch = (unsigned char)v->str[i];
            buf[k++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
        }
        if (i < v->len) { memcpy(buf + k, "...", 3); k += 3; }
        buf[k++] = '"';
        buf[k] = 0;
        break;
    }
    default: snprintf(buf, n, "%s", json_type_name(v->type)); break;
    }
    return buf;
}

/* s: decimal digits only (no sign, no space, not empty, nothing after them), at most max. */
static int parse_digits(const char *s, size_t len, uint64_t max, uint64_t *out) {
    if (len == 0 || strlen(s) != len) return -1;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno == ERANGE || *end || x > max) return -1;
    *out = x;
    return 0;
}

/* The state's counter KEY: a JSON whole number 0 … 2^53. 0: *out set; 1: absent, and
 * `optional` says it may be (*out untouched); -1: refused (dr_seterr). */
static int state_count(const JsonValue *root, const char *sp, const char *key, int optional,
                       long *out) {
    const JsonValue *v = json_get(root, key);
    char s[64];
    if (!v) return optional ? 1 : bad_counters(sp, "\"%s\" is missing", key);
    if (v->type != JSON_NUMBER || !(v->number >= 0 && v->number <= STATE_COUNT_MAX) ||
        v->number != floor(v->number))
        return bad_counters(sp, "\"%s\" is %s, not a count (a whole number from 0 to 2^53)", key,
                            shown(v, s, sizeof s));
    *out = (long)v->number;
    return 0;
}

/* KEY: a Train stream position, a string of decimal digits 0 … 2^64 - 1. */
static int state_u64(const JsonValue *root, const char *sp, const char *key, uint64_t *out) {
    const JsonValue *v = json_get(root, key);
    char s[64];
    if (!v) return bad_counters(sp, "\"%s\" is missing", key);
    if (v->type != JSON_STRING || parse_digits(v->str, v->len, UINT64_MAX, out) != 0)
        return bad_counters(sp, "\"%s\" is %s, not a count (a string of decimal digits, at most "
                            "2^64 - 1)", key, shown(v, s, sizeof s));
    return 0;
}

/* KEY: a sum, a string of a finite C99 hex float ("%a": 0x1.8p+3, -0x0p+0); nonneg: ≥ 0.
 * Returns as state_count. */
static int state_hex(const JsonValue *root, const char *sp, const char *key, int optional,
                     int nonneg, double *out) {
    const JsonValue *v = json_get(root, key);
    char s[64];
    if (!v) return optional ? 1 : bad_counters(sp, "\"%s\" is missing", key);
    int ok = v->type == JSON_STRING && strlen(v->str) == v->len;
    if (ok) {
        const char *h = v->str + (v->str[0] == '-');
        ok = h[0] == '0' && (h[1] == 'x' || h[1] == 'X');
    }
    double d = 0;
    if (ok) {
        char *end;
        d = strtod(v->str, &end);
        ok = *end == 0 && isfinite(d) && !(nonneg && d < 0);
    }
    if (!ok)
        return bad_counters(sp, "\"%s\" is %s, not a finite%s number (a C99 hex float)", key,
                            shown(v, s, sizeof s), nonneg ? " non-negative" : "");
    *out = d;
    return 0;
}

/* The counters of a state's "datarater" metadata into *c, its run's total steps into
 * *total: every field well-formed and in range, and the fields consistent. */
static int state_counters(const JsonValue *root, const char *sp, Counters *c, long *total) {
    memset(c, 0, sizeof *c);
    if (state_count(root, sp, "step", 0, &c->step) ||
        state_count(root, sp, "total_steps", 0, total) ||
        state_count(root, sp, "tokens", 0, &c->tokens) ||
        state_u64(root, sp, "data_epoch", &c->pos.epoch) ||
        state_u64(root, sp, "data_cursor", &c->pos.cursor) ||
        state_u64(root, sp, "data_seed", &c->pos.seed) ||
        state_u64(root, sp, "data_examples", &c->pos.n_examples) ||
        state_hex(root, sp, "acc_sum", 0, 0, &c->acc_sum) ||
        state_count(root, sp, "acc_n", 0, &c->acc_n))
        return -1;
    /* absent in checkpoints of earlier versions: count from 0; present: well-formed */
    const JsonValue *sec = json_get(root, "seconds");
    char s[64];
    if (sec && (sec->type != JSON_NUMBER || !(sec->number >= 0 && sec->number < 1e15)))   /* 30 My */
        return bad_counters(sp, "\"seconds\" is %s, not a time in seconds (a number >= 0)",
                            shown(sec, s, sizeof s));
    c->seconds = sec ? sec->number : 0;
    if (state_hex(root, sp, "flops_lm", 1, 1, &c->flops_lm) < 0 ||
        state_hex(root, sp, "flops_rater", 1, 1, &c->flops_rater) < 0 ||
        state_hex(root, sp, "cur_sum0", 1, 0, &c->cur_sum[0]) < 0 ||
        state_hex(root, sp, "cur_sum1", 1, 0, &c->cur_sum[1]) < 0 ||
        state_count(root, sp, "cur_n0", 1, &c->cur_n[0]) < 0 ||
        state_count(root, sp, "cur_n1", 1, &c->cur_n[1]) < 0)
        return -1;
    /* what the loop guarantees of a state it saves */
    if (*total < 1)
        return bad_counters(sp, "\"total_steps\" is 0 (a run has at least one step)");
    if (c->step > *total)
        return bad_counters(sp, "\"step\" %ld is beyond \"total_steps\" %ld", c->step, *total);
    if (c->step == 0 && c->tokens != 0)
        return bad_counters(sp, "\"tokens\" is %ld at step 0", c->tokens);
    if (c->acc_n > c->step)
        return bad_counters(sp, "\"acc_n\" %ld (losses since the last log line) is beyond "
                            "\"step\" %ld", c->acc_n, c->step);
    if (c->acc_n == 0 && c->acc_sum != 0)
        return bad_counters(sp, "\"acc_sum\" is %a over \"acc_n\" 0 losses", c->acc_sum);
    if (c->pos.n_examples == 0)
        return bad_counters(sp, "\"data_examples\" is 0 (a Train stream has examples)");
    if (c->pos.cursor >= c->pos.n_examples)
        return bad_counters(sp, "\"data_cursor\" %" PRIu64 " is not below \"data_examples\" %"
                            PRIu64, c->pos.cursor, c->pos.n_examples);
    return 0;
}

/* The optimizer's step in the state's __metadata__, strictly (optim_state_load takes
 * "", " 3" or "+3" and clamps an overflow). */
static int state_opt_step(const char *sp, long *step) {
    SafeTensors *st = st_open(sp);
    if (!st) return seterr_prefixed("--resume", NULL);
    const char *s = st_metadata(st, "step");
    uint64_t x = 0;
    int rc = 0;
    if (!s || parse_digits(s, strlen(s), (uint64_t)STATE_COUNT_MAX, &x) != 0) {
        JsonValue v = {.type = JSON_STRING, .str = s ? s : "", .len = s ? strlen(s) : 0};
        char buf[64];
        rc = s ? dr_seterr("--resume: %s: bad or missing \"step\" in __metadata__ (%s, not a "
                           "count)", sp, shown(&v, buf, sizeof buf))
               : dr_seterr("--resume: %s: bad or missing \"step\" in __metadata__ (absent)", sp);
    }
    *step = (long)x;
    st_close(st);
    return rc;
}

/* The "step" and "tokens" recorded in the LM checkpoint's own metadata (to match them
 * with .state); *tokens = -1 where an earlier version wrote none. */
static int model_counters(const char *path, long *step, long *tokens) {
    SafeTensors *st = st_open(path);
    if (!st) return seterr_prefixed("--resume", NULL);
    const char *meta = st_metadata(st, "datarater");
    JsonDoc *doc = meta ? json_parse(meta, strlen(meta), 0) : NULL;
    const JsonValue *root = doc ? json_root(doc) : NULL, *v = json_get(root, "step");
    const JsonValue *tk = json_get(root, "tokens");
    char s[64];
    int rc = 0;
    *tokens = -1;
    if (!v)
        rc = dr_seterr("%s: no training step in its metadata (not a dr-train checkpoint)", path);
    else if (v->type != JSON_NUMBER || !(v->number >= 0 && v->number <= STATE_COUNT_MAX) ||
             v->number != floor(v->number))
        rc = dr_seterr("--resume: %s: \"step\" in its metadata is %s, not a count", path,
                       shown(v, s, sizeof s));
    else if (tk && (tk->type != JSON_NUMBER || !(tk->number >= 0 && tk->number <= STATE_COUNT_MAX) ||
                    tk->number != floor(tk->number)))
        rc = dr_seterr("--resume: %s: \"tokens\" in its metadata is %s, not a count", path,
                       shown(tk, s, sizeof s));
    else {
        *step = (long)v->number;
        if (tk) *tokens = (long)tk->number;
    }
    json_free(doc);
    st_close(st);
    return rc;
}

/* The checkpoint's curation must be this run's: the same mode, keep fraction and scores
 * or rater (by hash). A checkpoint without one (an earlier version) was plain training. */
static int check_curation(const Trainer *t, const JsonValue *root, const char *sp) {
    const JsonValue *m = json_get(root, "curation");
    char s[64];
    if (m && m->type != JSON_STRING)
        return bad_counters(sp, "\"curation\" is %s, not a curation mode", shown(m, s, sizeof s));
    const char *mode = m ? m->str : "none";
    double keep = 0;
    uint64_t key = 0;
    const JsonValue *k = json_get(root, "curation_key");
    if (k) {   /* 16 hex digits (%016 PRIx64) */
        int ok = k->type == JSON_STRING && k->len >= 1 && k->len <= 16 && strlen(k->str) == k->len;
        for (size_t i = 0; ok && i < k->len; i++)
            ok = (k->str[i] >= '0' && k->str[i] <= '9') || (k->str[i] >= 'a' && k->str[i] <= 'f') ||
                 (k->str[i] >= 'A' && k->str[i] <= 'F');
        if (!ok)
            return bad_counters(sp, "\"curation_key\" is %s, not a hash (at most 16 hex digits)",
                                shown(k, s, sizeof s));
        key = strtoull(k->str, NULL, 16);
    }
    if (state_hex(root, sp, "online_keep", 1, 1, &keep) < 0) return -1;
    if (keep > 1)
        return bad_counters(sp, "\"online_keep\" is %a, not a keep fraction (at most 1)", keep);
    const char *want = curation_names[t->curation];
    static const char *const what[] = {"plain training", "re-weighting by scores (--weights)",
                                       "online filtering (--rater)"};
    int have = !strcmp(mode, "weights") ? CURATE_WEIGHTS : !strcmp(mode, "online") ? CURATE_ONLINE
             : !strcmp(mode, "none") ? CURATE_NONE : -1;
    if (have < 0) {   /* shown() quotes it: the message quotes it as before */
        shown(m, s, sizeof s);
        return dr_seterr("--resume: %s: unknown curation '%.*s'", sp, (int)strlen(s) - 2, s + 1);
    }
    if (strcmp(mode, want) != 0)
        return dr_seterr("--resume: %s was made by %s; this run asks for %s", sp, what[have],
                         what[t->curation]);
    if (t->curation == CURATE_ONLINE && keep != t->o->online_keep)
        return dr_seterr("--resume: %s was filtered online with keep %g, not %g", sp, keep,
                         t->o->online_keep);
    if (t->curation != CURATE_NONE && key != t->curation_key)
        return dr_seterr("--resume: %s was trained with other %s (%s)", sp,
                         t->curation == CURATE_ONLINE ? "rater weights" : "scores",
                         t->curation == CURATE_ONLINE ? t->o->rater_path : t->o->weights_path);
    return 0;
}

/* Loads the LM weights of path (option: "--resume" or "--init") into t->params; its
 * shape must be the config's. */
static int load_weights(Trainer *t, const char *option, const char *path) {
    LMConfig lc;
    real *hp = NULL;
    if (lm_load(path, &lc, &hp) != 0) return seterr_prefixed(option, NULL);
    const DataLoader *d = t->train ? t->train : t->val;
    TokenizerTag tag = data_tokenizer_tag(d);
    if (checkpoint_check_tokenizer(path, option, &tag, data_shard_path(d, 0)) != 0) {
        free(hp);
        return -1;
    }
    if (lc.n_layer != t->lmc.n_layer || lc.d_model != t->lmc.d_model || lc.n_head != t->lmc.n_head ||
        lc.d_ff != t->lmc.d_ff || lc.vocab != t->lmc.vocab || lc.ctx != t->lmc.ctx) {
        free(hp);
        return dr_seterr("%s: %s holds a %d-layer d%d %d-head ff%d vocab %d ctx %d LM, the "
                         "config asks for %d-layer d%d %d-head ff%d vocab %d ctx %d", option, path,
                         lc.n_layer, lc.d_model, lc.n_head, lc.d_ff, lc.vocab, lc.ctx,
                         t->lmc.n_layer, t->lmc.d_model, t->lmc.n_head, t->lmc.d_ff,
                         t->lmc.vocab, t->lmc.ctx);
    }
    t->be->to_device(t->params, hp, t->P * sizeof(real));
    free(hp);
    return 0;
}

/* The keys a dr-train --resume may change (as dr-meta's resume_may_change): where and how
 * fast it runs, its length (load_checkpoint_from warns that the schedule changes), how
 * often it logs, evaluates and saves, lm.lr and lm.clip (the way on after a divergence),
 * the memory options whose bits are the same, and the sections dr-train does not read.
 * The rater's weight settings count only for --weights; the rater and keep of online
 * filtering are the curation check's. */
static const char *const resume_may_change[] = {
    "experiment.name", "experiment.device", "experiment.threads", "data.prefetch", "lm.lr",
    "lm.clip", "lm.checkpointing", "lm.head_chunk", "train.steps", "train.tokens",
    "train.eval_every", "train.log_every", "train.checkpoint_every", "train.save_minutes",
    "meta.", "deploy.", NULL,
};
static const char *const rater_unused_with_weights[] = {
    "rater.n_layer", "rater.d_model", "rater.n_head", "rater.d_ff", "rater.init_std",
    "rater.checkpointing", "rater.lr", "rater.weight_decay", "rater.betas", "rater.eps",
    "rater.clip", "rater.entropy_penalty", "rater.l2_to_mean", NULL,
};

/* The config in the model's "datarater" metadata ({"step":…,"tokens":…,"config":{…}}, as
 * save_checkpoint writes it) is this run's, but for the keys a resume may change. */
static int check_resume_config(const Trainer *t, const char *out) {
    Config saved;
    int found = checkpoint_run_config(out, &saved);
    if (found < 0) return seterr_prefixed("--resume", NULL);
    if (found == 0) return 0;   /* a model of an earlier version without it is taken as it is */
    const char *skip[64];
    int n = 0;
    for (const char *const *k = resume_may_change; *k; k++) skip[n++] = *k;
    if (t->curation == CURATE_WEIGHTS)
        for (const char *const *k = rater_unused_with_weights; *k; k++) skip[n++] = *k;
    else
        skip[n++] = "rater.";
    skip[n] = NULL;
    char was[256], now[256];
    const char *key = config_diff(&saved, t->cfg, skip, was, now, sizeof was);
    if (key)
        return dr_seterr("--resume: %s was trained with %s = %s, the config has %s: a resumed "
                         "run continues the same run (only its length, lm.lr, lm.clip, the log, "
                         "eval and save intervals, threads, device and memory options may "
                         "change)", out, key, was, now);
    return 0;
}

/* A run started without --resume over <out>.state of an unfinished run would replace it
 * without a word (the interrupt message says --resume; an Up-arrow and Enter repeat the
 * command without it): refused unless --restart. A state that cannot be read, or of a
 * finished run, is replaced as before. */
static int check_no_unfinished_run(const char *out) {
    char *sp = state_path_of(out);
    int rc = 0;
    if (access(sp, F_OK) == 0) {
        SafeTensors *st = st_open(sp);
        const char *meta = st ? st_metadata(st, "datarater") : NULL;
        JsonDoc *doc = meta ? json_parse(meta, strlen(meta), 0) : NULL;
        const JsonValue *root = doc ? json_root(doc) : NULL;
        Counters c;
        long total = 0;
        if (root && root->type == JSON_OBJECT && state_counters(root, sp, &c, &total) == 0 && c.step < total)
            rc = dr_seterr("%s holds an unfinished run (step %ld of %ld): --resume continues it, "
                           "--restart starts over and replaces it", sp, c.step, total);
        json_free(doc);
        st_close(st);
    }
    free(sp);
    return rc;
}

/* The model <out> and the state sp, checked against each other and the run. */
static int load_checkpoint_from(Trainer *t, const char *sp) {
    const Backend *be = t->be;
    const char *out = t->o->out_path;
    if (load_weights(t, "--resume", out) != 0) return -1;

    char *meta = NULL;
    long step = 0, mstep = -1, mtokens = -1;
    memset(&t->c, 0, sizeof t->c);   /* nothing left from an attempt on another state */
    int rc = optim_state_load(sp, t->table, t->n_tensors, t->opt.kind, t->h_m, t->h_v, &step, &meta);
    if (rc != 0) { seterr_prefixed("--resume", NULL); return -1; }
    be->to_device(t->opt.m, t->h_m, t->P * sizeof(real));
    if (t->opt.v) be->to_device(t->opt.v, t->h_v, t->P * sizeof(real));

    JsonDoc *doc = meta ? json_parse(meta, strlen(meta), 0) : NULL;
    const JsonValue *root = doc ? json_root(doc) : NULL;
    Counters *c = &t->c;
    long total = 0;
    if (!meta)
        rc = bad_counters(sp, "no \"datarater\" entry in __metadata__");
    else if (!root) {
        char why[600];
        snprintf(why, sizeof why, "%s", dr_lasterr());
        rc = bad_counters(sp, "\"datarater\" is not JSON (%s)", why);
    } else if (root->type != JSON_OBJECT)
        rc = bad_counters(sp, "\"datarater\" is not a JSON object");
    else if (state_counters(root, sp, c, &total) != 0 || check_curation(t, root, sp) != 0 ||
             state_opt_step(sp, &step) != 0)
        rc = -1;
    else if (step != c->step)
        rc = dr_seterr("--resume: %s: \"step\" is %ld in __metadata__ (the optimizer's) but %ld "
                       "in the training counters", sp, step, c->step);
    else if (model_counters(out, &mstep, &mtokens) != 0 || check_resume_config(t, out) != 0)
        rc = -1;
    else if (mstep != c->step)
        rc = dr_seterr("--resume: %s is at step %ld but %s at step %ld: a checkpoint was cut "
                       "short; they do not belong together", out, mstep, sp, c->step);
    else if (mtokens >= 0 && mtokens != c->tokens)
        rc = dr_seterr("--resume: %s counts %ld tokens but %s (\"tokens\") %ld: a checkpoint was "
                       "cut short; they do not belong together", out, mtokens, sp, c->tokens);
    else if (c->step > t->total_steps)
        rc = dr_seterr("--resume: %s is at step %ld, beyond the %ld steps of this run (--steps, "
                       "--tokens, train.steps or train.tokens)", sp, c->step, t->total_steps);
    else if (data_set_position(t->train, &c->pos) != 0) {
        char why[1024];
        snprintf(why, sizeof why, "%s", dr_lasterr());
        rc = dr_seterr("--resume: %s: %s (different Train data or seed?)", sp, why);
    }
    else if (total != t->total_steps)
        fprintf(dist_log(), "%s: warning: resuming a %ld-step run as a %ld-step run: the learning-"
                "rate schedule changes\n", dr_progname(), total, t->total_steps);
    if (rc == 0) t->opt.step = step;
    json_free(doc);
    free(meta);
    return rc;
}

/* <out>.state, or when it does not match <out> (a save cut short: see prev_state_path_of)
 * the state of the save before, if that one matches; it then becomes <out>.state again. */
static int load_checkpoint(Trainer *t) {
    const char *out = t->o->out_path;
    char *sp = state_path_of(out), *prev = prev_state_path_of(out);
    if (access(out, F_OK) != 0 && errno == ENOENT && access(sp, F_OK) == 0 && access(prev, F_OK) != 0) {
        /* the first save writes the state, then the model: killed in between */
        dr_seterr("--resume: %s is missing but %s is there: the run's first save was cut short "
                  "(killed before the model was written); start it again without --resume", out, sp);
        free(sp);
        free(prev);
        return -1;
    }
    int rc = load_checkpoint_from(t, sp);
    if (rc != 0 && access(prev, F_OK) == 0) {
        char err[1024];
        snprintf(err, sizeof err, "%s", dr_lasterr());
        if (load_checkpoint_from(t, prev) == 0 && rename(prev, sp) == 0) {
            fprintf(dist_log(), "%s: %s; the state of the save before (%s) matches %s: resuming "
                    "at its step %ld\n", dr_progname(), err, prev, out, t->c.step);
            rc = 0;
        } else {
            dr_seterr("%s", err);   /* the newer state's story */
        }
    }
    free(sp);
    free(prev);
    return rc;
}

/* ================================================================================
 * The loop
 * ================================================================================ */

static void keep_good_state(Trainer *t, const Counters *c) {
    t->be->vec_copy(t->good_params, t->params, t->P);
    optim_state_copy(&t->good_opt, &t->opt, t->be);
    t->good_c = *c;
    t->have_good = 1;
}

/* A non-finite number at `step`: save the last good state, return -1 with the story. */
static int fail_nonfinite(Trainer *t, long step, const char *what, double value) {
    char saved[600];
    if (t->have_good && save_checkpoint(t, t->good_params, &t->good_opt, &t->good_c) == 0)
        snprintf(saved, sizeof saved, "the last good state (step %ld) is saved in %s",
                 t->good_c.step, t->o->out_path);
    else if (t->have_good)
        snprintf(saved, sizeof saved, "saving the last good state failed: %s", dr_lasterr());
    else
        snprintf(saved, sizeof saved, "no earlier state to save");
    /* every rank stops here at the same step; rank 0's save must be complete (and its
     * outcome known) before any rank exits and the launcher stops the job */
    dist_bcast(saved, sizeof saved, 0);
    t->failed_together = 1;
    char v[32];
    dr_number(v, sizeof v, value);
    return dr_seterr("step %ld: %s is %s (lr %g): training stopped; %s", step, what, v,
                     lr_at(&t->hyper, step), saved);
}

/* A failure inside the loop that leaves the model sound (a shard that cannot be read or
 * changed under the run, the rater's non-finite logit): save the newest whole state that is
 * ahead of the one the run started from, so that --resume continues there once the cause is
 * fixed, and say so after the error. Rank 0 saves (its parameters are every rank's). */
static void save_after_failure(Trainer *t, const real *params, const OptimState *opt,
                               const Counters *c, long first_step, double t0) {
    if (dist_rank() == 0 && c->step > first_step) {   /* else nothing newer than on disk */
        char err[1024];
        snprintf(err, sizeof err, "%s", dr_lasterr());
        Counters at = *c;
        at.seconds += dr_now() - t0;
        if (save_checkpoint(t, params, opt, &at) == 0)
            dr_seterr("%s; the state at step %ld is saved in %s (once the cause is fixed, --resume "
                      "continues from there)", err, at.step, t->o->out_path);
        else
            dr_seterr("%s; saving the state at step %ld failed too: %s", err, at.step, dr_lasterr());
    }
    if (dist_size() > 1 && t->failed_together) {   /* every rank is here: rank 0's words */
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", dr_lasterr());
        dist_bcast(msg, sizeof msg, 0);
        dr_seterr("%s", msg);
    }
}

static void log_eval(Metrics *m, const EvalResult *e) {
    metrics_num(m, "l_val", e->l_val);
    metrics_int(m, "val_tokens", e->tokens);
}

/* Every line ends with the compute so far (compare at equal FLOPs) and, on training log
 * lines, the curation statistics since the previous one. */
static void log_compute(Metrics *m, const Trainer *t, Counters *c, int log_now) {
    metrics_num(m, "flops", c->flops_lm + c->flops_rater);
    metrics_num(m, "flops_lm", c->flops_lm);
    metrics_num(m, "flops_rater", c->flops_rater);
    if (!log_now) return;
    if (t->curation == CURATE_ONLINE) {
        metrics_num(m, "z_kept", c->cur_n[0] ? c->cur_sum[0] / (double)c->cur_n[0] : NAN);
        metrics_num(m, "z_all", c->cur_n[1] ? c->cur_sum[1] / (double)c->cur_n[1] : NAN);
    } else if (t->curation == CURATE_WEIGHTS) {
        metrics_num(m, "w_mean", c->cur_n[0] ? c->cur_sum[0] / (double)c->cur_n[0] : NAN);
    }
    c->cur_sum[0] = c->cur_sum[1] = 0;
    c->cur_n[0] = c->cur_n[1] = 0;
}

/* ================================================================================
 * The step's batch and its loss weights
 * ================================================================================ */

static int cmp_by_score(const void *a, const void *b) {
    const struct Candidate *x = a, *y = b;
    if (x->z != y->z) return x->z > y->z ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}
static int cmp_by_pos(const void *a, const void *b) {
    const struct Candidate *x = a, *y = b;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Fills t->batch: the next batch of the Train stream, or (online) the B highest-scored
 * of the next C candidates, in their stream order. Counts the rater's compute and the
 * logit statistics into c. -1 + dr_seterr on a read error or a non-finite score. */
static int next_batch(Trainer *t, Counters *c, long step) {
    if (t->curation != CURATE_ONLINE) return agree(t, data_next(t->train, t->batch));
    DataBatch *cb = t->cand;
    if (agree(t, data_next(t->train, cb)) != 0) return -1;   /* reads this rank's sub-batches only */
    /* ranks score whole sub-batches of the candidates (the same sub-batches as one
     * process: the same bits), then every rank holds every logit */
    int lo, hi;
    rank_part(cb->B, t->sub, &lo, &hi);
    if (hi > lo)
        score_rater_split(t->be, &t->rc, t->phi, t->racts, t->n_racts,
                          cb->rater_tokens + (size_t)lo * cb->T_rater, cb->rater_valid + lo, hi - lo,
                          cb->T_rater, t->sub, t->z + lo);
    dist_allgather(t->z, sizeof *t->z, cb->B, t->sub);
    c->flops_rater += train_flops_rater(&t->rc, cb->B, cb->T_rater);
    for (int i = 0; i < cb->B; i++) {
        if (!isfinite((double)t->z[i])) {   /* one line, as dr-score says it */
            char id[DATA_ID_MAX];
            data_example_id(t->train, cb->index[i], id);
            char v[32];
            dr_number(v, sizeof v, (double)t->z[i]);
            t->failed_together = 1;   /* every rank holds every logit: all stop here */
            return dr_seterr("--rater %s: step %ld: example %s: the rater's logit is %s, not a "
                             "finite number: the rater's weights are beyond what it can compute "
                             "with; training stopped", t->o->rater_path, step, id, v);
        }
        t->rank[i] = (struct Candidate){t->z[i], i};
        c->cur_sum[1] += (double)t->z[i];
    }
    c->cur_n[1] += cb->B;
    int B = t->cfg->data.batch_size, keep = B < cb->B ? B : cb->B;
    qsort(t->rank, (size_t)cb->B, sizeof *t->rank, cmp_by_score);
    qsort(t->rank, (size_t)keep, sizeof *t->rank, cmp_by_pos);
    for (int k = 0; k < keep; k++) {
        t->pick[k] = cb->index[t->rank[k].pos];
        c->cur_sum[0] += (double)t->rank[k].z;
    }
    c->cur_n[0] += keep;
    rank_part(keep, 1, &lo, &hi);   /* the rows of the kept batch this rank trains on */
    return agree(t, data_get_part(t->train, t->pick, keep, lo, hi, t->batch));
}

/* dlosses[i] = w_i / B: w = 1 (plain, online), or the rater's normalization of the
 * example scores (--weights; the same op and config as dr-meta's inner loop). */
static void loss_weights(Trainer *t, const DataBatch *b, Counters *c) {
    if (t->curation != CURATE_WEIGHTS) {
        for (int i = 0; i < b->B; i++) t->dlosses[i] = (real)(1.0 / b->B);
        return;
    }
    for (int i = 0; i < b->B; i++) t->z[i] = (real)t->scores[b->index[i]];
    backend_cpu.weights_forward(t->w, t->z, &t->wnorm, b->B);   /* host [B], as meta.c */
    for (int i = 0; i < b->B; i++) {
        t->dlosses[i] = (real)((double)t->w[i] / b->B);
        c->cur_sum[0] += (double)t->w[i];
    }
    c->cur_n[0] += b->B;
}

int train_run(TrainOptions *o) {
    Trainer t = {0};
    t.o = o;
    t.cfg = &o->cfg;
    const Config *cfg = t.cfg;
    int rc = -1;
    Metrics *metrics = NULL;
    Progress prog;
    int prog_on = 0;   /* a bar on a terminal: cleared before an error is printed */
    double t0 = dr_now(), last_save = t0;
    real *phi_host = NULL;

    if (!o->out_path) return dr_seterr("no output path (-o)");
    /* the checkpoint's directory must exist and be writable before hours of training */
    if (dist_rank() == 0 && dr_check_output_dir(o->out_path) != 0) return -1;
    if (dist_rank() == 0) {   /* and the state's names (a directory there was found at a save) */
        char *sp = state_path_of(o->out_path), *prev = prev_state_path_of(o->out_path);
        int bad = dr_check_output_dir(sp) != 0 || dr_check_output_dir(prev) != 0;
        free(sp);
        free(prev);
        if (bad) return -1;
        if (!o->resume && !o->restart && check_no_unfinished_run(o->out_path) != 0) return -1;
    }
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    if (check_ranks_agree(o) != 0) {   /* every rank's failure: rank 0 says it once */
        if (dist_rank() != 0) dist_await_root_exit();
        return -1;
    }
    t.be = backend_select_from(o->device, cfg->device);
    if (!t.be || backend_set_precision(t.be, cfg->precision) != 0) return -1;
    if (curation_begin(&t, &phi_host) != 0) goto done;
    if (open_data(&t, 1) != 0) goto done;
    if (check_ranks_same_data(&t) != 0) {
        if (dist_rank() != 0) dist_await_root_exit();
        goto done;
    }
    t.lmc = lm_config_from_shape(&cfg->lm.shape,
                                 cfg->lm.vocab_size > 0 ? cfg->lm.vocab_size : (int)data_vocab_size(t.train));
    if (lm_config_check(&t.lmc) != 0) { seterr_prefixed("lm", NULL); goto done; }
    if (check_model_vs_data(&t, NULL) != 0) goto done;
    t.total_steps = total_steps_of(o, cfg, t.train, t.n_cand);
    t.config_json = config_to_json(cfg);
    alloc_model(&t, 1);
    if (t.curation == CURATE_ONLINE) {
        TokenizerTag tag = data_tokenizer_tag(t.train);
        if (checkpoint_check_tokenizer(o->rater_path, "--rater", &tag, data_shard_path(t.train, 0)) != 0)
            goto done;
    }
    if (curation_setup(&t, phi_host) != 0) goto done;
    {   /* the rank reads only its rows of each Train batch: its slice of the B examples,
         * or (online) its whole sub-batches of the C candidates (next_batch) */
        int lo, hi;
        rank_part(t.n_cand, t.curation == CURATE_ONLINE ? t.sub : 1, &lo, &hi);
        data_set_part(t.train, lo, hi);
    }

    /* the log's rewrite below goes through a temporary file: until the stop handler takes
     * over, a signal removes it and ends the run (128 + the signal), as in the data tools */
    dr_install_cleanup_signals();
    if (o->resume) {
        if (dist_rank() == 0 && load_checkpoint(&t) != 0) goto done;
        if (dist_rank() == 0 && o->log_path && metrics_truncate(o->log_path, "step", t.c.step) != 0) goto done;
    } else {
        if (o->init_path) {
            if (dist_rank() == 0 && load_weights(&t, "--init", o->init_path) != 0) goto done;
        } else {
            lm_init_params(t.be, &t.lmc, t.params, cfg->seed);
        }
        t.c.pos = data_position(t.train);
    }
    if (share_state(&t) != 0) goto done;
    metrics = metrics_open(dist_rank() == 0 ? o->log_path : NULL, o->resume);
    if (!metrics) goto done;

    int B = cfg->data.batch_size;
    FILE *msg = dist_log();   /* stderr on rank 0, nothing elsewhere */
    char ranks[64] = "";
    if (dist_size() > 1)
        snprintf(ranks, sizeof ranks, " over %d ranks (≤ %d examples each)", dist_size(),
                 (B + dist_size() - 1) / dist_size());
    fprintf(msg, "%s: LM %.2fM parameters (%d layer%s, d %d, %d heads, vocab %d, ctx %d) on %s, %s\n"
            "%s: Train %" PRIu64 " examples (%" PRIu64 " target tokens), Val %" PRIu64
            " examples; %ld steps of %d×%d (%.3g epochs)%s%s%s\n",
            dr_progname(), (double)t.P / 1e6, t.lmc.n_layer, t.lmc.n_layer == 1 ? "" : "s",
            t.lmc.d_model, t.lmc.n_head, t.lmc.vocab, t.lmc.ctx, t.be->name, REAL_NAME, dr_progname(),
            data_num_examples(t.train), data_num_target_tokens(t.train), data_num_examples(t.val),
            t.total_steps, B, cfg->data.seq_len,
            data_num_examples(t.train) ? (double)t.total_steps * B / (double)data_num_examples(t.train) : 0.0, ranks,
            o->resume ? ", resumed" : o->init_path ? ", weights from " : "",
            !o->resume && o->init_path ? o->init_path : "");
    if (t.curation == CURATE_WEIGHTS)
        fprintf(msg, "%s: loss re-weighted by %s (rater.normalize %s, tau %g%s)\n", dr_progname(),
                o->weights_path, cfg->rater.normalize, cfg->rater.tau,
                cfg->rater.mean_normalize ? ", mean-normalized" : "");
    else if (t.curation == CURATE_ONLINE)
        fprintf(msg, "%s: online filtering: each step trains on the best %d of %d candidates "
                "(keep %g) by the rater %s (%d layer%s, d %d, %d positions)\n", dr_progname(), B,
                t.n_cand, o->online_keep, o->rater_path, t.rc.n_layer, t.rc.n_layer == 1 ? "" : "s",
                t.rc.d_model, t.rc.ctx);
    if (o->resume)
        fprintf(msg, "%s: resuming at step %ld (%ld tokens)\n", dr_progname(), t.c.step, t.c.tokens);

    interrupted = 0;
    dr_install_stop_signals(on_interrupt);

    if (!o->resume) {
        EvalResult e;
        if (evaluate_shown(&t, t.params, &e, "step 0: Val") != 0) goto done;
        if (!isfinite(e.l_val)) { fail_nonfinite(&t, 0, "the Val loss", e.l_val); goto done; }
        metrics_begin(metrics);
        metrics_int(metrics, "step", 0);
        metrics_int(metrics, "tokens", 0);
        log_eval(metrics, &e);
        log_compute(metrics, &t, &t.c, 0);
        if (agree(&t, metrics_end(metrics)) != 0) goto done;
        fprintf(msg, "%s: step 0: l_val %.4f\n", dr_progname(), e.l_val);
    }
    keep_good_state(&t, &t.c);   /* a resumed or fresh state counts as good until a step says no */
    t.have_good = o->resume;     /* …but a fresh init whose first loss is not finite does not */

    long first_step = t.c.step;
    progress_start(&prog, "train", "steps", (double)t.total_steps);
    progress_resume(&prog, (double)first_step);
    prog_on = 1;
    if (dist_rank() != 0) {
        prog.out = msg;
        prog.is_tty = 0;
    }
    progress_show(&prog);
    double last_l_val = NAN, last_loss = NAN;

    while (t.c.step < t.total_steps) {
        /* a signal reaching some ranks stops all of them at the same step */
        if (dist_size() > 1) interrupted = (sig_atomic_t)dist_allreduce_max_long(interrupted);
        if (interrupted || (o->stop_at > 0 && t.c.step >= o->stop_at)) {
            t.c.seconds += dr_now() - t0;
            t0 = dr_now();
            if (save_checkpoint(&t, t.params, &t.opt, &t.c) != 0) goto done;
            progress_finish(&prog);
            fprintf(msg, "%s: %s at step %ld; checkpoint saved in %s (continue with --resume)\n",
                    dr_progname(), interrupted ? "interrupted" : "stopped", t.c.step, o->out_path);
            rc = interrupted ? TRAIN_INTERRUPTED : 0;
            goto done;
        }
        Counters before = t.c;
        long step = t.c.step;
        if (next_batch(&t, &t.c, step) != 0) {   /* the state of step `step` is whole; the
                                                   * counters as before next_batch added to them */
            save_after_failure(&t, t.params, &t.opt, &before, first_step, t0);
            goto done;
        }
        DataBatch *b = t.batch;
        loss_weights(&t, b, &t.c);
        double lr = lr_at(&t.hyper, step);

        /* forward and backward (each rank its slice of the batch; one rank: all of it) */
        t.be->vec_zero(t.grads, t.P);
        step_slice(&t, b, t.losses);
        double loss = 0;
        for (int i = 0; i < b->B; i++) loss += (double)t.losses[i];
        loss /= b->B;
        if (!isfinite(loss)) { fail_nonfinite(&t, step, "the training loss", loss); goto done; }
        double norm;
        clip_factor(t.be, t.grads, t.P, 0, &norm);
        if (!isfinite(norm)) { fail_nonfinite(&t, step, "the gradient norm", norm); goto done; }
        keep_good_state(&t, &before);

        /* update */
        OptimStepInfo info;
        optim_step(t.be, &t.opt, t.params, t.grads, &t.hyper, lr, &info);
        t.c.step++;
        t.c.tokens += b->n_tokens;
        t.c.flops_lm += train_flops_lm(&t.lmc, b->B, b->T);
        t.c.pos = data_position(t.train);
        t.c.acc_sum += loss;
        t.c.acc_n++;
        last_loss = loss;

        int last = t.c.step == t.total_steps;
        int log_now = last || (cfg->train.log_every > 0 && t.c.step % cfg->train.log_every == 0);
        int eval_now = last || (cfg->train.eval_every > 0 && t.c.step % cfg->train.eval_every == 0);
        EvalResult e = {0};
        if (eval_now) {
            if (evaluate(&t, t.params, &e) != 0) {   /* this step again on resume, with its log line */
                save_after_failure(&t, t.good_params, &t.good_opt, &t.good_c, first_step, t0);
                goto done;
            }
            if (!isfinite(e.l_val)) { fail_nonfinite(&t, t.c.step, "the Val loss", e.l_val); goto done; }
            last_l_val = e.l_val;
        }
        if (log_now || eval_now) {
            metrics_begin(metrics);
            metrics_int(metrics, "step", t.c.step);
            metrics_int(metrics, "tokens", t.c.tokens);
            if (log_now) {
                metrics_num(metrics, "lr", lr);
                metrics_num(metrics, "l_train", t.c.acc_sum / (double)t.c.acc_n);
                metrics_num(metrics, "grad_norm", info.grad_norm);
                metrics_num(metrics, "seconds", t.c.seconds + dr_now() - t0);
                t.c.acc_sum = 0;
                t.c.acc_n = 0;
            }
            if (eval_now) log_eval(metrics, &e);
            log_compute(metrics, &t, &t.c, log_now);
            if (agree(&t, metrics_end(metrics)) != 0) {   /* as for an evaluation that failed */
                save_after_failure(&t, t.good_params, &t.good_opt, &t.good_c, first_step, t0);
                goto done;
            }
        }
        if (isnan(last_l_val)) progress_set_extra(&prog, "loss %.4f  lr %.2e", last_loss, lr);
        else progress_set_extra(&prog, "loss %.4f  val %.4f  lr %.2e", last_loss, last_l_val, lr);
        progress_update(&prog, (double)t.c.step);

        if (!last && ((cfg->train.checkpoint_every > 0 && t.c.step % cfg->train.checkpoint_every == 0) ||
                      (cfg->train.save_minutes > 0 && dr_now() - last_save >= 60 * cfg->train.save_minutes))) {
            Counters c = t.c;   /* rank 0 saves (the others' save is a no-op): no rank waits */
            c.seconds += dr_now() - t0;
            if (save_checkpoint(&t, t.params, &t.opt, &c) != 0) goto done;
            last_save = dr_now();
        }
    }
    if (first_step >= t.total_steps) {   /* a finished run resumed: nothing ran, nothing to save */
        progress_abort(&prog);           /* the line below says it */
        fprintf(msg, "%s: done: %s is already at step %ld of %ld, nothing left to run\n", dr_progname(),
                o->out_path, t.c.step, t.total_steps);
        rc = 0;
        goto done;
    }
    t.c.seconds += dr_now() - t0;
    t0 = dr_now();
    if (save_checkpoint(&t, t.params, &t.opt, &t.c) != 0) goto done;
    progress_finish(&prog);
    fprintf(msg, "%s: done: %ld steps, %ld tokens, l_val %.4f, %.3g FLOPs (LM %.3g, rater %.3g), "
            "%.1f s; saved %s\n", dr_progname(), t.c.step, t.c.tokens, last_l_val,
            t.c.flops_lm + t.c.flops_rater, t.c.flops_lm, t.c.flops_rater, t.c.seconds, o->out_path);
    rc = 0;
done:
    /* a failure in the loop: the error replaces the bar, on a line of its own */
    if (rc < 0 && prog_on) progress_abort(&prog);
    rc = metrics_close(metrics, rc);
    dr_stop_signals_reset();
    if (rc < 0 && t.failed_together && dist_rank() != 0) dist_await_root_exit();
    free(phi_host);
    free_trainer(&t);
    return rc;
}

int train_eval_only(TrainOptions *o, const char *ckpt) {
    Trainer t = {0};
    t.o = o;
    t.cfg = &o->cfg;
    int rc = -1;
    real *hp = NULL;
    if (o->cfg.threads > 0) omp_set_num_threads(o->cfg.threads);
    t.be = backend_select_from(o->device, o->cfg.device);
    if (!t.be || backend_set_precision(t.be, o->cfg.precision) != 0) return -1;
    if (lm_load(ckpt, &t.lmc, &hp) != 0) return -1;
    lm_config_run_as(&t.lmc, &o->cfg.lm.shape);   /* lm.head_chunk: the logits' memory */
    if (open_data(&t, 0) != 0) goto done;
    {   /* another tokenizer first: the cause a vocabulary mismatch would only hint at */
        TokenizerTag tag = data_tokenizer_tag(t.val);
        if (checkpoint_check_tokenizer(ckpt, "--eval-only", &tag, data_shard_path(t.val, 0)) != 0) goto done;
    }
    if (check_model_vs_data(&t, ckpt) != 0) goto done;
    alloc_model(&t, 0);
    t.be->to_device(t.params, hp, t.P * sizeof(real));
    EvalResult e;
    if (evaluate(&t, t.params, &e) != 0) goto done;   /* every rank (agree) */
    if (!isfinite(e.l_val)) {   /* refused as training and dr-score --lm refuse it, not printed as null */
        char v[32];
        dr_number(v, sizeof v, e.l_val);
        t.failed_together = 1;   /* every rank holds the same l_val */
        dr_seterr("--eval-only %s: the Val loss is %s, not a finite number: the model's weights are beyond "
                  "what it can compute with", ckpt, v);
        goto done;
    }
    Metrics *m = metrics_open(dist_rank() == 0 ? "-" : NULL, 0);   /* rank 0 prints */
    metrics_begin(m);
    metrics_num(m, "l_val", e.l_val);
    metrics_int(m, "examples", e.examples);
    metrics_int(m, "tokens", e.tokens);
    rc = metrics_close(m, metrics_end(m));
done:
    free(hp);
    const int wait_for_root = rc < 0 && t.failed_together && dist_rank() != 0;
    free_trainer(&t);
    if (wait_for_root) dist_await_root_exit();
    return rc;
}
