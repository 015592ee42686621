/* tokenizer_internal.h — what tokenizer*.c share and nothing else may use: the
 * Tokenizer struct, its two hash tables (token bytes -> id, id pair -> merged id) and
 * the byte-pair merge of one pre-token. Must never be included by tools.
 */
#ifndef DR_TOKENIZER_INTERNAL_H
#define DR_TOKENIZER_INTERNAL_H

#include "tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xxhash.h>

#define TOK_NONE UINT32_MAX
#define TOK_EOT_TEXT "<|endoftext|>"

/* Token bytes -> id (open addressing, linear probing; slots hold ids). */
typedef struct {
    uint32_t *slots;      /* TOK_NONE = empty */
    uint64_t mask;
} TokenMap;

/* (left id, right id) -> (rank, merged id), for every split of a merged token into two
 * tokens: the rank of the concatenation, as tiktoken looks it up. */
typedef struct {
    uint64_t key;         /* left << 32 | right; UINT64_MAX = empty */
    uint32_t rank, id;
} PairSlot;
typedef struct {
    PairSlot *slots;
    uint64_t mask;
    size_t n;
} PairMap;

struct Tokenizer {
    TokKind kind;
    char *spec;
    uint32_t n_vocab, eot;
    uint64_t fingerprint;
    /* token id -> bytes: tok_data[tok_off[id] .. tok_off[id + 1]) */
    uint32_t *tok_off;
    char *tok_data;
    uint32_t byte_id[256];     /* id of each single byte */
    /* BPE only */
    uint32_t *rank;            /* per id: merge rank (256 + merge index), TOK_NONE for bytes/eot */
    uint32_t (*merges)[2];     /* merge k: (left id, right id), result has rank 256 + k */
    uint32_t n_merges;
    TokenMap tokens;           /* excludes end-of-text */
    PairMap pairs;
};

/* The hash used by TokenMap and the encoder's cache. */
static inline uint64_t tok_hash_bytes(const void *p, size_t n) { return XXH3_64bits(p, n); }

static inline const char *tok_bytes(const Tokenizer *t, uint32_t id, size_t *len) {
    *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_data + t->tok_off[id];
}

/* Token id of bytes p[0..n) with hash h = tok_hash_bytes(p, n), or TOK_NONE. */
static inline uint32_t tokenmap_get(const Tokenizer *t, const char *p, size_t n, uint64_t h) {
    for (uint64_t i = h & t->tokens.mask;; i = (i + 1) & t->tokens.mask) {
        uint32_t id = t->tokens.slots[i];
        if (id == TOK_NONE) return TOK_NONE;
        size_t len;
        const char *b = tok_bytes(t, id, &len);
        if (len == n && memcmp(b, p, n) == 0) return id;
    }
}

static inline uint64_t pair_hash(uint64_t key) { return (key * 0x9E3779B97F4A7C15ull) >> 17; }

/* Merged id of (a, b) with its rank in *rank, or TOK_NONE. */
static inline uint32_t pairmap_get(const Tokenizer *t, uint32_t a, uint32_t b, uint32_t *rank) {
    uint64_t key = (uint64_t)a << 32 | b;
    for (uint64_t i = pair_hash(key) & t->pairs.mask;; i = (i + 1) & t->pairs.mask) {
        const PairSlot *s = &t->pairs.slots[i];
        if (s->key == key) { *rank = s->rank; return s->id; }
        if (s->key == UINT64_MAX) return TOK_NONE;
    }
}

/* Builds t->tokens from tok_off/tok_data (all ids but eot), then t->pairs from rank
 * (called by the loaders, in that order). */
void tok_build_token_map(Tokenizer *t);
void tok_build_pair_map(Tokenizer *t);

/* Scratch for tok_bpe_piece (one per thread). */
typedef struct {
    uint32_t *ids, *ranks;                    /* small path */
    int32_t *len, *next, *prev;               /* heap path, indexed by byte offset */
    uint32_t *sid;
    struct BpeHeapEnt *heap;
    size_t cap, heap_cap;
} BpeScratch;

/* Appends the BPE ids of piece p[0..n) (n >= 1), exactly as tiktoken: the whole piece
 * when it is a token, else repeated merging of the adjacent pair whose concatenation
 * has the lowest rank (leftmost on ties). O(n^2) for short pieces, O(n log n) beyond. */
void tok_bpe_piece(const Tokenizer *t, const char *p, size_t n, BpeScratch *s, TokenBuf *out);
/* The same, always by the heap path (tests compare the two). */
void tok_bpe_piece_heap(const Tokenizer *t, const char *p, size_t n, BpeScratch *s, TokenBuf *out);
void bpe_scratch_free(BpeScratch *s);

/* GPT-2's bytes_to_unicode(): the code point that stands for byte b in the files, and
 * the order of the 256 byte tokens (id i is byte gpt2_byte_order[i]). */
void gpt2_byte_maps(uint32_t byte_to_cp[256], uint8_t byte_order[256]);

#endif
