/* tokenizer_train.c — learning a byte-level BPE vocabulary (dr-tokenize --train-bpe N)
 * and writing it in GPT-2's file format.
 *
 * 1. Count pre-token frequencies (GPT-2's pre-tokenizer; batch by batch as dr-tokenize
 *    reads the corpus, so only the counts are held: one hash map per thread, each
 *    thread over a contiguous share of every batch; merged at the end).
 * 2. Each distinct pre-token is a word of symbols (initially its bytes) with a count.
 *    Pair counts over all words, and per pair the list of words it occurs in.
 * 3. N - 257 times: take the most frequent pair (ties: smaller left id, then smaller
 *    right id; a pair whose bytes are already a token is skipped), give it the next id
 *    and rewrite only the words that hold it, updating the counts of the pairs around
 *    each occurrence incrementally. A lazy max-heap holds the candidates: an entry whose
 *    count went down is re-pushed with the true count when popped; a pair whose count
 *    went up gets a fresh entry.
 * Ids: the 256 bytes in GPT-2's order (bytes_to_unicode), then the merges in order, then
 * <|endoftext|>. The result depends only on the corpus and N (not on thread count).
 * Must never: write a partial vocabulary (both files go through temp names).
 */
#include "tokenizer_internal.h"
#include "check.h"
#include "progress.h"
#include "unicode.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- step 1: pre-token counts ----------------------------------------------------- */

typedef struct {
    uint64_t hash;
    uint64_t off;          /* into keys */
    uint32_t len;
    uint64_t count;        /* 0 = empty slot */
} WordSlot;

typedef struct {
    WordSlot *slots;
    size_t cap, n;
    ByteBuf keys;
} WordMap;

static void wordmap_init(WordMap *m, size_t cap) {
    memset(m, 0, sizeof *m);
    m->cap = cap;
    m->slots = xcalloc(cap, sizeof *m->slots);
}

static void wordmap_free(WordMap *m) {
    free(m->slots);
    bytebuf_free(&m->keys);
}

static void wordmap_add(WordMap *m, const char *p, size_t len, uint64_t h, uint64_t count);

static void wordmap_grow(WordMap *m) {
    WordSlot *old = m->slots;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].count) continue;
        size_t j = old[i].hash & (m->cap - 1);
        while (m->slots[j].count) j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

static void wordmap_add(WordMap *m, const char *p, size_t len, uint64_t h, uint64_t count) {
    if (2 * (m->n + 1) > m->cap) wordmap_grow(m);
    size_t j = h & (m->cap - 1);
    for (;; j = (j + 1) & (m->cap - 1)) {
        WordSlot *s = &m->slots[j];
        if (!s->count) break;
        if (s->hash == h && s->len == len && memcmp(m->keys.bytes + s->off, p, len) == 0) {
            s->count += count;
            return;
        }
    }
    CHECK(len < UINT32_MAX, "pre-token of %zu bytes", len);
    WordSlot *s = &m->slots[j];
    s->hash = h;
    s->off = m->keys.n;
    s->len = (uint32_t)len;
    s->count = count;
    bytebuf_append(&m->keys, p, len);
    m->n++;
}

typedef struct {
    const char *const *texts;
    const size_t *lens;
    size_t begin, end;
    TokInvalidUtf8 policy;
    WordMap map;           /* this thread's counts over every batch so far */
    int failed;
    size_t failed_text, failed_offset;
} CountJob;

static void *count_thread(void *arg) {
    CountJob *job = arg;
    ByteBuf fixed = {0};
    for (size_t k = job->begin; k < job->end; k++) {
        const char *s = job->texts[k];
        size_t n = job->lens[k];
        size_t bad = uni_first_invalid(s, n);
        if (bad < n) {
            if (job->policy == TOK_UTF8_ERROR) {
                job->failed = 1; job->failed_text = k; job->failed_offset = bad;
                break;
            }
            if (job->policy == TOK_UTF8_REPLACE) {
                tok_utf8_replace(s, n, &fixed);
                s = fixed.bytes;
                n = fixed.n;
            }
        }
        for (size_t i = 0; i < n;) {
            size_t j = tok_pretoken_end(s, n, i);
            wordmap_add(&job->map, s + i, j - i, tok_hash_bytes(s + i, j - i), 1);
            i = j;
        }
    }
    bytebuf_free(&fixed);
    return NULL;
}

/* ---- step 2/3: merging ------------------------------------------------------------ */

typedef struct { uint32_t *w; uint32_t n, cap; } WordList;

typedef struct {
    uint32_t a, b;
    int64_t count;
    int64_t before;        /* count when first touched by the current merge */
    uint32_t stamp;        /* merge that last touched it (+1) */
    uint8_t done;          /* merged or banned */
    WordList occ;          /* words holding it (may repeat or be stale) */
} Pair;

typedef struct { int64_t count; uint32_t a, b, p; } Cand;

typedef struct {
    uint32_t *sym;         /* all words' symbols */
    uint64_t *start;       /* word w: sym[start[w] .. start[w] + len[w]) */
    uint32_t *len;
    uint64_t *count;
    uint32_t *stamp;
    size_t n_words;

    Pair *pairs;
    size_t n_pairs, cap_pairs;
    uint64_t *pmap_keys;   /* (a << 32 | b) + 1; 0 = empty */
    uint32_t *pmap_vals;
    size_t pmap_cap;

    Cand *heap;
    size_t n_heap, cap_heap;

    uint32_t *touched;
    size_t n_touched, cap_touched;
    uint32_t merge_no;     /* current merge + 1 */

    /* token bytes, for the "already a token" test and the output */
    ByteBuf tok_data;
    uint64_t *tok_off;     /* n_tokens + 1 */
    uint32_t n_tokens;
    uint32_t *tmap;        /* token bytes -> id, TOK_NONE = empty */
    size_t tmap_cap;
} Trainer;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static void pmap_grow(Trainer *tr) {
    uint64_t *ok = tr->pmap_keys;
    uint32_t *ov = tr->pmap_vals;
    size_t oc = tr->pmap_cap;
    tr->pmap_cap = oc ? 2 * oc : 1 << 16;
    tr->pmap_keys = xcalloc(tr->pmap_cap, sizeof *tr->pmap_keys);
    tr->pmap_vals = xmalloc(tr->pmap_cap * sizeof *tr->pmap_vals);
    for (size_t i = 0; i < oc; i++) {
        if (!ok[i]) continue;
        size_t j = mix64(ok[i]) & (tr->pmap_cap - 1);
        while (tr->pmap_keys[j]) j = (j + 1) & (tr->pmap_cap - 1);
        tr->pmap_keys[j] = ok[i];
        tr->pmap_vals[j] = ov[i];
    }
    free(ok);
    free(ov);
}

static uint32_t pair_get_or_add(Trainer *tr, uint32_t a, uint32_t b) {
    if (2 * (tr->n_pairs + 1) > tr->pmap_cap) pmap_grow(tr);
    uint64_t key = ((uint64_t)a << 32 | b) + 1;
    size_t j = mix64(key) & (tr->pmap_cap - 1);
    for (; tr->pmap_keys[j]; j = (j + 1) & (tr->pmap_cap - 1))
        if (tr->pmap_keys[j] == key) return tr->pmap_vals[j];
    if (tr->n_pairs == tr->cap_pairs) {
        tr->cap_pairs = tr->cap_pairs ? 2 * tr->cap_pairs : 1 << 16;
        tr->pairs = xrealloc(tr->pairs, tr->cap_pairs * sizeof *tr->pairs);
    }
    CHECK(tr->n_pairs < UINT32_MAX, "too many distinct pairs");
    uint32_t p = (uint32_t)tr->n_pairs++;
    memset(&tr->pairs[p], 0, sizeof tr->pairs[p]);
    tr->pairs[p].a = a;
    tr->pairs[p].b = b;
    tr->pmap_keys[j] = key;
    tr->pmap_vals[j] = p;
    return p;
}

static void wordlist_push(WordList *l, uint32_t w) {
    if (l->n && l->w[l->n - 1] == w) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        l->w = xrealloc(l->w, l->cap * sizeof *l->w);
    }
    l->w[l->n++] = w;
}

/* max-heap: larger count first, then smaller (a, b) */
static inline int cand_before(const Cand *x, const Cand *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void heap_push(Trainer *tr, uint32_t p) {
    if (tr->n_heap == tr->cap_heap) {
        tr->cap_heap = tr->cap_heap ? 2 * tr->cap_heap : 1 << 16;
        tr->heap = xrealloc(tr->heap, tr->cap_heap * sizeof *tr->heap);
    }
    Cand c = {tr->pairs[p].count, tr->pairs[p].a, tr->pairs[p].b, p};
    size_t i = tr->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(&c, &tr->heap[parent])) break;
        tr->heap[i] = tr->heap[parent];
        i = parent;
    }
    tr->heap[i] = c;
}

static Cand heap_pop(Trainer *tr) {
    Cand top = tr->heap[0], last = tr->heap[--tr->n_heap];
    size_t n = tr->n_heap, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_before(&tr->heap[c + 1], &tr->heap[c])) c++;
        if (!cand_before(&tr->heap[c], &last)) break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (n > 0) tr->heap[i] = last;
    return top;
}

static void pair_delta(Trainer *tr, uint32_t a, uint32_t b, int64_t delta, uint32_t w) {
    uint32_t p = pair_get_or_add(tr, a, b);
    Pair *pr = &tr->pairs[p];
    if (pr->stamp != tr->merge_no) {
        pr->stamp = tr->merge_no;
        pr->before = pr->count;
        if (tr->n_touched == tr->cap_touched) {
            tr->cap_touched = tr->cap_touched ? 2 * tr->cap_touched : 1024;
            tr->touched = xrealloc(tr->touched, tr->cap_touched * sizeof *tr->touched);
        }
        tr->touched[tr->n_touched++] = p;
    }
    pr->count += delta;
    if (delta > 0) wordlist_push(&pr->occ, w);
}

/* token bytes map */
static uint32_t tmap_find(const Trainer *tr, const char *p, size_t n, uint64_t h, size_t *slot) {
    size_t j = h & (tr->tmap_cap - 1);
    for (; tr->tmap[j] != TOK_NONE; j = (j + 1) & (tr->tmap_cap - 1)) {
        uint32_t id = tr->tmap[j];
        uint64_t o = tr->tok_off[id], l = tr->tok_off[id + 1] - o;
        if (l == n && memcmp(tr->tok_data.bytes + o, p, n) == 0) { *slot = j; return id; }
    }
    *slot = j;
    return TOK_NONE;
}

static void add_token(Trainer *tr, const char *p, size_t n, size_t slot) {
    uint32_t id = tr->n_tokens++;
    bytebuf_append(&tr->tok_data, p, n);
    tr->tok_off[id + 1] = tr->tok_data.n;
    tr->tmap[slot] = id;
}

static void apply_merge(Trainer *tr, uint32_t p, uint32_t c) {
    uint32_t a = tr->pairs[p].a, b = tr->pairs[p].b;
    WordList occ = tr->pairs[p].occ;            /* pair_delta may move tr->pairs */
    memset(&tr->pairs[p].occ, 0, sizeof occ);
    for (uint32_t k = 0; k < occ.n; k++) {
        uint32_t w = occ.w[k];
        if (tr->stamp[w] == tr->merge_no) continue;
        tr->stamp[w] = tr->merge_no;
        uint32_t *s = tr->sym + tr->start[w];
        uint32_t L = tr->len[w], out = 0;
        int64_t wc = (int64_t)tr->count[w];
        for (uint32_t i = 0; i < L;) {
            if (i + 1 < L && s[i] == a && s[i + 1] == b) {
                pair_delta(tr, a, b, -wc, w);
                if (out > 0) {
                    pair_delta(tr, s[out - 1], a, -wc, w);
                    pair_delta(tr, s[out - 1], c, wc, w);
                }
                if (i + 2 < L) {
                    pair_delta(tr, b, s[i + 2], -wc, w);
                    pair_delta(tr, c, s[i + 2], wc, w);
                }
                s[out++] = c;
                i += 2;
            } else {
                s[out++] = s[i++];
            }
        }
        tr->len[w] = out;
    }
    free(occ.w);
}

static void trainer_free(Trainer *tr) {
    free(tr->sym); free(tr->start); free(tr->len); free(tr->count); free(tr->stamp);
    for (size_t p = 0; p < tr->n_pairs; p++) free(tr->pairs[p].occ.w);
    free(tr->pairs); free(tr->pmap_keys); free(tr->pmap_vals); free(tr->heap);
    free(tr->touched); bytebuf_free(&tr->tok_data); free(tr->tok_off); free(tr->tmap);
}

/* ---- output --------------------------------------------------------------------- */

static void put_token_string(FILE *f, const uint32_t byte_to_cp[256], const char *p, size_t n,
                             int json) {
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = byte_to_cp[(unsigned char)p[i]];
        if (json && (cp == '"' || cp == '\\')) fprintf(f, "\\%c", (char)cp);
        else if (cp < 0x80) fputc((int)cp, f);
        else if (json) fprintf(f, "\\u%04x", cp);
        else if (cp < 0x800) { fputc((int)(0xC0 | cp >> 6), f); fputc((int)(0x80 | (cp & 0x3F)), f); }
        else CHECK(0, "byte alphabet code point U+%04X out of range", cp);
    }
}

static int write_vocab(const Trainer *tr, const uint32_t (*merges)[2], uint32_t n_merges,
                       const char *dir) {
    uint32_t byte_to_cp[256];
    uint8_t order[256];
    gpt2_byte_maps(byte_to_cp, order);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return dr_seterr("%s: cannot create directory: %s", dir, strerror(errno));
    char *enc_path = dr_path_join(dir, "encoder.json"), *voc_path = dr_path_join(dir, "vocab.bpe"), *tmp;
    /* both files are finished under temporary names before either is renamed: a failed
     * write leaves an earlier vocabulary in dir whole, never half old and half new */
    DrOutputSet done = {0};
    FILE *f = dr_atomic_open(enc_path, &tmp);
    if (!f) goto fail;
    fputc('{', f);
    for (uint32_t id = 0; id < tr->n_tokens; id++) {
        fputs(id ? ", \"" : "\"", f);
        put_token_string(f, byte_to_cp, tr->tok_data.bytes + tr->tok_off[id],
                         tr->tok_off[id + 1] - tr->tok_off[id], 1);
        fprintf(f, "\": %u", id);
    }
    fprintf(f, ", \"%s\": %u}", TOK_EOT_TEXT, tr->n_tokens);
    if (dr_atomic_finish(f, tmp, enc_path) != 0) goto fail;
    dr_outset_add(&done, tmp, enc_path);
    enc_path = NULL;
    f = dr_atomic_open(voc_path, &tmp);
    if (!f) goto fail;
    fputs("#version: 0.2\n", f);
    for (uint32_t k = 0; k < n_merges; k++) {
        for (int side = 0; side < 2; side++) {
            uint32_t id = merges[k][side];
            put_token_string(f, byte_to_cp, tr->tok_data.bytes + tr->tok_off[id],
                             tr->tok_off[id + 1] - tr->tok_off[id], 0);
            fputc(side ? '\n' : ' ', f);
        }
    }
    if (dr_atomic_finish(f, tmp, voc_path) != 0) goto fail;
    dr_outset_add(&done, tmp, voc_path);
    return dr_outset_commit(&done);   /* frees the paths */
fail:
    dr_outset_abort(&done);
    free(enc_path);
    free(voc_path);
    return -1;
}

/* ---- the whole thing ---------------------------------------------------------------- */

struct BpeCounts {
    TokInvalidUtf8 policy;
    int n_threads;
    CountJob *jobs;        /* [n_threads]: each thread's map persists across batches */
    size_t n_texts;        /* texts counted so far (for the index in an error) */
    int failed;
    int progress;          /* bpe_counts_train shows its merges on stderr */
};

BpeCounts *bpe_counts_new(TokInvalidUtf8 policy, int n_threads) {
    BpeCounts *c = xcalloc(1, sizeof *c);
    c->policy = policy;
    c->n_threads = n_threads < 1 ? 1 : n_threads;
    c->jobs = xcalloc((size_t)c->n_threads, sizeof *c->jobs);
    for (int t = 0; t < c->n_threads; t++) wordmap_init(&c->jobs[t].map, 1 << 16);
    return c;
}

void bpe_counts_show_progress(BpeCounts *c) { c->progress = 1; }

void bpe_counts_free(BpeCounts *c) {
    if (!c) return;
    for (int t = 0; t < c->n_threads; t++) wordmap_free(&c->jobs[t].map);
    free(c->jobs);
    free(c);
}

int bpe_counts_add(BpeCounts *c, const char *const *texts, const size_t *lens, size_t n_texts) {
    if (c->failed) return -1;
    /* each thread over a contiguous share of the batch (by bytes) */
    int n_threads = c->n_threads;
    if ((size_t)n_threads > n_texts) n_threads = n_texts ? (int)n_texts : 1;
    uint64_t total = 0;
    for (size_t k = 0; k < n_texts; k++) total += lens[k];
    size_t k = 0;
    uint64_t acc = 0;
    for (int t = 0; t < n_threads; t++) {
        CountJob *job = &c->jobs[t];
        job->texts = texts; job->lens = lens; job->policy = c->policy;
        job->begin = k;
        uint64_t goal = total * (uint64_t)(t + 1) / (uint64_t)n_threads;
        while (k < n_texts && (acc < goal || t == n_threads - 1)) acc += lens[k++];
        job->end = k;
    }
    pthread_t *th = xcalloc((size_t)n_threads, sizeof *th);
    for (int t = 1; t < n_threads; t++)
        CHECK(pthread_create(&th[t], NULL, count_thread, &c->jobs[t]) == 0, "pthread_create failed");
    count_thread(&c->jobs[0]);
    for (int t = 1; t < n_threads; t++) pthread_join(th[t], NULL);
    free(th);
    for (int t = 0; t < n_threads && !c->failed; t++)
        if (c->jobs[t].failed) {
            c->failed = 1;
            dr_seterr("text %zu: invalid UTF-8 at byte offset %zu", c->n_texts + c->jobs[t].failed_text,
                      c->jobs[t].failed_offset);
        }
    c->n_texts += n_texts;
    return c->failed ? -1 : 0;
}

int tokenizer_train_bpe(const char *const *texts, const size_t *lens, size_t n_texts,
                        uint32_t n_vocab, TokInvalidUtf8 policy, int n_threads, const char *dir) {
    BpeCounts *c = bpe_counts_new(policy, n_threads);
    int rc = bpe_counts_add(c, texts, lens, n_texts);
    if (rc == 0) rc = bpe_counts_train(c, n_vocab, dir);
    bpe_counts_free(c);
    return rc;
}

int bpe_counts_train(BpeCounts *c, uint32_t n_vocab, const char *dir) {
    if (n_vocab < 258 || n_vocab > (1u << 24))
        return dr_seterr("--train-bpe %u: the vocabulary size must be in [258, 16777216]", n_vocab);
    if (c->failed) return -1;
    uint32_t n_merges = n_vocab - 257;
    const int shown = c->progress;
    Progress bar;   /* merges done of n_merges */
    if (shown) {
        progress_start(&bar, "merge", "merges", n_merges);
        progress_show(&bar);   /* on a terminal: the pair counts are being built */
    }

    /* 1. the threads' pre-token counts, merged into the first map */
    WordMap *words = &c->jobs[0].map;
    for (int t = 1; t < c->n_threads; t++) {
        WordMap *m = &c->jobs[t].map;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].count)
                wordmap_add(words, m->keys.bytes + m->slots[i].off, m->slots[i].len,
                            m->slots[i].hash, m->slots[i].count);
        wordmap_free(m);
        wordmap_init(m, 1);
    }

    /* 2. words of byte symbols; pair counts */
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    uint32_t byte_to_cp[256];
    uint8_t order[256];
    uint32_t byte_id[256];
    gpt2_byte_maps(byte_to_cp, order);
    for (int i = 0; i < 256; i++) byte_id[order[i]] = (uint32_t)i;
    tr.n_words = words->n;
    tr.sym = xmalloc((words->keys.n + 1) * sizeof *tr.sym);
    tr.start = xmalloc((tr.n_words + 1) * sizeof *tr.start);
    tr.len = xmalloc((tr.n_words + 1) * sizeof *tr.len);
    tr.count = xmalloc((tr.n_words + 1) * sizeof *tr.count);
    tr.stamp = xcalloc(tr.n_words + 1, sizeof *tr.stamp);
    uint64_t pos = 0;
    size_t w = 0;
    for (size_t i = 0; i < words->cap; i++) {
        const WordSlot *s = &words->slots[i];
        if (!s->count) continue;
        tr.start[w] = pos;
        tr.len[w] = s->len;
        tr.count[w] = s->count;
        for (uint32_t j = 0; j < s->len; j++)
            tr.sym[pos + j] = byte_id[(unsigned char)words->keys.bytes[s->off + j]];
        pos += s->len;
        w++;
    }
    wordmap_free(words);
    wordmap_init(words, 1);
    tr.merge_no = 0;
    for (w = 0; w < tr.n_words; w++) {
        const uint32_t *s = tr.sym + tr.start[w];
        for (uint32_t j = 0; j + 1 < tr.len[w]; j++) {
            uint32_t p = pair_get_or_add(&tr, s[j], s[j + 1]);
            tr.pairs[p].count += (int64_t)tr.count[w];
            wordlist_push(&tr.pairs[p].occ, (uint32_t)w);
        }
    }
    for (size_t p = 0; p < tr.n_pairs; p++) heap_push(&tr, (uint32_t)p);

    /* token table: the bytes */
    tr.tok_off = xmalloc(((size_t)n_vocab + 1) * sizeof *tr.tok_off);
    tr.tok_off[0] = 0;
    tr.tmap_cap = 16;
    while (tr.tmap_cap < 2 * (size_t)n_vocab) tr.tmap_cap *= 2;
    tr.tmap = xmalloc(tr.tmap_cap * sizeof *tr.tmap);
    for (size_t i = 0; i < tr.tmap_cap; i++) tr.tmap[i] = TOK_NONE;
    for (int i = 0; i < 256; i++) {
        char b = (char)order[i];
        size_t slot;
        tmap_find(&tr, &b, 1, tok_hash_bytes(&b, 1), &slot);
        add_token(&tr, &b, 1, slot);
    }

    /* 3. merges */
    uint32_t (*merges)[2] = xmalloc((size_t)n_merges * sizeof *merges);
    uint32_t done = 0;
    ByteBuf cat = {0};
    if (shown) progress_start(&bar, "merge", "merges", n_merges);   /* the rate: merges only */
    while (done < n_merges && tr.n_heap > 0) {
        Cand e = heap_pop(&tr);
        Pair *pr = &tr.pairs[e.p];
        if (pr->done || pr->count <= 0) continue;
        if (e.count < pr->count) continue;               /* a fresher entry exists */
        if (e.count > pr->count) { heap_push(&tr, e.p); continue; }
        cat.n = 0;
        bytebuf_append(&cat, tr.tok_data.bytes + tr.tok_off[pr->a], tr.tok_off[pr->a + 1] - tr.tok_off[pr->a]);
        bytebuf_append(&cat, tr.tok_data.bytes + tr.tok_off[pr->b], tr.tok_off[pr->b + 1] - tr.tok_off[pr->b]);
        size_t slot;
        if (tmap_find(&tr, cat.bytes, cat.n, tok_hash_bytes(cat.bytes, cat.n), &slot) != TOK_NONE) {
            pr->done = 1;                                /* bytes already a token */
            continue;
        }
        uint32_t c = tr.n_tokens;
        add_token(&tr, cat.bytes, cat.n, slot);
        merges[done][0] = pr->a;
        merges[done][1] = pr->b;
        pr->done = 1;
        tr.merge_no = done + 1;
        tr.n_touched = 0;
        apply_merge(&tr, e.p, c);
        for (size_t i = 0; i < tr.n_touched; i++) {
            Pair *q = &tr.pairs[tr.touched[i]];
            if (!q->done && q->count > q->before) heap_push(&tr, tr.touched[i]);
        }
        done++;
        if (shown) progress_update(&bar, done);
    }
    bytebuf_free(&cat);
    if (shown) progress_abort(&bar);   /* the summary, or the error, replaces the bar */
    int rc;
    if (done < n_merges)
        rc = dr_seterr("--train-bpe %u: the corpus gives only %u merges (%u tokens); "
                       "use a larger corpus or a smaller vocabulary", n_vocab, done, done + 257);
    else
        rc = write_vocab(&tr, (const uint32_t (*)[2])merges, n_merges, dir);
    free(merges);
    trainer_free(&tr);
    return rc;
}
