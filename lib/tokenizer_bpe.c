/* tokenizer_bpe.c — byte-pair merging of one pre-token, exactly as tiktoken's
 * byte_pair_encode, and the lookup tables it runs on.
 *
 * tiktoken's rule: a piece that is itself a token is that token; otherwise start from
 * single bytes and repeatedly merge the adjacent pair whose concatenation is the token
 * of lowest rank (leftmost on ties) until no adjacent concatenation is a token.
 * Short pieces use tiktoken's O(n^2) array scan; longer ones a binary heap of
 * candidate pairs over a linked list of symbols, O(n log n) with nothing capped, so a
 * megabyte without a space costs milliseconds, not hours. Both give the same ids
 * (tests compare them).
 * Must never keep state between calls other than the caller's scratch.
 */
#include "tokenizer_internal.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>

#define BPE_SMALL 64     /* pieces up to this many bytes take the array path */

/* A heap entry is one 64-bit key: rank << 32 | byte offset of the pair's left symbol, so
 * the smallest key is the lowest rank, leftmost on ties. Entries are validated when
 * popped (the pair at that offset must still have that rank). */
struct BpeHeapEnt { uint64_t key; };
typedef struct BpeHeapEnt HeapEnt;

/* ---- tables -------------------------------------------------------------------- */

static uint64_t pow2_at_least(uint64_t n) {
    uint64_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

static void pairmap_put(PairMap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t id) {
    uint64_t key = (uint64_t)a << 32 | b;
    for (uint64_t i = pair_hash(key) & m->mask;; i = (i + 1) & m->mask) {
        PairSlot *s = &m->slots[i];
        if (s->key == key) {                 /* two splits, same pair: keep lowest rank */
            if (rank < s->rank) { s->rank = rank; s->id = id; }
            return;
        }
        if (s->key == UINT64_MAX) { s->key = key; s->rank = rank; s->id = id; m->n++; return; }
    }
}

void tok_build_token_map(Tokenizer *t) {
    /* token bytes -> id, every token but end-of-text */
    uint64_t nslots = pow2_at_least(2 * (uint64_t)t->n_vocab);
    t->tokens.slots = xmalloc(nslots * sizeof *t->tokens.slots);
    t->tokens.mask = nslots - 1;
    for (uint64_t i = 0; i < nslots; i++) t->tokens.slots[i] = TOK_NONE;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        if (id == t->eot) continue;
        size_t len;
        const char *b = tok_bytes(t, id, &len);
        uint64_t h = tok_hash_bytes(b, len);
        uint64_t i = h & t->tokens.mask;
        while (t->tokens.slots[i] != TOK_NONE) i = (i + 1) & t->tokens.mask;
        t->tokens.slots[i] = id;
    }
}

void tok_build_pair_map(Tokenizer *t) {
    /* (left, right) -> merged, for every split of a ranked token into two tokens */
    size_t n_splits = 0;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        if (t->rank[id] == TOK_NONE) continue;
        size_t len;
        tok_bytes(t, id, &len);
        n_splits += len - 1;
    }
    uint64_t pslots = pow2_at_least(2 * (uint64_t)n_splits + 16);
    t->pairs.slots = xmalloc(pslots * sizeof *t->pairs.slots);
    t->pairs.mask = pslots - 1;
    t->pairs.n = 0;
    for (uint64_t i = 0; i < pslots; i++) t->pairs.slots[i].key = UINT64_MAX;
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        if (t->rank[id] == TOK_NONE) continue;
        size_t len;
        const char *b = tok_bytes(t, id, &len);
        for (size_t k = 1; k < len; k++) {
            uint32_t a = tokenmap_get(t, b, k, tok_hash_bytes(b, k));
            uint32_t c = tokenmap_get(t, b + k, len - k, tok_hash_bytes(b + k, len - k));
            if (a != TOK_NONE && c != TOK_NONE) pairmap_put(&t->pairs, a, c, t->rank[id], id);
        }
    }
}

/* ---- merging ------------------------------------------------------------------- */

static void scratch_reserve(BpeScratch *s, size_t n) {
    if (n <= s->cap) return;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < n) cap *= 2;
    s->ids = xrealloc(s->ids, cap * sizeof *s->ids);
    s->ranks = xrealloc(s->ranks, cap * sizeof *s->ranks);
    s->len = xrealloc(s->len, cap * sizeof *s->len);
    s->next = xrealloc(s->next, cap * sizeof *s->next);
    s->prev = xrealloc(s->prev, cap * sizeof *s->prev);
    s->sid = xrealloc(s->sid, cap * sizeof *s->sid);
    s->cap = cap;
}

void bpe_scratch_free(BpeScratch *s) {
    free(s->ids); free(s->ranks); free(s->len); free(s->next); free(s->prev);
    free(s->sid); free(s->heap);
    memset(s, 0, sizeof *s);
}

/* tiktoken's _byte_pair_merge over an array of m symbols. */
static void bpe_small(const Tokenizer *t, const unsigned char *p, size_t n, BpeScratch *s,
                      TokenBuf *out) {
    uint32_t *ids = s->ids, *ranks = s->ranks;
    size_t m = n;
    for (size_t i = 0; i < n; i++) ids[i] = t->byte_id[p[i]];
    uint32_t merged[BPE_SMALL];
    for (size_t i = 0; i + 1 < m; i++) merged[i] = pairmap_get(t, ids[i], ids[i + 1], &ranks[i]);
    for (size_t i = 0; i + 1 < m; i++) if (merged[i] == TOK_NONE) ranks[i] = TOK_NONE;
    for (;;) {
        uint32_t best = TOK_NONE;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (ranks[i] < best) { best = ranks[i]; bi = i; }
        if (best == TOK_NONE) break;
        ids[bi] = merged[bi];
        memmove(ids + bi + 1, ids + bi + 2, (m - bi - 2) * sizeof *ids);
        memmove(ranks + bi + 1, ranks + bi + 2, (m - bi - 2) * sizeof *ranks);
        memmove(merged + bi + 1, merged + bi + 2, (m - bi - 2) * sizeof *merged);
        m--;
        if (bi > 0) {
            merged[bi - 1] = pairmap_get(t, ids[bi - 1], ids[bi], &ranks[bi - 1]);
            if (merged[bi - 1] == TOK_NONE) ranks[bi - 1] = TOK_NONE;
        }
        if (bi + 1 < m) {
            merged[bi] = pairmap_get(t, ids[bi], ids[bi + 1], &ranks[bi]);
            if (merged[bi] == TOK_NONE) ranks[bi] = TOK_NONE;
        }
    }
    for (size_t i = 0; i < m; i++) tokenbuf_push(out, ids[i]);
}

/* 4-ary min-heap of keys */
static void heap_sift_down(HeapEnt *h, size_t n, size_t i) {
    HeapEnt x = h[i];
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= n) break;
        size_t best = c, end = c + 4 < n ? c + 4 : n;
        for (size_t k = c + 1; k < end; k++)
            if (h[k].key < h[best].key) best = k;
        if (h[best].key >= x.key) break;
        h[i] = h[best];
        i = best;
    }
    h[i] = x;
}

static void heap_push(BpeScratch *s, size_t *hn, uint64_t key) {
    if (*hn == s->heap_cap) {
        s->heap_cap = s->heap_cap ? 2 * s->heap_cap : 1024;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    HeapEnt *h = s->heap;
    size_t i = (*hn)++;
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (h[parent].key <= key) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i].key = key;
}

static uint64_t heap_pop(BpeScratch *s, size_t *hn) {
    HeapEnt *h = s->heap;
    uint64_t top = h[0].key;
    h[0] = h[--(*hn)];
    if (*hn > 1) heap_sift_down(h, *hn, 0);
    return top;
}

/* Symbols are identified by their first byte offset: len[pos] > 0 while alive. */
static void push_pair(const Tokenizer *t, BpeScratch *s, size_t *hn, int32_t a) {
    int32_t b = s->next[a];
    if (a < 0 || b < 0) return;
    uint32_t rank;
    if (pairmap_get(t, s->sid[a], s->sid[b], &rank) == TOK_NONE) return;
    heap_push(s, hn, (uint64_t)rank << 32 | (uint32_t)a);
}

static void bpe_heap(const Tokenizer *t, const unsigned char *p, size_t n, BpeScratch *s,
                     TokenBuf *out) {
    CHECK(n < INT32_MAX, "BPE piece of %zu bytes is too long", n);
    for (size_t i = 0; i < n; i++) {
        s->sid[i] = t->byte_id[p[i]];
        s->len[i] = 1;
        s->next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        s->prev[i] = (int32_t)i - 1;
    }
    /* all initial pairs, then heapify in O(n) */
    if (s->heap_cap < n) {
        s->heap_cap = n;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        uint32_t rank;
        if (pairmap_get(t, s->sid[i], s->sid[i + 1], &rank) != TOK_NONE)
            s->heap[hn++].key = (uint64_t)rank << 32 | (uint32_t)i;
    }
    for (size_t i = hn / 4 + 1; i-- > 0;) if (i < hn) heap_sift_down(s->heap, hn, i);
    while (hn > 0) {
        uint64_t key = heap_pop(s, &hn);
        int32_t a = (int32_t)(uint32_t)key;
        int32_t b = s->len[a] ? s->next[a] : -1;
        if (b < 0) continue;                                        /* stale */
        uint32_t rank, id = pairmap_get(t, s->sid[a], s->sid[b], &rank);
        if (id == TOK_NONE || rank != (uint32_t)(key >> 32)) continue; /* stale */
        s->sid[a] = id;
        s->len[a] += s->len[b];
        s->len[b] = 0;
        s->next[a] = s->next[b];
        if (s->next[b] >= 0) s->prev[s->next[b]] = a;
        if (s->prev[a] >= 0) push_pair(t, s, &hn, s->prev[a]);
        push_pair(t, s, &hn, a);
    }
    for (int32_t i = 0; i >= 0; i = s->next[i]) tokenbuf_push(out, s->sid[i]);
}

void tok_bpe_piece(const Tokenizer *t, const char *piece, size_t n, BpeScratch *s,
                   TokenBuf *out) {
    const unsigned char *p = (const unsigned char *)piece;
    if (n == 1) { tokenbuf_push(out, t->byte_id[p[0]]); return; }
    uint32_t whole = tokenmap_get(t, piece, n, tok_hash_bytes(piece, n));
    if (whole != TOK_NONE) { tokenbuf_push(out, whole); return; }
    scratch_reserve(s, n);
    if (n <= BPE_SMALL) bpe_small(t, p, n, s, out);
    else bpe_heap(t, p, n, s, out);
}

void tok_bpe_piece_heap(const Tokenizer *t, const char *piece, size_t n, BpeScratch *s,
                        TokenBuf *out) {
    const unsigned char *p = (const unsigned char *)piece;
    if (n == 1) { tokenbuf_push(out, t->byte_id[p[0]]); return; }
    uint32_t whole = tokenmap_get(t, piece, n, tok_hash_bytes(piece, n));
    if (whole != TOK_NONE) { tokenbuf_push(out, whole); return; }
    scratch_reserve(s, n);
    bpe_heap(t, p, n, s, out);
}
