/* filter.h — choosing which examples to keep from their scores, and writing them out
 * as new shards (dr-filter). Policies (higher score = better unless inverted):
 *
 *  FILTER_TOP         keep the round(keep·N) highest-scored examples (global top fraction)
 *  FILTER_PER_BATCH   within each run of `batch` consecutive examples (shard order) keep the
 *                     top ceil(keep·b) — the seed's online bottom-K rule, applied offline
 *  FILTER_CDF         keep example i with probability q_i^((1−keep)/keep), q_i = (N − r_i)/N,
 *                     r_i its 0-based rank (best first); keep = 0.5 gives probability = q_i,
 *                     the DataRater paper's batch-free variant; E[kept] ≈ keep·N; seeded
 *  FILTER_MIDDLE      keep ranks ⌊(N−K)/2⌋ … +K−1, K = round(keep·N): both tails dropped
 *                     equally, an odd one from the worst end (the paper's perplexity filter)
 *  FILTER_RANDOM      keep round(keep·N) examples by a seeded partial Fisher–Yates shuffle
 *  FILTER_MIN_SCORE   keep every example whose score is ≥ min_score (inverted: < min_score,
 *                     exactly what the plain run drops); decided per example, so runs over
 *                     parts of a corpus keep together what one run over all of it keeps
 * The units are the examples, or with FilterOptions.documents the documents that have
 * examples, each scored by an aggregate of its examples' scores (filter_documents) and
 * written whole. Ties are broken by unit order (the earlier ranks higher), so every policy is
 * deterministic. `invert` negates the scores first (keeps the worst), for sanity checks.
 * docs/deploy.md ("The selection, exactly") specifies every rule, the random numbers
 * included, for other implementations to reproduce bit for bit.
 */
#ifndef DR_FILTER_H
#define DR_FILTER_H

#include <stdint.h>
#include "data.h"

enum filter_policy { FILTER_TOP, FILTER_PER_BATCH, FILTER_CDF, FILTER_MIDDLE, FILTER_RANDOM,
                     FILTER_MIN_SCORE };

typedef struct {
    int policy;         /* enum filter_policy */
    double keep;        /* fraction in (0, 1] */
    int batch;          /* FILTER_PER_BATCH */
    double min_score;   /* FILTER_MIN_SCORE */
    int invert;
    int documents;      /* -1: the units are examples; else enum filter_doc_score (summary text) */
    uint64_t seed;
    int progress;       /* 1: progress on stderr while selecting (progress.h; dr-filter) */
} FilterOptions;

/* keep_mask[i] = 1 for the kept examples among n with the given scores. With
 * o->progress, a "select" bar (examples decided; a sort shows none until it ends),
 * cleared when done. */
void filter_select(const FilterOptions *o, const double *scores, uint64_t n, uint8_t *keep_mask);

/* Documents as the units (dr-filter --documents AGG): those with at least one example,
 * in shard order, each scored by AGG over its examples' scores s_w with their token
 * counts n_w (the windows' lengths): mean = Σ n_w·s_w / Σ n_w (summed in window order, in
 * double), min, max, or first (its first example's score). */
enum filter_doc_score { FILTER_DOC_MEAN, FILTER_DOC_MIN, FILTER_DOC_MAX, FILTER_DOC_FIRST };
int filter_doc_score_parse(const char *name);   /* enum filter_doc_score, or -1 */
const char *filter_doc_score_name(int how);
typedef struct {
    uint64_t n;
    uint64_t *first_example;   /* [n] its first example (data_example gives shard and doc) */
    double *score;             /* [n] */
} FilterDocs;
void filter_documents(const DataLoader *d, const double *example_scores, int how, FilterDocs *docs);
void filter_docs_free(FilterDocs *docs);

/* Where a selection cuts the scores: the extremes of the kept and of the dropped ones. */
typedef struct {
    uint64_t kept, dropped;
    double lowest_kept, highest_kept, lowest_dropped, highest_dropped;   /* valid when counted */
} FilterCut;
void filter_cut(const double *scores, const uint8_t *keep_mask, uint64_t n, FilterCut *cut);

typedef struct {
    uint64_t units, tokens;                 /* in the input: examples (tokens: window
                                               lengths) or documents (their tokens) */
    uint64_t kept_units, kept_tokens;
    unsigned stale_removed;                 /* shards of an earlier run removed */
} FilterSummary;

/* Writes the kept units (docs NULL: the examples of d; else docs' documents), in shard order, to shards "<dir>/<prefix>-NNNNN.drs" of at
 * most shard_bytes each (dir is created, with its parents); each kept example becomes
 * one document (id = xxh64 of the original document id and window index, source kept),
 * so a loader with the same seq_len forms exactly that example again; a kept document is
 * copied whole (its id, source and tokens). Prints each
 * shard's path on `paths`. Higher-numbered "<prefix>-NNNNN.drs" left in dir by an
 * earlier run are removed, so dir holds this output only. -1 + dr_seterr; no partial
 * shard is left behind. No example kept is an error unless allow_empty (then no shard is
 * written, and an earlier run's are removed). Progress on stderr ("write", kept examples written), cleared
 * when done. */
int filter_write(DataLoader *d, const FilterDocs *docs, const uint8_t *keep_mask, const char *dir, const char *prefix,
                 uint64_t shard_bytes, int allow_empty, FILE *paths, FilterSummary *summary);

/* Summary on f: examples and tokens kept; where the scores were cut (the lowest kept and
 * highest dropped score, or with o->invert the highest kept and lowest dropped), with the
 * --min-score that keeps the same examples when there is one; then one line per source
 * (kept/total). */
void filter_print_summary(const DataLoader *d, const FilterDocs *docs, const uint8_t *keep_mask,
                          const FilterOptions *o, const FilterCut *cut, const FilterSummary *sum, FILE *f);

#endif
