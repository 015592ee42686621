/* split.c — dr-split: plan from the shard indexes, then one streaming pass that reads
 * each kept document once and writes it once (rules in split.h).
 *
 * Pass 1 reads only the indexes: document ids, sources, each shard's content key. It
 * fixes the canonical order, the val eligibility of each id, the duplicates and the
 * split of every document. Pass 2 walks the shards in canonical order, decoding each
 * block once, and copies the documents into output blocks; a full output block is
 * queued, compressed by whichever thread is free (worker threads, or the calling
 * thread when it would otherwise wait) and appended to its shard in queue order by
 * the calling thread. Where a block ends depends only on the documents, and a block's
 * frame only on its bytes and the level, so the output never depends on the order of
 * the inputs, on timing or on the thread count.
 *
 * Everything the run writes is registered with check.h's cleanup as it appears (the
 * output directories it made, the staging directory, each shard's temporary file and
 * then its finished file in staging), so a failure (dr_die) or a signal at any moment
 * (dr_install_cleanup_signals) leaves none of it; moving the shards into place and
 * writing the manifest is held against signals.
 *
 * Progress on stderr (progress.h): pass 1 in shards ("index"), pass 2 in tokens routed
 * ("split", M tokens of the inputs, duplicates dropped included: the ETA follows the
 * bytes read); cleared at the end, where dr-split prints its summary.
 */
#include "split.h"
#include "json.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#define ZSTD_STATIC_LINKING_ONLY   /* ZSTD_initStaticCCtx, ZSTD_estimateCCtxSize* (in libzstd.so) */
#include <zstd.h>

#include "check.h"
#include "progress.h"
#include "shard.h"

enum { PLAN_DROP = 0xff };

static const char *const SPLIT_NAMES[SPLIT_COUNT] = {"train_a", "val", "train_b"};

const char *split_name(int split) { return split >= 0 && split < SPLIT_COUNT ? SPLIT_NAMES[split] : "?"; }

void split_options_default(SplitOptions *o) {
    *o = (SplitOptions){.val = 0.1, .train_b = 0.0, .seed = 0, .shard_bytes = 64ull << 20,
                        .block_bytes = DRS_BLOCK_BYTES, .zstd_level = DRS_ZSTD_LEVEL, .threads = 2};
}

static void add_val_source(SplitOptions *o, const char *p, size_t n, const char *file, size_t line) {
    o->val_sources = xrealloc(o->val_sources, (size_t)(o->n_val_sources + 1) * sizeof *o->val_sources);
    o->val_source_from = xrealloc(o->val_source_from, (size_t)(o->n_val_sources + 1) * sizeof *o->val_source_from);
    char *name = xmalloc(n + 1);
    memcpy(name, p, n);
    name[n] = '\0';
    char *from = NULL;
    if (file) {
        size_t len = strlen(file) + 24;
        from = xmalloc(len);
        snprintf(from, len, "%s:%zu", file, line);
    }
    o->val_source_from[o->n_val_sources] = from;
    o->val_sources[o->n_val_sources++] = name;
}

int split_set_val_sources(SplitOptions *o, const char *comma_list) {
    const char *p = comma_list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 0)
            return dr_seterr("--val-sources '%s': %s", comma_list,
                             comma_list[0] ? "an empty source name" : "an empty list of sources");
        add_val_source(o, p, n, NULL, 0);
        if (!comma) return 0;
        p = comma + 1;
    }
}

/* A --val-sources-file lists source names, one a line: a million of them are some tens
 * of MB. A larger file (/dev/zero, a corpus given by mistake) is refused, not held. */
#define VAL_SOURCES_FILE_MAX ((size_t)256 << 20)

int split_add_val_sources_file(SplitOptions *o, const char *path) {
    size_t len;
    char *text = dr_read_file(path, VAL_SOURCES_FILE_MAX, "a --val-sources-file", &len);
    if (!text) return -1;
    int before = o->n_val_sources, rc = 0;
    size_t line = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        const char *p = text + i, *nl = memchr(p, '\n', len - i);
        size_t n = nl ? (size_t)(nl - p) : len - i;
        i += n + 1;
        line++;
        if (n > 0 && p[n - 1] == '\r') n--;
        if (n == 0) continue;   /* blank lines */
        if (memchr(p, '\0', n) || memchr(p, '\t', n) || memchr(p, '\r', n))
            rc = dr_seterr("--val-sources-file %s:%zu: a source name holds a NUL, TAB or CR byte "
                           "(dr-tokenize writes those as '_')", path, line);
        else
            add_val_source(o, p, n, path, line);
    }
    if (rc == 0 && o->n_val_sources == before)
        rc = dr_seterr("--val-sources-file %s: no source names (one per line)", path);
    free(text);
    return rc;
}

void split_options_free(SplitOptions *o) {
    for (int i = 0; i < o->n_val_sources; i++) {
        free(o->val_sources[i]);
        free(o->val_source_from[i]);
    }
    free(o->val_sources);
    free(o->val_source_from);
    o->val_sources = NULL;
    o->val_source_from = NULL;
    o->n_val_sources = 0;
}

int split_bucket(uint64_t doc_id, uint64_t seed, double val, double train_b, int eligible) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(doc_id >> (8 * i));
    double u = (double)(XXH64(b, sizeof b, seed) >> 11) * 0x1.0p-53;
    if (u < val) {
        if (eligible) return SPLIT_VAL;
        /* not allowed in val: share its slot between train_b and train_a */
        return val < 1.0 && u / val < train_b / (1.0 - val) ? SPLIT_TRAIN_B : SPLIT_TRAIN_A;
    }
    return u < val + train_b ? SPLIT_TRAIN_B : SPLIT_TRAIN_A;
}

/* -1 + dr_seterr("interrupted") once the caller's stop flag is up. */
static int interrupted(const SplitOptions *o) {
    return o->stop && *o->stop ? dr_seterr("interrupted") : 0;
}

/* ---- pass 1: the plan ----------------------------------------------------------- */

typedef struct {
    const char *path;
    uint64_t key;        /* drs_content_key */
    uint64_t n_docs;
    uint64_t *ids;       /* [n_docs] */
    uint8_t *plan;       /* [n_docs]: first "of a val source", then the split or PLAN_DROP */
    char **sources;      /* [n_sources]: the shard's source names, alive as long as the plan */
    uint32_t n_sources;
} InputShard;

typedef struct {
    InputShard *shards;
    size_t n;
    uint32_t vocab;
    uint64_t fingerprint;
    char *spec;
    char **val_sorted;       /* --val-sources, sorted and unique (pointers into the options) */
    int n_val_sorted;
    uint8_t *val_found;      /* [n_val_sources]: some input document has that source */
} Plan;

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The index of source in the sorted --val-sources list (Plan.val_sorted), or -1:
 * O(log k) per source name, so that a long list costs no more than a short one. */
static long val_source_index(char *const *sorted, int n, const char *source) {
    char *const *hit = n ? bsearch(&source, sorted, (size_t)n, sizeof *sorted, cmp_str_ptr) : NULL;
    return hit ? (long)(hit - sorted) : -1;
}

static int scan_shard(Plan *p, InputShard *s, const SplitOptions *o, SplitStats *st) {
    DrsReader *r = drs_open(s->path);
    if (!r) return -1;
    if (p->spec == NULL) {
        p->vocab = drs_vocab_size(r);
        p->fingerprint = drs_fingerprint(r);
        p->spec = xstrdup(drs_tokenizer_spec(r));
    } else if (drs_fingerprint(r) != p->fingerprint || drs_vocab_size(r) != p->vocab) {
        dr_seterr("%s and %s were made by different tokenizers (\"%s\", fingerprint %016llx, vocab %u "
                  "vs \"%s\", fingerprint %016llx, vocab %u): refusing to mix them", p->shards[0].path,
                  s->path, p->spec, (unsigned long long)p->fingerprint, p->vocab, drs_tokenizer_spec(r),
                  (unsigned long long)drs_fingerprint(r), drs_vocab_size(r));
        drs_close(r);
        return -1;
    }
    s->key = drs_content_key(r);
    s->n_docs = drs_num_docs(r);
    s->ids = xmalloc(s->n_docs * sizeof *s->ids + 1);
    s->plan = xmalloc(s->n_docs + 1);
    s->n_sources = drs_num_sources(r);
    s->sources = xmalloc((s->n_sources + 1) * sizeof *s->sources);
    uint8_t *val_source = xcalloc(s->n_sources + 1, 1);
    for (uint32_t k = 0; k < s->n_sources; k++) {
        s->sources[k] = xstrdup(drs_source_name(r, k));
        long v = val_source_index(p->val_sorted, p->n_val_sorted, s->sources[k]);
        if (v >= 0) p->val_found[v] = 1;
        val_source[k] = o->n_val_sources == 0 || v >= 0;
    }
    for (uint64_t i = 0; i < s->n_docs; i++) {
        const DrsDoc *d = drs_doc(r, i);
        s->ids[i] = d->id;
        s->plan[i] = val_source[d->source];
    }
    free(val_source);
    st->in_docs += s->n_docs;
    st->in_tokens += drs_num_tokens(r);
    drs_close(r);
    return 0;
}

static int cmp_shard(const void *a, const void *b) {
    const InputShard *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return strcmp(x->path, y->path);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sorted ids of the documents that are not of a val source: those ids can not be
 * in val (a copy of them is of another source). Taken before --dedup drops copies, so
 * that val holds the same documents with and without it (docs/formats.md §3). */
static uint64_t *ids_outside_val_sources(const Plan *p, size_t *n_out) {
    size_t n = 0;
    for (size_t k = 0; k < p->n; k++)
        for (uint64_t i = 0; i < p->shards[k].n_docs; i++) n += p->shards[k].plan[i] == 0;
    uint64_t *ids = xmalloc(n * sizeof *ids + 1);
    n = 0;
    for (size_t k = 0; k < p->n; k++)
        for (uint64_t i = 0; i < p->shards[k].n_docs; i++)
            if (p->shards[k].plan[i] == 0) ids[n++] = p->shards[k].ids[i];
    qsort(ids, n, sizeof *ids, cmp_u64);
    *n_out = n;
    return ids;
}

/* Set of 64-bit ids: open addressing; 0 is kept in a flag of its own. */
typedef struct {
    uint64_t *slots;
    size_t mask;
    int has_zero;
} IdSet;

static void idset_init(IdSet *s, uint64_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    s->slots = xcalloc(cap, sizeof *s->slots);
    s->mask = cap - 1;
    s->has_zero = 0;
}

/* Adds id; returns 1 if it was already there. */
static int idset_add(IdSet *s, uint64_t id) {
    if (id == 0) {
        int had = s->has_zero;
        s->has_zero = 1;
        return had;
    }
    size_t h = (size_t)(id ^ (id >> 29)) & s->mask;   /* ids are hashes already */
    while (s->slots[h]) {
        if (s->slots[h] == id) return 1;
        h = (h + 1) & s->mask;
    }
    s->slots[h] = id;
    return 0;
}

/* Marks every copy of an id but the first (in canonical order) PLAN_DROP. */
static void drop_duplicates(Plan *p, uint64_t n_docs) {
    IdSet seen;
    idset_init(&seen, n_docs);
    for (size_t k = 0; k < p->n; k++)
        for (uint64_t i = 0; i < p->shards[k].n_docs; i++)
            if (idset_add(&seen, p->shards[k].ids[i])) p->shards[k].plan[i] = PLAN_DROP;
    free(seen.slots);
}

static void assign_splits(Plan *p, const SplitOptions *o, SplitStats *st) {
    size_t n_barred = 0;
    uint64_t *barred = o->n_val_sources ? ids_outside_val_sources(p, &n_barred) : NULL;
    if (o->dedup) drop_duplicates(p, st->in_docs);
    for (size_t k = 0; k < p->n; k++) {
        InputShard *s = &p->shards[k];
        for (uint64_t i = 0; i < s->n_docs; i++) {
            if (s->plan[i] == PLAN_DROP) continue;
            uint64_t id = s->ids[i];
            int eligible = !barred || !bsearch(&id, barred, n_barred, sizeof id, cmp_u64);
            s->plan[i] = (uint8_t)split_bucket(id, o->seed, o->val, o->train_b, eligible);
        }
    }
    free(barred);
}

static void plan_free(Plan *p) {
    for (size_t k = 0; k < p->n; k++) {
        free(p->shards[k].ids);
        free(p->shards[k].plan);
        for (uint32_t i = 0; i < p->shards[k].n_sources; i++) free(p->shards[k].sources[i]);
        free(p->shards[k].sources);
    }
    free(p->shards);
    free(p->spec);
    free(p->val_sorted);
    free(p->val_found);
}

/* ---- pass 2: output blocks and the threads that compress them ------------------- */

/* An output block: filled by the calling thread, then queued, compressed (by any
 * thread) and appended to shard `shard` of split `split` by the calling thread. */
enum { BLOCK_FREE, BLOCK_FILLING, BLOCK_QUEUED, BLOCK_RUNNING, BLOCK_DONE };

typedef struct {
    int state;
    int split, shard;
    uint64_t seq;                     /* its place among the split's blocks */
    unsigned char *raw, *frame;       /* in the run's mapping, or malloc'd once outgrown */
    size_t raw_len, raw_cap, frame_len, frame_cap;
    int raw_malloced, frame_malloced;
    uint64_t hash, frame_hash;       /* xxh64 of raw and of frame */
    DrsDoc *docs;                     /* id and length used */
    const char **sources;             /* into the plan's source names */
    size_t n_docs, cap_docs;
    char error[256];                  /* compression failure, if frame_len is 0 */
} OutBlock;

/* One output split: where its documents go next. */
typedef struct {
    OutBlock *filling;      /* NULL or the block being filled */
    int n_shards;           /* shards started so far (the last one is being filled) */
    uint64_t shard_docs, shard_tokens;
    DrsWriter *w;           /* the shard being written (calling thread only) */
    int w_shard;            /* its index, -1 if none */
    uint64_t n_blocks;      /* blocks begun */
    uint64_t n_written;     /* blocks appended to their shards, in order */
} Output;

/* A thread's zstd context: one on a fixed workspace in the run's mapping, for blocks
 * up to block_bytes, and one that allocates, made when a bigger block comes. Both give
 * the same frame (ZSTD_compressCCtx: the frame depends on the bytes and level only). */
typedef struct {
    ZSTD_CCtx *fixed, *grown;
} Compressor;

typedef struct {
    struct Pass2 *q;
    Compressor *c;
} WorkerArg;

/* The blocks, the queue of blocks waiting for a thread to compress them (a ring of slot
 * indices: [started, queued), first come first served) and the worker threads. A
 * compressed block is appended once the blocks before it in its split are: the order
 * within a split is fixed, the order across splits does not matter. */
typedef struct Pass2 {
    OutBlock *slots;
    int n_slots;
    int *ring;
    uint64_t queued, started;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t *workers;
    int n_workers, quit;
    int level;
    Compressor *compressors;   /* [0]: the calling thread's; [1 + t]: worker t's */
    int n_compressors;
    WorkerArg *worker_args;
    unsigned char *map;        /* the run's big buffers, one mapping (see map_buffers) */
    size_t map_len;
    /* the run */
    const Plan *p;
    const SplitOptions *o;
    const char *staging;
    uint32_t width;
    size_t block_bytes;
    Output outs[SPLIT_COUNT];
    Progress bar;              /* input tokens gone through (kept or dropped), in millions */
    uint64_t tokens_seen, docs_seen;
} Pass2;

static OutBlock *ring_at(Pass2 *q, uint64_t k) { return &q->slots[q->ring[k % (uint64_t)q->n_slots]]; }

/* Compresses b; a failure is left in b->error (frame_len 0). Any thread. */
static void compress_block(OutBlock *b, Compressor *c, int level) {
    size_t bound = ZSTD_compressBound(b->raw_len);
    if (bound > b->frame_cap) {
        if (b->frame_malloced) free(b->frame);
        b->frame = xmalloc(bound);
        b->frame_cap = bound;
        b->frame_malloced = 1;
    }
    size_t n = 0;
    if (c->fixed) n = ZSTD_compressCCtx(c->fixed, b->frame, b->frame_cap, b->raw, b->raw_len, level);
    if (!c->fixed || ZSTD_isError(n)) {   /* a workspace too small for this block: allocate */
        if (!c->grown) c->grown = ZSTD_createCCtx();
        CHECK(c->grown, "ZSTD_createCCtx failed");
        n = ZSTD_compressCCtx(c->grown, b->frame, b->frame_cap, b->raw, b->raw_len, level);
    }
    b->frame_len = 0;
    if (ZSTD_isError(n)) {
        snprintf(b->error, sizeof b->error, "zstd compression failed: %s", ZSTD_getErrorName(n));
        return;
    }
    b->frame_len = n;
    b->hash = XXH64(b->raw, b->raw_len, 0);
    b->frame_hash = XXH64(b->frame, n, 0);
}

static void *worker_main(void *arg) {
    Pass2 *q = ((WorkerArg *)arg)->q;
    Compressor *c = ((WorkerArg *)arg)->c;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->quit && q->started == q->queued) pthread_cond_wait(&q->work, &q->mu);
        if (q->quit) break;
        OutBlock *b = ring_at(q, q->started++);
        b->state = BLOCK_RUNNING;
        pthread_mutex_unlock(&q->mu);
        compress_block(b, c, q->level);
        pthread_mutex_lock(&q->mu);
        b->state = BLOCK_DONE;
        pthread_cond_broadcast(&q->done);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static char *shard_path(const char *dir, int split, int index) {
    size_t n = strlen(dir) + 64;
    char *p = xmalloc(n);
    snprintf(p, n, "%s%s%s/%s-%05d.drs", dir, dr_dir_sep(dir), SPLIT_NAMES[split], SPLIT_NAMES[split], index);
    return p;
}

/* A finished shard in the staging directory: DIR/.dr-split.<pid>/<split>-NNNNN.drs (one
 * directory, so that the handlers of dr_install_cleanup_signals can remove it: they
 * unlink the registered files, then rmdir the registered directories). */
static char *staged_path(const char *staging, int split, int index) {
    size_t n = strlen(staging) + 64;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s-%05d.drs", staging, SPLIT_NAMES[split], index);
    return p;
}

static int make_dir(const char *path) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
        return dr_seterr("%s: exists and is not a directory", path);
    }
    return dr_seterr("%s: cannot create directory: %s", path, strerror(errno));
}

static char *split_dir(const char *root, int split) { return dr_path_join(root, SPLIT_NAMES[split]); }

/* Closes the split's open shard (index, fsync, rename from its temporary name). Its
 * name in the staging directory is registered before the rename, so that whatever moment
 * a signal comes, the handler removes the shard: the finished shards stay registered
 * until publish moves them into place or discard_staging removes them. */
static int close_shard(Pass2 *q, int split) {
    Output *out = &q->outs[split];
    char *path = staged_path(q->staging, split, out->w_shard);
    dr_tmp_register(path);
    int rc = drs_writer_close(out->w);   /* on failure no file of it is left */
    out->w = NULL;
    if (rc < 0) dr_tmp_unregister(path);
    free(path);
    return rc;
}

/* Appends a compressed block to its shard in the staging directory, closing the
 * split's previous shard and opening the block's one when it is the first of it. */
static int append_block(Pass2 *q, const OutBlock *b) {
    Output *out = &q->outs[b->split];
    if (b->frame_len == 0) {
        char *path = staged_path(q->staging, b->split, b->shard);
        dr_seterr("%s: %s", path, b->error);
        free(path);
        return -1;
    }
    if (out->w_shard != b->shard) {
        if (out->w && close_shard(q, b->split) < 0) return -1;
        char *path = staged_path(q->staging, b->split, b->shard);
        out->w = drs_writer_open(path, q->p->vocab, q->p->fingerprint, q->p->spec);
        free(path);
        if (!out->w) return -1;
        out->w_shard = b->shard;
    }
    return drs_writer_add_block(out->w, b->frame, b->frame_len, b->frame_hash, b->raw_len, b->hash,
                                b->docs, b->sources, b->n_docs);
}

/* Appends every compressed block whose predecessors in its split are appended; the
 * number appended, or -1. */
static int write_ready(Pass2 *q) {
    int n = 0;
    for (;;) {
        OutBlock *b = NULL;
        pthread_mutex_lock(&q->mu);
        for (int i = 0; i < q->n_slots && !b; i++) {
            OutBlock *c = &q->slots[i];
            if (c->state == BLOCK_DONE && c->seq == q->outs[c->split].n_written) b = c;
        }
        pthread_mutex_unlock(&q->mu);
        if (!b) return n;
        int rc = append_block(q, b);
        pthread_mutex_lock(&q->mu);
        b->state = BLOCK_FREE;
        q->outs[b->split].n_written++;
        pthread_mutex_unlock(&q->mu);
        if (rc < 0) return -1;
        n++;
    }
}

/* One step towards emptying the queue: appends the blocks that are ready, or else
 * compresses the next waiting block on this thread, or else waits for a worker. */
static int make_progress(Pass2 *q) {
    int n = write_ready(q);
    if (n != 0) return n < 0 ? -1 : 0;
    pthread_mutex_lock(&q->mu);
    if (q->started < q->queued) {
        OutBlock *b = ring_at(q, q->started++);
        b->state = BLOCK_RUNNING;
        pthread_mutex_unlock(&q->mu);
        compress_block(b, &q->compressors[0], q->level);
        pthread_mutex_lock(&q->mu);
        b->state = BLOCK_DONE;
    } else {
        int waiting = 0;
        for (int i = 0; i < q->n_slots; i++) waiting |= q->slots[i].state == BLOCK_RUNNING;
        if (waiting) pthread_cond_wait(&q->done, &q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return 0;
}

/* 1 while a block is queued, being compressed or waiting to be appended. */
static int queue_busy(Pass2 *q) {
    int busy = 0;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < q->n_slots; i++) busy |= q->slots[i].state >= BLOCK_QUEUED;
    pthread_mutex_unlock(&q->mu);
    return busy;
}

/* Queues the split's block being filled, if any. Without workers it is compressed
 * and written at once. */
static int end_block(Pass2 *q, Output *out) {
    OutBlock *b = out->filling;
    if (!b) return 0;
    out->filling = NULL;
    pthread_mutex_lock(&q->mu);
    b->state = BLOCK_QUEUED;
    q->ring[q->queued++ % (uint64_t)q->n_slots] = (int)(b - q->slots);
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->mu);
    if (q->n_workers > 0) return write_ready(q) < 0 ? -1 : 0;
    while (queue_busy(q))
        if (make_progress(q) < 0) return -1;
    return 0;
}

/* A free block to fill. There are more blocks than splits, so while none is free
 * some are queued, and making progress on them frees one. */
static OutBlock *take_free_block(Pass2 *q, Output *out, int split) {
    for (;;) {
        OutBlock *b = NULL;
        pthread_mutex_lock(&q->mu);
        for (int i = 0; i < q->n_slots && !b; i++)
            if (q->slots[i].state == BLOCK_FREE) b = &q->slots[i];
        if (b) b->state = BLOCK_FILLING;
        pthread_mutex_unlock(&q->mu);
        if (b) {
            b->split = split;
            b->shard = out->n_shards - 1;
            b->seq = out->n_blocks++;
            b->raw_len = 0;
            b->n_docs = 0;
            return b;
        }
        if (make_progress(q) < 0) return NULL;
    }
}

/* Appends document d (its bytes, its source's name) to its split, with the rules of
 * drs_writer_add: a new block when the document would overflow the one being filled,
 * a new shard once the current one holds shard_bytes of tokens. */
static int route_doc(Pass2 *q, int split, const DrsDoc *d, const unsigned char *bytes, const char *source) {
    Output *out = &q->outs[split];
    size_t n = (size_t)d->length * q->width;
    if (out->shard_docs > 0 && out->shard_tokens * q->width >= q->o->shard_bytes) {
        if (end_block(q, out) < 0) return -1;
        out->n_shards++;
        out->shard_docs = out->shard_tokens = 0;
    }
    if (out->n_shards == 0) out->n_shards = 1;
    if (out->filling && out->filling->raw_len > 0 && out->filling->raw_len + n > q->block_bytes)
        if (end_block(q, out) < 0) return -1;
    if (!out->filling && !(out->filling = take_free_block(q, out, split))) return -1;
    OutBlock *b = out->filling;
    if (b->raw_len + n > b->raw_cap) {   /* a document bigger than a block */
        size_t cap = b->raw_cap ? b->raw_cap : q->block_bytes;
        while (cap < b->raw_len + n) cap *= 2;
        unsigned char *raw = b->raw_malloced ? xrealloc(b->raw, cap) : xmalloc(cap);
        if (!b->raw_malloced) memcpy(raw, b->raw, b->raw_len);
        b->raw = raw;
        b->raw_cap = cap;
        b->raw_malloced = 1;
    }
    if (b->n_docs == b->cap_docs) {
        b->cap_docs = b->cap_docs ? 2 * b->cap_docs : 1024;
        b->docs = xrealloc(b->docs, b->cap_docs * sizeof *b->docs);
        b->sources = xrealloc(b->sources, b->cap_docs * sizeof *b->sources);
    }
    memcpy(b->raw + b->raw_len, bytes, n);
    b->raw_len += n;
    b->docs[b->n_docs] = *d;
    b->sources[b->n_docs++] = source;
    out->shard_docs++;
    out->shard_tokens += d->length;
    if (b->raw_len >= q->block_bytes) return end_block(q, out);
    return 0;
}

/* Reads shard s block by block (a block none of whose documents is kept is not even
 * decoded) and routes its kept documents. */
static int stream_shard(Pass2 *q, const InputShard *s, SplitStats *st) {
    DrsReader *r = drs_open(s->path);
    if (!r) return -1;
    int rc = 0;
    if (drs_content_key(r) != s->key || drs_num_docs(r) != s->n_docs)
        rc = dr_seterr("%s: changed while dr-split was reading it", s->path);
    uint64_t i = 0;
    for (uint32_t blk = 0; rc == 0 && blk < drs_num_blocks(r); blk++) {
        uint64_t end = i, block_tokens = 0;
        int kept = 0;
        for (; end < s->n_docs && drs_doc(r, end)->block == blk; end++) {
            kept |= s->plan[end] != PLAN_DROP;
            block_tokens += drs_doc(r, end)->length;
        }
        uint64_t n_block_docs = end - i;
        const unsigned char *bytes = NULL;
        size_t n_bytes = 0;
        if ((rc = interrupted(q->o)) < 0) break;
        if (kept && !(bytes = drs_block_bytes(r, blk, &n_bytes))) rc = -1;
        for (; rc == 0 && i < end; i++) {
            const DrsDoc *d = drs_doc(r, i);
            int split = s->plan[i];
            if (split == PLAN_DROP) {
                st->dup_docs++;
                st->dup_tokens += d->length;
                continue;
            }
            rc = route_doc(q, split, d, bytes + (size_t)d->offset * q->width, s->sources[d->source]);
            st->docs[split]++;
            st->tokens[split] += d->length;
        }
        if (rc != 0) break;
        q->tokens_seen += block_tokens;
        q->docs_seen += n_block_docs;
        progress_set_extra(&q->bar, "%llu documents", (unsigned long long)q->docs_seen);
        progress_update(&q->bar, (double)q->tokens_seen / 1e6);
    }
    drs_close(r);
    return rc;
}

/* The run's big buffers (every block's raw bytes and frame, every thread's zstd
 * workspace) come from one anonymous mapping advised to use transparent huge pages:
 * one page fault per 2 MiB instead of one per 4 KiB. Page faults are dear on the
 * virtual machines this runs on (bench_split measured ~5-30 us each on the 2-core one,
 * thousands of them per run otherwise). Without the mapping, malloc. */
static unsigned char *map_buffers(size_t n, size_t *mapped) {
    const size_t huge = 2u << 20;
    size_t len = (n + huge - 1) / huge * huge + huge;   /* room to align to 2 MiB */
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return NULL;
    unsigned char *p = (unsigned char *)base;
    size_t skip = (huge - (uintptr_t)p % huge) % huge;
#ifdef MADV_HUGEPAGE
    madvise(p + skip, len - skip, MADV_HUGEPAGE);   /* a hint: no huge pages is fine too */
#endif
    *mapped = len;
    return p;   /* unmapped whole; buffers start at p + skip */
}

static size_t round_up64(size_t n) { return (n + 63) / 64 * 64; }

static void pass2_init(Pass2 *q, const Plan *p, const SplitOptions *o, const char *staging) {
    *q = (Pass2){.p = p, .o = o, .staging = staging, .level = o->zstd_level};
    q->width = p->vocab <= 65535 ? 2 : 4;
    q->block_bytes = o->block_bytes ? o->block_bytes : DRS_BLOCK_BYTES;
    q->n_workers = o->threads > 1 ? o->threads - 1 : 0;
    /* one block per split being filled, and two for each thread to compress */
    q->n_slots = SPLIT_COUNT + 2 * (q->n_workers + 1);
    q->slots = xcalloc((size_t)q->n_slots, sizeof *q->slots);
    q->ring = xcalloc((size_t)q->n_slots, sizeof *q->ring);
    for (int s = 0; s < SPLIT_COUNT; s++) q->outs[s].w_shard = -1;

    size_t raw = round_up64(q->block_bytes), frame = round_up64(ZSTD_compressBound(q->block_bytes));
    size_t ws = ZSTD_estimateCCtxSize_usingCParams(ZSTD_getCParams(q->level, q->block_bytes, 0));
    size_t ws_any = ZSTD_estimateCCtxSize(q->level);
    ws = round_up64(ws > ws_any ? ws : ws_any);
    int n_threads = q->n_workers + 1;
    size_t need = (size_t)q->n_slots * (raw + frame) + (size_t)n_threads * ws;
    unsigned char *base = map_buffers(need, &q->map_len), *at = NULL;
    if (base) {
        q->map = base;
        at = base + ((2u << 20) - (uintptr_t)base % (2u << 20)) % (2u << 20);
    }
    for (int i = 0; i < q->n_slots; i++) {
        OutBlock *b = &q->slots[i];
        b->raw_cap = raw;
        b->frame_cap = frame;
        if (at) {
            b->raw = at;
            b->frame = at + raw;
            at += raw + frame;
        } else {
            b->raw = xmalloc(raw);
            b->frame = xmalloc(frame);
            b->raw_malloced = b->frame_malloced = 1;
        }
    }
    q->compressors = xcalloc((size_t)n_threads, sizeof *q->compressors);
    q->n_compressors = n_threads;
    for (int t = 0; t < n_threads; t++) {
        Compressor *c = &q->compressors[t];
        if (at) {
            c->fixed = ZSTD_initStaticCCtx(at, ws);
            at += ws;
        } else {
            c->grown = ZSTD_createCCtx();
            CHECK(c->grown, "ZSTD_createCCtx failed");
        }
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->done, NULL);
    q->workers = xcalloc((size_t)q->n_workers + 1, sizeof *q->workers);
    q->worker_args = xcalloc((size_t)q->n_workers + 1, sizeof *q->worker_args);
    for (int t = 0; t < q->n_workers; t++) {
        q->worker_args[t] = (WorkerArg){q, &q->compressors[1 + t]};
        if (pthread_create(&q->workers[t], NULL, worker_main, &q->worker_args[t]) != 0) {
            q->n_workers = t;   /* fewer workers: the same bytes, more work here */
            break;
        }
    }
}

/* Ends every split's last block and writes everything queued; then closes the shards. */
static int pass2_finish(Pass2 *q) {
    int rc = 0;
    for (int s = 0; rc == 0 && s < SPLIT_COUNT; s++) rc = end_block(q, &q->outs[s]);
    while (rc == 0 && queue_busy(q)) rc = make_progress(q);
    for (int s = 0; s < SPLIT_COUNT; s++) {
        Output *out = &q->outs[s];
        if (out->w && rc == 0) rc = close_shard(q, s);
        else if (out->w) drs_writer_abort(out->w);
        out->w = NULL;
    }
    return rc;
}

/* Stops the workers (abandoning what is queued) and frees everything. */
static void pass2_free(Pass2 *q) {
    pthread_mutex_lock(&q->mu);
    q->quit = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
    for (int t = 0; t < q->n_workers; t++) pthread_join(q->workers[t], NULL);
    for (int s = 0; s < SPLIT_COUNT; s++)
        if (q->outs[s].w) drs_writer_abort(q->outs[s].w);
    for (int i = 0; i < q->n_slots; i++) {
        OutBlock *b = &q->slots[i];
        if (b->raw_malloced) free(b->raw);
        if (b->frame_malloced) free(b->frame);
        free(b->docs);
        free(b->sources);
    }
    for (int t = 0; t < q->n_compressors; t++) ZSTD_freeCCtx(q->compressors[t].grown);   /* fixed ones live in the mapping */
    if (q->map) munmap(q->map, q->map_len);
    free(q->slots);
    free(q->ring);
    free(q->workers);
    free(q->worker_args);
    free(q->compressors);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->done);
}

/* Removes DIR/<split>/<split>-NNNNN.drs with NNNNN >= keep: leftovers of an earlier run. */
static void remove_stale(const char *out_dir, int split, int keep) {
    char *dir = split_dir(out_dir, split);
    DIR *d = opendir(dir);
    if (!d) { free(dir); return; }
    struct dirent *e;
    size_t prefix = strlen(SPLIT_NAMES[split]);
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name, *digits = name + prefix + 1;
        if (strlen(name) != prefix + 10 || strncmp(name, SPLIT_NAMES[split], prefix) != 0 ||
            name[prefix] != '-' || strcmp(digits + 5, ".drs") != 0 || strspn(digits, "0123456789") != 5)
            continue;
        int index = atoi(digits);
        if (index < keep) continue;
        char *path = shard_path(out_dir, split, index);
        unlink(path);
        free(path);
    }
    closedir(d);
    /* a split that is empty now has no directory, as in a fresh run (rmdir removes it
     * only when nothing else, e.g. a user's file, is in it) */
    if (keep == 0) rmdir(dir);
    free(dir);
}

/* ---- the manifest ---------------------------------------------------------------- */

/* dir as an absolute path: as given when it is one, else the working directory joined
 * to it (symbolic links kept as the user named them); NULL if the working directory is
 * unknown. */
static char *absolute_path(const char *dir) {
    if (dir[0] == '/') return xstrdup(dir);
    char *cwd = getcwd(NULL, 0);
    if (!cwd) return NULL;
    while (dir[0] == '.' && dir[1] == '/') dir += 2;
    if (!dir[0] || !strcmp(dir, ".")) return cwd;
    size_t n = strlen(cwd) + strlen(dir) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", cwd, dir);
    free(cwd);
    return p;
}

static void write_manifest(FILE *f, const char *prefix, const Plan *p, const SplitOptions *o,
                           const SplitStats *st) {
    fprintf(f, "# dr-split manifest\n");
    fprintf(f, "# hash: xxh64(doc id as 8 little-endian bytes, seed); u = (hash >> 11) / 2^53\n");
    fprintf(f, "# seed: %llu\n", (unsigned long long)o->seed);
    char val[JSON_NUMBER_MAX], train_b[JSON_NUMBER_MAX], train_a[JSON_NUMBER_MAX];
    fprintf(f, "# fractions: val %s train_b %s train_a %s "
               "(val if u < val, train_b if u < val + train_b, else train_a)\n",
            json_format_number(val, o->val), json_format_number(train_b, o->train_b),
            json_format_number(train_a, 1.0 - o->val - o->train_b));
    fprintf(f, "# val-sources: ");
    if (o->n_val_sources == 0) fprintf(f, "all\n");
    for (int i = 0; i < o->n_val_sources; i++)
        fprintf(f, "%s%s", o->val_sources[i], i + 1 < o->n_val_sources ? "," : "\n");
    fprintf(f, "# dedup: %s (%llu duplicate documents, %llu tokens dropped)\n", o->dedup ? "yes" : "no",
            (unsigned long long)st->dup_docs, (unsigned long long)st->dup_tokens);
    fprintf(f, "# tokenizer: ");
    if (!p->spec[0]) fputs("(none)", f);
    for (const char *c = p->spec; *c; c++)   /* a vocabulary path's newline must not end the comment */
        fputc(*c == '\n' || *c == '\r' ? '?' : *c, f);
    fprintf(f, " fingerprint %016llx vocab %u\n", (unsigned long long)p->fingerprint, p->vocab);
    fprintf(f, "# input: %llu shards, %llu documents, %llu tokens\n", (unsigned long long)st->in_shards,
            (unsigned long long)st->in_docs, (unsigned long long)st->in_tokens);
    for (int s = 0; s < SPLIT_COUNT; s++)
        fprintf(f, "# %s: %llu documents, %llu tokens, %llu shards\n", SPLIT_NAMES[s],
                (unsigned long long)st->docs[s], (unsigned long long)st->tokens[s],
                (unsigned long long)st->shards[s]);
    for (int s = 0; s < SPLIT_COUNT; s++)
        for (uint64_t k = 0; k < st->shards[s]; k++) {
            char *path = shard_path(prefix, s, (int)k);
            fprintf(f, "%s\t%s\n", SPLIT_NAMES[s], prefix[0] ? path : path + 1);
            free(path);
        }
}

/* DIR/manifest.tsv written and synced under its temporary name (*tmp, still
 * registered for removal); dr_atomic_rename puts it in place. */
static int prepare_manifest_file(const Plan *p, const SplitOptions *o, const SplitStats *st,
                                 char **path_out, char **tmp) {
    char *path = dr_path_join(o->out_dir, "manifest.tsv");
    FILE *f = dr_atomic_open(path, tmp);
    int rc = -1;
    if (f) {
        write_manifest(f, "", p, o, st);
        rc = dr_atomic_finish(f, *tmp, path);   /* on failure: *tmp removed and freed */
    }
    if (rc == 0) *path_out = path;
    else free(path);
    return rc;
}

/* ---- the run ---------------------------------------------------------------------- */

static int check_options(const SplitOptions *o) {
    if (!(o->val >= 0 && o->val <= 1)) return dr_seterr("--val %g: must be in [0, 1]", o->val);
    if (!(o->train_b >= 0 && o->train_b <= 1)) return dr_seterr("--train-b %g: must be in [0, 1]", o->train_b);
    if (o->val + o->train_b > 1) return dr_seterr("--val %g + --train-b %g exceed 1", o->val, o->train_b);
    if (o->shard_bytes == 0) return dr_seterr("--shard-size must be positive");
    if (!o->out_dir || !o->out_dir[0]) return dr_seterr("no output directory (-o DIR)");
    return 0;
}

/* Makes DIR/<split>/ for every split that has shards, before anything is moved: a
 * split's path that is a file (or cannot be made) must fail the run while DIR is still
 * all old. made[s] is set for the directories it created (removed again by
 * unmake_split_dirs when the run fails). */
static int make_split_dirs(const SplitStats *st, const char *out_dir, int made[SPLIT_COUNT]) {
    for (int s = 0; s < SPLIT_COUNT; s++) {
        made[s] = 0;
        if (st->shards[s] == 0) continue;
        char *dir = split_dir(out_dir, s);
        struct stat sb;
        int existed = stat(dir, &sb) == 0;
        int rc = make_dir(dir);
        made[s] = rc == 0 && !existed;
        free(dir);
        if (rc < 0) return -1;
    }
    return 0;
}

static void unmake_split_dirs(const char *out_dir, const int made[SPLIT_COUNT]) {
    for (int s = 0; s < SPLIT_COUNT; s++)
        if (made[s]) {
            char *dir = split_dir(out_dir, s);
            rmdir(dir);
            free(dir);
        }
}

/* Before the long pass: a DIR/<split> of a split that can get documents, or
 * DIR/manifest.tsv, that is not what it must be (a file where the split's directory
 * goes, a directory where the manifest goes) is refused now, not after every shard is
 * written (make_split_dirs still checks, for what changes in between). */
static int check_output_paths(const SplitOptions *o) {
    const char *out_dir = o->out_dir;
    int may_get[SPLIT_COUNT];
    may_get[SPLIT_VAL] = o->val > 0;
    may_get[SPLIT_TRAIN_B] = o->train_b > 0;
    may_get[SPLIT_TRAIN_A] = o->val + o->train_b < 1 || o->n_val_sources > 0;
    for (int s = 0; s < SPLIT_COUNT; s++) {
        if (!may_get[s]) continue;
        char *dir = split_dir(out_dir, s);
        struct stat sb;
        int bad = stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode);
        int rc = bad ? dr_seterr("%s: exists and is not a directory", dir) : 0;
        free(dir);
        if (rc < 0) return -1;
    }
    char *path = dr_path_join(out_dir, "manifest.tsv");
    int rc = dr_check_output_dir(path);
    free(path);
    return rc;
}

/* Moves the finished shards from staging into DIR/<split>/ (each unregistered once
 * moved: a handler has nothing to remove there any more) and removes what is left of an
 * earlier run there. The directories exist (make_split_dirs). */
static int publish(const char *staging, const SplitStats *st, const char *out_dir) {
    for (int s = 0; s < SPLIT_COUNT; s++) {
        for (int k = 0; k < (int)st->shards[s]; k++) {
            char *from = staged_path(staging, s, k), *to = shard_path(out_dir, s, k);
            int rc = rename(from, to) == 0 ? 0 : dr_seterr("%s: cannot move into place: %s", to, strerror(errno));
            if (rc == 0) dr_tmp_unregister(from);
            free(from);
            free(to);
            if (rc < 0) return -1;
        }
        remove_stale(out_dir, s, (int)st->shards[s]);
    }
    return 0;
}

/* Removes the staging directory and whatever is left in it (only dr-split writes
 * there: the finished shards, registered, and the temporary files of open ones, which
 * pass2_free has removed already). */
static void discard_staging(const char *staging) {
    DIR *d = opendir(staging);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char *path = dr_path_join(staging, e->d_name);
        unlink(path);
        dr_tmp_unregister(path);
        free(path);
    }
    if (d) closedir(d);
    rmdir(staging);
}

/* Writes every split into the staging directory; the shard counts go to st. */
static int stream_all(const Plan *p, const SplitOptions *o, const char *staging, SplitStats *st) {
    Pass2 q;
    pass2_init(&q, p, o, staging);
    progress_start(&q.bar, "split", "M tokens", (double)st->in_tokens / 1e6);
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < p->n; k++) rc = stream_shard(&q, &p->shards[k], st);
    if (rc == 0) rc = pass2_finish(&q);
    progress_abort(&q.bar);   /* dr-split's summary, or the error, replaces the bar */
    if (rc == 0) rc = interrupted(o);   /* last chance: from here on the run completes */
    for (int s = 0; s < SPLIT_COUNT; s++) st->shards[s] = (uint64_t)q.outs[s].n_shards;
    pass2_free(&q);   /* aborts the shards still open: their temporary files go */
    return rc;
}

/* The output: DIR (with its parents) and DIR/.dr-split.<pid>/ are made and registered
 * (dr_created_dirs_register), every split is written into the staging directory, and
 * only once all shards are complete are they moved into place and DIR/manifest.tsv
 * written, held against signals (dr_signals_hold): a failed or interrupted run leaves
 * DIR as it was (no staging directory, and no DIR when the run made it), a signal that
 * comes during the move takes effect once DIR is all new. */
static int write_output(const Plan *p, const SplitOptions *o, SplitStats *st) {
    char *created = NULL;
    if (dr_make_output_dirs(o->out_dir, &created) != 0) return -1;
    size_t n = strlen(o->out_dir) + 32;
    char *staging = xmalloc(n);
    snprintf(staging, n, "%s%s.dr-split.%ld", o->out_dir, dr_dir_sep(o->out_dir), (long)getpid());
    /* registered before it exists, and with DIR's new parents after it: a handler removes
     * the files, then the staging directory, then DIR when this run made it */
    dr_created_dirs_register(staging, created ? created : staging);
    int rc = check_output_paths(o);
    if (rc == 0) rc = make_dir(staging);
    if (rc == 0) rc = stream_all(p, o, staging, st);
    dr_signals_hold();   /* DIR all old or all new: the shards and the manifest together */
    /* everything that can fail (the split directories, the manifest's bytes) is done
     * before the first shard moves; then only renames are left */
    int made[SPLIT_COUNT] = {0};
    char *manifest = NULL, *manifest_tmp = NULL;
    if (rc == 0) rc = make_split_dirs(st, o->out_dir, made);
    if (rc == 0) rc = prepare_manifest_file(p, o, st, &manifest, &manifest_tmp);
    if (rc == 0) rc = publish(staging, st, o->out_dir);
    if (manifest) {
        if (rc == 0) rc = dr_atomic_rename(manifest_tmp, manifest);   /* frees manifest_tmp */
        else dr_atomic_abort(NULL, manifest_tmp);
        free(manifest);
    }
    if (rc != 0) unmake_split_dirs(o->out_dir, made);   /* only while empty */
    discard_staging(staging);
    if (rc != 0) dr_remove_created_dirs(o->out_dir, created);
    dr_created_dirs_forget();
    dr_signals_release();
    free(staging);
    free(created);
    return rc;
}

int split_run(const ShardList *inputs, const SplitOptions *o, FILE *manifest_out, SplitStats *st) {
    *st = (SplitStats){0};
    if (check_options(o) < 0) return -1;
    if (manifest_out) {   /* the printed manifest names DIR by its absolute path */
        char *abs_dir = absolute_path(o->out_dir);
        int bad = abs_dir && strpbrk(abs_dir, "\t\n\r") != NULL;
        if (bad) {   /* the message stays one line: the characters are shown escaped */
            size_t n = strlen(abs_dir), k = 0;
            char *shown = xmalloc(2 * n + 1);
            for (size_t i = 0; i < n; i++) {
                char c = abs_dir[i];
                if (c == '\t' || c == '\n' || c == '\r') {
                    shown[k++] = '\\';
                    shown[k++] = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
                } else {
                    shown[k++] = c;
                }
            }
            shown[k] = '\0';
            dr_seterr("-o: the absolute path \"%s\" holds a tab, newline or carriage return, "
                      "which a manifest line cannot hold", shown);
            free(shown);
        }
        free(abs_dir);
        if (bad) return -1;
    }
    if (inputs->n == 0) return dr_seterr("no input shards");
    if (shardlist_check_repeats(inputs, 1) < 0) return -1;   /* whatever the splits */
    Plan p = {0};
    p.n = inputs->n;
    p.shards = xcalloc(p.n, sizeof *p.shards);
    p.val_sorted = xmalloc(((size_t)o->n_val_sources + 1) * sizeof *p.val_sorted);
    p.val_found = xcalloc((size_t)o->n_val_sources + 1, 1);
    for (int v = 0; v < o->n_val_sources; v++) p.val_sorted[v] = o->val_sources[v];
    qsort(p.val_sorted, (size_t)o->n_val_sources, sizeof *p.val_sorted, cmp_str_ptr);
    for (int v = 0; v < o->n_val_sources; v++)   /* "a,a": one entry, one found flag */
        if (p.n_val_sorted == 0 || strcmp(p.val_sorted[p.n_val_sorted - 1], p.val_sorted[v]) != 0)
            p.val_sorted[p.n_val_sorted++] = p.val_sorted[v];
    int rc = 0;
    Progress bar;
    progress_start(&bar, "index", "shards", (double)p.n);
    for (size_t k = 0; rc == 0 && k < p.n; k++) {
        p.shards[k].path = inputs->items[k].path;
        rc = interrupted(o);
        if (rc == 0) rc = scan_shard(&p, &p.shards[k], o, st);
        if (rc != 0) break;
        progress_set_extra(&bar, "%llu documents", (unsigned long long)st->in_docs);
        progress_update(&bar, (double)(k + 1));
    }
    progress_abort(&bar);   /* what follows (pass 2's bar, or the error) replaces it */
    st->in_shards = p.n;
    if (rc == 0 && st->in_docs == 0) rc = dr_seterr("the %zu input shards hold no documents", p.n);
    for (int v = 0; rc == 0 && v < o->n_val_sources; v++) {   /* a typo would give no Val */
        if (!p.val_found[val_source_index(p.val_sorted, p.n_val_sorted, o->val_sources[v])])
            rc = dr_seterr("%s%s: no input document has the source \"%s\" (dr-cat --list shows the sources)",
                           o->val_source_from[v] ? "--val-sources-file " : "--val-sources",
                           o->val_source_from[v] ? o->val_source_from[v] : "", o->val_sources[v]);
    }
    if (rc == 0) {
        qsort(p.shards, p.n, sizeof *p.shards, cmp_shard);
        assign_splits(&p, o, st);
        rc = write_output(&p, o, st);
    }
    if (rc == 0 && manifest_out) {
        /* stdout's paths are absolute: a manifest piped on or saved anywhere names the
         * same shards (the out dir's manifest.tsv is relative to itself, so the tree can
         * move) */
        char *abs_dir = absolute_path(o->out_dir);
        write_manifest(manifest_out, abs_dir ? abs_dir : o->out_dir, &p, o, st);
        free(abs_dir);
        if (fflush(manifest_out) != 0 || ferror(manifest_out))
            rc = dr_seterr("the splits and %s/manifest.tsv are written, but printing the manifest "
                           "on stdout failed: %s", o->out_dir, strerror(errno));
    }
    plan_free(&p);
    return rc;
}
