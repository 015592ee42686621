/* test_shard.c — the *.drs format: round trips (empty documents, a document bigger
 * than a block, 2- and 4-byte tokens, background compression giving the same bytes),
 * random access, writer refusals, atomic writes, and that every single-byte
 * corruption and every truncation of a small shard is reported as an error and never
 * returned as tokens; a sparse file claiming a huge index is refused unallocated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "check.h"
#include "shard.h"
#include "test.h"

typedef struct {
    uint64_t id;
    const char *source;
    uint32_t *tokens;
    size_t n;
} Doc;

static uint64_t rng_next(uint64_t *s) {   /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static Doc *make_docs(size_t n_docs, uint32_t vocab, size_t big_doc_tokens, uint64_t seed) {
    static const char *sources[] = {"alpha", "beta", "", "gamma delta"};
    Doc *docs = xcalloc(n_docs, sizeof *docs);
    uint64_t s = seed;
    for (size_t i = 0; i < n_docs; i++) {
        Doc *d = &docs[i];
        d->id = rng_next(&s);
        d->source = sources[i % 4];
        d->n = i % 7 == 3 ? 0 : rng_next(&s) % 300;          /* some empty documents */
        if (i == n_docs / 2) d->n = big_doc_tokens;             /* one bigger than a block */
        d->tokens = xmalloc((d->n ? d->n : 1) * sizeof *d->tokens);
        for (size_t k = 0; k < d->n; k++)
            d->tokens[k] = k % 5 == 0 ? vocab - 1 : (uint32_t)(rng_next(&s) % vocab);
    }
    return docs;
}

static void free_docs(Doc *docs, size_t n) {
    for (size_t i = 0; i < n; i++) free(docs[i].tokens);
    free(docs);
}

/* Writes docs; *size_trace (if non-NULL) gets a hash of drs_writer_bytes after each
 * document, which must not depend on background compression. */
static int write_shard_traced(const char *path, const Doc *docs, size_t n, uint32_t vocab,
                              size_t block_bytes, int background, uint64_t *size_trace) {
    DrsWriter *w = drs_writer_open(path, vocab, 0x1234abcdull, "test:spec");
    if (!w) return -1;
    if (block_bytes) drs_writer_set_block_bytes(w, block_bytes);
    drs_writer_set_background(w, background);
    uint64_t trace = 0;
    for (size_t i = 0; i < n; i++) {
        if (drs_writer_add(w, docs[i].id, docs[i].source, docs[i].tokens, docs[i].n) < 0) {
            drs_writer_abort(w);
            return -1;
        }
        trace = trace * 0x100000001B3ull + drs_writer_bytes(w);
    }
    if (size_trace) *size_trace = trace;
    return drs_writer_close(w);
}

static int write_shard(const char *path, const Doc *docs, size_t n, uint32_t vocab,
                       size_t block_bytes, int background) {
    return write_shard_traced(path, docs, n, vocab, block_bytes, background, NULL);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    CHECK(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = xmalloc(*n ? *n : 1);
    CHECK(fread(b, 1, *n, f) == *n, "short read");
    fclose(f);
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

/* 1 if the shard reads back exactly as docs, 0 if it differs, -1 on an error. */
static int read_back(const char *path, const Doc *docs, size_t n, uint32_t vocab) {
    DrsReader *r = drs_open(path);
    if (!r) return -1;
    int same = drs_num_docs(r) == n && drs_vocab_size(r) == vocab &&
               drs_fingerprint(r) == 0x1234abcdull && strcmp(drs_tokenizer_spec(r), "test:spec") == 0;
    uint32_t *buf = xmalloc(4 * 1000000);
    for (uint64_t i = 0; same && i < n; i++) {
        const DrsDoc *d = drs_doc(r, i);
        if (drs_read_doc(r, i, buf) < 0) { same = -1; break; }
        same = d->id == docs[i].id && d->length == docs[i].n &&
               strcmp(drs_doc_source(r, i), docs[i].source) == 0 &&
               (docs[i].n == 0 || memcmp(buf, docs[i].tokens, docs[i].n * sizeof *buf) == 0);
    }
    if (same == 1 && drs_verify(r) < 0) same = -1;
    free(buf);
    drs_close(r);
    return same;
}

static void test_round_trip(const char *dir) {
    char path[512], path_bg[512];
    snprintf(path, sizeof path, "%s/rt.drs", dir);
    snprintf(path_bg, sizeof path_bg, "%s/rt_bg.drs", dir);
    const size_t n = 3000, big = 700000;   /* 700k 2-byte tokens: more than a 1 MiB block */
    Doc *docs = make_docs(n, 50257, big, 1);
    uint64_t trace, trace_bg;
    TEST_CHECK(write_shard_traced(path, docs, n, 50257, 0, 0, &trace) == 0, "write: %s", dr_lasterr());
    TEST_CHECK(write_shard_traced(path_bg, docs, n, 50257, 0, 1, &trace_bg) == 0, "write bg: %s", dr_lasterr());
    TEST_CHECK(trace == trace_bg, "drs_writer_bytes depends on background compression");
    TEST_CHECK(read_back(path, docs, n, 50257) == 1, "round trip: %s", dr_lasterr());

    size_t na, nb;
    unsigned char *a = slurp(path, &na), *b = slurp(path_bg, &nb);
    TEST_CHECK(na == nb && memcmp(a, b, na) == 0, "background compression changes the bytes");
    free(a);
    free(b);

    DrsReader *r = drs_open(path);
    TEST_CHECK(r != NULL, "open: %s", dr_lasterr());
    if (r) {
        TEST_CHECK(drs_token_width(r) == 2, "width %u", drs_token_width(r));
        TEST_CHECK(drs_num_blocks(r) >= 3, "expected several blocks, got %u", drs_num_blocks(r));
        const DrsDoc *bigdoc = drs_doc(r, n / 2);
        TEST_CHECK(bigdoc->offset == 0 && bigdoc->length == big, "big document not alone in its block");
        uint64_t tokens = 0;
        for (size_t i = 0; i < n; i++) tokens += docs[i].n;
        TEST_CHECK(drs_num_tokens(r) == tokens, "token count");
        /* random access, backwards and jumping */
        uint32_t *buf = xmalloc(4 * big);
        uint64_t s = 7;
        int ok = 1;
        for (int k = 0; k < 500 && ok; k++) {
            size_t i = k < 100 ? n - 1 - (size_t)k : rng_next(&s) % n;
            ok = drs_read_doc(r, i, buf) == 0 && memcmp(buf, docs[i].tokens, docs[i].n * 4) == 0;
        }
        TEST_CHECK(ok, "random access: %s", dr_lasterr());
        TEST_CHECK(drs_read_doc(r, n, buf) < 0, "document out of range accepted");
        free(buf);
        drs_close(r);
    }
    free_docs(docs, n);
    unlink(path);
    unlink(path_bg);
}

static void test_wide_tokens(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/wide.drs", dir);
    const size_t n = 200;
    Doc *docs = make_docs(n, 100001, 1000, 2);   /* ids up to 100000 */
    TEST_CHECK(write_shard(path, docs, n, 100001, 4096, 1) == 0, "write: %s", dr_lasterr());
    TEST_CHECK(read_back(path, docs, n, 100001) == 1, "round trip 4-byte: %s", dr_lasterr());
    DrsReader *r = drs_open(path);
    TEST_CHECK(r && drs_token_width(r) == 4, "4-byte tokens expected");
    drs_close(r);
    free_docs(docs, n);
    unlink(path);
}

static void test_writer_refusals(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.drs", dir);
    DrsWriter *w = drs_writer_open(path, 1000, 0, "");
    TEST_CHECK(w != NULL, "open: %s", dr_lasterr());
    uint32_t ok[] = {1, 2, 999}, bad[] = {1, 1000};
    TEST_CHECK(drs_writer_add(w, 1, "s", ok, 3) == 0, "good document refused: %s", dr_lasterr());
    TEST_CHECK(drs_writer_add(w, 2, "s", bad, 2) < 0 && strstr(dr_lasterr(), "1000"),
               "token outside the vocabulary accepted");
    TEST_CHECK(drs_writer_add(w, 3, "a\tb", ok, 3) < 0, "source with a TAB accepted");
    struct stat st;
    TEST_CHECK(stat(path, &st) != 0, "shard visible before close");
    drs_writer_abort(w);
    TEST_CHECK(stat(path, &st) != 0, "shard exists after abort");

    TEST_CHECK(drs_open(path) == NULL && strstr(dr_lasterr(), path), "missing file: %s", dr_lasterr());
    TEST_CHECK(drs_open(dir) == NULL && strstr(dr_lasterr(), dir), "directory: %s", dr_lasterr());
    spit(path, (const unsigned char *)"", 0);
    TEST_CHECK(drs_open(path) == NULL && strstr(dr_lasterr(), "truncated"), "empty file: %s", dr_lasterr());
    unlink(path);

    /* a shard of no documents, and one of only empty documents */
    const Doc empties[2] = {{1, "a", NULL, 0}, {2, "b", NULL, 0}};
    TEST_CHECK(write_shard(path, empties, 0, 10, 0, 0) == 0 && read_back(path, empties, 0, 10) == 1,
               "empty shard: %s", dr_lasterr());
    TEST_CHECK(write_shard(path, empties, 2, 10, 0, 0) == 0 && read_back(path, empties, 2, 10) == 1,
               "shard of empty documents: %s", dr_lasterr());
    unlink(path);
}

/* Every single-byte change and every truncation of a small multi-block shard must be
 * an error from drs_open, drs_read_doc or drs_verify: never tokens. */
static void test_corruption(const char *dir) {
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/small.drs", dir);
    snprintf(bad, sizeof bad, "%s/corrupt.drs", dir);
    const size_t n = 9;
    Doc *docs = make_docs(n, 300, 40, 3);
    for (size_t i = 0; i < n; i++) docs[i].n = docs[i].n % 13;   /* keep the shard small */
    docs[4].n = 40;
    TEST_CHECK(write_shard(path, docs, n, 300, 24, 0) == 0, "write: %s", dr_lasterr());
    size_t size;
    unsigned char *orig = slurp(path, &size);
    DrsReader *r = drs_open(path);
    TEST_CHECK(r && drs_num_blocks(r) >= 3, "small shard should have several blocks");
    drs_close(r);

    static const unsigned char flips[] = {0x01, 0x80, 0xff};
    size_t undetected = 0, wrong = 0, variants = 0;
    unsigned char *copy = xmalloc(size);
    for (size_t pos = 0; pos < size; pos++)
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(copy, orig, size);
            copy[pos] ^= flips[f];
            spit(bad, copy, size);
            int res = read_back(bad, docs, n, 300);
            variants++;
            if (res == 0) wrong++;
            if (res >= 0) {
                undetected++;
                if (undetected <= 5) fprintf(stderr, "byte %zu ^ 0x%02x not detected\n", pos, flips[f]);
            }
        }
    for (size_t len = 0; len < size; len++) {
        spit(bad, orig, len);
        int res = read_back(bad, docs, n, 300);
        variants++;
        if (res == 0) wrong++;
        if (res >= 0) {
            undetected++;
            if (undetected <= 5) fprintf(stderr, "truncation to %zu bytes not detected\n", len);
        }
    }
    TEST_CHECK(wrong == 0, "%zu corrupted shards returned wrong tokens without an error", wrong);
    TEST_CHECK(undetected == 0, "%zu of %zu corrupted shards not reported", undetected, variants);
    printf("corruption: %zu variants of a %zu-byte shard, all reported\n", variants, size);

    /* the error names the file */
    memcpy(copy, orig, size);
    copy[DRS_HEADER_SIZE + 2] ^= 0xff;
    spit(bad, copy, size);
    TEST_CHECK(read_back(bad, docs, n, 300) < 0 && strstr(dr_lasterr(), bad), "message: %s", dr_lasterr());
    free(copy);
    free(orig);
    free_docs(docs, n);
    unlink(path);
    unlink(bad);
}

static void put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A crafted index (fields changed, checksums recomputed, as a buggy or hostile writer
 * would) must be refused or read safely: never a crash, never an id >= vocab size. */
static void test_crafted_index(const char *dir) {
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/craft.drs", dir);
    snprintf(bad, sizeof bad, "%s/crafted.drs", dir);
    const size_t n = 6;
    Doc *docs = make_docs(n, 300, 30, 4);
    for (size_t i = 0; i < n; i++) docs[i].n %= 9;
    TEST_CHECK(write_shard(path, docs, n, 300, 16, 0) == 0, "write: %s", dr_lasterr());
    size_t size;
    unsigned char *orig = slurp(path, &size), *copy = xmalloc(size);
    uint64_t index_offset = 0;
    for (int i = 0; i < 8; i++) index_offset |= (uint64_t)orig[48 + i] << (8 * i);
    static const unsigned char values[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    size_t refused = 0, read_ok = 0, bad_tokens = 0;
    uint32_t *buf = xmalloc(4 * 4096);
    for (size_t pos = (size_t)index_offset; pos + 8 < size; pos++)
        for (size_t v = 0; v < sizeof values; v++) {
            memcpy(copy, orig, size);
            if (copy[pos] == values[v]) continue;
            copy[pos] = values[v];
            put_le64(copy + size - 8, XXH64(copy + index_offset, size - 8 - index_offset, 0));
            spit(bad, copy, size);
            DrsReader *r = drs_open(bad);
            if (!r) { refused++; continue; }
            for (uint64_t i = 0; i < drs_num_docs(r); i++) {
                const DrsDoc *d = drs_doc(r, i);
                if (d->length > 4096 || drs_read_doc(r, i, buf) < 0) continue;
                for (uint32_t k = 0; k < d->length; k++) bad_tokens += buf[k] >= drs_vocab_size(r);
            }
            read_ok++;
            drs_close(r);
        }
    TEST_CHECK(bad_tokens == 0, "%zu token ids outside the vocabulary returned", bad_tokens);
    TEST_CHECK(refused > 0, "no crafted index refused");
    printf("crafted index: %zu variants refused, %zu opened (all tokens in range)\n", refused, read_ok);
    free(buf);
    free(copy);
    free(orig);
    free_docs(docs, n);
    unlink(path);
    unlink(bad);
}

/* A sparse 8 GiB file whose header (checksum right) puts the index right after it: the
 * index's counts (all zero: no block, document, source or spec) do not fill 8 GiB, so the
 * shard is refused by name before its index is allocated and read. Checked in a child
 * under a 4 GiB address-space limit, where such an allocation fails (and xmalloc's "out
 * of memory" line names no shard). */
static void test_huge_index_claim(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/sparse.drs", dir);
    const uint64_t size = (uint64_t)8 << 30;
    unsigned char h[DRS_HEADER_SIZE] = {0};
    memcpy(h, "DRSHARD1", 8);
    h[8] = DRS_VERSION;
    h[12] = 2;                             /* token width for vocab 300 */
    h[16] = 300 & 0xff;
    h[17] = 300 >> 8;
    put_le64(h + 48, DRS_HEADER_SIZE);     /* index offset: right after the header */
    put_le64(h + 56, size - DRS_HEADER_SIZE);
    put_le64(h + 64, XXH64(h, 64, 0));
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(h, 1, sizeof h, f) == sizeof h && fflush(f) == 0 &&
              ftruncate(fileno(f), (off_t)size) == 0 && fclose(f) == 0,
          "cannot write the sparse %s", path);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)4 << 30, (rlim_t)4 << 30};
        setrlimit(RLIMIT_AS, &rl);
        DrsReader *r = drs_open(path);
        int ok = !r && strstr(dr_lasterr(), "sparse.drs: index of") && strstr(dr_lasterr(), "counts");
        if (!ok) fprintf(stderr, "sparse.drs: %s\n", r ? "opened" : dr_lasterr());
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    TEST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "a sparse 8 GiB shard claiming an 8 GiB index is refused by name, unallocated "
               "(child status %d)", status);
    unlink(path);
}

int main(void) {
    /* tmpfs when there is one: thousands of small files are written below */
    char dir[64] = "/dev/shm/test_shard.XXXXXX";
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "/tmp/test_shard.XXXXXX");
        CHECK(mkdtemp(dir), "mkdtemp failed");
    }
    test_round_trip(dir);
    test_wide_tokens(dir);
    test_writer_refusals(dir);
    test_corruption(dir);
    test_crafted_index(dir);
    test_huge_index_claim(dir);
    rmdir(dir);
    return test_finish("test_shard");
}
