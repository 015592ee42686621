/* score.h — scoring every example of a set of shards (dr-score): with a frozen rater
 * (score = its logit z) or with an LM (score = the example's mean token loss, the
 * perplexity-filter baseline). Rows go out in shard order, after the header line.
 *
 * Threads: on the CPU backend the batches, not the ops, are spread over the OpenMP
 * threads (omp_get_max_threads() of the caller): each thread runs whole batches with
 * its own activations and single-threaded ops. So a batch is computed the same way
 * whatever the thread count, and the output is the same bytes for 1, 2 or 16 threads;
 * for the small models of scoring this is also the faster split. What may change the
 * last bits of a score is the batch size: BLAS kernels block GEMM rows, so the
 * arithmetic of an example depends on its slot in the batch. --batch is part of the
 * recipe (default data.batch_size). Batches are cut shard by shard (the last batch of a
 * shard may be short), so a shard's rows do not depend on the other shards scored with
 * it: per-shard runs concatenate to the single run, byte for byte.
 * Never writes anything but the header and whole rows to `out`. */
#ifndef DR_SCORE_H
#define DR_SCORE_H

#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "data.h"
#include "lm.h"
#include "rater.h"

typedef struct {
    uint64_t examples;   /* rows written */
    uint64_t positions;  /* model positions computed (padding included) */
    double flops;        /* forward FLOPs spent (train.h's formulas) */
    double seconds;
    int threads;         /* batches in flight at once */
} ScoreStats;

/* Before the data is opened: the token buffers of one batch (batch × data.seq_len inputs
 * and targets) must fit this machine's RAM + swap; -1 + dr_seterr naming data.batch_size /
 * --batch and data.seq_len otherwise (not a failed calloc naming data.c). */
int score_check_memory(long batch, int seq_len);

/* phi / params: HOST parameter buffers (copied to the backend here). Writes the header
 * and one line per example to out; fills *stats (may be NULL). -1 + dr_seterr on a
 * read or write error, or a model that does not fit the data. */
int score_with_rater(const Backend *be, DataLoader *d, const RaterConfig *rc, const real *phi,
                     int batch, FILE *out, ScoreStats *stats);
int score_with_lm(const Backend *be, DataLoader *d, const LMConfig *lc, const real *params,
                  int batch, FILE *out, ScoreStats *stats);
/* Whether the model (a rater when is_rater, else an LM) fits d's data: its vocabulary
 * holds the shards' ids and its positions the windows it will see (rater:
 * data.seq_len_rater, LM: data.seq_len). -1 + dr_seterr("path: …") otherwise (path: the
 * file the model came from, or NULL). score_with_* run it (without a path) first. */
int score_check_model(const DataLoader *d, int is_rater, const LMConfig *cfg, const char *path);

/* The rater's logits z[0..n) of n examples (host tokens [n,T], valid [n]), in sub-batches
 * of `sub` examples. On the CPU backend with n_acts > 1 the sub-batches are spread over
 * n_acts threads, each run whole on one thread (acts[k]: thread k's activations, for sub
 * examples of T positions) with single-threaded ops; otherwise one after the other with
 * acts[0]. A sub-batch's composition does not depend on n_acts, so neither do the
 * bits. dr-train's online filtering scores its candidates with it. */
void score_rater_split(const Backend *be, const RaterConfig *rc, const real *phi,
                       RaterActs **acts, int n_acts, const int32_t *tokens,
                       const int32_t *valid, int n, int T, int sub, real *z);

#endif
