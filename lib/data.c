/* data.c — the data loader (see data.h): example index, epoch orders, batches,
 * the read-ahead thread, position save/restore, dr-cat --examples.
 *
 * Must never: return tokens it has not verified (shard checksums are the reader's job,
 * token ids < vocab are checked here), depend on the thread count or the float type
 * for any order it produces, or let the read-ahead thread touch the main thread's
 * shard readers.
 */
#include "data.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "shard.h"

/* ---- RNG: splitmix64, integers only -------------------------------------------- */

typedef struct { uint64_t s; } DataRng;

static uint64_t rng_next(DataRng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in [0, n), n > 0, without modulo bias (rejects the low 2^64 mod n values). */
static uint64_t rng_below(DataRng *r, uint64_t n) {
    uint64_t threshold = (0 - n) % n, x;
    do x = rng_next(r); while (x < threshold);
    return x % n;
}

/* ---- per-thread reading state ---------------------------------------------------- */

#define READCTX_WARM 8

typedef struct {
    DrsReader **readers;     /* per shard, opened on first use (NULL = not yet) */
    int own_readers;         /* 1: opened here, closed in readctx_free */
    uint32_t *doc;           /* the last document read */
    size_t doc_cap;
    int64_t doc_shard;       /* -1 = none cached */
    uint32_t doc_index;
    /* the shards whose readers this context last decoded a block with (a ring, oldest
     * first): only these keep their decoded block, so memory does not grow with the
     * number of shards a run visits (one cached block per reader would) */
    uint32_t warm[READCTX_WARM];
    int n_warm, warm_next;
} ReadCtx;

/* Epoch orders: the two most recent, since a batch may straddle two epochs. */
typedef struct {
    uint32_t *order[2];
    uint64_t epoch[2];
    int have[2];
    int next_slot;
} OrderCache;

typedef struct {
    DataPosition pos;
    ReadCtx rc;
    OrderCache oc;
} Stream;

typedef struct {
    DataBatch *batch;
    int failed;
} Slot;

struct DataLoader {
    DataOptions opt;
    int min_len;                  /* max(min_tokens, 2) */
    size_t n_shards;
    char **paths;
    DrsReader **readers;          /* main thread's readers (also the metadata) */
    uint32_t vocab;
    uint64_t fingerprint;

    /* The example index, 4 bytes per example: example i is a window of the document
     * numbered ex_doc[i] across the shards (shard s holds the documents doc_base[s] …
     * doc_base[s + 1] − 1); a document's examples are consecutive, so the window is i minus
     * the document's first example, and the length follows from the document's. */
    uint32_t *ex_doc;             /* [n_ex], non-decreasing */
    uint64_t *doc_base;           /* [n_shards + 1] */
    uint64_t n_ex, n_target_tokens, n_docs;

    /* resident corpus: tokens of every document, doc_off[shard][doc] into tokens */
    uint32_t *tokens;
    uint64_t **doc_off;

    Stream main;                  /* synchronous stream + the main thread's reads */
    DataPosition pos;             /* consumer position (what data_next returns next) */
    int part_lo, part_hi;         /* data_next reads examples [lo, hi) of a batch; hi < 0: all */

    /* read-ahead */
    struct {
        int running, stop, failed;
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t can_produce, can_consume;
        Slot *slots;
        int n_slots, head, count;
        Stream stream;            /* the producer's own position, orders and readers */
        char err[1024];
    } pf;
};

/* ---- options ----------------------------------------------------------------------- */

void data_options_from_config(DataOptions *o, const Config *cfg) {
    memset(o, 0, sizeof *o);
    o->seq_len = cfg->data.seq_len;
    o->seq_len_rater = cfg->data.seq_len_rater;
    o->min_tokens = cfg->data.min_tokens;
    o->batch_size = cfg->data.batch_size;
    o->shuffle = cfg->data.shuffle;
    o->bucket_by_length = cfg->data.bucket_by_length;
    o->prefetch = cfg->data.prefetch;
    o->seed = cfg->seed;
    o->resident_max_tokens = (uint64_t)1 << 26;   /* 64 Mi tokens = 256 MiB */
}

/* ---- reading windows --------------------------------------------------------------- */

static void readctx_init(ReadCtx *rc, DrsReader **shared_readers, size_t n_shards) {
    memset(rc, 0, sizeof *rc);
    if (shared_readers) {
        rc->readers = shared_readers;
    } else {
        rc->readers = xcalloc(n_shards, sizeof *rc->readers);
        rc->own_readers = 1;
    }
    rc->doc_shard = -1;
}

static void readctx_free(ReadCtx *rc, size_t n_shards) {
    if (rc->own_readers && rc->readers) {
        for (size_t s = 0; s < n_shards; s++)
            if (rc->readers[s]) drs_close(rc->readers[s]);
        free(rc->readers);
    }
    free(rc->doc);
    memset(rc, 0, sizeof *rc);
    rc->doc_shard = -1;
}

static int check_tokens(const DataLoader *d, const uint32_t *tok, size_t n, uint32_t shard,
                        uint32_t doc) {
    for (size_t i = 0; i < n; i++)
        if (tok[i] >= d->vocab)
            return dr_seterr("%s: document %u: token id %u is outside the vocabulary (%u)",
                             d->paths[shard], doc, tok[i], d->vocab);
    return 0;
}

/* ---- the example index --------------------------------------------------------------- */

/* The shard of document g (numbered across the shards): doc_base[s] <= g < doc_base[s + 1]. */
static uint32_t shard_of_doc(const DataLoader *d, uint32_t g) {
    size_t lo = 0;   /* steps that depend on n_shards only, and a select: no branch on g to mispredict */
    for (size_t n = d->n_shards; n > 1; n -= n / 2)
        lo = d->doc_base[lo + n / 2] <= g ? lo + n / 2 : lo;
    return (uint32_t)lo;
}

/* The index entry of example i's document (i < n_ex), in its shard's reader. */
static const DrsDoc *example_doc(const DataLoader *d, uint64_t i, uint32_t *shard) {
    uint32_t g = d->ex_doc[i];
    *shard = shard_of_doc(d, g);
    return drs_doc(d->readers[*shard], g - d->doc_base[*shard]);
}

/* Shard, document, window and length of example i (< n_ex). */
static DataExample example_at(const DataLoader *d, uint64_t i) {
    uint32_t g = d->ex_doc[i], shard = shard_of_doc(d, g);
    /* the document's first example: most documents have one window, and a longer one's
     * are found by doubling steps back, then bisection */
    uint64_t first = i;
    if (i > 0 && d->ex_doc[i - 1] == g) {
        uint64_t step = 1, below = i - 1;   /* ex_doc[below] == g */
        while (below >= step && d->ex_doc[below - step] == g) {
            below -= step;
            step *= 2;
        }
        uint64_t a = below >= step ? below - step : 0;   /* a: ex_doc[a] != g, or a == 0 */
        if (d->ex_doc[a] == g) {
            below = a;
        } else {
            while (below - a > 1) {   /* ex_doc[a] != g == ex_doc[below] */
                uint64_t mid = a + (below - a) / 2;
                if (d->ex_doc[mid] == g) below = mid; else a = mid;
            }
        }
        first = below;
    }
    uint32_t doc = (uint32_t)(g - d->doc_base[shard]);
    uint64_t window = i - first, L = (uint64_t)d->opt.seq_len;
    uint64_t n = drs_doc(d->readers[shard], doc)->length, start = window * L;
    uint64_t len = n - start < L + 1 ? n - start : L + 1;
    return (DataExample){shard, doc, (uint32_t)window, (uint32_t)len};
}

/* Copies the window of example e into out[0 .. e->length). */
/* Loads the document of example e into rc->doc (once: the context keeps the last one),
 * through the context's own reader, its ids checked; `need`: the tokens it must have. */
static int load_document(const DataLoader *d, ReadCtx *rc, const DataExample *e, uint64_t need) {
    if (rc->doc_shard != (int64_t)e->shard || rc->doc_index != e->doc) {
        if (!rc->readers[e->shard]) {   /* the read-ahead thread's own reader: the same file */
            rc->readers[e->shard] = drs_reopen(d->readers[e->shard]);
            if (!rc->readers[e->shard]) return -1;
        }
        DrsReader *r = rc->readers[e->shard];
        const DrsDoc *doc = drs_doc(r, e->doc);
        if (!doc || doc->length < need)
            return dr_seterr("%s: document %u is not the one indexed (the file changed)",
                             d->paths[e->shard], e->doc);
        uint32_t len = doc->length;
        if (len > rc->doc_cap) {
            free(rc->doc);
            rc->doc_cap = len;
            rc->doc = xmalloc(len * sizeof *rc->doc);
        }
        rc->doc_shard = -1;
        if (drs_read_doc(r, e->doc, rc->doc) != 0) return -1;
        if (check_tokens(d, rc->doc, len, e->shard, e->doc) != 0) return -1;
        rc->doc_shard = e->shard;
        rc->doc_index = e->doc;
        int warm = 0;
        for (int k = 0; k < rc->n_warm && !warm; k++) warm = rc->warm[k] == e->shard;
        if (!warm) {
            if (rc->n_warm < READCTX_WARM) {
                rc->warm[rc->n_warm++] = e->shard;
            } else {   /* this context's own readers only: a reader is never shared */
                uint32_t old = rc->warm[rc->warm_next];
                if (rc->readers[old]) drs_drop_cache(rc->readers[old]);
                rc->warm[rc->warm_next] = e->shard;
                rc->warm_next = (rc->warm_next + 1) % READCTX_WARM;
            }
        }
    }
    return 0;
}

static int read_window(const DataLoader *d, ReadCtx *rc, const DataExample *e, uint32_t *out) {
    uint64_t start = (uint64_t)e->window * (uint64_t)d->opt.seq_len;
    if (d->tokens) {
        memcpy(out, d->tokens + d->doc_off[e->shard][e->doc] + start, e->length * sizeof *out);
        return 0;
    }
    if (load_document(d, rc, e, start + e->length) != 0) return -1;
    memcpy(out, rc->doc + start, e->length * sizeof *out);
    return 0;
}

/* ---- batches ------------------------------------------------------------------------- */

DataBatch *data_batch_new(const DataLoader *d) {
    const DataOptions *o = &d->opt;
    DataBatch *b = xcalloc(1, sizeof *b);
    size_t B = (size_t)o->batch_size;
    b->capacity = o->batch_size;
    b->inputs = xcalloc(B * (size_t)o->seq_len, sizeof *b->inputs);
    b->targets = xcalloc(B * (size_t)o->seq_len, sizeof *b->targets);
    b->n_valid = xcalloc(B, sizeof *b->n_valid);
    if (o->seq_len_rater > 0) {
        b->rater_tokens = xcalloc(B * (size_t)o->seq_len_rater, sizeof *b->rater_tokens);
        b->rater_valid = xcalloc(B, sizeof *b->rater_valid);
    }
    b->index = xcalloc(B, sizeof *b->index);
    return b;
}

void data_batch_free(DataBatch *b) {
    if (!b) return;
    free(b->inputs); free(b->targets); free(b->n_valid);
    free(b->rater_tokens); free(b->rater_valid); free(b->index);
    free(b);
}

static void batch_copy(DataBatch *dst, const DataBatch *src) {
    dst->B = src->B; dst->T = src->T; dst->T_rater = src->T_rater;
    dst->n_tokens = src->n_tokens;
    size_t B = (size_t)src->B;
    memcpy(dst->inputs, src->inputs, B * src->T * sizeof *dst->inputs);
    memcpy(dst->targets, src->targets, B * src->T * sizeof *dst->targets);
    memcpy(dst->n_valid, src->n_valid, B * sizeof *dst->n_valid);
    if (src->rater_tokens && dst->rater_tokens) {
        memcpy(dst->rater_tokens, src->rater_tokens, B * src->T_rater * sizeof *dst->rater_tokens);
        memcpy(dst->rater_valid, src->rater_valid, B * sizeof *dst->rater_valid);
    }
    memcpy(dst->index, src->index, B * sizeof *dst->index);
}

typedef struct { uint32_t shard, doc; int slot; } ReadOrder;
static int cmp_read_order(const void *a, const void *b) {
    const ReadOrder *x = a, *y = b;
    if (x->shard != y->shard) return x->shard < y->shard ? -1 : 1;
    if (x->doc != y->doc) return x->doc < y->doc ? -1 : 1;
    return (x->slot > y->slot) - (x->slot < y->slot);
}

/* Fills b with the n examples idx[0..n), reading (decoding) only the part [lo, hi) of
 * them, in (shard, doc) order so a document is decoded once per batch. Everything the
 * index knows is filled for all n examples: B, T, T_rater, n_valid, rater_valid, index,
 * n_tokens; the token rows outside the part are zeros. trim: T = the longest example's
 * targets (of all n, so every part of a batch has the whole batch's T). */
static int gather(const DataLoader *d, ReadCtx *rc, const uint64_t *idx, int n, int lo, int hi,
                  int trim, DataBatch *b) {
    const DataOptions *o = &d->opt;
    CHECK(n >= 0 && n <= b->capacity, "batch of %d examples exceeds capacity %d", n, b->capacity);
    CHECK(0 <= lo && lo <= hi && hi <= n, "part [%d, %d) of a batch of %d examples", lo, hi, n);
    int L = o->seq_len, R = o->seq_len_rater;
    int maxlen = 0;
    DataExample *ex = xmalloc((size_t)(n ? n : 1) * sizeof *ex);
    for (int i = 0; i < n; i++) {
        CHECK(idx[i] < d->n_ex, "example %" PRIu64 " out of range", idx[i]);
        ex[i] = example_at(d, idx[i]);
        int len = (int)ex[i].length;
        if (len > maxlen) maxlen = len;
    }
    int T = trim ? (maxlen > 1 ? maxlen - 1 : 1) : L;
    int TR = R > 0 ? (trim && maxlen < R ? maxlen : R) : 0;
    if (T < 1) T = 1;
    if (R > 0 && TR < 1) TR = 1;
    b->B = n; b->T = T; b->T_rater = TR; b->n_tokens = 0;
    for (int i = 0; i < n; i++) {   /* from the index: no reading */
        int len = (int)ex[i].length;
        b->n_valid[i] = len - 1;
        b->n_tokens += len - 1;
        if (R > 0) b->rater_valid[i] = len < R ? len : R;
        b->index[i] = idx[i];
    }
    if (lo > 0 || hi < n) {         /* rows outside the part: zeros, never stale tokens */
        int ranges[2][2] = {{0, lo}, {hi, n}};
        for (int r = 0; r < 2; r++) {
            size_t a = (size_t)ranges[r][0], c = (size_t)(ranges[r][1] - ranges[r][0]);
            memset(b->inputs + a * T, 0, c * T * sizeof *b->inputs);
            memset(b->targets + a * T, 0, c * T * sizeof *b->targets);
            if (R > 0) memset(b->rater_tokens + a * TR, 0, c * TR * sizeof *b->rater_tokens);
        }
    }

    int m = hi - lo;
    ReadOrder *ro = xmalloc((size_t)(m ? m : 1) * sizeof *ro);
    for (int k = 0; k < m; k++) {
        ro[k] = (ReadOrder){ex[lo + k].shard, ex[lo + k].doc, lo + k};
    }
    if (!d->tokens) qsort(ro, (size_t)m, sizeof *ro, cmp_read_order);
    uint32_t *window = xmalloc(((size_t)L + 1) * sizeof *window);
    int rc_status = 0;
    for (int k = 0; k < m; k++) {
        int i = ro[k].slot;
        if (read_window(d, rc, &ex[i], window) != 0) { rc_status = -1; break; }
        int len = (int)ex[i].length;
        int32_t *in = b->inputs + (size_t)i * T, *tg = b->targets + (size_t)i * T;
        for (int t = 0; t < T; t++) {
            in[t] = t < len - 1 ? (int32_t)window[t] : 0;
            tg[t] = t < len - 1 ? (int32_t)window[t + 1] : 0;
        }
        if (R > 0) {
            int32_t *rt = b->rater_tokens + (size_t)i * TR;
            int valid = b->rater_valid[i];
            for (int t = 0; t < TR; t++) rt[t] = t < valid ? (int32_t)window[t] : 0;
        }
    }
    free(window);
    free(ro);
    free(ex);
    return rc_status;
}

/* ---- epoch orders -------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The order of epoch `epoch`: a permutation of 0 … N−1 (see data.h). */
static void make_order(const DataLoader *d, uint64_t epoch, uint32_t *order) {
    const DataOptions *o = &d->opt;
    uint64_t N = d->n_ex, B = (uint64_t)o->batch_size;
    for (uint64_t i = 0; i < N; i++) order[i] = (uint32_t)i;
    DataRng rng = {o->seed + epoch};
    if (o->shuffle)
        for (uint64_t i = N - 1; i > 0; i--) {
            uint64_t j = rng_below(&rng, i + 1);
            uint32_t t = order[i]; order[i] = order[j]; order[j] = t;
        }
    if (!o->bucket_by_length) return;

    /* chunks of 100 batches, each sorted by length (longest first, ties by position) */
    uint64_t chunk = 100 * B;
    uint64_t *key = xmalloc((size_t)(chunk < N ? chunk : N) * sizeof *key);
    uint32_t *tmp = xmalloc((size_t)N * sizeof *tmp);
    for (uint64_t c = 0; c < N; c += chunk) {
        uint64_t n = N - c < chunk ? N - c : chunk;
        for (uint64_t i = 0; i < n; i++)
            key[i] = ((uint64_t)(UINT32_MAX - example_at(d, order[c + i]).length) << 32) | i;
        qsort(key, (size_t)n, sizeof *key, cmp_u64);
        for (uint64_t i = 0; i < n; i++) tmp[c + i] = order[c + (key[i] & 0xFFFFFFFFu)];
    }
    /* Steps take B consecutive positions of the concatenated epochs, and epoch e starts
     * at position e·N: when B does not divide N, its first h = (B − e·N mod B) mod B
     * positions complete the batch the previous epoch's tail began. So the epoch is laid
     * out as h leftover examples, then its full batches, aligned to the steps, in
     * shuffled order, then the other leftovers (the tail the next epoch completes); the
     * leftovers are the last ones of the sorted order. Epoch 0 (h = 0) is full batches
     * then the partial one. */
    uint64_t h = (B - ((epoch % B) * (N % B)) % B) % B;
    if (h > N) h = N;
    uint64_t nb = (N - h) / B, left = N - nb * B;
    uint64_t *perm = xmalloc((size_t)(nb ? nb : 1) * sizeof *perm);
    for (uint64_t k = 0; k < nb; k++) perm[k] = k;
    if (o->shuffle)
        for (uint64_t k = nb; k > 1; k--) {
            uint64_t j = rng_below(&rng, k);
            uint64_t t = perm[k - 1]; perm[k - 1] = perm[j]; perm[j] = t;
        }
    memcpy(order, tmp + nb * B, (size_t)h * sizeof *order);
    for (uint64_t k = 0; k < nb; k++)
        memcpy(order + h + k * B, tmp + perm[k] * B, (size_t)B * sizeof *order);
    memcpy(order + h + nb * B, tmp + nb * B + h, (size_t)(left - h) * sizeof *order);
    free(perm); free(tmp); free(key);
}

static const uint32_t *get_order(const DataLoader *d, OrderCache *oc, uint64_t epoch) {
    for (int s = 0; s < 2; s++)
        if (oc->have[s] && oc->epoch[s] == epoch) return oc->order[s];
    int s = oc->next_slot;
    oc->next_slot ^= 1;
    if (!oc->order[s]) oc->order[s] = xmalloc((size_t)d->n_ex * sizeof *oc->order[s]);
    make_order(d, epoch, oc->order[s]);
    oc->epoch[s] = epoch;
    oc->have[s] = 1;
    return oc->order[s];
}

static void ordercache_free(OrderCache *oc) {
    free(oc->order[0]); free(oc->order[1]);
    memset(oc, 0, sizeof *oc);
}

static void advance(DataPosition *p, uint64_t n_examples, uint64_t k) {
    p->cursor += k;
    while (p->cursor >= n_examples) { p->cursor -= n_examples; p->epoch++; }
}

/* The batch at s->pos; advances s->pos. */
static int stream_batch(const DataLoader *d, Stream *s, DataBatch *b) {
    int B = d->opt.batch_size;
    uint64_t *idx = xmalloc((size_t)B * sizeof *idx);   /* not on the stack: B may be 2^20 */
    for (int i = 0; i < B; i++) {
        const uint32_t *order = get_order(d, &s->oc, s->pos.epoch);
        idx[i] = order[s->pos.cursor];
        advance(&s->pos, d->n_ex, 1);
    }
    int lo = d->part_hi < 0 ? 0 : d->part_lo, hi = d->part_hi < 0 ? B : d->part_hi;
    int rc = gather(d, &s->rc, idx, B, lo, hi, d->opt.bucket_by_length, b);
    free(idx);
    return rc;
}

/* ---- read-ahead thread --------------------------------------------------------------- */

static void *prefetch_main(void *arg) {
    DataLoader *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->pf.mu);
        while (!d->pf.stop && d->pf.count == d->pf.n_slots)
            pthread_cond_wait(&d->pf.can_produce, &d->pf.mu);
        if (d->pf.stop) { pthread_mutex_unlock(&d->pf.mu); break; }
        Slot *slot = &d->pf.slots[(d->pf.head + d->pf.count) % d->pf.n_slots];
        pthread_mutex_unlock(&d->pf.mu);

        int rc = stream_batch(d, &d->pf.stream, slot->batch);

        pthread_mutex_lock(&d->pf.mu);
        if (rc != 0) {
            snprintf(d->pf.err, sizeof d->pf.err, "%s", dr_lasterr());
            d->pf.failed = 1;
        } else {
            d->pf.count++;
        }
        pthread_cond_signal(&d->pf.can_consume);
        pthread_mutex_unlock(&d->pf.mu);
        if (rc != 0) break;
    }
    return NULL;
}

static void prefetch_start(DataLoader *d) {
    d->pf.stop = d->pf.failed = 0;
    d->pf.head = d->pf.count = 0;
    d->pf.stream.pos = d->pos;
    /* the producer never takes signals: Ctrl-C goes to the main thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&d->pf.thread, NULL, prefetch_main, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    CHECK(rc == 0, "cannot start the read-ahead thread");
    d->pf.running = 1;
}

static void prefetch_stop(DataLoader *d) {
    if (!d->pf.running) return;
    pthread_mutex_lock(&d->pf.mu);
    d->pf.stop = 1;
    pthread_cond_signal(&d->pf.can_produce);
    pthread_mutex_unlock(&d->pf.mu);
    pthread_join(d->pf.thread, NULL);
    d->pf.running = 0;
    d->pf.count = 0;
}

/* ---- open / close -------------------------------------------------------------------- */

static int load_resident(DataLoader *d, uint64_t total_tokens) {
    d->tokens = xmalloc((size_t)(total_tokens ? total_tokens : 1) * sizeof *d->tokens);
    d->doc_off = xcalloc(d->n_shards, sizeof *d->doc_off);
    uint64_t off = 0;
    for (size_t s = 0; s < d->n_shards; s++) {
        DrsReader *r = d->readers[s];
        uint64_t nd = drs_num_docs(r);
        d->doc_off[s] = xmalloc((size_t)(nd ? nd : 1) * sizeof **d->doc_off);
        for (uint64_t i = 0; i < nd; i++) {
            uint32_t len = drs_doc(r, i)->length;
            if (off + len > total_tokens)
                return dr_seterr("%s: documents hold more tokens than the header's count",
                                 d->paths[s]);
            d->doc_off[s][i] = off;
            if (drs_read_doc(r, i, d->tokens + off) != 0) return -1;
            if (check_tokens(d, d->tokens + off, len, (uint32_t)s, (uint32_t)i) != 0) return -1;
            off += len;
        }
    }
    return 0;
}

DataLoader *data_open(const ShardList *shards, const DataOptions *opt) {
    if (opt->seq_len < 1 || opt->batch_size < 1 || opt->seq_len_rater < 0 || opt->prefetch < 0) {
        dr_seterr("data: invalid options (seq_len %d, batch_size %d, seq_len_rater %d, prefetch %d)",
                  opt->seq_len, opt->batch_size, opt->seq_len_rater, opt->prefetch);
        return NULL;
    }
    if (shards->n == 0) { dr_seterr("data: no shards"); return NULL; }
    DataOptions o = *opt;
    const char *env = getenv("DR_RESIDENT_TOKENS");   /* docs/formats.md §6: memory vs. reads */
    if (env) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(env, &end, 10);
        if (env[0] < '0' || env[0] > '9' || *end || errno) {
            dr_seterr("DR_RESIDENT_TOKENS=%s: expected a number of tokens (0: read the shards "
                      "as batches need them)", env);
            return NULL;
        }
        o.resident_max_tokens = (uint64_t)v;
    }
    opt = &o;
    DataLoader *d = xcalloc(1, sizeof *d);
    d->opt = *opt;
    d->min_len = opt->min_tokens > 2 ? opt->min_tokens : 2;
    d->n_shards = shards->n;
    d->paths = xcalloc(d->n_shards, sizeof *d->paths);
    d->readers = xcalloc(d->n_shards, sizeof *d->readers);
    d->doc_base = xcalloc(d->n_shards + 1, sizeof *d->doc_base);
    pthread_mutex_init(&d->pf.mu, NULL);
    pthread_cond_init(&d->pf.can_produce, NULL);
    pthread_cond_init(&d->pf.can_consume, NULL);

    uint64_t total_tokens = 0, cap = 0;
    for (size_t s = 0; s < d->n_shards; s++) {
        d->paths[s] = xstrdup(shards->items[s].path);
        DrsReader *r = d->readers[s] = drs_open(d->paths[s]);
        if (!r) goto fail;
        if (s == 0) {
            d->fingerprint = drs_fingerprint(r);
            d->vocab = drs_vocab_size(r);
        } else if (drs_fingerprint(r) != d->fingerprint) {
            dr_seterr("%s: tokenizer differs from %s's (fingerprint %016" PRIx64 " vs %016" PRIx64 ")",
                      d->paths[s], d->paths[0], drs_fingerprint(r), d->fingerprint);
            goto fail;
        }
        if (drs_vocab_size(r) > d->vocab) d->vocab = drs_vocab_size(r);
        uint64_t nd = drs_num_docs(r), base = d->doc_base[s];
        if (nd >= UINT32_MAX - base) {   /* documents are numbered across the shards in 32 bits */
            dr_seterr("%s: %" PRIu64 " documents, with the shards before it more than a loader "
                      "index holds (%u)", d->paths[s], nd, UINT32_MAX - 1);
            goto fail;
        }
        d->doc_base[s + 1] = base + nd;
        total_tokens += drs_num_tokens(r);
        for (uint64_t i = 0; i < nd; i++) {
            uint32_t n = drs_doc(r, i)->length;
            if (n < 2) continue;
            uint64_t nw = (uint64_t)(n - 2) / (uint64_t)opt->seq_len + 1;
            int any = 0;
            for (uint64_t w = 0; w < nw; w++) {
                uint64_t start = w * (uint64_t)opt->seq_len;
                uint64_t len = n - start < (uint64_t)opt->seq_len + 1 ? n - start : (uint64_t)opt->seq_len + 1;
                if (len < (uint64_t)d->min_len) continue;
                if (d->n_ex == cap) {
                    cap = cap ? 2 * cap : 1024;
                    d->ex_doc = xrealloc(d->ex_doc, cap * sizeof *d->ex_doc);
                }
                if (d->n_ex >= UINT32_MAX - 1) {   /* example numbers stay below UINT32_MAX, a "none" */
                    dr_seterr("%s: more than %u examples", d->paths[s], UINT32_MAX - 2);
                    goto fail;
                }
                /* windows are dropped only at a document's end (all earlier ones have
                 * seq_len + 1 tokens), so the kept ones are 0 … k−1, as example_at has them */
                d->ex_doc[d->n_ex++] = (uint32_t)(base + i);
                d->n_target_tokens += len - 1;
                any = 1;
            }
            d->n_docs += any;
        }
    }
    if (d->n_ex > 0 && d->n_ex < cap) d->ex_doc = xrealloc(d->ex_doc, d->n_ex * sizeof *d->ex_doc);
    if (d->n_ex == 0) {
        dr_seterr("%s%s: no examples (no window of at least %d tokens)", d->paths[0],
                  d->n_shards > 1 ? " …" : "", d->min_len);
        goto fail;
    }
    if (opt->resident_max_tokens > 0 && total_tokens <= opt->resident_max_tokens)
        if (load_resident(d, total_tokens) != 0) goto fail;

    readctx_init(&d->main.rc, d->readers, d->n_shards);
    d->pos = (DataPosition){0, 0, opt->seed, d->n_ex};
    d->main.pos = d->pos;
    d->part_lo = 0;
    d->part_hi = -1;
    if (opt->prefetch > 0) {
        d->pf.n_slots = opt->prefetch;
        d->pf.slots = xcalloc((size_t)d->pf.n_slots, sizeof *d->pf.slots);
        for (int i = 0; i < d->pf.n_slots; i++) d->pf.slots[i].batch = data_batch_new(d);
        readctx_init(&d->pf.stream.rc, NULL, d->n_shards);
    }
    return d;
fail:
    data_close(d);
    return NULL;
}

void data_close(DataLoader *d) {
    if (!d) return;
    prefetch_stop(d);
    if (d->pf.slots) {
        for (int i = 0; i < d->pf.n_slots; i++) data_batch_free(d->pf.slots[i].batch);
        free(d->pf.slots);
        readctx_free(&d->pf.stream.rc, d->n_shards);
    }
    ordercache_free(&d->pf.stream.oc);
    ordercache_free(&d->main.oc);
    free(d->main.rc.doc);
    for (size_t s = 0; s < d->n_shards; s++) {
        if (d->readers && d->readers[s]) drs_close(d->readers[s]);
        if (d->doc_off) free(d->doc_off[s]);
        free(d->paths[s]);
    }
    free(d->readers); free(d->paths); free(d->doc_off); free(d->tokens);
    free(d->ex_doc); free(d->doc_base);
    pthread_mutex_destroy(&d->pf.mu);
    pthread_cond_destroy(&d->pf.can_produce);
    pthread_cond_destroy(&d->pf.can_consume);
    free(d);
}

/* ---- queries ------------------------------------------------------------------------- */

const DataOptions *data_options(const DataLoader *d) { return &d->opt; }
uint64_t data_num_examples(const DataLoader *d) { return d->n_ex; }
uint64_t data_num_target_tokens(const DataLoader *d) { return d->n_target_tokens; }
uint64_t data_num_docs(const DataLoader *d) { return d->n_docs; }
uint32_t data_vocab_size(const DataLoader *d) { return d->vocab; }
uint64_t data_fingerprint(const DataLoader *d) { return d->fingerprint; }
const char *data_tokenizer_spec(const DataLoader *d) { return drs_tokenizer_spec(d->readers[0]); }
size_t data_num_shards(const DataLoader *d) { return d->n_shards; }
const char *data_shard_path(const DataLoader *d, size_t shard) { return d->paths[shard]; }

DataExample data_example(const DataLoader *d, uint64_t i) {
    CHECK(i < d->n_ex, "example %" PRIu64 " out of range", i);
    return example_at(d, i);
}

uint64_t data_example_doc_id(const DataLoader *d, uint64_t i) {
    CHECK(i < d->n_ex, "example %" PRIu64 " out of range", i);
    uint32_t shard;
    return example_doc(d, i, &shard)->id;
}

void data_example_id(const DataLoader *d, uint64_t i, char *out) {
    DataExample e = data_example(d, i);
    snprintf(out, DATA_ID_MAX, "%016" PRIx64 ":%u", drs_doc(d->readers[e.shard], e.doc)->id, e.window);
}

const char *data_example_source(const DataLoader *d, uint64_t i) {
    CHECK(i < d->n_ex, "example %" PRIu64 " out of range", i);
    uint32_t shard;
    const DrsDoc *doc = example_doc(d, i, &shard);
    return drs_source_name(d->readers[shard], doc->source);
}

/* ---- the stream ---------------------------------------------------------------------- */

int data_next(DataLoader *d, DataBatch *b) {
    if (d->opt.prefetch == 0) {
        d->main.pos = d->pos;
        if (stream_batch(d, &d->main, b) != 0) return -1;
        d->pos = d->main.pos;
        return 0;
    }
    if (!d->pf.running) prefetch_start(d);
    pthread_mutex_lock(&d->pf.mu);
    while (d->pf.count == 0 && !d->pf.failed)
        pthread_cond_wait(&d->pf.can_consume, &d->pf.mu);
    if (d->pf.count == 0) {
        pthread_mutex_unlock(&d->pf.mu);
        dr_seterr("%s", d->pf.err);
        return -1;
    }
    Slot *slot = &d->pf.slots[d->pf.head];
    pthread_mutex_unlock(&d->pf.mu);
    batch_copy(b, slot->batch);       /* the producer does not touch a filled slot */
    pthread_mutex_lock(&d->pf.mu);
    d->pf.head = (d->pf.head + 1) % d->pf.n_slots;
    d->pf.count--;
    pthread_cond_signal(&d->pf.can_produce);
    pthread_mutex_unlock(&d->pf.mu);
    advance(&d->pos, d->n_ex, (uint64_t)d->opt.batch_size);
    return 0;
}

DataPosition data_position(const DataLoader *d) { return d->pos; }

int data_set_position(DataLoader *d, const DataPosition *p) {
    if (p->seed != d->opt.seed || p->n_examples != d->n_ex)
        return dr_seterr("data position is for another stream (seed %" PRIu64 ", %" PRIu64
                         " examples; this one: seed %" PRIu64 ", %" PRIu64 " examples)",
                         p->seed, p->n_examples, d->opt.seed, d->n_ex);
    if (p->cursor >= d->n_ex) return dr_seterr("data position cursor %" PRIu64 " out of range", p->cursor);
    prefetch_stop(d);
    d->pos = *p;
    return 0;
}

void data_set_part(DataLoader *d, int lo, int hi) {
    CHECK(0 <= lo && lo <= hi && hi <= d->opt.batch_size, "data_set_part: [%d, %d) is not a part "
          "of a batch of %d", lo, hi, d->opt.batch_size);
    prefetch_stop(d);   /* batches read ahead were read whole: read them again */
    d->part_lo = lo;
    d->part_hi = hi;
}

/* ---- random access ------------------------------------------------------------------- */

int data_get_part(DataLoader *d, const uint64_t *idx, int n, int lo, int hi, DataBatch *b) {
    return gather(d, &d->main.rc, idx, n, lo, hi, d->opt.bucket_by_length, b);
}

int data_get(DataLoader *d, const uint64_t *idx, int n, DataBatch *b) {
    return data_get_part(d, idx, n, 0, n, b);
}

int data_range_part(DataLoader *d, uint64_t start, int n, int lo, int hi, DataBatch *b) {
    uint64_t *idx = xmalloc((size_t)(n > 0 ? n : 1) * sizeof *idx);   /* n may be 2^20 */
    for (int i = 0; i < n; i++) idx[i] = (start + (uint64_t)i) % d->n_ex;
    int rc = data_get_part(d, idx, n, lo, hi, b);
    free(idx);
    return rc;
}

int data_range(DataLoader *d, uint64_t start, int n, DataBatch *b) {
    return data_range_part(d, start, n, 0, n, b);
}

int data_read_example(DataLoader *d, uint64_t i, uint32_t *out) {
    DataExample e = data_example(d, i);
    return read_window(d, &d->main.rc, &e, out);
}

uint32_t data_window_seq_len(uint64_t n, uint64_t w, uint64_t t) {
    uint64_t found = 0;
    int count = 0;
    if (t >= 2 && w * (t - 1) + t <= n && !(w == 0 && t == n)) {   /* a full window (a whole */
        found = t - 1;                                               /* document: any L ≥ n − 1) */
        count++;
    }
    if (w > 0 && t < n && (n - t) % w == 0) {                        /* the last one */
        uint64_t L = (n - t) / w;
        if (L >= 1 && t <= L + 1 && L != found) { found = L; count++; }
    }
    return count == 1 && found <= UINT32_MAX ? (uint32_t)found : 0;
}

uint32_t data_document_length(const DataLoader *d, uint64_t i) {
    CHECK(i < d->n_ex, "example %" PRIu64 " out of range", i);
    uint32_t shard;
    return example_doc(d, i, &shard)->length;
}

int data_read_document(DataLoader *d, uint64_t i, const uint32_t **tokens, uint32_t *length) {
    DataExample e = data_example(d, i);
    *length = data_document_length(d, i);
    if (d->tokens) {
        *tokens = d->tokens + d->doc_off[e.shard][e.doc];
        return 0;
    }
    if (load_document(d, &d->main.rc, &e, *length) != 0) return -1;
    *tokens = d->main.rc.doc;
    return 0;
}

uint64_t data_shared_documents(const DataLoader *a, const DataLoader *b, uint64_t *first) {
    uint64_t na = data_num_examples(a), nb = data_num_examples(b);
    uint64_t *ids = xmalloc((size_t)(na ? na : 1) * sizeof *ids);
    for (uint64_t i = 0; i < na; i++) ids[i] = data_example_doc_id(a, i);
    qsort(ids, (size_t)na, sizeof *ids, cmp_u64);
    uint64_t shared = 0, last = UINT64_MAX;
    *first = 0;
    for (uint64_t i = 0; i < nb; i++) {
        uint64_t id = data_example_doc_id(b, i);
        if (id == last) continue;   /* windows of one document are consecutive */
        last = id;
        if (bsearch(&id, ids, (size_t)na, sizeof *ids, cmp_u64) && shared++ == 0) *first = id;
    }
    free(ids);
    return shared;
}
