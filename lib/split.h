/* split.h — dr-split's logic: hash-based disjoint splits of documents (DESIGN §2.3).
 *
 * Bucket of a document: h = xxh64(doc id as 8 little-endian bytes, seed),
 * u = (h >> 11) / 2^53 in [0, 1):
 *     u < val                  -> val
 *     u < val + train_b        -> train_b
 *     otherwise                -> train_a
 * With val_sources, only documents of those sources can be in val, and only when no
 * kept copy of the same id is of another source; any other document with u < val goes
 * to train_b or train_a in the train_b : train_a proportion (u / val compared with
 * train_b / (1 − val)). So val holds about `val` of the eligible documents. The bucket is a function of the id
 * (and of the set of inputs, through eligibility): copies of one document always land
 * in the same split, whatever their source, shard or order.
 *
 * Canonical order: input shards sorted by their content (drs_content_key), documents
 * in file order. Output shards hold the documents of each split in that order, so the
 * same set of inputs gives the same bytes whatever their order or names on the
 * command line. --dedup keeps the first copy of each id in that order.
 * Output: DIR/<split>/<split>-NNNNN.drs, a new shard once one holds shard_bytes of
 * tokens (uncompressed); DIR/manifest.tsv (paths relative to DIR); the manifest with
 * paths under DIR on the given stream. Shards are written to DIR/.dr-split.<pid>/ (as
 * <split>-NNNNN.drs) and moved into place only when all are complete (then
 * DIR/<split>/<split>-NNNNN.drs of an earlier run that are not overwritten are removed),
 * so a failed or interrupted run leaves an earlier run's output as it was, no staging
 * directory, and no DIR when the run made it. Whatever the run writes is registered for
 * removal as it appears, so this holds for an interruption by the handlers of
 * dr_install_cleanup_signals (check.h) at any moment too; the move into place and the
 * writing of DIR/manifest.tsv are held against signals (dr_signals_hold): DIR is all
 * old or all new.
 * Output blocks end where drs_writer_add would end them (block_bytes), and each is
 * compressed on its own (ZSTD_compressCCtx at zstd_level), by whichever thread: the
 * bytes are the same with any thread count.
 */
#ifndef DR_SPLIT_H
#define DR_SPLIT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "inputs.h"

enum { SPLIT_TRAIN_A = 0, SPLIT_VAL = 1, SPLIT_TRAIN_B = 2, SPLIT_COUNT = 3 };

typedef struct {
    double val;                 /* fraction of (eligible) documents in val, default 0.1 */
    double train_b;             /* fraction in train_b, default 0 */
    uint64_t seed;
    char **val_sources;         /* NULL or n_val_sources names: val restricted to them */
    char **val_source_from;     /* per name: NULL (--val-sources) or "FILE:LINE" (--val-sources-file) */
    int n_val_sources;
    int dedup;                  /* keep one copy of each document id */
    uint64_t shard_bytes;       /* start a new output shard beyond this size */
    size_t block_bytes;         /* uncompressed bytes per output block (DRS_BLOCK_BYTES) */
    int zstd_level;
    int threads;                /* threads in all: 1 compresses on the calling thread, N > 1
                                 * adds N - 1 workers; the bytes are the same either way */
    const volatile sig_atomic_t *stop;   /* NULL, or a flag (set by another thread, say):
                                 * once it is non-zero split_run stops at the next block,
                                 * removes what it wrote and returns -1 ("interrupted");
                                 * dr-split leaves signals to dr_install_cleanup_signals */
    const char *out_dir;
} SplitOptions;

typedef struct {
    uint64_t in_shards, in_docs, in_tokens;
    uint64_t dup_docs, dup_tokens;            /* dropped by dedup */
    uint64_t docs[SPLIT_COUNT], tokens[SPLIT_COUNT], shards[SPLIT_COUNT];
} SplitStats;

void split_options_default(SplitOptions *o);
const char *split_name(int split);
/* The bucket of one document id (see above); eligible = may be in val. */
int split_bucket(uint64_t doc_id, uint64_t seed, double val, double train_b, int eligible);
/* Parses "a,b,c" into o->val_sources (freed by split_options_free); -1 + dr_seterr on
 * an empty list or an empty name ("", "a,,b", "a,"): a script's empty variable must not
 * silently mean "every source". */
int split_set_val_sources(SplitOptions *o, const char *comma_list);
/* Adds the source names of a file, one per line (a trailing CR dropped, blank lines
 * skipped; a name may hold commas and spaces): for lists too long for one argument. */
int split_add_val_sources_file(SplitOptions *o, const char *path);
void split_options_free(SplitOptions *o);

/* Runs the split of the inputs; writes the manifest to manifest_out (may be NULL).
 * -1 + dr_seterr on bad options, unreadable/corrupt/mixed-tokenizer inputs or a write
 * failure; shards already renamed into place then are complete but the manifest is not
 * written. */
int split_run(const ShardList *inputs, const SplitOptions *opt, FILE *manifest_out, SplitStats *stats);

#endif
