/* tokenizer.c — loading the three tokenizers, encoding with a per-thread TokEncoder,
 * decoding, identity (spec, fingerprint).
 *
 * GPT-2 file format (encoder.json + vocab.bpe): each byte is written as one printable
 * code point (bytes_to_unicode); encoder.json maps token strings to ids and holds
 * "<|endoftext|>"; vocab.bpe is "#version: 0.2" then one merge "A B" per line, merge k
 * making a token of rank 256 + k. Loading checks that the files agree (every token is a
 * byte or made by exactly one merge, ids dense) and refuses anything else, naming the
 * file and line.
 * Must never: mutate a loaded Tokenizer (threads share it), or exit on bad files.
 */
#include "tokenizer_internal.h"
#include "check.h"
#include "json.h"
#include "unicode.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- buffers ------------------------------------------------------------------- */

void tokenbuf_push(TokenBuf *b, uint32_t id) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->ids = xrealloc(b->ids, b->cap * sizeof *b->ids);
    }
    b->ids[b->n++] = id;
}

static void tokenbuf_reserve(TokenBuf *b, size_t extra) {
    if (b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + extra) cap *= 2;
    b->ids = xrealloc(b->ids, cap * sizeof *b->ids);
    b->cap = cap;
}

void bytebuf_append(ByteBuf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        b->bytes = xrealloc(b->bytes, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->bytes + b->n, data, n);
    b->n += n;
}

void tokenbuf_free(TokenBuf *b) { free(b->ids); b->ids = NULL; b->n = b->cap = 0; }
void bytebuf_free(ByteBuf *b) { free(b->bytes); b->bytes = NULL; b->n = b->cap = 0; }

/* ---- GPT-2 byte alphabet ------------------------------------------------------- */

void gpt2_byte_maps(uint32_t byte_to_cp[256], uint8_t byte_order[256]) {
    /* bytes_to_unicode(): printable Latin-1 bytes stand for themselves and come first;
     * the other 68 bytes map to U+0100.. in byte order. */
    int n = 0, extra = 0;
    int printable[256] = {0};
    for (int b = '!'; b <= '~'; b++) printable[b] = 1;
    for (int b = 0xA1; b <= 0xAC; b++) printable[b] = 1;
    for (int b = 0xAE; b <= 0xFF; b++) printable[b] = 1;
    for (int b = 0; b < 256; b++)
        if (printable[b]) { byte_to_cp[b] = (uint32_t)b; byte_order[n++] = (uint8_t)b; }
    for (int b = 0; b < 256; b++)
        if (!printable[b]) { byte_to_cp[b] = 256u + (uint32_t)extra++; byte_order[n++] = (uint8_t)b; }
}

/* Decodes a token string of the files into bytes (out has room for len bytes).
 * Returns the byte count, or -1 when a character is outside the byte alphabet. */
static long gpt2_string_to_bytes(const int16_t cp_to_byte[324], const char *s, size_t len,
                                 char *out) {
    long n = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = uni_decode((const unsigned char *)s + i, len - i, &cp);
        if (cp >= 324 || cp_to_byte[cp] < 0) return -1;
        out[n++] = (char)cp_to_byte[cp];
        i += k;
    }
    return n;
}

/* ---- loading ------------------------------------------------------------------- */

static Tokenizer *tok_alloc(TokKind kind) {
    Tokenizer *t = xcalloc(1, sizeof *t);
    t->kind = kind;
    return t;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->spec); free(t->tok_off); free(t->tok_data); free(t->rank); free(t->merges);
    free(t->tokens.slots); free(t->pairs.slots);
    free(t);
}

static void compute_fingerprint(Tokenizer *t) {
    XXH64_state_t *st = XXH64_createState();
    CHECK(st, "out of memory");
    XXH64_reset(st, 0);
    static const char *names[] = {"byte", "gpt2", "bpe"};
    XXH64_update(st, names[t->kind], strlen(names[t->kind]) + 1);
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        size_t len;
        const char *b = tok_bytes(t, id, &len);
        unsigned char le[4] = {(unsigned char)len, (unsigned char)(len >> 8),
                               (unsigned char)(len >> 16), (unsigned char)(len >> 24)};
        XXH64_update(st, le, 4);
        XXH64_update(st, b, len);
    }
    for (uint32_t k = 0; k < t->n_merges; k++) {
        unsigned char le[8];
        for (int i = 0; i < 4; i++) {
            le[i] = (unsigned char)(t->merges[k][0] >> (8 * i));
            le[4 + i] = (unsigned char)(t->merges[k][1] >> (8 * i));
        }
        XXH64_update(st, le, 8);
    }
    t->fingerprint = XXH64_digest(st);
    XXH64_freeState(st);
}

static Tokenizer *load_byte(void) {
    Tokenizer *t = tok_alloc(TOK_BYTE);
    t->n_vocab = 257;
    t->eot = 256;
    size_t eot_len = strlen(TOK_EOT_TEXT);
    t->tok_off = xmalloc(258 * sizeof *t->tok_off);
    t->tok_data = xmalloc(256 + eot_len);
    for (uint32_t b = 0; b < 256; b++) {
        t->tok_off[b] = b;
        t->tok_data[b] = (char)b;
        t->byte_id[b] = b;
    }
    memcpy(t->tok_data + 256, TOK_EOT_TEXT, eot_len);
    t->tok_off[256] = 256;
    t->tok_off[257] = (uint32_t)(256 + eot_len);
    tok_build_token_map(t);
    t->spec = xstrdup("byte");
    compute_fingerprint(t);
    return t;
}

/* The most bytes read of encoder.json or vocab.bpe (regular files: a larger one, a disk
 * image or a sparse file given by mistake, is refused by its size before it is read).
 * GPT-2's are 1.0 MB and 0.5 MB. The largest vocabulary --train-bpe makes, 16777216
 * tokens, writes each token byte >= 0x80 as a 6-character \u escape in encoder.json
 * (docs/formats.md §1.3): about 100 bytes an entry for tokens of 15 such bytes, 1.6 GB. */
#define VOCAB_FILE_MAX ((size_t)2 << 30)

/* Reads encoder.json: fills tok_off/tok_data/n_vocab/eot/byte_id. -1 + dr_seterr. */
static int load_encoder_json(Tokenizer *t, const char *path, const int16_t cp_to_byte[324]) {
    size_t len;
    char *text = dr_read_file(path, VOCAB_FILE_MAX, "a vocabulary file", &len);
    if (!text) return -1;
    JsonDoc *doc = json_parse(text, len, 0);
    if (!doc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dr_lasterr());
        free(text);
        return dr_seterr("%s: not valid JSON: %s", path, msg);
    }
    free(text);
    const JsonValue *root = json_root(doc);
    int rc = -1;
    if (root->type != JSON_OBJECT || root->len < 257) {
        dr_seterr("%s: expected a JSON object of at least 257 tokens", path);
        goto out;
    }
    size_t n = root->len;
    if (n > (size_t)INT32_MAX) { dr_seterr("%s: too many tokens", path); goto out; }
    t->n_vocab = (uint32_t)n;
    t->eot = TOK_NONE;
    uint32_t *off_of = xmalloc(n * sizeof *off_of), *len_of = xmalloc(n * sizeof *len_of);
    for (size_t i = 0; i < n; i++) len_of[i] = UINT32_MAX;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += root->key_lens[i] + 16;
    t->tok_data = xmalloc(total + 1);
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const JsonValue *v = &root->items[i];
        const char *key = root->keys[i];
        size_t klen = root->key_lens[i];
        if (v->type != JSON_NUMBER || v->number < 0 || v->number >= (double)n ||
            v->number != (double)(uint32_t)v->number) {
            dr_seterr("%s: token \"%.*s\": id is not an integer in [0, %zu)", path,
                      (int)(klen > 40 ? 40 : klen), key, n);
            goto out_ids;
        }
        uint32_t id = (uint32_t)v->number;
        if (len_of[id] != UINT32_MAX) {
            dr_seterr("%s: id %u is given to two tokens", path, id);
            goto out_ids;
        }
        long nb;
        if (klen == strlen(TOK_EOT_TEXT) && memcmp(key, TOK_EOT_TEXT, klen) == 0) {
            t->eot = id;
            memcpy(t->tok_data + used, TOK_EOT_TEXT, klen);
            nb = (long)klen;
        } else {
            nb = gpt2_string_to_bytes(cp_to_byte, key, klen, t->tok_data + used);
            if (nb <= 0) {
                dr_seterr("%s: token \"%.*s\" (id %u) is not in GPT-2's byte alphabet", path,
                          (int)(klen > 40 ? 40 : klen), key, id);
                goto out_ids;
            }
        }
        off_of[id] = (uint32_t)used;
        len_of[id] = (uint32_t)nb;
        used += (size_t)nb;
    }
    if (t->eot == TOK_NONE) { dr_seterr("%s: no \"%s\" token", path, TOK_EOT_TEXT); goto out_ids; }
    /* repack in id order */
    char *data = xmalloc(used + 1);
    t->tok_off = xmalloc((n + 1) * sizeof *t->tok_off);
    size_t pos = 0;
    for (size_t id = 0; id < n; id++) {
        t->tok_off[id] = (uint32_t)pos;
        memcpy(data + pos, t->tok_data + off_of[id], len_of[id]);
        pos += len_of[id];
    }
    t->tok_off[n] = (uint32_t)pos;
    free(t->tok_data);
    t->tok_data = data;
    /* single bytes */
    for (int b = 0; b < 256; b++) t->byte_id[b] = TOK_NONE;
    for (uint32_t id = 0; id < n; id++) {
        size_t l;
        const char *bytes = tok_bytes(t, id, &l);
        if (l == 1 && id != t->eot) {
            if (t->byte_id[(unsigned char)bytes[0]] != TOK_NONE) {
                dr_seterr("%s: byte 0x%02x has two tokens", path, (unsigned char)bytes[0]);
                goto out_ids;
            }
            t->byte_id[(unsigned char)bytes[0]] = id;
        }
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] == TOK_NONE) {
            dr_seterr("%s: byte 0x%02x has no token", path, b);
            goto out_ids;
        }
    rc = 0;
out_ids:
    free(off_of);
    free(len_of);
out:
    json_free(doc);
    return rc;
}

/* Reads vocab.bpe: fills rank/merges/n_merges (token map must exist). -1 + dr_seterr. */
static int load_vocab_bpe(Tokenizer *t, const char *path, const int16_t cp_to_byte[324]) {
    size_t len;
    char *text = dr_read_file(path, VOCAB_FILE_MAX, "a vocabulary file", &len);
    if (!text) return -1;
    int rc = -1;
    t->rank = xmalloc(t->n_vocab * sizeof *t->rank);
    for (uint32_t i = 0; i < t->n_vocab; i++) t->rank[i] = TOK_NONE;
    t->merges = xmalloc((size_t)t->n_vocab * sizeof *t->merges);
    t->n_merges = 0;
    char *buf = xmalloc(len + 1);
    size_t pos = 0, line = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        size_t llen = end - pos;
        const char *l = text + pos;
        line++;
        pos = end + 1;
        if (llen && l[llen - 1] == '\r') llen--;
        if (line == 1) {
            if (llen < 8 || memcmp(l, "#version", 8) != 0) {
                dr_seterr("%s:1: expected a \"#version\" line (GPT-2 vocab.bpe format)", path);
                goto out;
            }
            continue;
        }
        if (llen == 0) {
            if (pos >= len) break;   /* final newline */
            dr_seterr("%s:%zu: empty line", path, line);
            goto out;
        }
        const char *sp = memchr(l, ' ', llen);
        if (!sp || sp == l || sp == l + llen - 1 || memchr(sp + 1, ' ', llen - (size_t)(sp + 1 - l))) {
            dr_seterr("%s:%zu: expected \"LEFT RIGHT\"", path, line);
            goto out;
        }
        size_t la = (size_t)(sp - l), lb = llen - la - 1;
        long na = gpt2_string_to_bytes(cp_to_byte, l, la, buf);
        long nb = na < 0 ? -1 : gpt2_string_to_bytes(cp_to_byte, sp + 1, lb, buf + na);
        if (na <= 0 || nb <= 0) {
            dr_seterr("%s:%zu: a character outside GPT-2's byte alphabet", path, line);
            goto out;
        }
        uint32_t a = tokenmap_get(t, buf, (size_t)na, tok_hash_bytes(buf, (size_t)na));
        uint32_t b = tokenmap_get(t, buf + na, (size_t)nb, tok_hash_bytes(buf + na, (size_t)nb));
        uint32_t c = tokenmap_get(t, buf, (size_t)(na + nb), tok_hash_bytes(buf, (size_t)(na + nb)));
        if (a == TOK_NONE || b == TOK_NONE || c == TOK_NONE) {
            dr_seterr("%s:%zu: merge \"%.*s\" uses or makes a token that encoder.json lacks",
                      path, line, (int)(llen > 60 ? 60 : llen), l);
            goto out;
        }
        if (t->rank[c] != TOK_NONE) {
            dr_seterr("%s:%zu: merge makes token %u a second time", path, line, c);
            goto out;
        }
        if (t->n_merges >= t->n_vocab) { dr_seterr("%s: more merges than tokens", path); goto out; }
        t->rank[c] = 256 + t->n_merges;
        t->merges[t->n_merges][0] = a;
        t->merges[t->n_merges][1] = b;
        t->n_merges++;
    }
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        size_t l;
        tok_bytes(t, id, &l);
        if (id != t->eot && l > 1 && t->rank[id] == TOK_NONE) {
            dr_seterr("%s: token %u of encoder.json is made by no merge", path, id);
            goto out;
        }
    }
    rc = 0;
out:
    free(buf);
    free(text);
    return rc;
}


static int dir_has_file(const char *dir, const char *name) {
    char *path = dr_path_join(dir, name);
    struct stat st;
    int ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    return ok;
}

/* The default gpt2 directory (malloc'd): $DR_DATA/gpt2; else, for an installed tool
 * (<exe dir>/../share/datarater exists: `make install` made it beside <prefix>/bin),
 * <exe dir>/../share/datarater/gpt2 and nothing else, so that no data/gpt2 a few levels
 * above <prefix>/bin is taken instead; else, in a build, <exe dir>/../data/gpt2 (or two or
 * three levels up: build/float/tests, build/double/bin). Relative to the executable, so a
 * DESTDIR-staged or moved install finds its own. */
static char *default_vocab_dir(void) {
    const char *env = getenv("DR_DATA");
    if (env && *env) return dr_path_join(env, "gpt2");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        dr_seterr("cannot locate the executable to find the GPT-2 vocabulary: pass --vocab-dir or set DR_DATA");
        return NULL;
    }
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    char *installed = dr_path_join(exe, "../share/datarater");
    struct stat st;
    int is_installed = stat(installed, &st) == 0 && S_ISDIR(st.st_mode);
    free(installed);
    if (is_installed) {
        char *dir = dr_path_join(exe, "../share/datarater/gpt2");
        if (dir_has_file(dir, "encoder.json")) return dir;
        dr_seterr("%s: no GPT-2 vocabulary there (installed without it): run `make vocab` and "
                  "`make install` again in the source tree, pass --vocab-dir DIR or set DR_DATA", dir);
        free(dir);
        return NULL;
    }
    static const char *ups[] = {"../data/gpt2", "../../data/gpt2", "../../../data/gpt2"};
    for (int i = 0; i < 3; i++) {
        char *dir = dr_path_join(exe, ups[i]);
        if (dir_has_file(dir, "encoder.json")) return dir;
        free(dir);
    }
    char *dir = dr_path_join(exe, ups[0]);
    dr_seterr("%s: no GPT-2 vocabulary there: run `make vocab`, pass --vocab-dir DIR or set DR_DATA", dir);
    free(dir);
    return NULL;
}

static Tokenizer *load_bpe_files(TokKind kind, const char *dir) {
    int16_t cp_to_byte[324];
    uint32_t byte_to_cp[256];
    uint8_t order[256];
    gpt2_byte_maps(byte_to_cp, order);
    for (int i = 0; i < 324; i++) cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_to_byte[byte_to_cp[b]] = (int16_t)b;

    for (int f = 0; f < 2; f++) {
        const char *name = f ? "vocab.bpe" : "encoder.json";
        if (dir_has_file(dir, name)) continue;
        char *path = dr_path_join(dir, name);
        struct stat st;
        const int exists = stat(path, &st) == 0;
        free(path);
        dr_seterr("%s: %s %s%s", dir, name, exists ? "is not a regular file" : "is missing",
                  kind == TOK_GPT2 ? " (run `make vocab` or pass --vocab-dir)" : "");
        return NULL;
    }
    char *enc = dr_path_join(dir, "encoder.json"), *voc = dr_path_join(dir, "vocab.bpe");
    Tokenizer *t = tok_alloc(kind);
    int ok = load_encoder_json(t, enc, cp_to_byte) == 0;
    if (ok) tok_build_token_map(t);
    ok = ok && load_vocab_bpe(t, voc, cp_to_byte) == 0;
    free(enc);
    free(voc);
    if (!ok) { tokenizer_free(t); return NULL; }
    tok_build_pair_map(t);
    if (kind == TOK_GPT2) {
        t->spec = xstrdup("gpt2");
    } else {
        char abs[PATH_MAX];
        const char *d = realpath(dir, abs) ? abs : dir;
        size_t n = strlen(d) + 5;
        t->spec = xmalloc(n);
        snprintf(t->spec, n, "bpe:%s", d);
    }
    compute_fingerprint(t);
    return t;
}

Tokenizer *tokenizer_load(const char *kind, const char *vocab_dir) {
    if (!kind) kind = "byte";
    if (strcmp(kind, "byte") == 0) return load_byte();
    if (strcmp(kind, "gpt2") == 0) {
        if (vocab_dir) return load_bpe_files(TOK_GPT2, vocab_dir);
        char *dir = default_vocab_dir();
        if (!dir) return NULL;
        Tokenizer *t = load_bpe_files(TOK_GPT2, dir);
        free(dir);
        return t;
    }
    if (strcmp(kind, "bpe") == 0) {
        if (!vocab_dir) { dr_seterr("tokenizer bpe needs a vocabulary directory (--vocab-dir DIR)"); return NULL; }
        return load_bpe_files(TOK_BPE, vocab_dir);
    }
    dr_seterr("unknown tokenizer \"%s\" (expected byte, gpt2 or bpe)", kind);
    return NULL;
}

int tokenizer_check_fingerprint(const Tokenizer *t, uint64_t fingerprint, const char *shard) {
    if (tokenizer_fingerprint(t) == fingerprint) return 0;
    return dr_seterr("tokenizer \"%s\" (fingerprint %016llx) is not the one %s was made with "
                     "(fingerprint %016llx)", tokenizer_spec(t),
                     (unsigned long long)tokenizer_fingerprint(t), shard,
                     (unsigned long long)fingerprint);
}

Tokenizer *tokenizer_from_spec(const char *spec) {
    if (!spec || !*spec) { dr_seterr("empty tokenizer spec"); return NULL; }
    if (strcmp(spec, "byte") == 0) return tokenizer_load("byte", NULL);
    if (strcmp(spec, "gpt2") == 0) return tokenizer_load("gpt2", NULL);
    if (strncmp(spec, "gpt2:", 5) == 0) return tokenizer_load("gpt2", spec + 5);
    if (strncmp(spec, "bpe:", 4) == 0 && spec[4]) return tokenizer_load("bpe", spec + 4);
    dr_seterr("unknown tokenizer spec \"%s\"", spec);
    return NULL;
}

TokKind tokenizer_kind(const Tokenizer *t) { return t->kind; }
const char *tokenizer_spec(const Tokenizer *t) { return t->spec; }
uint32_t tokenizer_vocab_size(const Tokenizer *t) { return t->n_vocab; }
uint32_t tokenizer_eot(const Tokenizer *t) { return t->eot; }
uint64_t tokenizer_fingerprint(const Tokenizer *t) { return t->fingerprint; }

const char *tokenizer_token_bytes(const Tokenizer *t, uint32_t id, size_t *len) {
    if (id >= t->n_vocab) return NULL;
    return tok_bytes(t, id, len);
}

/* ---- encoding ------------------------------------------------------------------ */

/* Direct-mapped cache of short pre-tokens: a slot is one cache line. */
#define CACHE_BITS 15
#define CACHE_KEY 30
#define CACHE_IDS 8
typedef struct {
    uint8_t klen, nids;          /* klen 0 = empty */
    char key[CACHE_KEY];
    uint32_t ids[CACHE_IDS];
} CacheSlot;

struct TokEncoder {
    const Tokenizer *t;
    CacheSlot *cache;
    BpeScratch bpe;
    ByteBuf fixed;               /* text with U+FFFD replacements */
    TokenBuf piece;              /* ids of one piece */
};

TokEncoder *tok_encoder_new(const Tokenizer *t) {
    TokEncoder *e = xcalloc(1, sizeof *e);
    e->t = t;
    if (t->kind != TOK_BYTE) e->cache = xcalloc((size_t)1 << CACHE_BITS, sizeof *e->cache);
    return e;
}

void tok_encoder_free(TokEncoder *e) {
    if (!e) return;
    free(e->cache);
    bpe_scratch_free(&e->bpe);
    bytebuf_free(&e->fixed);
    tokenbuf_free(&e->piece);
    free(e);
}

static inline void encode_piece(TokEncoder *e, const char *p, size_t n, TokenBuf *out) {
    const Tokenizer *t = e->t;
    if (n == 1) { tokenbuf_push(out, t->byte_id[(unsigned char)p[0]]); return; }
    CacheSlot *slot = NULL;
    if (n <= CACHE_KEY) {
        slot = &e->cache[tok_hash_bytes(p, n) & (((size_t)1 << CACHE_BITS) - 1)];
        if (slot->klen == n && memcmp(slot->key, p, n) == 0) {
            tokenbuf_reserve(out, slot->nids);
            memcpy(out->ids + out->n, slot->ids, slot->nids * sizeof *slot->ids);
            out->n += slot->nids;
            return;
        }
    }
    e->piece.n = 0;
    tok_bpe_piece(t, p, n, &e->bpe, &e->piece);
    if (slot && e->piece.n <= CACHE_IDS) {
        slot->klen = (uint8_t)n;
        slot->nids = (uint8_t)e->piece.n;
        memcpy(slot->key, p, n);
        memcpy(slot->ids, e->piece.ids, e->piece.n * sizeof *slot->ids);
    }
    tokenbuf_reserve(out, e->piece.n);
    memcpy(out->ids + out->n, e->piece.ids, e->piece.n * sizeof *out->ids);
    out->n += e->piece.n;
}

int tok_encoder_encode(TokEncoder *e, const char *text, size_t len, TokInvalidUtf8 policy,
                       TokenBuf *out, int *had_invalid) {
    const Tokenizer *t = e->t;
    size_t bad = uni_first_invalid(text, len);
    if (had_invalid) *had_invalid = bad < len;
    if (bad < len) {
        if (policy == TOK_UTF8_ERROR) return dr_seterr("invalid UTF-8 at byte offset %zu", bad);
        if (policy == TOK_UTF8_REPLACE) {
            tok_utf8_replace(text, len, &e->fixed);
            text = e->fixed.bytes;
            len = e->fixed.n;
        }
    }
    if (t->kind == TOK_BYTE) {
        tokenbuf_reserve(out, len);
        const unsigned char *s = (const unsigned char *)text;
        uint32_t *o = out->ids + out->n;
        for (size_t i = 0; i < len; i++) o[i] = s[i];
        out->n += len;
        return 0;
    }
    for (size_t i = 0; i < len;) {
        size_t j = tok_pretoken_end(text, len, i);
        encode_piece(e, text + i, j - i, out);
        i = j;
    }
    return 0;
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, TokInvalidUtf8 policy,
                     TokenBuf *out, int *had_invalid) {
    TokEncoder *e = tok_encoder_new(t);
    int rc = tok_encoder_encode(e, text, len, policy, out, had_invalid);
    tok_encoder_free(e);
    return rc;
}

int tokenizer_decode(const Tokenizer *t, const uint32_t *ids, size_t n, ByteBuf *out) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= t->n_vocab)
            return dr_seterr("token id %u outside the vocabulary (%u ids)", ids[i], t->n_vocab);
        size_t len;
        const char *b = tok_bytes(t, ids[i], &len);
        bytebuf_append(out, b, len);
    }
    return 0;
}
