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
 * Ties are broken by example order (the earlier ranks higher), so every policy is
 * deterministic. `invert` negates the scores first (keeps the worst), for sanity checks.
 * docs/deploy.md ("The selection, exactly") specifies every rule, the random numbers
 * included, for other implementations to reproduce bit for bit.
 */
#ifndef DR_FILTER_H
#define DR_FILTER_H

#include <stdint.h>
#include "data.h"

enum filter_policy { FILTER_TOP, FILTER_PER_BATCH, FILTER_CDF, FILTER_MIDDLE, FILTER_RANDOM };

typedef struct {
    int policy;         /* enum filter_policy */
    double keep;        /* fraction in (0, 1] */
    int batch;          /* FILTER_PER_BATCH */
    int invert;
    uint64_t seed;
    int progress;       /* 1: progress on stderr while selecting (progress.h; dr-filter) */
} FilterOptions;

/* keep_mask[i] = 1 for the kept examples among n with the given scores. With
 * o->progress, a "select" bar (examples decided; a sort shows none until it ends),
 * cleared when done. */
void filter_select(const FilterOptions *o, const double *scores, uint64_t n, uint8_t *keep_mask);

typedef struct {
    uint64_t examples, tokens;              /* in the input (tokens: window lengths) */
    uint64_t kept_examples, kept_tokens;
    unsigned stale_removed;                 /* shards of an earlier run removed */
} FilterSummary;

/* Writes the kept examples, in shard order, to shards "<dir>/<prefix>-NNNNN.drs" of at
 * most shard_bytes each (dir is created, with its parents); each kept example becomes
 * one document (id = xxh64 of the original document id and window index, source kept),
 * so a loader with the same seq_len forms exactly that example again. Prints each
 * shard's path on `paths`. Higher-numbered "<prefix>-NNNNN.drs" left in dir by an
 * earlier run are removed, so dir holds this output only. -1 + dr_seterr; no partial
 * shard is left behind. Progress on stderr ("write", kept examples written), cleared
 * when done. */
int filter_write(DataLoader *d, const uint8_t *keep_mask, const char *dir, const char *prefix,
                 uint64_t shard_bytes, FILE *paths, FilterSummary *summary);

/* Summary on f: examples and tokens kept, then one line per source (kept/total). */
void filter_print_summary(const DataLoader *d, const uint8_t *keep_mask,
                          const FilterSummary *sum, FILE *f);

#endif
