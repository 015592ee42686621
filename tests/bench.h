/* bench.h — what the benchmarks (tests/bench/ and tests/cuda/bench_cuda.c) share: the
 * median of repeated timings, and fixed random batches of a meta-step's shapes, the same
 * numbers in every run (one seeded stream per process). Header-only, like test.h. */
#ifndef DR_BENCH_H
#define DR_BENCH_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data.h"
#include "meta.h"

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
/* median of t[0..n) (sorts t) */
static inline double bench_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* a uniform integer in [0, n): splitmix64 over one process-wide stream seeded 7 */
static inline uint32_t bench_rnd(uint32_t n) {
    static uint64_t state = 7;
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)((z ^ (z >> 31)) % n);
}

/* B full-length examples of T random tokens (and TR rater tokens) over a vocabulary of V */
static inline void bench_batch_new(DataBatch *b, int B, int T, int TR, int V) {
    memset(b, 0, sizeof *b);
    b->B = b->capacity = B;
    b->T = T;
    b->T_rater = TR;
    b->inputs = xcalloc((size_t)B * T, sizeof(int32_t));
    b->targets = xcalloc((size_t)B * T, sizeof(int32_t));
    b->n_valid = xcalloc((size_t)B, sizeof(int32_t));
    b->rater_tokens = xcalloc((size_t)B * TR, sizeof(int32_t));
    b->rater_valid = xcalloc((size_t)B, sizeof(int32_t));
    for (int i = 0; i < B; i++) {
        for (int t = 0; t < T; t++) {
            b->inputs[i * T + t] = (int32_t)bench_rnd((uint32_t)V);
            b->targets[i * T + t] = (int32_t)bench_rnd((uint32_t)V);
        }
        for (int t = 0; t < TR; t++) b->rater_tokens[i * TR + t] = (int32_t)bench_rnd((uint32_t)V);
        b->n_valid[i] = T;
        b->rater_valid[i] = TR;
    }
}

static inline void bench_batch_free(DataBatch *b) {
    free(b->inputs); free(b->targets); free(b->n_valid); free(b->rater_tokens); free(b->rater_valid);
}

/* n_train Train_A and n_val Val batches of the meta-step's shapes, served to meta_member_step
 * through MetaBatches { .train = bench_fixed_train, .val = bench_fixed_val, .ctx = &fixed } */
typedef struct {
    DataBatch *train, *val;
    int n_train, n_val;
} BenchFixed;

static inline void bench_fixed_new(BenchFixed *f, const MetaSpec *s, int n_train, int n_val) {
    f->n_train = n_train;
    f->n_val = n_val;
    f->train = xcalloc((size_t)n_train, sizeof *f->train);
    f->val = xcalloc((size_t)(n_val > 0 ? n_val : 1), sizeof *f->val);
    for (int t = 0; t < n_train; t++)
        bench_batch_new(&f->train[t], s->batch, s->seq_len, s->seq_len_rater, s->lm.vocab);
    for (int j = 0; j < n_val; j++)
        bench_batch_new(&f->val[j], s->batch, s->seq_len, s->seq_len_rater, s->lm.vocab);
}

static inline void bench_fixed_free(BenchFixed *f) {
    for (int t = 0; t < f->n_train; t++) bench_batch_free(&f->train[t]);
    for (int j = 0; j < f->n_val; j++) bench_batch_free(&f->val[j]);
    free(f->train);
    free(f->val);
}

static inline const DataBatch *bench_fixed_train(void *ctx, int t) {
    BenchFixed *f = ctx;
    return &f->train[t % f->n_train];
}
static inline const DataBatch *bench_fixed_val(void *ctx, int j) { return &((BenchFixed *)ctx)->val[j]; }

#endif
