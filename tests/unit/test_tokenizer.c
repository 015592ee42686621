/* test_tokenizer.c — the tokenizers: byte, exact GPT-2 (ids against an independent
 * reference, tests/data/gpt2_reference.tsv, made by tests/data/gen_gpt2_reference.py from
 * OpenAI's encoder.py and cross-checked with tiktoken), trained BPE; round trips
 * text -> ids -> text, invalid UTF-8 policies, the two BPE merge paths against each
 * other, corrupt vocabulary files, thread sharing.
 * Needs data/gpt2 (make vocab) or $DR_DATA/gpt2; run from the repository root.
 */
#include "check.h"
#include "test.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"
#include "unicode.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ids_eq(const TokenBuf *b, const uint32_t *ids, size_t n) {
    return b->n == n && (n == 0 || memcmp(b->ids, ids, n * sizeof *ids) == 0);
}

static int roundtrip(const Tokenizer *t, const char *s, size_t n, TokInvalidUtf8 policy) {
    TokenBuf ids = {0};
    ByteBuf back = {0};
    int ok = tokenizer_encode(t, s, n, policy, &ids, NULL) == 0 &&
             tokenizer_decode(t, ids.ids, ids.n, &back) == 0 && back.n == n &&
             (n == 0 || memcmp(back.bytes, s, n) == 0);
    tokenbuf_free(&ids);
    bytebuf_free(&back);
    return ok;
}

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot write %s", path);
    fwrite(data, 1, n, f);
    fclose(f);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = xmalloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    buf[*n] = 0;
    fclose(f);
    return buf;
}

/* ---- pre-tokenizer and UTF-8 -------------------------------------------------------- */

static void check_split(const char *s, const char *const *want, int n_want) {
    size_t n = strlen(s), i = 0;
    int k = 0, ok = 1;
    while (i < n) {
        size_t j = tok_pretoken_end(s, n, i);
        if (k >= n_want || strlen(want[k]) != j - i || memcmp(want[k], s + i, j - i) != 0) ok = 0;
        k++;
        i = j;
    }
    TEST_CHECK(ok && k == n_want, "pre-tokens of \"%s\"", s);
}

static void test_pretokenizer(void) {
    check_split("Hello world", (const char *[]){"Hello", " world"}, 2);
    check_split("a  b", (const char *[]){"a", " ", " b"}, 3);
    check_split("a\t\tb", (const char *[]){"a", "\t", "\t", "b"}, 4);
    check_split("x   ", (const char *[]){"x", "   "}, 2);
    check_split("I'm DON'T 's", (const char *[]){"I", "'m", " DON", "'", "T", " '", "s"}, 7);
    check_split("they'll've", (const char *[]){"they", "'ll", "'ve"}, 3);
    check_split("''s", (const char *[]){"''", "s"}, 2);
    check_split("abc123!!", (const char *[]){"abc", "123", "!!"}, 3);
    check_split(" 42 !?", (const char *[]){" 42", " !?"}, 2);
    check_split("a \n b", (const char *[]){"a", " \n", " b"}, 3);
    check_split("caf\xc3\xa9 \xd0\x96", (const char *[]){"caf\xc3\xa9", " \xd0\x96"}, 2);
    check_split("a\xc2\x85" "b", (const char *[]){"a", "\xc2\x85", "b"}, 3);      /* U+0085 is \s */
    check_split("a\xef\xbb\xbf" "b", (const char *[]){"a", "\xef\xbb\xbf", "b"}, 3); /* U+FEFF is not */
    check_split("e\xcc\x81x", (const char *[]){"e", "\xcc\x81", "x"}, 3);          /* Mn is "other" */
    check_split("\xd9\xa3\xe2\x85\xa7", (const char *[]){"\xd9\xa3\xe2\x85\xa7"}, 1); /* ٣Ⅷ: N */
    /* kept invalid bytes are pieces of their own */
    check_split("ab\xff" "cd", (const char *[]){"ab", "\xff", "cd"}, 3);
    check_split("a \xe2\x82", (const char *[]){"a", " ", "\xe2\x82"}, 3);

    TEST_CHECK(uni_class(0x0085) == UNI_SPACE && uni_class(0xFEFF) == UNI_OTHER &&
               uni_class(0x3000) == UNI_SPACE && uni_class(0x00A0) == UNI_SPACE &&
               uni_class(0x001C) == UNI_OTHER && uni_class(0x0416) == UNI_LETTER &&
               uni_class(0x4E2D) == UNI_LETTER && uni_class(0x0663) == UNI_NUMBER &&
               uni_class(0x2167) == UNI_NUMBER && uni_class(0x0301) == UNI_OTHER &&
               uni_class(0x1F600) == UNI_OTHER && uni_class(0x10FFFF) == UNI_OTHER &&
               uni_class(0x1C89) == UNI_LETTER && uni_class(0x16D70) == UNI_NUMBER &&   /* 16.0 */
               uni_class(0x10940) == UNI_OTHER &&                                       /* 17.0 */
               strcmp(uni_version, "16.0.0") == 0,
               "Unicode classes (tables: Unicode %s)", uni_version);
}

static void test_utf8_replace(void) {
    /* expected: Python bytes.decode("utf-8", errors="replace").encode() */
    struct { const char *in; size_t n; const char *want; size_t wn; size_t reps; } cases[] = {
        {"caf\xe9", 4, "caf\xef\xbf\xbd", 6, 1},
        {"\xe2\x82", 2, "\xef\xbf\xbd", 3, 1},                               /* one maximal subpart */
        {"\xf0\x80\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 12, 4},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9, 3},   /* surrogate */
        {"\xf0\x9f\x98 ok", 6, "\xef\xbf\xbd ok", 6, 1},
        {"\xc3\xc3\xa9", 3, "\xef\xbf\xbd\xc3\xa9", 5, 1},
        {"ok", 2, "ok", 2, 0},
    };
    ByteBuf out = {0};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t r = tok_utf8_replace(cases[i].in, cases[i].n, &out);
        TEST_CHECK(r == cases[i].reps && out.n == cases[i].wn && memcmp(out.bytes, cases[i].want, out.n) == 0,
                   "U+FFFD replacement, case %zu", i);
    }
    bytebuf_free(&out);
    TEST_CHECK(uni_first_invalid("abc\xc3\xa9\xff", 6) == 5, "first invalid offset");
}

/* ---- byte tokenizer ------------------------------------------------------------------ */

static void test_byte(void) {
    Tokenizer *t = tokenizer_load("byte", NULL);
    TEST_CHECK(t != NULL, "byte loads");
    if (!t) return;
    TEST_CHECK(tokenizer_vocab_size(t) == 257 && tokenizer_eot(t) == 256, "byte vocab");
    TEST_CHECK(strcmp(tokenizer_spec(t), "byte") == 0, "byte spec");
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)i;
    TokenBuf ids = {0};
    int inv = -1;
    TEST_CHECK(tokenizer_encode(t, all, 256, TOK_UTF8_KEEP, &ids, &inv) == 0 && ids.n == 256 && inv == 1,
               "byte keep encodes 256 bytes");
    int same = 1;
    for (int i = 0; i < 256 && same; i++) same = ids.ids[i] == (uint32_t)i;
    TEST_CHECK(same, "byte ids are the bytes");
    TEST_CHECK(roundtrip(t, all, 256, TOK_UTF8_KEEP), "byte round trip, all bytes");
    TEST_CHECK(roundtrip(t, "h\xc3\xa9llo", 6, TOK_UTF8_REPLACE), "byte round trip, valid UTF-8");
    ids.n = 0;
    TEST_CHECK(tokenizer_encode(t, "a\xff", 2, TOK_UTF8_REPLACE, &ids, &inv) == 0 && inv == 1 &&
               ids.n == 4 && ids.ids[1] == 0xEF && ids.ids[2] == 0xBF && ids.ids[3] == 0xBD,
               "byte replace gives U+FFFD bytes");
    ids.n = 0;
    TEST_CHECK(tokenizer_encode(t, "ab\xff", 3, TOK_UTF8_ERROR, &ids, &inv) == -1 &&
               strstr(dr_lasterr(), "offset 2") != NULL, "byte error policy: %s", dr_lasterr());
    ids.n = 0;
    TEST_CHECK(tokenizer_encode(t, "", 0, TOK_UTF8_REPLACE, &ids, &inv) == 0 && ids.n == 0 && inv == 0,
               "empty text");
    uint32_t bad = 257;
    ByteBuf out = {0};
    TEST_CHECK(tokenizer_decode(t, &bad, 1, &out) == -1, "decode refuses id 257");
    uint32_t eot = 256;
    out.n = 0;
    TEST_CHECK(tokenizer_decode(t, &eot, 1, &out) == 0 && out.n == 13 && memcmp(out.bytes, "<|endoftext|>", 13) == 0,
               "decode of end-of-text");
    bytebuf_free(&out);
    tokenbuf_free(&ids);
    tokenizer_free(t);
}

/* ---- GPT-2 ------------------------------------------------------------------------- */

static const char *gpt2_dir(void) {
    static char buf[1024];
    const char *env = getenv("DR_DATA");
    if (env && *env) { snprintf(buf, sizeof buf, "%s/gpt2", env); return buf; }
    return "data/gpt2";
}

static size_t unhex(const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        unsigned v;
        sscanf(s + i, "%2x", &v);
        out[k++] = (char)v;
    }
    return k;
}

static void test_gpt2_reference(const Tokenizer *t) {
    size_t n;
    char *data = slurp("tests/data/gpt2_reference.tsv", &n);
    TEST_CHECK(data != NULL, "tests/data/gpt2_reference.tsv is readable (run from the repository root)");
    if (!data) return;
    TokEncoder *e = tok_encoder_new(t);
    TokenBuf got = {0}, want = {0}, keep = {0};
    ByteBuf back = {0};
    char *text = xmalloc(n);
    int cases = 0, bad = 0, invalid_cases = 0;
    char *line = data, *comment = NULL;
    while (line < data + n) {
        char *end = strchr(line, '\n');
        if (!end) end = data + n;
        *end = 0;
        if (line[0] == '#') { comment = line; line = end + 1; continue; }
        char *tab = strchr(line, '\t');
        CHECK(tab, "malformed reference line");
        size_t tn = unhex(line, (size_t)(tab - line), text);
        want.n = 0;
        for (char *p = tab + 1; *p;) {
            char *q;
            unsigned long v = strtoul(p, &q, 10);
            if (q == p) break;
            tokenbuf_push(&want, (uint32_t)v);
            p = q;
        }
        got.n = 0;
        int inv = 0;
        tok_encoder_encode(e, text, tn, TOK_UTF8_REPLACE, &got, &inv);
        cases++;
        if (!ids_eq(&got, want.ids, want.n)) {
            bad++;
            if (bad <= 10) {
                fprintf(stderr, "gpt2 mismatch on %s\n  want:", comment ? comment : "?");
                for (size_t i = 0; i < want.n && i < 40; i++) fprintf(stderr, " %u", want.ids[i]);
                fprintf(stderr, "\n  got: ");
                for (size_t i = 0; i < got.n && i < 40; i++) fprintf(stderr, " %u", got.ids[i]);
                fprintf(stderr, "\n");
            }
        }
        /* round trips: valid text back exactly; invalid text exactly in keep mode */
        back.n = 0;
        if (!inv) {
            TEST_CHECK(tokenizer_decode(t, got.ids, got.n, &back) == 0 && back.n == tn &&
                       (tn == 0 || memcmp(back.bytes, text, tn) == 0), "gpt2 round trip: %s", comment);
        } else {
            invalid_cases++;
            keep.n = 0;
            TEST_CHECK(tok_encoder_encode(e, text, tn, TOK_UTF8_KEEP, &keep, NULL) == 0 &&
                       tokenizer_decode(t, keep.ids, keep.n, &back) == 0 && back.n == tn &&
                       memcmp(back.bytes, text, tn) == 0, "gpt2 keep-mode round trip: %s", comment);
            keep.n = 0;
            TEST_CHECK(tok_encoder_encode(e, text, tn, TOK_UTF8_ERROR, &keep, NULL) == -1 &&
                       strstr(dr_lasterr(), "invalid UTF-8 at byte offset") != NULL,
                       "gpt2 error policy: %s", comment);
        }
        line = end + 1;
    }
    TEST_CHECK(bad == 0, "gpt2: %d of %d reference cases differ", bad, cases);
    TEST_CHECK(cases > 630 && invalid_cases > 20, "reference file has %d cases (%d invalid)", cases, invalid_cases);
    printf("gpt2 reference: %d/%d cases equal (%d with invalid UTF-8)\n", cases - bad, cases, invalid_cases);
    free(text);
    free(data);
    tokenbuf_free(&got); tokenbuf_free(&want); tokenbuf_free(&keep); bytebuf_free(&back);
    tok_encoder_free(e);
}

/* The array path (pieces <= 64 bytes) and the heap path must agree. */
static void test_bpe_paths(const Tokenizer *t) {
    BpeScratch s = {0};
    TokenBuf a = {0}, b = {0};
    uint64_t rng = 88172645463325252ull;
    const char *alpha[] = {"abcdefghijklmnopqrstuvwxyz", "aaaaab", "etaoin shrdlu", "0123456789",
                           "\xc3\xa9\xd0\x96\xe4\xb8\xad", "!?.,-_=+"};
    char piece[200];
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        const char *al = alpha[rng % 6];
        size_t an = strlen(al), n = 2 + (rng >> 8) % 150;
        for (size_t i = 0; i < n; i++) {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            piece[i] = al[rng % an];
        }
        a.n = b.n = 0;
        tok_bpe_piece(t, piece, n, &s, &a);
        tok_bpe_piece_heap(t, piece, n, &s, &b);
        if (!ids_eq(&a, b.ids, b.n)) bad++;
    }
    TEST_CHECK(bad == 0, "BPE array and heap paths differ on %d of 3000 pieces", bad);
    tokenbuf_free(&a); tokenbuf_free(&b);
    bpe_scratch_free(&s);
}

typedef struct { const Tokenizer *t; const char *text; size_t n; TokenBuf out; } ThreadArg;
static void *encode_thread(void *p) {
    ThreadArg *a = p;
    TokEncoder *e = tok_encoder_new(a->t);
    for (int r = 0; r < 3; r++) {
        a->out.n = 0;
        tok_encoder_encode(e, a->text, a->n, TOK_UTF8_REPLACE, &a->out, NULL);
    }
    tok_encoder_free(e);
    return NULL;
}

static void test_threads(const Tokenizer *t) {
    ByteBuf text = {0};
    for (int i = 0; i < 2000; i++) {
        char line[128];
        int k = snprintf(line, sizeof line, "Line %d: the quick br\xc3\xb8wn fox's %dth jump  \n", i, i * 7);
        bytebuf_append(&text, line, (size_t)k);
    }
    ThreadArg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (ThreadArg){t, text.bytes, text.n, {0}};
        pthread_create(&th[i], NULL, encode_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    TokenBuf one = {0};
    tokenizer_encode(t, text.bytes, text.n, TOK_UTF8_REPLACE, &one, NULL);
    int same = 1;
    for (int i = 0; i < 4; i++) same &= ids_eq(&args[i].out, one.ids, one.n);
    TEST_CHECK(same, "4 threads sharing one Tokenizer give the same ids");
    for (int i = 0; i < 4; i++) tokenbuf_free(&args[i].out);
    tokenbuf_free(&one);
    bytebuf_free(&text);
}

static void test_gpt2(void) {
    const char *dir = gpt2_dir();
    Tokenizer *t = tokenizer_load("gpt2", dir);
    TEST_CHECK(t != NULL, "gpt2 loads from %s (run `make vocab`): %s", dir, t ? "" : dr_lasterr());
    if (!t) return;
    TEST_CHECK(tokenizer_vocab_size(t) == 50257 && tokenizer_eot(t) == 50256, "gpt2 vocab size / eot");
    TEST_CHECK(strcmp(tokenizer_spec(t), "gpt2") == 0, "gpt2 spec");
    TokenBuf ids = {0};
    tokenizer_encode(t, "Hello world", 11, TOK_UTF8_REPLACE, &ids, NULL);
    TEST_CHECK(ids_eq(&ids, (uint32_t[]){15496, 995}, 2), "Hello world = 15496 995");
    tokenbuf_free(&ids);
    test_gpt2_reference(t);
    test_bpe_paths(t);
    test_threads(t);

    /* a long word without spaces: exact (equal to the heap path), and decodes back */
    size_t n = 200000;
    char *aaa = xmalloc(n);
    memset(aaa, 'a', n);
    TEST_CHECK(roundtrip(t, aaa, n, TOK_UTF8_REPLACE), "200k 'a' round trip");
    free(aaa);

    Tokenizer *byte = tokenizer_load("byte", NULL);
    TEST_CHECK(tokenizer_fingerprint(byte) != tokenizer_fingerprint(t), "fingerprints differ");
    Tokenizer *again = tokenizer_from_spec("gpt2:data/gpt2");
    TEST_CHECK(again && tokenizer_fingerprint(again) == tokenizer_fingerprint(t), "same files, same fingerprint");
    tokenizer_free(again);
    tokenizer_free(byte);
    tokenizer_free(t);
}

/* ---- corrupt vocabulary files ---------------------------------------------------- */

static void expect_load_error(const char *dir, const char *what, const char *needle) {
    Tokenizer *t = tokenizer_load("bpe", dir);
    TEST_CHECK(t == NULL && strstr(dr_lasterr(), needle) != NULL, "%s refused (message: %s)", what,
               t ? "(loaded!)" : dr_lasterr());
    tokenizer_free(t);
}

static void test_corrupt_files(const char *tmp) {
    char dir[512], enc[600], voc[600];
    snprintf(dir, sizeof dir, "%s/corrupt", tmp);
    mkdir(dir, 0777);
    snprintf(enc, sizeof enc, "%s/encoder.json", dir);
    snprintf(voc, sizeof voc, "%s/vocab.bpe", dir);
    expect_load_error(dir, "missing files", "encoder.json is missing");
    expect_load_error(NULL, "bpe without a directory", "--vocab-dir");
    TEST_CHECK(tokenizer_load("nope", NULL) == NULL && strstr(dr_lasterr(), "unknown tokenizer"), "unknown kind");

    size_t n;
    char *gpt2_enc = NULL, *gpt2_voc = NULL;
    char path[600];
    snprintf(path, sizeof path, "%s/encoder.json", gpt2_dir());
    gpt2_enc = slurp(path, &n);
    size_t enc_n = n;
    snprintf(path, sizeof path, "%s/vocab.bpe", gpt2_dir());
    gpt2_voc = slurp(path, &n);
    size_t voc_n = n;
    if (!gpt2_enc || !gpt2_voc) { free(gpt2_enc); free(gpt2_voc); return; }

    write_file(enc, gpt2_enc, enc_n / 2);          /* truncated JSON */
    write_file(voc, gpt2_voc, voc_n);
    expect_load_error(dir, "truncated encoder.json", "encoder.json: not valid JSON");
    write_file(enc, "{\"a\": 0}", 8);
    expect_load_error(dir, "tiny encoder.json", "at least 257 tokens");
    write_file(enc, gpt2_enc, enc_n);
    write_file(voc, gpt2_voc, voc_n / 2);          /* merges cut: tokens made by no merge */
    expect_load_error(dir, "truncated vocab.bpe", "made by no merge");
    write_file(voc, "#version: 0.2\nfoo\n", 18);
    expect_load_error(dir, "malformed merge line", "vocab.bpe:2: expected \"LEFT RIGHT\"");
    write_file(voc, "no version\n", 11);
    expect_load_error(dir, "vocab.bpe without #version", "vocab.bpe:1");
    write_file(voc, "#version: 0.2\nqqqqq zzzzz\n", 26);
    expect_load_error(dir, "merge of unknown tokens", "vocab.bpe:2: merge");
    free(gpt2_enc);
    free(gpt2_voc);
    unlink(enc);
    unlink(voc);
    rmdir(dir);
}

/* ---- trained BPE ------------------------------------------------------------------- */

/* encoder.json and vocab.bpe of dir and dir2 are the same bytes */
static void same_vocab_files(const char *dir, const char *dir2, const char *what) {
    const char *files[] = {"encoder.json", "vocab.bpe"};
    for (int f = 0; f < 2; f++) {
        char p1[600], p2[600];
        size_t n1, n2;
        snprintf(p1, sizeof p1, "%s/%s", dir, files[f]);
        snprintf(p2, sizeof p2, "%s/%s", dir2, files[f]);
        char *a = slurp(p1, &n1), *b = slurp(p2, &n2);
        TEST_CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0, "%s identical %s", files[f], what);
        free(a);
        free(b);
    }
}

static void test_train(const char *tmp) {
    /* a small corpus: repeated words, numbers, punctuation, non-ASCII, invalid bytes */
    const char *words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
                           "don't", "it's", "caf\xc3\xa9", "\xd0\x96\xd0\xb8\xd0\xb7\xd0\xbd\xd1\x8c",
                           "\xe4\xb8\xad\xe6\x96\x87", "2024", "hello,", "world!", "\n\n", "  ",
                           "tokenization", "tokenizer", "tokens"};
    enum { N_TEXTS = 200 };
    char *texts[N_TEXTS];
    size_t lens[N_TEXTS];
    uint64_t rng = 12345;
    for (int i = 0; i < N_TEXTS; i++) {
        ByteBuf b = {0};
        for (int w = 0; w < 60; w++) {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            if (rng % 3 == 0) {              /* a made-up word of 1-4 syllables */
                static const char *syl[] = {"ka", "ro", "mi", "ten", "sha", "lu", "vor", "ne", "qui", "ble"};
                for (uint64_t k = 0, m = 1 + (rng >> 5) % 4; k < m; k++)
                    bytebuf_append(&b, syl[(rng >> (9 + 4 * k)) % 10], strlen(syl[(rng >> (9 + 4 * k)) % 10]));
            } else {
                const char *word = words[(rng >> 3) % (sizeof words / sizeof *words)];
                bytebuf_append(&b, word, strlen(word));
            }
            bytebuf_append(&b, " ", 1);
        }
        if (i % 17 == 0) bytebuf_append(&b, "r\xe9sum\xe9", 7);  /* Latin-1 */
        texts[i] = b.bytes;
        lens[i] = b.n;
    }
    char dir[512], dir2[512];
    snprintf(dir, sizeof dir, "%s/bpe", tmp);
    snprintf(dir2, sizeof dir2, "%s/bpe2", tmp);
    uint32_t n_vocab = 600;
    int rc = tokenizer_train_bpe((const char *const *)texts, lens, N_TEXTS, n_vocab, TOK_UTF8_REPLACE, 2, dir);
    TEST_CHECK(rc == 0, "train bpe: %s", rc ? dr_lasterr() : "");
    rc = tokenizer_train_bpe((const char *const *)texts, lens, N_TEXTS, n_vocab, TOK_UTF8_REPLACE, 1, dir2);
    TEST_CHECK(rc == 0, "train bpe again (1 thread)");
    /* deterministic: same files with 1 and 2 threads */
    const char *files[] = {"encoder.json", "vocab.bpe"};
    same_vocab_files(dir, dir2, "across thread counts");
    /* counted in uneven batches (as dr-tokenize streams a corpus), the texts in reverse
     * order: the same files */
    BpeCounts *counts = bpe_counts_new(TOK_UTF8_REPLACE, 2);
    const char *rev[N_TEXTS];
    size_t rev_lens[N_TEXTS];
    for (int i = 0; i < N_TEXTS; i++) { rev[i] = texts[N_TEXTS - 1 - i]; rev_lens[i] = lens[N_TEXTS - 1 - i]; }
    for (int i = 0, n = 1; i < N_TEXTS && rc == 0; i += n, n = n * 3 % 41 + 1)
        rc = bpe_counts_add(counts, rev + i, rev_lens + i, (size_t)(i + n <= N_TEXTS ? n : N_TEXTS - i));
    if (rc == 0) rc = bpe_counts_train(counts, n_vocab, dir2);
    bpe_counts_free(counts);
    TEST_CHECK(rc == 0, "train bpe in batches: %s", rc ? dr_lasterr() : "");
    same_vocab_files(dir, dir2, "when counted in batches");
    Tokenizer *t = tokenizer_load("bpe", dir);
    TEST_CHECK(t != NULL, "trained bpe loads: %s", t ? "" : dr_lasterr());
    if (t) {
        TEST_CHECK(tokenizer_vocab_size(t) == n_vocab && tokenizer_eot(t) == n_vocab - 1, "trained vocab size");
        TEST_CHECK(strncmp(tokenizer_spec(t), "bpe:/", 5) == 0, "bpe spec holds an absolute path: %s", tokenizer_spec(t));
        Tokenizer *again = tokenizer_from_spec(tokenizer_spec(t));
        TEST_CHECK(again && tokenizer_fingerprint(again) == tokenizer_fingerprint(t), "bpe from its spec");
        tokenizer_free(again);
        int all = 1;
        size_t total_ids = 0, total_bytes = 0;
        for (int i = 0; i < N_TEXTS; i++) {
            all &= roundtrip(t, texts[i], lens[i], TOK_UTF8_KEEP);
            TokenBuf ids = {0};
            tokenizer_encode(t, texts[i], lens[i], TOK_UTF8_REPLACE, &ids, NULL);
            total_ids += ids.n;
            total_bytes += lens[i];
            tokenbuf_free(&ids);
        }
        TEST_CHECK(all, "trained bpe keep-mode round trips (with invalid UTF-8)");
        TEST_CHECK(roundtrip(t, "unseen w\xc3\xb6rds \xf0\x9f\x98\x80 and 12345", 27, TOK_UTF8_REPLACE),
                   "trained bpe round trip of unseen text");
        TEST_CHECK(total_ids * 3 < total_bytes, "trained bpe compresses (%zu bytes -> %zu ids)", total_bytes, total_ids);
        tokenizer_free(t);
    }
    /* too few merges possible */
    const char *tiny = "ab ab";
    size_t tiny_n = 5;
    rc = tokenizer_train_bpe(&tiny, &tiny_n, 1, 300, TOK_UTF8_REPLACE, 1, dir2);
    TEST_CHECK(rc == -1 && strstr(dr_lasterr(), "only"), "too small a corpus is refused: %s", dr_lasterr());
    const char *inv = "ok \xff";
    size_t inv_n = 4;
    rc = tokenizer_train_bpe(&inv, &inv_n, 1, 258, TOK_UTF8_ERROR, 1, dir2);
    TEST_CHECK(rc == -1 && strstr(dr_lasterr(), "invalid UTF-8"), "training with --invalid-utf8 error");
    for (int i = 0; i < N_TEXTS; i++) free(texts[i]);
    for (int f = 0; f < 2; f++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, files[f]); unlink(p);
        snprintf(p, sizeof p, "%s/%s", dir2, files[f]); unlink(p);
    }
    rmdir(dir);
    rmdir(dir2);
}

int main(void) {
    char tmp[] = "/tmp/test_tokenizer.XXXXXX";
    CHECK(mkdtemp(tmp), "mkdtemp failed");
    test_pretokenizer();
    test_utf8_replace();
    test_byte();
    test_gpt2();
    test_corrupt_files(tmp);
    test_train(tmp);
    rmdir(tmp);
    return test_finish("test_tokenizer");
}
