/* score.c — dr-score's engine: batches of examples in shard order through a rater or
 * an LM, one scores.tsv line per example (see score.h).
 *
 * A round reads up to ROUND_PER_THREAD·P batches (serially: the loader's readers are
 * not shared), runs them on P threads, each batch whole on one thread with that thread's
 * activations, then writes their rows in order. Rounds of many batches keep the
 * threads' meetings rare (a spinning OpenMP barrier on a busy 2-core machine costs more
 * than a small batch). Batches never cross a shard boundary (each shard is cut into
 * batches from its first example), so a shard's rows are the same bytes whether it is
 * scored alone or with others: scoring shards on separate machines and concatenating
 * the rows gives the single run (docs/scale-out.md). Must never let the thread count
 * change a computed number: inside the round every op sees one thread (nthreads-var 1,
 * no nested parallelism). */
#include "score.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "checkpoint.h"
#include "progress.h"
#include "scores.h"
#include "train.h"

typedef enum { SCORE_RATER, SCORE_LM } ScoreKind;

enum { ROUND_PER_THREAD = 16 };

/* A batch of a round and its scores. */
typedef struct {
    DataBatch *b;
    real *score;
} Slot;

/* A thread's activations. */
typedef struct {
    RaterActs *ra;
    LMActs *la;
} Acts;

/* -1 + dr_seterr at a non-finite score (a rater whose logit overflows): scores.tsv never
 * holds one (dr-filter and dr-train --weights would refuse the file). */
static int write_rows(DataLoader *d, const DataBatch *b, const real *score, ScoreKind kind, FILE *out) {
    char id[DATA_ID_MAX];
    for (int i = 0; i < b->B; i++) {
        uint64_t ex = b->index[i];
        data_example_id(d, ex, id);
        if (!isfinite((double)score[i])) {
            char v[32];
            dr_number(v, sizeof v, (double)score[i]);
            return dr_seterr("example %s: the %s is %s, not a finite number: the model's weights are "
                             "beyond what it can compute with", id,
                             kind == SCORE_RATER ? "rater's logit" : "LM's loss", v);
        }
        progress_yield_line(out);   /* scores on the terminal of the bar */
        scores_write_row(out, id, (double)score[i], data_example_source(d, ex),
                         data_example(d, ex).length);
    }
    return 0;
}

static void forward(const Backend *be, ScoreKind kind, const LMConfig *cfg, const real *params,
                    Acts *a, Slot *s) {
    DataBatch *b = s->b;
    if (kind == SCORE_RATER)
        rater_forward(be, cfg, params, a->ra, b->rater_tokens, b->rater_valid, b->B, b->T_rater,
                      s->score);
    else
        lm_forward(be, cfg, params, a->la, b->inputs, b->targets, b->n_valid, b->B, b->T, s->score);
}

static int score_all(const Backend *be, DataLoader *d, ScoreKind kind, const LMConfig *cfg,
                     const real *host_params, int batch, FILE *out, ScoreStats *stats) {
    uint64_t n = data_num_examples(d);
    size_t n_params = kind == SCORE_RATER ? rater_num_params(cfg) : lm_num_params(cfg);
    real *params = be->alloc(n_params * sizeof(real));
    be->to_device(params, host_params, n_params * sizeof(real));
    const DataOptions *opt = data_options(d);
    int T = kind == SCORE_RATER ? opt->seq_len_rater : opt->seq_len;
    uint64_t n_batches = (n + (uint64_t)batch - 1) / (uint64_t)batch;

    /* batch-level threads on the CPU backend (a GPU backend runs one batch at a time) */
    int threads = omp_get_max_threads();
    int P = be == &backend_cpu ? threads : 1;
    if ((uint64_t)P > n_batches) P = n_batches > 0 ? (int)n_batches : 1;
    uint64_t per_round = (uint64_t)P * ROUND_PER_THREAD;
    int R = (int)(per_round < n_batches ? per_round : n_batches > 0 ? n_batches : 1);
    /* shard_end[s]: one past the last example of shard s (examples are in shard order) */
    size_t n_shards = data_num_shards(d);
    uint64_t *shard_end = xcalloc(n_shards ? n_shards : 1, sizeof *shard_end);
    for (uint64_t i = 0; i < n; i++) shard_end[data_example(d, i).shard] = i + 1;
    /* A batch never holds more than its shard's examples: size the activations for the
     * largest batch that can occur, not for a --batch far beyond the data (a --batch of
     * 300000 over 23 examples was refused as needing 26 GB). The batches, hence the
     * bytes, are the same. */
    uint64_t largest = 0;
    for (uint64_t s0 = 0; s0 < n;) {
        uint64_t end = shard_end[data_example(d, s0).shard];
        if (end - s0 > largest) largest = end - s0;
        s0 = end;
    }
    int cap = largest < (uint64_t)batch ? (largest > 0 ? (int)largest : 1) : batch;
    Slot *slot = xcalloc((size_t)R, sizeof *slot);
    for (int k = 0; k < R; k++) {
        slot[k].b = data_batch_new(d);
        slot[k].score = xmalloc((size_t)cap * sizeof *slot[k].score);
    }
    Acts *acts = xcalloc((size_t)P, sizeof *acts);
    for (int k = 0; k < P; k++) {
        if (kind == SCORE_RATER) acts[k].ra = rater_acts_new(be, cfg, cap, T);
        else acts[k].la = lm_acts_new(be, cfg, cap, T, 0);
    }
    ScoreStats st = { .threads = P };
    Progress p;
    progress_start(&p, "score", "examples", (double)n);
    double t0 = dr_now();
    scores_write_header(out);
    int rc = 0;
    int saved_levels = omp_get_max_active_levels();
    omp_set_num_threads(1);            /* ops inside a round: one thread each */
    omp_set_max_active_levels(1);
    for (uint64_t s0 = 0; s0 < n && rc == 0;) {
        int in_round = 0;
        for (int k = 0; k < R && s0 < n; k++) {
            uint64_t end = shard_end[data_example(d, s0).shard];   /* the batch stops there */
            int nb = end - s0 < (uint64_t)batch ? (int)(end - s0) : batch;
            if (data_range(d, s0, nb, slot[k].b) != 0) { rc = -1; break; }
            s0 += (uint64_t)nb;
            in_round++;
        }
        if (rc != 0) break;
        int team = in_round < P ? in_round : P;
        #pragma omp parallel num_threads(team) if (team > 1)
        {
            Acts *a = &acts[omp_get_thread_num()];
            #pragma omp for schedule(dynamic, 1)
            for (int k = 0; k < in_round; k++) forward(be, kind, cfg, params, a, &slot[k]);
        }
        for (int k = 0; k < in_round; k++) {
            const DataBatch *b = slot[k].b;
            if (rc == 0 && write_rows(d, b, slot[k].score, kind, out) != 0) rc = -1;
            st.examples += (uint64_t)b->B;
            int Tb = kind == SCORE_RATER ? b->T_rater : b->T;
            st.positions += (uint64_t)b->B * (uint64_t)Tb;
            st.flops += kind == SCORE_RATER ? train_flops_rater(cfg, b->B, Tb)
                                            : train_flops_lm_forward(cfg, b->B, Tb);
        }
        if (rc == 0 && ferror(out)) rc = dr_seterr("writing the scores failed: %s", strerror(errno));
        progress_update(&p, (double)st.examples);
    }
    omp_set_num_threads(threads);
    omp_set_max_active_levels(saved_levels);
    if (rc == 0 && (fflush(out) != 0 || ferror(out))) rc = dr_seterr("writing the scores failed: %s", strerror(errno));
    if (rc == 0) progress_finish(&p);
    else progress_abort(&p);
    st.seconds = dr_now() - t0;
    if (stats) *stats = st;
    for (int k = 0; k < R; k++) {
        data_batch_free(slot[k].b);
        free(slot[k].score);
    }
    for (int k = 0; k < P; k++) {
        if (acts[k].ra) rater_acts_free(be, acts[k].ra);
        if (acts[k].la) lm_acts_free(be, acts[k].la);
    }
    free(slot);
    free(acts);
    free(shard_end);
    be->free(params);
    return rc;
}

void score_rater_split(const Backend *be, const RaterConfig *rc, const real *phi,
                       RaterActs **acts, int n_acts, const int32_t *tokens,
                       const int32_t *valid, int n, int T, int sub, real *z) {
    int n_sub = (n + sub - 1) / sub;
    int cpu = be == &backend_cpu;
    int team = !cpu ? 1 : n_acts < n_sub ? n_acts : n_sub;
    int threads = omp_get_max_threads(), levels = omp_get_max_active_levels();
    if (cpu) {
        omp_set_num_threads(1);            /* the ops inside: one thread each */
        omp_set_max_active_levels(1);
    }
    #pragma omp parallel num_threads(team) if (team > 1)
    {
        RaterActs *a = acts[omp_get_thread_num()];
        #pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < n_sub; k++) {
            int m = n - k * sub < sub ? n - k * sub : sub;
            rater_forward(be, rc, phi, a, tokens + (size_t)k * sub * T, valid + (size_t)k * sub,
                          m, T, z + (size_t)k * sub);
        }
    }
    if (cpu) {
        omp_set_num_threads(threads);
        omp_set_max_active_levels(levels);
    }
}

int score_check_memory(long batch, int seq_len) {
    const double limit = dr_machine_bytes();
    if (!(limit > 0)) return 0;   /* unknown */
    const double need = (double)batch * seq_len * 2 * sizeof(uint32_t);   /* one batch: a lower bound */
    if (need <= limit) return 0;
    return dr_seterr("out of memory: a batch of %ld windows of data.seq_len = %d tokens needs %.4g GB of "
                     "token buffers, more than this machine's %.4g GB (RAM + swap): lower data.batch_size "
                     "(or --batch) or data.seq_len", batch, seq_len, need / 1e9, limit / 1e9);
}

int score_check_model(const DataLoader *d, int is_rater, const LMConfig *cfg, const char *path) {
    const char *what = is_rater ? "rater" : "LM", *sep = path ? ": " : "";
    if (!path) path = "";
    if (path[0]) {   /* a checkpoint that records its training shards' tokenizer: another
                      * tokenizer is the cause a vocabulary mismatch would only hint at */
        TokenizerTag tag = data_tokenizer_tag(d);
        if (checkpoint_check_tokenizer(path, is_rater ? "--rater" : "--lm", &tag, data_shard_path(d, 0)))
            return -1;
    }
    if (data_vocab_size(d) > (uint32_t)cfg->vocab)
        return dr_seterr("%s%sthe %s's vocabulary (%d ids) is smaller than the shards' (%u ids)",
                         path, sep, what, cfg->vocab, data_vocab_size(d));
    int positions = is_rater ? data_options(d)->seq_len_rater : data_options(d)->seq_len;
    if (positions < 1 || positions > cfg->ctx)
        return dr_seterr("%s%sthe %s has %d positions, data.seq_len%s is %d: score with the "
                         "config it was trained with", path, sep, what, cfg->ctx,
                         is_rater ? "_rater" : "", positions);
    return 0;
}

int score_with_rater(const Backend *be, DataLoader *d, const RaterConfig *rc, const real *phi,
                     int batch, FILE *out, ScoreStats *stats) {
    if (score_check_model(d, 1, rc, NULL)) return -1;
    return score_all(be, d, SCORE_RATER, rc, phi, batch, out, stats);
}

int score_with_lm(const Backend *be, DataLoader *d, const LMConfig *lc, const real *params,
                  int batch, FILE *out, ScoreStats *stats) {
    if (score_check_model(d, 0, lc, NULL)) return -1;
    return score_all(be, d, SCORE_LM, lc, params, batch, out, stats);
}
