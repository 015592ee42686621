/* shard.c — writer and verified reader of token shards *.drs (layout in shard.h).
 *
 * The reader trusts nothing in the file: every size is checked against the file size
 * before anything is allocated, every offset and count against the others, every
 * checksum before its bytes are used. It must never crash, never allocate more than
 * the file justifies, and never hand out a token it has not verified.
 * The writer can compress on a background thread (one per writer): the bytes it
 * writes are the same with or without it.
 * Readers share a budget of open file descriptors (half of `ulimit -n`): past it the
 * least recently read shard's file is closed and reopened when next read (and checked
 * to be the same file), so a corpus of more shards than the limit stays readable.
 */
#include "shard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "check.h"

static const char DRS_MAGIC[8] = {'D', 'R', 'S', 'H', 'A', 'R', 'D', '1'};
enum { BLOCK_ENTRY_SIZE = 32, DOC_ENTRY_SIZE = 24, INDEX_FIXED_SIZE = 16, CHECKSUM_SIZE = 8 };
/* A zstd block decodes to at most 128 KiB from at least 4 bytes: no frame expands more. */
#define ZSTD_MAX_EXPANSION 32768u

typedef struct {
    uint64_t offset;
    uint32_t csize, usize;
    uint64_t frame_hash;     /* of the compressed bytes */
    uint64_t hash;           /* of the uncompressed bytes */
} BlockEntry;

/* ---- little-endian bytes ------------------------------------------------------ */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const unsigned char *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static uint32_t width_for_vocab(uint32_t vocab_size) { return vocab_size <= 65535 ? 2 : 4; }

size_t drs_max_doc_tokens(uint32_t vocab_size) { return (UINT32_MAX / 2) / width_for_vocab(vocab_size); }

static int source_name_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') return 0;
    return 1;
}

/* ================================================================================
 * Writer
 * ================================================================================ */

/* Source names of a shard being written: a list plus an open-addressing hash table. */
typedef struct {
    char **names;
    uint32_t n, cap;
    uint32_t *slots;    /* 1 + index into names, 0 = empty */
    uint32_t n_slots;   /* power of two */
} SourceTable;

static uint32_t source_find_or_add(SourceTable *t, const char *name) {
    size_t len = strlen(name);
    if (2 * (t->n + 1) > t->n_slots) {   /* grow and rehash */
        uint32_t n_slots = t->n_slots ? 2 * t->n_slots : 16;
        uint32_t *slots = xcalloc(n_slots, sizeof *slots);
        for (uint32_t i = 0; i < t->n; i++) {
            uint32_t h = (uint32_t)XXH64(t->names[i], strlen(t->names[i]), 0) & (n_slots - 1);
            while (slots[h]) h = (h + 1) & (n_slots - 1);
            slots[h] = i + 1;
        }
        free(t->slots);
        t->slots = slots;
        t->n_slots = n_slots;
    }
    uint32_t h = (uint32_t)XXH64(name, len, 0) & (t->n_slots - 1);
    while (t->slots[h]) {
        uint32_t i = t->slots[h] - 1;
        if (strcmp(t->names[i], name) == 0) return i;
        h = (h + 1) & (t->n_slots - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 8;
        t->names = xrealloc(t->names, t->cap * sizeof *t->names);
    }
    t->names[t->n] = xstrdup(name);
    t->slots[h] = t->n + 1;
    return t->n++;
}

static void source_table_free(SourceTable *t) {
    for (uint32_t i = 0; i < t->n; i++) free(t->names[i]);
    free(t->names);
    free(t->slots);
}

/* The background compressor: one job slot, handed over under a mutex. */
typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *job;      /* block bytes owned by the worker while has_job */
    size_t job_len;
    int has_job, quit;
} Background;

struct DrsWriter {
    char *path, *tmp;
    FILE *f;
    uint32_t vocab, width;
    uint64_t fingerprint;
    char *spec;
    size_t block_bytes;
    int level;
    /* the block being filled */
    unsigned char *buf;
    size_t buf_len, buf_cap;
    uint32_t buf_docs;
    unsigned char *spare;    /* the other buffer of the double buffer */
    size_t spare_cap;
    uint32_t next_block;     /* index of the block being filled */
    /* index being built */
    BlockEntry *blocks;      /* written by emit_block only (worker or caller) */
    size_t n_blocks, cap_blocks;
    DrsDoc *docs;
    uint64_t n_docs, cap_docs, n_tokens;
    SourceTable sources;
    /* compression output, touched by emit_block only */
    ZSTD_CCtx *cctx;
    unsigned char *zbuf;
    size_t zcap;
    _Atomic uint64_t file_pos;
    uint64_t settled_bytes;  /* file bytes through the block before the last flushed one */
    uint64_t inflight_bytes; /* uncompressed size of the last flushed block */
    _Atomic int failed;
    char error[512];         /* set by emit_block, reported by the caller's next call */
    Background *bg;
};

/* Compresses one block, writes it and records its index entry. Runs on the worker
 * thread when background compression is on. */
static void emit_block(DrsWriter *w, const unsigned char *data, size_t len) {
    if (atomic_load(&w->failed)) return;
    size_t bound = ZSTD_compressBound(len);
    if (bound > w->zcap) {
        w->zbuf = xrealloc(w->zbuf, bound);
        w->zcap = bound;
    }
    size_t csize = ZSTD_compressCCtx(w->cctx, w->zbuf, w->zcap, data, len, w->level);
    if (ZSTD_isError(csize) || csize > UINT32_MAX) {
        snprintf(w->error, sizeof w->error, "%s: zstd compression failed: %s", w->path,
                 ZSTD_isError(csize) ? ZSTD_getErrorName(csize) : "block too large");
        atomic_store(&w->failed, 1);
        return;
    }
    if (fwrite(w->zbuf, 1, csize, w->f) != csize) {
        snprintf(w->error, sizeof w->error, "%s: write failed: %s", w->path, strerror(errno));
        atomic_store(&w->failed, 1);
        return;
    }
    if (w->n_blocks == w->cap_blocks) {
        w->cap_blocks = w->cap_blocks ? 2 * w->cap_blocks : 64;
        w->blocks = xrealloc(w->blocks, w->cap_blocks * sizeof *w->blocks);
    }
    uint64_t pos = atomic_load(&w->file_pos);
    w->blocks[w->n_blocks++] = (BlockEntry){pos, (uint32_t)csize, (uint32_t)len,
                                            XXH64(w->zbuf, csize, 0), XXH64(data, len, 0)};
    atomic_store(&w->file_pos, pos + csize);
}

static void *background_main(void *arg) {
    DrsWriter *w = arg;
    Background *bg = w->bg;
    pthread_mutex_lock(&bg->mu);
    for (;;) {
        while (!bg->has_job && !bg->quit) pthread_cond_wait(&bg->cv, &bg->mu);
        if (!bg->has_job) break;
        pthread_mutex_unlock(&bg->mu);
        emit_block(w, bg->job, bg->job_len);
        pthread_mutex_lock(&bg->mu);
        bg->has_job = 0;
        pthread_cond_broadcast(&bg->cv);
    }
    pthread_mutex_unlock(&bg->mu);
    return NULL;
}

/* Waits until the worker has no job (the file and block list are then stable). */
static void background_wait_idle(Background *bg) {
    pthread_mutex_lock(&bg->mu);
    while (bg->has_job) pthread_cond_wait(&bg->cv, &bg->mu);
    pthread_mutex_unlock(&bg->mu);
}

static void background_stop(DrsWriter *w) {
    Background *bg = w->bg;
    if (!bg) return;
    pthread_mutex_lock(&bg->mu);
    bg->quit = 1;
    pthread_cond_broadcast(&bg->cv);
    pthread_mutex_unlock(&bg->mu);
    pthread_join(bg->thread, NULL);
    pthread_mutex_destroy(&bg->mu);
    pthread_cond_destroy(&bg->cv);
    free(bg);
    w->bg = NULL;
}

/* Ends the block being filled: compresses it now, or hands it to the worker and
 * takes the worker's previous buffer back to fill next. */
static void flush_block(DrsWriter *w) {
    if (!w->bg) {
        w->settled_bytes = atomic_load(&w->file_pos);
        w->inflight_bytes = w->buf_len;
        emit_block(w, w->buf, w->buf_len);
    } else {
        Background *bg = w->bg;
        pthread_mutex_lock(&bg->mu);
        while (bg->has_job) pthread_cond_wait(&bg->cv, &bg->mu);
        w->settled_bytes = atomic_load(&w->file_pos);   /* every earlier block is written */
        w->inflight_bytes = w->buf_len;
        unsigned char *done = bg->job;
        size_t done_cap = w->spare_cap;
        bg->job = w->buf;
        bg->job_len = w->buf_len;
        w->spare_cap = w->buf_cap;
        bg->has_job = 1;
        pthread_cond_broadcast(&bg->cv);
        pthread_mutex_unlock(&bg->mu);
        w->buf = done;
        w->buf_cap = done_cap;
    }
    w->buf_len = 0;
    w->buf_docs = 0;
    w->next_block++;
}

DrsWriter *drs_writer_open(const char *path, uint32_t vocab_size, uint64_t tokenizer_fingerprint,
                           const char *tokenizer_spec) {
    if (vocab_size == 0) {
        dr_seterr("%s: vocabulary size must be at least 1", path);
        return NULL;
    }
    if (!tokenizer_spec) tokenizer_spec = "";
    if (strlen(tokenizer_spec) > UINT32_MAX / 2) {
        dr_seterr("%s: tokenizer spec too long", path);
        return NULL;
    }
    char *tmp = NULL;
    FILE *f = dr_atomic_open(path, &tmp);
    if (!f) return NULL;
    static const unsigned char zeros[DRS_HEADER_SIZE];   /* placeholder, rewritten at close */
    if (fwrite(zeros, 1, sizeof zeros, f) != sizeof zeros) {
        dr_seterr("%s: write failed: %s", path, strerror(errno));
        dr_atomic_abort(f, tmp);
        return NULL;
    }
    DrsWriter *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    w->tmp = tmp;
    w->f = f;
    w->vocab = vocab_size;
    w->width = width_for_vocab(vocab_size);
    w->fingerprint = tokenizer_fingerprint;
    w->spec = xstrdup(tokenizer_spec);
    w->block_bytes = DRS_BLOCK_BYTES;
    w->level = DRS_ZSTD_LEVEL;
    w->cctx = ZSTD_createCCtx();
    CHECK(w->cctx, "ZSTD_createCCtx failed");
    atomic_store(&w->file_pos, DRS_HEADER_SIZE);
    w->settled_bytes = DRS_HEADER_SIZE;
    return w;
}

void drs_writer_set_block_bytes(DrsWriter *w, size_t bytes) {
    if (bytes < 1) bytes = 1;
    if (bytes > UINT32_MAX / 2) bytes = UINT32_MAX / 2;
    w->block_bytes = bytes;
}

void drs_writer_set_level(DrsWriter *w, int zstd_level) { w->level = zstd_level; }

int drs_writer_set_background(DrsWriter *w, int on) {
    if (!on || w->bg) return 0;
    Background *bg = xcalloc(1, sizeof *bg);
    pthread_mutex_init(&bg->mu, NULL);
    pthread_cond_init(&bg->cv, NULL);
    w->bg = bg;
    if (pthread_create(&bg->thread, NULL, background_main, w) != 0) {
        pthread_mutex_destroy(&bg->mu);
        pthread_cond_destroy(&bg->cv);
        free(bg);
        w->bg = NULL;
        return dr_seterr("%s: cannot start the compression thread", w->path);
    }
    return 0;
}

/* Checks shared by every way of adding a document. */
static int check_doc(DrsWriter *w, const char *source, size_t n_tokens) {
    if (atomic_load(&w->failed)) return dr_seterr("%s", w->error);
    if (!source_name_ok(source, strlen(source)))
        return dr_seterr("%s: source name \"%s\" contains a TAB or newline", w->path, source);
    if (n_tokens > drs_max_doc_tokens(w->vocab))
        return dr_seterr("%s: document of %zu tokens is too long for one block", w->path, n_tokens);
    return 0;
}

/* Records the document and returns where its n_tokens go in the block buffer. */
static unsigned char *begin_doc(DrsWriter *w, uint64_t doc_id, const char *source, size_t n_tokens) {
    size_t bytes = n_tokens * w->width;
    if (w->buf_len > 0 && w->buf_len + bytes > w->block_bytes) flush_block(w);
    if (w->n_docs == w->cap_docs) {
        w->cap_docs = w->cap_docs ? 2 * w->cap_docs : 1024;
        w->docs = xrealloc(w->docs, w->cap_docs * sizeof *w->docs);
    }
    w->docs[w->n_docs++] = (DrsDoc){doc_id, w->next_block, (uint32_t)(w->buf_len / w->width),
                                    (uint32_t)n_tokens, source_find_or_add(&w->sources, source)};
    if (w->buf_len + bytes > w->buf_cap) {
        size_t cap = w->buf_cap ? w->buf_cap : 4096;
        while (cap < w->buf_len + bytes) cap *= 2;
        w->buf = xrealloc(w->buf, cap);
        w->buf_cap = cap;
    }
    unsigned char *at = w->buf + w->buf_len;
    w->buf_len += bytes;
    w->buf_docs++;
    w->n_tokens += n_tokens;
    return at;
}

static int end_doc(DrsWriter *w) {
    if (w->buf_len >= w->block_bytes) flush_block(w);
    return atomic_load(&w->failed) ? dr_seterr("%s", w->error) : 0;
}

int drs_writer_add(DrsWriter *w, uint64_t doc_id, const char *source,
                   const uint32_t *tokens, size_t n_tokens) {
    if (!source) source = "";
    if (check_doc(w, source, n_tokens) < 0) return -1;
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] >= w->vocab)
            return dr_seterr("%s: token id %u is outside the vocabulary of %u ids", w->path,
                             tokens[i], w->vocab);
    unsigned char *p = begin_doc(w, doc_id, source, n_tokens);
    if (w->width == 2)
        for (size_t i = 0; i < n_tokens; i++, p += 2) { p[0] = (unsigned char)tokens[i]; p[1] = (unsigned char)(tokens[i] >> 8); }
    else
        for (size_t i = 0; i < n_tokens; i++, p += 4) put_u32(p, tokens[i]);
    return end_doc(w);
}

uint64_t drs_writer_docs(const DrsWriter *w) { return w->n_docs; }
uint64_t drs_writer_tokens(const DrsWriter *w) { return w->n_tokens; }

uint64_t drs_writer_bytes(const DrsWriter *w) {
    /* Blocks written, except the last one flushed, which may still be compressing: it
     * and the block being filled count uncompressed. Known to the caller's thread
     * alone, so the value is the same with or without background compression. */
    return w->settled_bytes + w->inflight_bytes + w->buf_len + (uint64_t)w->n_docs * DOC_ENTRY_SIZE +
           (uint64_t)(w->next_block + 1) * BLOCK_ENTRY_SIZE;
}

/* Serializes the index (layout in shard.h); returns its size. */
static size_t build_index(const DrsWriter *w, unsigned char **out) {
    size_t spec_len = strlen(w->spec);
    size_t size = INDEX_FIXED_SIZE + w->n_blocks * BLOCK_ENTRY_SIZE + w->n_docs * DOC_ENTRY_SIZE +
                  spec_len + CHECKSUM_SIZE;
    for (uint32_t i = 0; i < w->sources.n; i++) size += 4 + strlen(w->sources.names[i]);
    unsigned char *b = xmalloc(size), *p = b;
    put_u32(p, (uint32_t)w->n_blocks);
    put_u32(p + 4, w->sources.n);
    put_u32(p + 8, (uint32_t)spec_len);
    put_u32(p + 12, 0);
    p += INDEX_FIXED_SIZE;
    for (size_t i = 0; i < w->n_blocks; i++, p += BLOCK_ENTRY_SIZE) {
        const BlockEntry *e = &w->blocks[i];
        put_u64(p, e->offset);
        put_u32(p + 8, e->csize);
        put_u32(p + 12, e->usize);
        put_u64(p + 16, e->frame_hash);
        put_u64(p + 24, e->hash);
    }
    for (uint64_t i = 0; i < w->n_docs; i++, p += DOC_ENTRY_SIZE) {
        const DrsDoc *d = &w->docs[i];
        put_u64(p, d->id);
        put_u32(p + 8, d->block);
        put_u32(p + 12, d->offset);
        put_u32(p + 16, d->length);
        put_u32(p + 20, d->source);
    }
    for (uint32_t i = 0; i < w->sources.n; i++) {
        size_t n = strlen(w->sources.names[i]);
        put_u32(p, (uint32_t)n);
        memcpy(p + 4, w->sources.names[i], n);
        p += 4 + n;
    }
    memcpy(p, w->spec, spec_len);
    p += spec_len;
    put_u64(p, XXH64(b, size - CHECKSUM_SIZE, 0));
    *out = b;
    return size;
}

static void build_header(const DrsWriter *w, uint64_t index_offset, uint64_t index_size,
                         unsigned char h[DRS_HEADER_SIZE]) {
    memcpy(h, DRS_MAGIC, 8);
    put_u32(h + 8, DRS_VERSION);
    put_u32(h + 12, w->width);
    put_u32(h + 16, w->vocab);
    put_u32(h + 20, 0);
    put_u64(h + 24, w->fingerprint);
    put_u64(h + 32, w->n_docs);
    put_u64(h + 40, w->n_tokens);
    put_u64(h + 48, index_offset);
    put_u64(h + 56, index_size);
    put_u64(h + 64, XXH64(h, 64, 0));
}

static void writer_free(DrsWriter *w) {
    background_stop(w);
    ZSTD_freeCCtx(w->cctx);
    source_table_free(&w->sources);
    free(w->path);
    free(w->spec);
    free(w->buf);
    free(w->spare);
    free(w->blocks);
    free(w->docs);
    free(w->zbuf);
    free(w);
}

/* Stops the worker (after its last job) and takes its buffer back for freeing. */
static void writer_finish_background(DrsWriter *w) {
    if (!w->bg) return;
    background_wait_idle(w->bg);
    free(w->spare);
    w->spare = w->bg->job;
    w->bg->job = NULL;
    background_stop(w);
}

/* Everything but the rename: the complete shard stays under w->tmp (registered). */
static int writer_complete(DrsWriter *w) {
    if (w->buf_docs > 0) flush_block(w);
    writer_finish_background(w);
    if (atomic_load(&w->failed)) {
        dr_seterr("%s", w->error);
        drs_writer_abort(w);
        return -1;
    }
    unsigned char *index;
    size_t index_size = build_index(w, &index);
    uint64_t index_offset = atomic_load(&w->file_pos);
    unsigned char header[DRS_HEADER_SIZE];
    build_header(w, index_offset, index_size, header);
    int ok = fwrite(index, 1, index_size, w->f) == index_size && fseek(w->f, 0, SEEK_SET) == 0 &&
             fwrite(header, 1, sizeof header, w->f) == sizeof header;
    free(index);
    if (!ok) {
        dr_seterr("%s: write failed: %s", w->path, strerror(errno));
        drs_writer_abort(w);
        return -1;
    }
    int rc = dr_atomic_finish(w->f, w->tmp, w->path);   /* frees tmp on failure */
    w->f = NULL;
    if (rc != 0) { w->tmp = NULL; writer_free(w); }
    return rc;
}

int drs_writer_close(DrsWriter *w) {
    if (writer_complete(w) != 0) return -1;
    int rc = dr_atomic_rename(w->tmp, w->path);   /* frees tmp */
    w->tmp = NULL;
    writer_free(w);
    return rc;
}

int drs_writer_finish(DrsWriter *w, DrOutputSet *set) {
    if (writer_complete(w) != 0) return -1;
    dr_outset_add(set, w->tmp, xstrdup(w->path));
    w->tmp = NULL;
    writer_free(w);
    return 0;
}

long long drs_numbered_name(const char *name, const char *prefix) {
    size_t pl = strlen(prefix), nd = 0;
    if (strncmp(name, prefix, pl) != 0 || name[pl] != '-') return -1;
    const char *num = name + pl + 1;
    while (num[nd] >= '0' && num[nd] <= '9') nd++;
    if (nd < 5 || nd > 18 || strcmp(num + nd, ".drs") != 0) return -1;
    return strtoll(num, NULL, 10);
}

char *drs_numbered_path(const char *dir, const char *prefix, size_t k) {
    size_t n = strlen(dir) + strlen(prefix) + 32;
    char *p = xmalloc(n);
    snprintf(p, n, "%s%s%s-%05zu.drs", dir, dr_dir_sep(dir), prefix, k);
    return p;
}

int drs_publish_numbered(DrOutputSet *done, const char *dir, const char *prefix, FILE *paths,
                         unsigned *stale) {
    size_t n = done->n;
    dr_signals_hold();
    int rc = dr_outset_commit(done);
    unsigned removed = rc == 0 ? drs_remove_numbered(dir, prefix, n) : 0;
    dr_signals_release();
    if (stale) *stale = removed;
    for (size_t k = 0; rc == 0 && paths && k < n; k++) {
        char *p = drs_numbered_path(dir, prefix, k);
        fprintf(paths, "%s\n", p);
        free(p);
    }
    if (rc == 0 && paths && (fflush(paths) != 0 || ferror(paths)))
        rc = dr_seterr("%s: the shards are in place, but printing their paths failed: %s", dir, strerror(errno));
    return rc;
}

unsigned drs_remove_numbered(const char *dir, const char *prefix, size_t from) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    unsigned removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long k = drs_numbered_name(e->d_name, prefix);
        if (k < 0 || (size_t)k < from) continue;
        char *p = dr_path_join(dir, e->d_name);
        removed += unlink(p) == 0;
        free(p);
    }
    closedir(d);
    return removed;
}

void drs_writer_abort(DrsWriter *w) {
    if (!w) return;
    writer_finish_background(w);
    if (w->f) dr_atomic_abort(w->f, w->tmp);
    writer_free(w);
}

/* ================================================================================
 * Reader
 * ================================================================================ */

struct DrsReader {
    char *path;
    int fd;                  /* -1 while closed (the budget below) */
    int pins;                /* reads in progress: not to be closed */
    DrsReader *lru_prev, *lru_next;   /* in the open list while fd >= 0 */
    int opened_once;         /* dev, ino, mtime, file_size: the file's identity at the first
                              * open, checked at every reopen */
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    uint64_t file_size;
    uint32_t width, vocab;
    uint64_t fingerprint, n_docs, n_tokens;
    uint64_t header_hash, index_hash;
    uint32_t n_blocks, n_sources;
    BlockEntry *blocks;
    DrsDoc *docs;
    char **sources;          /* pointers into names */
    char *names;             /* source names and the spec, NUL-terminated */
    char *spec;
    ZSTD_DCtx *dctx;
    unsigned char *zbuf, *cache;
    size_t zcap, cache_cap;
    int64_t cached_block;    /* -1: none */
};

/* ---- open files: a process-wide budget, least recently read closed first ------------
 * A reader is used by one thread at a time, but readers of one corpus are read from
 * several threads (prefetch, scoring); the list and the count are under fd_mu. */
static pthread_mutex_t fd_mu = PTHREAD_MUTEX_INITIALIZER;
static DrsReader *lru_first, *lru_last;   /* open readers, most recently read first */
static long fds_open, fd_budget;

static void lru_unlink(DrsReader *r) {
    if (r->lru_prev) r->lru_prev->lru_next = r->lru_next; else lru_first = r->lru_next;
    if (r->lru_next) r->lru_next->lru_prev = r->lru_prev; else lru_last = r->lru_prev;
    r->lru_prev = r->lru_next = NULL;
}
static void lru_push_front(DrsReader *r) {
    r->lru_next = lru_first;
    if (lru_first) lru_first->lru_prev = r; else lru_last = r;
    lru_first = r;
}

/* Half the soft RLIMIT_NOFILE (the rest for outputs, logs, libraries), at least 16. */
static long budget_of_limit(void) {
    struct rlimit rl;
    long b = 512;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) b = (long)(rl.rlim_cur / 2);
    return b < 16 ? 16 : b;
}

void drs_set_fd_budget(long n) {
    pthread_mutex_lock(&fd_mu);
    fd_budget = n >= 1 ? n : budget_of_limit();
    pthread_mutex_unlock(&fd_mu);
}

/* Makes r's file open and pins it for a read. Under fd_mu. */
static int reader_acquire_locked(DrsReader *r) {
    if (r->fd >= 0) {
        lru_unlink(r);
        lru_push_front(r);
        r->pins++;
        return 0;
    }
    if (!fd_budget) fd_budget = budget_of_limit();
    for (DrsReader *v = lru_last; v && fds_open >= fd_budget;) {   /* pinned ones stay */
        DrsReader *prev = v->lru_prev;
        if (v->pins == 0) {
            lru_unlink(v);
            close(v->fd);
            v->fd = -1;
            fds_open--;
        }
        v = prev;
    }
    /* O_NONBLOCK: a FIFO named *.drs is refused below, not waited on for a writer */
    int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return dr_seterr("%s: cannot open: %s%s", r->path, strerror(errno),
                         errno == EMFILE ? " (raise `ulimit -n`)" : "");
    struct stat st;
    int stat_ok = fstat(fd, &st) == 0;
    if (!stat_ok || !S_ISREG(st.st_mode)) {
        close(fd);
        return dr_seterr("%s: not a regular file%s", r->path,
                         !stat_ok ? "" : S_ISFIFO(st.st_mode) ? " (a FIFO)"
                                       : S_ISDIR(st.st_mode) ? " (a directory)" : "");
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (!r->opened_once) {
        r->opened_once = 1;
        r->dev = st.st_dev;
        r->ino = st.st_ino;
        r->mtime = st.st_mtim;
        r->file_size = (uint64_t)st.st_size;
    } else if (st.st_dev != r->dev || st.st_ino != r->ino || (uint64_t)st.st_size != r->file_size ||
               st.st_mtim.tv_sec != r->mtime.tv_sec || st.st_mtim.tv_nsec != r->mtime.tv_nsec) {
        close(fd);
        return dr_seterr("%s: the file was replaced or changed while this run was reading it", r->path);
    }
    r->fd = fd;
    fds_open++;
    lru_push_front(r);
    r->pins++;
    return 0;
}

static int reader_acquire(DrsReader *r) {
    pthread_mutex_lock(&fd_mu);
    int rc = reader_acquire_locked(r);
    pthread_mutex_unlock(&fd_mu);
    return rc;
}
static void reader_release(DrsReader *r) {
    pthread_mutex_lock(&fd_mu);
    r->pins--;
    pthread_mutex_unlock(&fd_mu);
}

/* Reads exactly n bytes at offset; -1 + dr_seterr otherwise. */
static int read_at(DrsReader *r, void *dst, size_t n, uint64_t offset) {
    if (reader_acquire(r) != 0) return -1;
    size_t done = 0;
    int rc = 0;
    while (done < n) {
        ssize_t got = pread(r->fd, (char *)dst + done, n - done, (off_t)(offset + done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) { rc = dr_seterr("%s: read error: %s", r->path, strerror(errno)); break; }
        if (got == 0) {
            rc = dr_seterr("%s: unexpected end of file at byte %llu (truncated?)", r->path,
                           (unsigned long long)(offset + done));
            break;
        }
        done += (size_t)got;
    }
    reader_release(r);
    return rc;
}

static int parse_header(DrsReader *r, uint64_t *index_offset, uint64_t *index_size) {
    unsigned char h[DRS_HEADER_SIZE];
    if (r->file_size < DRS_HEADER_SIZE)
        return dr_seterr("%s: truncated: %llu bytes, shorter than the %d-byte shard header",
                         r->path, (unsigned long long)r->file_size, DRS_HEADER_SIZE);
    if (read_at(r, h, sizeof h, 0) < 0) return -1;
    if (memcmp(h, DRS_MAGIC, 8) != 0) return dr_seterr("%s: not a token shard (bad magic)", r->path);
    r->header_hash = get_u64(h + 64);
    if (XXH64(h, 64, 0) != r->header_hash) return dr_seterr("%s: header checksum mismatch (corrupted)", r->path);
    uint32_t version = get_u32(h + 8);
    if (version != DRS_VERSION)
        return dr_seterr("%s: unsupported shard format version %u (this build reads %d)", r->path,
                         version, DRS_VERSION);
    r->width = get_u32(h + 12);
    r->vocab = get_u32(h + 16);
    if (r->vocab == 0 || r->width != width_for_vocab(r->vocab))
        return dr_seterr("%s: token width %u does not fit vocabulary size %u", r->path, r->width, r->vocab);
    if (get_u32(h + 20) != 0) return dr_seterr("%s: reserved header field is not zero", r->path);
    r->fingerprint = get_u64(h + 24);
    r->n_docs = get_u64(h + 32);
    r->n_tokens = get_u64(h + 40);
    *index_offset = get_u64(h + 48);
    *index_size = get_u64(h + 56);
    if (*index_offset < DRS_HEADER_SIZE || *index_offset > r->file_size ||
        *index_size != r->file_size - *index_offset)
        return dr_seterr("%s: index at byte %llu of size %llu does not end the %llu-byte file "
                         "(truncated or corrupted)", r->path, (unsigned long long)*index_offset,
                         (unsigned long long)*index_size, (unsigned long long)r->file_size);
    if (*index_size < INDEX_FIXED_SIZE + CHECKSUM_SIZE)
        return dr_seterr("%s: index of %llu bytes is too small", r->path, (unsigned long long)*index_size);
    return 0;
}

static int parse_blocks(DrsReader *r, const unsigned char *p, uint64_t index_offset) {
    uint64_t expected = DRS_HEADER_SIZE;
    r->blocks = xcalloc(r->n_blocks ? r->n_blocks : 1, sizeof *r->blocks);
    for (uint32_t b = 0; b < r->n_blocks; b++, p += BLOCK_ENTRY_SIZE) {
        BlockEntry *e = &r->blocks[b];
        *e = (BlockEntry){get_u64(p), get_u32(p + 8), get_u32(p + 12), get_u64(p + 16), get_u64(p + 24)};
        if (e->offset != expected || e->csize == 0 || e->csize > index_offset - expected)
            return dr_seterr("%s: block %u: offset %llu / size %u out of place", r->path, b,
                             (unsigned long long)e->offset, e->csize);
        if (e->usize % r->width != 0 || e->usize / ZSTD_MAX_EXPANSION > e->csize)
            return dr_seterr("%s: block %u: impossible uncompressed size %u", r->path, b, e->usize);
        expected += e->csize;
    }
    if (expected != index_offset)
        return dr_seterr("%s: blocks end at byte %llu, index starts at %llu", r->path,
                         (unsigned long long)expected, (unsigned long long)index_offset);
    return 0;
}

/* Documents must tile the blocks in order: no gap, no overlap, no empty block. */
static int parse_docs(DrsReader *r, const unsigned char *p) {
    r->docs = xcalloc(r->n_docs ? r->n_docs : 1, sizeof *r->docs);
    uint32_t b = 0;
    uint64_t at = 0, docs_in_block = 0, total = 0;
    for (uint64_t i = 0; i < r->n_docs; i++, p += DOC_ENTRY_SIZE) {
        DrsDoc *d = &r->docs[i];
        *d = (DrsDoc){get_u64(p), get_u32(p + 8), get_u32(p + 12), get_u32(p + 16), get_u32(p + 20)};
        if (d->block != b) {
            if (d->block != b + 1 || docs_in_block == 0 || at != r->blocks[b].usize / r->width)
                return dr_seterr("%s: document %llu: block %u breaks the block layout", r->path,
                                 (unsigned long long)i, d->block);
            b++;
            at = 0;
            docs_in_block = 0;
        }
        if (b >= r->n_blocks)
            return dr_seterr("%s: document %llu: block %u does not exist", r->path, (unsigned long long)i, b);
        if (d->offset != at || at + d->length > r->blocks[b].usize / r->width)
            return dr_seterr("%s: document %llu: tokens [%u, +%u) are not where block %u has them",
                             r->path, (unsigned long long)i, d->offset, d->length, b);
        if (d->source >= r->n_sources)
            return dr_seterr("%s: document %llu: source id %u out of range (%u sources)", r->path,
                             (unsigned long long)i, d->source, r->n_sources);
        at += d->length;
        total += d->length;
        docs_in_block++;
    }
    int tail_ok = r->n_docs == 0 ? r->n_blocks == 0
                                 : b + 1 == r->n_blocks && at == r->blocks[b].usize / r->width;
    if (!tail_ok) return dr_seterr("%s: documents do not cover the %u blocks", r->path, r->n_blocks);
    if (total != r->n_tokens)
        return dr_seterr("%s: documents hold %llu tokens, header says %llu", r->path,
                         (unsigned long long)total, (unsigned long long)r->n_tokens);
    return 0;
}

/* Source table and spec: p..end holds them exactly (checksum excluded). */
static int parse_strings(DrsReader *r, const unsigned char *p, const unsigned char *end,
                         uint32_t spec_len) {
    r->names = xmalloc((size_t)(end - p) + r->n_sources + 1);
    r->sources = xcalloc(r->n_sources ? r->n_sources : 1, sizeof *r->sources);
    char *out = r->names;
    for (uint32_t s = 0; s < r->n_sources; s++) {
        if (end - p < 4) return dr_seterr("%s: source table truncated", r->path);
        uint32_t n = get_u32(p);
        p += 4;
        if ((uint64_t)(end - p) < n) return dr_seterr("%s: source %u: name runs past the index", r->path, s);
        if (!source_name_ok((const char *)p, n)) return dr_seterr("%s: source %u: bad name", r->path, s);
        r->sources[s] = out;
        memcpy(out, p, n);
        out[n] = '\0';
        out += n + 1;
        p += n;
    }
    if ((uint64_t)(end - p) != spec_len)
        return dr_seterr("%s: index size does not match its contents", r->path);
    if (memchr(p, '\0', spec_len)) return dr_seterr("%s: tokenizer spec holds a NUL byte", r->path);
    r->spec = out;
    memcpy(out, p, spec_len);
    out[spec_len] = '\0';
    return 0;
}

/* The index's counts (its first 16 bytes, before the whole index is read or its checksum
 * known) against its size: the blocks, documents, source lengths and spec must fit, and
 * without sources they fill it exactly. So the index is read into memory only when its
 * size is what its counts say (a sparse or zero-filled file claiming a 64 GiB index is
 * refused here, not allocated). */
static int check_index_counts(DrsReader *r, const unsigned char *fixed, uint64_t index_size) {
    uint32_t n_blocks = get_u32(fixed), n_sources = get_u32(fixed + 4), spec_len = get_u32(fixed + 8);
    uint64_t room = index_size - INDEX_FIXED_SIZE - CHECKSUM_SIZE;
    uint64_t need = 0;
    int fits = n_blocks <= room / BLOCK_ENTRY_SIZE && r->n_docs <= room / DOC_ENTRY_SIZE;
    if (fits) {
        need = (uint64_t)n_blocks * BLOCK_ENTRY_SIZE + r->n_docs * DOC_ENTRY_SIZE +
               (uint64_t)n_sources * 4 + spec_len;
        fits = need <= room && (n_sources > 0 || need == room);
    }
    if (!fits)
        return dr_seterr("%s: index of %llu bytes does not match its counts (%u blocks, %llu "
                         "documents, %u sources, %u-byte tokenizer spec): truncated or corrupted",
                         r->path, (unsigned long long)index_size, n_blocks,
                         (unsigned long long)r->n_docs, n_sources, spec_len);
    return 0;
}

static int parse_index(DrsReader *r, uint64_t index_offset, uint64_t index_size) {
    unsigned char fixed[INDEX_FIXED_SIZE];
    if (read_at(r, fixed, sizeof fixed, index_offset) < 0 || check_index_counts(r, fixed, index_size) < 0)
        return -1;
    unsigned char *ix = xmalloc(index_size);   /* index_size <= file size, and its counts fit it */
    int rc = -1;
    if (read_at(r, ix, index_size, index_offset) < 0) goto out;
    r->index_hash = get_u64(ix + index_size - CHECKSUM_SIZE);
    if (XXH64(ix, index_size - CHECKSUM_SIZE, 0) != r->index_hash) {
        dr_seterr("%s: index checksum mismatch (corrupted)", r->path);
        goto out;
    }
    r->n_blocks = get_u32(ix);
    r->n_sources = get_u32(ix + 4);
    uint32_t spec_len = get_u32(ix + 8);
    if (get_u32(ix + 12) != 0) {
        dr_seterr("%s: reserved index field is not zero", r->path);
        goto out;
    }
    uint64_t room = index_size - INDEX_FIXED_SIZE - CHECKSUM_SIZE;
    if (r->n_blocks > room / BLOCK_ENTRY_SIZE || r->n_docs > room / DOC_ENTRY_SIZE ||
        (uint64_t)r->n_blocks * BLOCK_ENTRY_SIZE + r->n_docs * DOC_ENTRY_SIZE +
                (uint64_t)r->n_sources * 4 + spec_len > room) {
        dr_seterr("%s: index of %llu bytes cannot hold %u blocks and %llu documents", r->path,
                  (unsigned long long)index_size, r->n_blocks, (unsigned long long)r->n_docs);
        goto out;
    }
    const unsigned char *p = ix + INDEX_FIXED_SIZE;
    if (parse_blocks(r, p, index_offset) < 0) goto out;
    p += (size_t)r->n_blocks * BLOCK_ENTRY_SIZE;
    if (parse_docs(r, p) < 0) goto out;
    p += (size_t)r->n_docs * DOC_ENTRY_SIZE;
    rc = parse_strings(r, p, ix + index_size - CHECKSUM_SIZE, spec_len);
out:
    free(ix);
    return rc;
}

DrsReader *drs_open(const char *path) {
    DrsReader *r = xcalloc(1, sizeof *r);
    r->path = xstrdup(path);
    r->cached_block = -1;
    r->fd = -1;
    if (reader_acquire(r) != 0) {   /* opens it, records its identity and size */
        drs_close(r);
        return NULL;
    }
    reader_release(r);
    uint64_t index_offset = 0, index_size = 0;
    if (parse_header(r, &index_offset, &index_size) < 0 || parse_index(r, index_offset, index_size) < 0) {
        drs_close(r);
        return NULL;
    }
    r->dctx = ZSTD_createDCtx();
    CHECK(r->dctx, "ZSTD_createDCtx failed");
    return r;
}

DrsReader *drs_reopen(const DrsReader *like) {
    DrsReader *r = drs_open(like->path);
    if (r && (r->dev != like->dev || r->ino != like->ino || r->file_size != like->file_size ||
              r->mtime.tv_sec != like->mtime.tv_sec || r->mtime.tv_nsec != like->mtime.tv_nsec ||
              drs_content_key(r) != drs_content_key(like))) {
        dr_seterr("%s: the file was replaced or changed while this run was reading it", like->path);
        drs_close(r);
        return NULL;
    }
    return r;
}

void drs_close(DrsReader *r) {
    if (!r) return;
    pthread_mutex_lock(&fd_mu);
    if (r->fd >= 0) {
        lru_unlink(r);
        close(r->fd);
        fds_open--;
    }
    pthread_mutex_unlock(&fd_mu);
    ZSTD_freeDCtx(r->dctx);
    free(r->path);
    free(r->blocks);
    free(r->docs);
    free(r->sources);
    free(r->names);
    free(r->zbuf);
    free(r->cache);
    free(r);
}

const char *drs_path(const DrsReader *r) { return r->path; }
uint64_t drs_num_docs(const DrsReader *r) { return r->n_docs; }
uint64_t drs_num_tokens(const DrsReader *r) { return r->n_tokens; }
uint32_t drs_num_blocks(const DrsReader *r) { return r->n_blocks; }
uint32_t drs_token_width(const DrsReader *r) { return r->width; }
uint32_t drs_vocab_size(const DrsReader *r) { return r->vocab; }
uint64_t drs_fingerprint(const DrsReader *r) { return r->fingerprint; }
const char *drs_tokenizer_spec(const DrsReader *r) { return r->spec; }
const DrsDoc *drs_doc(const DrsReader *r, uint64_t i) { return i < r->n_docs ? &r->docs[i] : NULL; }
uint32_t drs_num_sources(const DrsReader *r) { return r->n_sources; }
const char *drs_source_name(const DrsReader *r, uint32_t s) { return s < r->n_sources ? r->sources[s] : NULL; }
const char *drs_doc_source(const DrsReader *r, uint64_t i) {
    return i < r->n_docs ? r->sources[r->docs[i].source] : NULL;
}

uint64_t drs_content_key(const DrsReader *r) {
    unsigned char b[16];
    put_u64(b, r->header_hash);
    put_u64(b + 8, r->index_hash);
    return XXH64(b, sizeof b, 0);
}

static void grow(unsigned char **buf, size_t *cap, size_t need) {
    if (need <= *cap && *buf) return;
    *buf = xrealloc(*buf, need ? need : 1);
    *cap = need;
}

static int tokens_in_vocab(const DrsReader *r, const unsigned char *p, size_t n) {
    if (r->width == 2) {
        for (size_t i = 0; i < n; i++, p += 2)
            if (((uint32_t)p[0] | (uint32_t)p[1] << 8) >= r->vocab) return 0;
    } else {
        for (size_t i = 0; i < n; i++, p += 4)
            if (get_u32(p) >= r->vocab) return 0;
    }
    return 1;
}

/* Decodes block b into the cache and verifies it. */
static int load_block(DrsReader *r, uint32_t b) {
    if (r->cached_block == (int64_t)b) return 0;
    r->cached_block = -1;
    const BlockEntry *e = &r->blocks[b];
    grow(&r->zbuf, &r->zcap, e->csize);
    if (read_at(r, r->zbuf, e->csize, e->offset) < 0) return -1;
    if (XXH64(r->zbuf, e->csize, 0) != e->frame_hash)
        return dr_seterr("%s: block %u: checksum of the compressed bytes mismatch (corrupted)", r->path, b);
    unsigned long long content = ZSTD_getFrameContentSize(r->zbuf, e->csize);
    if (content != e->usize || ZSTD_findFrameCompressedSize(r->zbuf, e->csize) != e->csize)
        return dr_seterr("%s: block %u: bad zstd frame (corrupted)", r->path, b);
    grow(&r->cache, &r->cache_cap, e->usize);
    size_t got = ZSTD_decompressDCtx(r->dctx, r->cache, e->usize, r->zbuf, e->csize);
    if (ZSTD_isError(got)) return dr_seterr("%s: block %u: zstd: %s", r->path, b, ZSTD_getErrorName(got));
    if (got != e->usize)
        return dr_seterr("%s: block %u: decoded %zu bytes, expected %u", r->path, b, got, e->usize);
    if (XXH64(r->cache, e->usize, 0) != e->hash)
        return dr_seterr("%s: block %u: checksum mismatch (corrupted)", r->path, b);
    if (!tokens_in_vocab(r, r->cache, e->usize / r->width))
        return dr_seterr("%s: block %u: token id outside the vocabulary of %u", r->path, b, r->vocab);
    r->cached_block = b;
    return 0;
}

void drs_drop_cache(DrsReader *r) {
    free(r->cache);
    free(r->zbuf);
    r->cache = r->zbuf = NULL;
    r->cache_cap = r->zcap = 0;
    r->cached_block = -1;
}

int drs_read_doc(DrsReader *r, uint64_t i, uint32_t *out) {
    if (i >= r->n_docs)
        return dr_seterr("%s: document %llu out of range (%llu documents)", r->path,
                         (unsigned long long)i, (unsigned long long)r->n_docs);
    const DrsDoc *d = &r->docs[i];
    if (load_block(r, d->block) < 0) return -1;
    const unsigned char *p = r->cache + (size_t)d->offset * r->width;
    if (r->width == 2)
        for (uint32_t k = 0; k < d->length; k++, p += 2) out[k] = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    else
        for (uint32_t k = 0; k < d->length; k++, p += 4) out[k] = get_u32(p);
    return 0;
}

int drs_verify(DrsReader *r) {
    for (uint32_t b = 0; b < r->n_blocks; b++)
        if (load_block(r, b) < 0) return -1;
    return 0;
}

/* ================================================================================
 * Whole blocks (dr-split compresses on its own threads)
 * ================================================================================ */

const unsigned char *drs_block_bytes(DrsReader *r, uint32_t b, size_t *n_bytes) {
    if (b >= r->n_blocks) {
        dr_seterr("%s: block %u out of range (%u blocks)", r->path, b, r->n_blocks);
        return NULL;
    }
    if (load_block(r, b) < 0) return NULL;
    *n_bytes = r->blocks[b].usize;
    return r->cache;
}

int drs_writer_add_block(DrsWriter *w, const void *frame, size_t csize, uint64_t frame_hash,
                         size_t usize, uint64_t hash, const DrsDoc *docs,
                         const char *const *sources, size_t n_docs) {
    if (w->buf_docs > 0) flush_block(w);
    if (w->bg) background_wait_idle(w->bg);   /* the file and the block list are ours */
    if (atomic_load(&w->failed)) return dr_seterr("%s", w->error);
    uint64_t tokens = 0;
    for (size_t k = 0; k < n_docs; k++) {
        if (check_doc(w, sources[k] ? sources[k] : "", docs[k].length) < 0) return -1;
        tokens += docs[k].length;
    }
    if (n_docs == 0 || csize == 0 || csize > UINT32_MAX || usize > UINT32_MAX / 2 ||
        tokens * w->width != usize)
        return dr_seterr("%s: block of %zu documents, %llu tokens, %zu bytes (%zu compressed) is "
                         "not a block", w->path, n_docs, (unsigned long long)tokens, usize, csize);
    if (ZSTD_getFrameContentSize(frame, csize) != usize || ZSTD_findFrameCompressedSize(frame, csize) != csize)
        return dr_seterr("%s: the block to add is not one zstd frame of %zu bytes", w->path, usize);
    if (fwrite(frame, 1, csize, w->f) != csize) {   /* the file is now unusable */
        snprintf(w->error, sizeof w->error, "%s: write failed: %s", w->path, strerror(errno));
        atomic_store(&w->failed, 1);
        return dr_seterr("%s", w->error);
    }
    if (w->n_blocks == w->cap_blocks) {
        w->cap_blocks = w->cap_blocks ? 2 * w->cap_blocks : 64;
        w->blocks = xrealloc(w->blocks, w->cap_blocks * sizeof *w->blocks);
    }
    uint64_t pos = atomic_load(&w->file_pos);
    w->blocks[w->n_blocks++] = (BlockEntry){pos, (uint32_t)csize, (uint32_t)usize, frame_hash, hash};
    atomic_store(&w->file_pos, pos + csize);
    uint32_t offset = 0;
    for (size_t k = 0; k < n_docs; k++) {
        if (w->n_docs == w->cap_docs) {
            w->cap_docs = w->cap_docs ? 2 * w->cap_docs : 1024;
            w->docs = xrealloc(w->docs, w->cap_docs * sizeof *w->docs);
        }
        w->docs[w->n_docs++] = (DrsDoc){docs[k].id, w->next_block, offset, docs[k].length,
                                        source_find_or_add(&w->sources, sources[k] ? sources[k] : "")};
        offset += docs[k].length;
    }
    w->n_tokens += tokens;
    w->next_block++;
    w->settled_bytes = pos + csize;
    w->inflight_bytes = 0;
    return 0;
}
