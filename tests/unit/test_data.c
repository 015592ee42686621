/* test_data.c — the data loader (lib/data.h): windows, ids, padding, min_tokens,
 * shuffling, shard order, length bucketing, position save/restore, read-ahead thread,
 * resident vs streamed reads, reading part of a batch (data-parallel ranks), and the
 * refusals (no examples, mixed tokenizers). */
#include <dirent.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data.h"
#include "shard.h"
#include "test.h"

#define VOCAB 5000
static char dir[256];

/* Token j of document k (never 0, so padding is recognisable). */
static uint32_t tok_of(int k, int j) { return (uint32_t)(1 + (k * 131 + j * 7) % (VOCAB - 1)); }
static uint64_t doc_id_of(int shard, int k) { return 0xabc0000000000000ull + (uint64_t)shard * 1000 + (uint64_t)k; }

static void write_shard(const char *path, int shard, const int *lens, int n_docs,
                        uint64_t fingerprint, size_t block_bytes) {
    DrsWriter *w = drs_writer_open(path, VOCAB, fingerprint, "byte");
    CHECK(w, "%s", dr_lasterr());
    if (block_bytes) drs_writer_set_block_bytes(w, block_bytes);
    for (int k = 0; k < n_docs; k++) {
        uint32_t *t = xmalloc((size_t)(lens[k] ? lens[k] : 1) * sizeof *t);
        for (int j = 0; j < lens[k]; j++) t[j] = tok_of(shard * 100 + k, j);
        CHECK(drs_writer_add(w, doc_id_of(shard, k), k % 2 ? "odd" : "even", t, (size_t)lens[k]) == 0,
              "%s", dr_lasterr());
        free(t);
    }
    CHECK(drs_writer_close(w) == 0, "%s", dr_lasterr());
}

static DataOptions opts(int L, int B) {
    DataOptions o = {0};
    o.seq_len = L; o.seq_len_rater = 5; o.min_tokens = 2; o.batch_size = B;
    o.shuffle = 1; o.seed = 1234; o.resident_max_tokens = 1 << 20;
    return o;
}

static DataLoader *open_paths(int n, char **paths, const DataOptions *o) {
    ShardRef refs[8];
    for (int i = 0; i < n; i++) refs[i] = (ShardRef){"", paths[i]};
    ShardList sl = {.items = refs, .n = (size_t)n, .cap = 8};
    return data_open(&sl, o);
}

/* Expected windows, computed the slow obvious way. */
typedef struct { int shard, doc, window, start, len; } Win;
static int expected_windows(Win *out, int shard, const int *lens, int n_docs, int L, int min_tokens) {
    int n = 0;
    for (int k = 0; k < n_docs; k++)
        for (int w = 0, start = 0; start + 1 < lens[k]; w++, start += L) {
            int len = lens[k] - start < L + 1 ? lens[k] - start : L + 1;
            if (len >= min_tokens && len >= 2) out[n++] = (Win){shard, k, w, start, len};
        }
    return n;
}

static int lens_a[] = {1, 2, 5, 9, 10, 17, 25, 30, 0, 3, 8, 64, 7};
static int lens_b[] = {40, 12, 2, 9, 33, 100, 4, 16};
#define NA ((int)(sizeof lens_a / sizeof *lens_a))
#define NB ((int)(sizeof lens_b / sizeof *lens_b))
static char path_a[300], path_b[300], path_c[300];

static void test_windows(int L, int min_tokens, uint64_t resident) {
    DataOptions o = opts(L, 4);
    o.min_tokens = min_tokens;
    o.resident_max_tokens = resident;
    char *paths[] = {path_a, path_b};
    DataLoader *d = open_paths(2, paths, &o);
    TEST_CHECK(d != NULL, "open: %s", dr_lasterr());
    if (!d) return;
    Win win[1000];
    int n = expected_windows(win, 0, lens_a, NA, L, min_tokens);
    n += expected_windows(win + n, 1, lens_b, NB, L, min_tokens);
    TEST_CHECK((int)data_num_examples(d) == n, "L=%d min=%d: %" PRIu64 " examples, want %d", L,
               min_tokens, data_num_examples(d), n);
    DataBatch *b = data_batch_new(d);
    long targets = 0;
    for (int i = 0; i < n && i < (int)data_num_examples(d); i++) {
        DataExample e = data_example(d, (uint64_t)i);
        TEST_CHECK((int)e.shard == win[i].shard && (int)e.doc == win[i].doc &&
                   (int)e.window == win[i].window && (int)e.length == win[i].len,
                   "example %d: (%u,%u,%u,%u) want (%d,%d,%d,%d)", i, e.shard, e.doc, e.window,
                   e.length, win[i].shard, win[i].doc, win[i].window, win[i].len);
        char id[DATA_ID_MAX], want[DATA_ID_MAX];
        data_example_id(d, (uint64_t)i, id);
        snprintf(want, sizeof want, "%016" PRIx64 ":%d", doc_id_of(win[i].shard, win[i].doc), win[i].window);
        TEST_CHECK(strcmp(id, want) == 0, "id %s want %s", id, want);
        TEST_CHECK(strcmp(data_example_source(d, (uint64_t)i), win[i].doc % 2 ? "odd" : "even") == 0,
                   "source of example %d", i);
        targets += win[i].len - 1;

        /* the batch views of this single example */
        TEST_CHECK(data_range(d, (uint64_t)i, 1, b) == 0, "%s", dr_lasterr());
        TEST_CHECK(b->B == 1 && b->T == L && b->T_rater == 5, "B %d T %d Tr %d", b->B, b->T, b->T_rater);
        TEST_CHECK(b->n_valid[0] == win[i].len - 1, "n_valid %d want %d", b->n_valid[0], win[i].len - 1);
        TEST_CHECK(b->rater_valid[0] == (win[i].len < 5 ? win[i].len : 5), "rater_valid %d", b->rater_valid[0]);
        int bad = 0;
        int tk = win[i].shard * 100 + win[i].doc;
        for (int t = 0; t < L; t++) {
            int32_t in = t < win[i].len - 1 ? (int32_t)tok_of(tk, win[i].start + t) : 0;
            int32_t tg = t < win[i].len - 1 ? (int32_t)tok_of(tk, win[i].start + t + 1) : 0;
            bad += b->inputs[t] != in || b->targets[t] != tg;
        }
        for (int t = 0; t < 5; t++)
            bad += b->rater_tokens[t] != (t < win[i].len ? (int32_t)tok_of(tk, win[i].start + t) : 0);
        TEST_CHECK(!bad, "example %d: %d wrong tokens (L=%d)", i, bad, L);
    }
    TEST_CHECK((long)data_num_target_tokens(d) == targets, "target tokens %" PRIu64 " want %ld",
               data_num_target_tokens(d), targets);
    /* without min_tokens every token but a document's first is a target exactly once */
    if (min_tokens <= 2) {
        long want = 0;
        for (int k = 0; k < NA; k++) want += lens_a[k] > 1 ? lens_a[k] - 1 : 0;
        for (int k = 0; k < NB; k++) want += lens_b[k] > 1 ? lens_b[k] - 1 : 0;
        TEST_CHECK(targets == want, "targets %ld, want every token once: %ld", targets, want);
    }
    /* wrap-around access: examples N-1, 0, 1 */
    TEST_CHECK(data_range(d, data_num_examples(d) - 1, 3, b) == 0, "%s", dr_lasterr());
    TEST_CHECK(b->B == 3 && b->index[0] == data_num_examples(d) - 1 && b->index[1] == 0 &&
               b->index[2] == 1, "data_range wraps modulo N");
    data_batch_free(b);
    data_close(d);
}

/* The example index (4 bytes per example: a document number across the shards) against
 * the windows computed the obvious way, across shards that give no example (one without
 * documents, one of documents too short) and a document of thousands of windows: every
 * field of every example, its id, source and tokens, in shard order and in a scattered
 * order (data_example keeps no state between calls). */
static void test_index_across_shards(void) {
    static int lens_none[] = {0, 1, 1, 0, 1}, lens_long[] = {3001, 2, 1, 2500};
    const int *lens[] = {lens_a, NULL, lens_none, lens_b, lens_long};
    int n_docs[] = {NA, 0, 5, NB, 4};
    char paths[5][300];
    char *argv[5];
    for (int s = 0; s < 5; s++) {
        snprintf(paths[s], sizeof paths[s], "%s/index%d.drs", dir, s);
        write_shard(paths[s], 30 + s, lens[s] ? lens[s] : lens_a, n_docs[s], 42, s == 4 ? 512 : 0);
        argv[s] = paths[s];
    }
    int Ls[] = {1, 3, 8}, mins[] = {2, 4};
    Win *win = xmalloc(8000 * sizeof *win);
    uint32_t *got = xmalloc(10 * sizeof *got);
    for (int li = 0; li < 3; li++)
        for (int mi = 0; mi < 2; mi++) {
            int L = Ls[li], min_tokens = mins[mi];
            if (min_tokens > L + 1) continue;   /* no window is that long: refused */
            DataOptions o = opts(L, 4);
            o.min_tokens = min_tokens;
            o.resident_max_tokens = 0;
            DataLoader *d = open_paths(5, argv, &o);
            TEST_CHECK(d != NULL, "open: %s", dr_lasterr());
            if (!d) continue;
            int n = 0;
            for (int s = 0; s < 5; s++)
                if (lens[s]) n += expected_windows(win + n, 30 + s, lens[s], n_docs[s], L, min_tokens);
            TEST_CHECK((int)data_num_examples(d) == n, "L=%d min=%d: %" PRIu64 " examples, want %d",
                       L, min_tokens, data_num_examples(d), n);
            int bad = 0;
            for (int pass = 0; pass < 2; pass++)
                for (int k = 0; k < n && n == (int)data_num_examples(d); k++) {
                    int i = pass == 0 ? k : (int)(((uint64_t)k * 7919) % (uint64_t)n);   /* 7919 prime: a permutation */
                    const Win *w = &win[i];
                    DataExample e = data_example(d, (uint64_t)i);
                    bad += (int)e.shard != w->shard - 30 || (int)e.doc != w->doc ||
                           (int)e.window != w->window || (int)e.length != w->len;
                    char id[DATA_ID_MAX], want[DATA_ID_MAX];
                    data_example_id(d, (uint64_t)i, id);
                    snprintf(want, sizeof want, "%016" PRIx64 ":%d", doc_id_of(w->shard, w->doc), w->window);
                    bad += strcmp(id, want) != 0 || data_example_doc_id(d, (uint64_t)i) != doc_id_of(w->shard, w->doc);
                    bad += strcmp(data_example_source(d, (uint64_t)i), w->doc % 2 ? "odd" : "even") != 0;
                    if (data_read_example(d, (uint64_t)i, got) != 0) { bad++; continue; }
                    for (int t = 0; t < w->len; t++) bad += got[t] != tok_of(w->shard * 100 + w->doc, w->start + t);
                }
            TEST_CHECK(bad == 0, "L=%d min=%d: %d differences from the windows computed directly", L,
                       min_tokens, bad);
            data_close(d);
        }
    free(got);
    free(win);
}

/* Runs n batches of the stream; returns a hash of everything in them. */
static uint64_t hash_batch(const DataBatch *b) {
    uint64_t h = 1469598103934665603ull;
#define MIX(x) (h = (h ^ (uint64_t)(x)) * 1099511628211ull)
    MIX(b->B); MIX(b->T); MIX(b->T_rater); MIX(b->n_tokens);
    for (int i = 0; i < b->B; i++) {
        MIX(b->index[i]); MIX(b->n_valid[i]); MIX(b->rater_valid[i]);
        for (int t = 0; t < b->T; t++) { MIX(b->inputs[i * b->T + t]); MIX(b->targets[i * b->T + t]); }
        for (int t = 0; t < b->T_rater; t++) MIX(b->rater_tokens[i * b->T_rater + t]);
    }
#undef MIX
    return h;
}
static void run_stream(DataLoader *d, int n, uint64_t *hashes, uint64_t *indices) {
    DataBatch *b = data_batch_new(d);
    int B = data_options(d)->batch_size;
    for (int k = 0; k < n; k++) {
        int rc = data_next(d, b);
        TEST_CHECK(rc == 0, "data_next: %s", dr_lasterr());
        if (hashes) hashes[k] = hash_batch(b);
        if (indices) for (int i = 0; i < B; i++) indices[(size_t)k * B + i] = b->index[i];
    }
    data_batch_free(b);
}

static void test_shuffle(void) {
    char *paths[] = {path_a, path_b};
    DataOptions o = opts(8, 4);
    DataLoader *d1 = open_paths(2, paths, &o), *d2 = open_paths(2, paths, &o);
    CHECK(d1 && d2, "%s", dr_lasterr());
    uint64_t N = data_num_examples(d1);
    int nb = (int)(3 * N / 4) + 1;            /* a bit over 3 epochs */
    uint64_t *i1 = xcalloc((size_t)nb * 4, 8), *i2 = xcalloc((size_t)nb * 4, 8);
    run_stream(d1, nb, NULL, i1);
    run_stream(d2, nb, NULL, i2);
    TEST_CHECK(memcmp(i1, i2, (size_t)nb * 4 * 8) == 0, "same seed gives the same order");
    /* each epoch is a permutation, and epochs differ */
    int *seen = xcalloc(N, sizeof *seen);
    int differs = 0, shard_order = 1;
    for (int e = 0; e < 3; e++) {
        memset(seen, 0, N * sizeof *seen);
        for (uint64_t c = 0; c < N; c++) seen[i1[e * N + c]]++;
        int ok = 1;
        for (uint64_t c = 0; c < N; c++) ok &= seen[c] == 1;
        TEST_CHECK(ok, "epoch %d is a permutation", e);
        if (e > 0) for (uint64_t c = 0; c < N; c++) differs |= i1[e * N + c] != i1[c];
        for (uint64_t c = 0; c < N; c++) shard_order &= i1[e * N + c] == c;
    }
    TEST_CHECK(differs, "epochs are reshuffled");
    TEST_CHECK(!shard_order, "shuffled order is not shard order");
    data_close(d1); data_close(d2);

    o.seed = 99;
    d2 = open_paths(2, paths, &o);
    run_stream(d2, nb, NULL, i2);
    TEST_CHECK(memcmp(i1, i2, (size_t)nb * 4 * 8) != 0, "another seed gives another order");
    data_close(d2);

    o.shuffle = 0;
    d2 = open_paths(2, paths, &o);
    run_stream(d2, nb, NULL, i2);
    int ok = 1;
    for (int k = 0; k < nb * 4; k++) ok &= i2[k] == (uint64_t)k % N;
    TEST_CHECK(ok, "shuffle false gives shard order, epoch after epoch");
    data_close(d2);
    free(seen); free(i1); free(i2);
}

static void test_bucketing(void) {
    char *paths[] = {path_a, path_b, path_c};
    DataOptions o = opts(16, 4);
    o.bucket_by_length = 1;
    DataLoader *d = open_paths(3, paths, &o);
    CHECK(d, "%s", dr_lasterr());
    uint64_t N = data_num_examples(d);
    int nb = (int)(N / 4);
    DataBatch *b = data_batch_new(d);
    int *seen = xcalloc(N, sizeof *seen);
    long sum_T = 0, sum_spread = 0;
    int trimmed_ok = 1, some_trimmed = 0;
    for (int k = 0; k < nb; k++) {
        TEST_CHECK(data_next(d, b) == 0, "%s", dr_lasterr());
        int mx = 0, mn = 1 << 30;
        for (int i = 0; i < b->B; i++) {
            seen[b->index[i]]++;
            if (b->n_valid[i] > mx) mx = b->n_valid[i];
            if (b->n_valid[i] < mn) mn = b->n_valid[i];
            /* the trimmed rows hold the same tokens as the untrimmed view */
            DataExample e = data_example(d, b->index[i]);
            TEST_CHECK(b->n_valid[i] == (int)e.length - 1, "n_valid under trimming");
        }
        trimmed_ok &= b->T == mx;
        some_trimmed |= b->T < 16;
        sum_T += b->T;
        sum_spread += mx - mn;
    }
    TEST_CHECK(trimmed_ok, "each batch is trimmed to its longest example");
    TEST_CHECK(some_trimmed, "some batches are shorter than seq_len");
    int ok = 1;
    for (uint64_t i = 0; i < (uint64_t)nb * 4; i++) ok &= seen[i] <= 1;
    TEST_CHECK(ok, "bucketed epoch visits each example at most once");
    /* compare with unbucketed: length spread within batches is smaller */
    o.bucket_by_length = 0;
    DataLoader *d2 = open_paths(3, paths, &o);
    long spread2 = 0;
    for (int k = 0; k < nb; k++) {
        data_next(d2, b);
        int mx = 0, mn = 1 << 30;
        for (int i = 0; i < b->B; i++) {
            if (b->n_valid[i] > mx) mx = b->n_valid[i];
            if (b->n_valid[i] < mn) mn = b->n_valid[i];
        }
        spread2 += mx - mn;
        TEST_CHECK(b->T == 16, "no trimming without bucketing");
    }
    TEST_CHECK(sum_spread < spread2, "bucketing groups similar lengths (spread %ld vs %ld)", sum_spread, spread2);
    TEST_CHECK(sum_T < 16L * nb, "bucketing saves positions (%ld vs %ld)", sum_T, 16L * nb);
    data_close(d2);
    /* a whole epoch + 1 batch: the epoch is still a permutation */
    o.bucket_by_length = 1;
    o.batch_size = 5;
    DataLoader *d3 = open_paths(3, paths, &o);
    uint64_t *idx = xcalloc(N + 5, 8);
    run_stream(d3, (int)(N / 5) + 1, NULL, idx);
    memset(seen, 0, N * sizeof *seen);
    for (uint64_t i = 0; i < N; i++) seen[idx[i]]++;
    ok = 1;
    for (uint64_t i = 0; i < N; i++) ok &= seen[i] == 1;
    TEST_CHECK(ok, "bucketed epoch is a permutation");
    free(idx);
    data_close(d3);
    free(seen);
    data_batch_free(b);
    data_close(d);
}

static void test_resume_and_prefetch(int bucket) {
    char *paths[] = {path_a, path_b, path_c};
    DataOptions o = opts(8, 3);
    o.bucket_by_length = bucket;
    DataLoader *d = open_paths(3, paths, &o);
    CHECK(d, "%s", dr_lasterr());
    int n = (int)(data_num_examples(d) * 2 / 3) + 7;   /* ~2 epochs, straddling */
    uint64_t *h_sync = xcalloc((size_t)n, 8), *h_pf = xcalloc((size_t)n, 8), *h_res = xcalloc((size_t)n, 8);
    run_stream(d, n, h_sync, NULL);
    data_close(d);

    /* read-ahead thread, 1 and 3 slots; and streamed (non-resident) reads */
    for (int variant = 0; variant < 3; variant++) {
        o.prefetch = variant == 0 ? 1 : 3;
        o.resident_max_tokens = variant == 2 ? 0 : 1 << 20;
        d = open_paths(3, paths, &o);
        run_stream(d, n, h_pf, NULL);
        TEST_CHECK(memcmp(h_sync, h_pf, (size_t)n * 8) == 0,
                   "prefetch %d resident %d gives the synchronous batches (bucket %d)", o.prefetch,
                   o.resident_max_tokens > 0, bucket);
        data_close(d);
    }

    /* save the position after k batches, restore it in a fresh loader */
    for (int pf = 0; pf <= 2; pf += 2) {
        o.prefetch = pf;
        o.resident_max_tokens = 1 << 20;
        int k = n / 2 + 1;
        d = open_paths(3, paths, &o);
        run_stream(d, k, h_res, NULL);
        DataPosition p = data_position(d);
        data_close(d);
        d = open_paths(3, paths, &o);
        TEST_CHECK(data_set_position(d, &p) == 0, "%s", dr_lasterr());
        run_stream(d, n - k, h_res + k, NULL);
        TEST_CHECK(memcmp(h_sync, h_res, (size_t)n * 8) == 0,
                   "restored position continues exactly (prefetch %d, bucket %d)", pf, bucket);
        /* restoring in the middle of a running read-ahead, then rewinding */
        DataPosition zero = {0, 0, o.seed, data_num_examples(d)};
        TEST_CHECK(data_set_position(d, &zero) == 0, "%s", dr_lasterr());
        run_stream(d, 5, h_res, NULL);
        TEST_CHECK(memcmp(h_sync, h_res, 5 * 8) == 0, "rewind to the start (prefetch %d)", pf);
        DataPosition bad = p;
        bad.seed++;
        TEST_CHECK(data_set_position(d, &bad) != 0, "a position of another seed is refused");
        data_close(d);
    }
    free(h_sync); free(h_pf); free(h_res);
}

/* b (part [lo, hi) of a batch) against w (the whole batch): the same metadata for every
 * example, the same token rows in [lo, hi), zeros elsewhere. */
static int part_matches(const DataBatch *w, const DataBatch *b, int lo, int hi) {
    if (w->B != b->B || w->T != b->T || w->T_rater != b->T_rater || w->n_tokens != b->n_tokens) return 0;
    int ok = 1;
    for (int i = 0; i < w->B; i++) {
        int in = i >= lo && i < hi;
        ok &= w->n_valid[i] == b->n_valid[i] && w->rater_valid[i] == b->rater_valid[i] &&
              w->index[i] == b->index[i];
        for (int t = 0; t < w->T; t++) {
            size_t j = (size_t)i * w->T + t;
            ok &= b->inputs[j] == (in ? w->inputs[j] : 0) && b->targets[j] == (in ? w->targets[j] : 0);
        }
        for (int t = 0; t < w->T_rater; t++) {
            size_t j = (size_t)i * w->T_rater + t;
            ok &= b->rater_tokens[j] == (in ? w->rater_tokens[j] : 0);
        }
    }
    return ok;
}

/* Reading part of a batch (data-parallel ranks): data_set_part on the stream, changed
 * every few batches (read-ahead restarts), and data_get_part / data_range_part; resident,
 * streamed and read-ahead loaders. */
static void test_parts(int bucket) {
    char *paths[] = {path_a, path_b, path_c};
    DataOptions o = opts(8, 5);
    o.bucket_by_length = bucket;
    for (int variant = 0; variant < 3; variant++) {
        o.prefetch = variant == 1 ? 2 : 0;
        o.resident_max_tokens = variant == 2 ? 0 : 1 << 20;
        DataLoader *dw = open_paths(3, paths, &o), *dp = open_paths(3, paths, &o);
        CHECK(dw && dp, "%s", dr_lasterr());
        DataBatch *bw = data_batch_new(dw), *bp = data_batch_new(dp);
        int ok = 1, lo = 0, hi = 5;
        for (int k = 0; k < 60; k++) {
            if (k % 7 == 0) {
                lo = (k / 7) % 3;
                hi = lo + (k / 7) % 4;   /* empty parts too */
                data_set_part(dp, lo, hi);
            }
            TEST_CHECK(data_next(dw, bw) == 0 && data_next(dp, bp) == 0, "%s", dr_lasterr());
            ok &= part_matches(bw, bp, lo, hi);
        }
        TEST_CHECK(ok, "the stream's parts of batches are the whole batches' rows (variant %d, bucket %d)",
                   variant, bucket);
        ok = 1;
        uint64_t N = data_num_examples(dw), idx[5];
        for (int k = 0; k < 30; k++) {
            int n = 1 + k % 5, a = k % n, c = a + (k / 5) % (n - a + 1);
            for (int i = 0; i < n; i++) idx[i] = ((uint64_t)k * 7919 + (uint64_t)i * 104729) % N;
            TEST_CHECK(data_get(dw, idx, n, bw) == 0 && data_get_part(dp, idx, n, a, c, bp) == 0, "%s",
                       dr_lasterr());
            ok &= part_matches(bw, bp, a, c);
            TEST_CHECK(data_range(dw, (uint64_t)k * 3, n, bw) == 0 &&
                       data_range_part(dp, (uint64_t)k * 3, n, a, c, bp) == 0, "%s", dr_lasterr());
            ok &= part_matches(bw, bp, a, c);
        }
        TEST_CHECK(ok, "data_get_part / data_range_part give the whole batches' rows (variant %d, bucket %d)",
                   variant, bucket);
        data_batch_free(bw); data_batch_free(bp);
        data_close(dw); data_close(dp);
    }
}

static void test_errors(void) {
    char path_short[300], path_fp[300];
    snprintf(path_short, sizeof path_short, "%s/short.drs", dir);
    snprintf(path_fp, sizeof path_fp, "%s/other_tokenizer.drs", dir);
    int lens[] = {1, 3, 2};
    write_shard(path_short, 3, lens, 3, 42, 0);
    DataOptions o = opts(8, 2);
    o.min_tokens = 4;
    char *p1[] = {path_short};
    DataLoader *d = open_paths(1, p1, &o);
    TEST_CHECK(d == NULL && strstr(dr_lasterr(), "no examples"), "no examples refused: %s", dr_lasterr());
    data_close(d);
    o.min_tokens = 2;
    d = open_paths(1, p1, &o);
    TEST_CHECK(d && data_num_examples(d) == 2, "short documents still give windows");
    data_close(d);

    write_shard(path_fp, 4, lens_b, NB, 43, 0);
    char *p2[] = {path_a, path_fp};
    d = open_paths(2, p2, &o);
    TEST_CHECK(d == NULL && strstr(dr_lasterr(), "tokenizer"), "mixed tokenizers refused: %s", dr_lasterr());
    data_close(d);
}

/* Open shard files in use by this process (/proc/self/fd), -1 where unknown. */
static int count_drs_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    char link[600], target[600];
    while ((e = readdir(d))) {
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(link, target, sizeof target - 1);
        if (k > 4) { target[k] = 0; n += strstr(target, "/many-") != NULL; }
    }
    closedir(d);
    return n;
}

/* A corpus of more shards than the file budget: the same batches as with every file open,
 * never more than the budget (plus the reads in flight) open; a closed shard that was
 * replaced meanwhile is refused, not read. */
static void test_fd_budget(void) {
    enum { NS = 40 };
    char *paths[NS];
    ShardRef refs[NS];
    for (int s = 0; s < NS; s++) {
        paths[s] = xmalloc(300);
        snprintf(paths[s], 300, "%s/many-%02d.drs", dir, s);
        int lens[6];
        for (int k = 0; k < 6; k++) lens[k] = 3 + (s * 7 + k * 11) % 29;
        write_shard(paths[s], 10 + s, lens, 6, 42, 48);   /* several blocks each */
        refs[s] = (ShardRef){"", paths[s]};
    }
    ShardList sl = {.items = refs, .n = NS, .cap = NS};
    DataOptions o = opts(6, 5);
    o.resident_max_tokens = 0;   /* streaming: every batch reads shards */
    o.prefetch = 2;              /* and a second thread reads too */
    uint64_t want[60], got[60];
    drs_set_fd_budget(1000);
    DataLoader *d = data_open(&sl, &o);
    CHECK(d, "%s", dr_lasterr());
    run_stream(d, 60, want, NULL);
    data_close(d);

    drs_set_fd_budget(3);
    d = data_open(&sl, &o);
    CHECK(d, "%s", dr_lasterr());
    int most = 0;
    DataBatch *b = data_batch_new(d);
    for (int k = 0; k < 60; k++) {
        TEST_CHECK(data_next(d, b) == 0, "data_next under a budget of 3 files: %s", dr_lasterr());
        got[k] = hash_batch(b);
        int n = count_drs_fds();
        if (n > most) most = n;
    }
    data_batch_free(b);
    TEST_CHECK(memcmp(want, got, sizeof want) == 0, "batches under a budget of 3 files differ from all open");
    TEST_CHECK(most >= 0 && most <= 3 + 2, "%d shard files open at once under a budget of 3", most);
    data_close(d);

    /* a closed reader whose file was replaced meanwhile */
    drs_set_fd_budget(1);
    DrsReader *r0 = drs_open(paths[0]), *r1 = drs_open(paths[1]);   /* r1's open closes r0's file */
    CHECK(r0 && r1, "%s", dr_lasterr());
    int lens[3] = {5, 6, 7};
    write_shard(paths[0], 99, lens, 3, 42, 0);   /* written aside and renamed over paths[0] */
    uint32_t tok[64];
    TEST_CHECK(drs_read_doc(r0, 0, tok) != 0 && strstr(dr_lasterr(), "replaced or changed"),
               "a replaced shard was read: %s", dr_lasterr());
    TEST_CHECK(drs_read_doc(r1, 0, tok) == 0, "r1: %s", dr_lasterr());
    drs_close(r0);
    drs_close(r1);
    drs_set_fd_budget(0);
    for (int s = 0; s < NS; s++) free(paths[s]);
}

/* A shard replaced (a new file renamed over its name) after the loader opened it: the
 * read-ahead thread opens its own reader of it, which must be refused, not serve the new
 * file's tokens under the old index (the same shape: silent garbage; shorter documents:
 * reads past the document). */
static void test_replaced_under_readahead(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/replaced.drs", dir);
    int lens[4] = {10, 12, 9, 11};
    write_shard(path, 20, lens, 4, 42, 0);
    char *p1[] = {path};
    DataOptions o = opts(4, 3);
    o.resident_max_tokens = 0;
    for (int shorter = 0; shorter <= 1; shorter++) {
        o.prefetch = 2;
        DataLoader *d = open_paths(1, p1, &o);
        CHECK(d, "%s", dr_lasterr());
        int lens2[4] = {10, 12, 9, 11};
        if (shorter) for (int k = 0; k < 4; k++) lens2[k] = 3;
        write_shard(path, 21 + shorter, lens2, 4, 42, 0);   /* other tokens, same or shorter */
        DataBatch *b = data_batch_new(d);
        int rc = data_next(d, b);
        TEST_CHECK(rc != 0 && strstr(dr_lasterr(), "replaced or changed"),
                   "a shard replaced before the read-ahead opened it was read (shorter %d): %s", shorter,
                   rc ? dr_lasterr() : "no error");
        data_batch_free(b);
        data_close(d);
        write_shard(path, 20, lens, 4, 42, 0);
    }
}

/* The largest batch the config allows (data.batch_size 2^20) with a tiny seq_len: the
 * example numbers of a batch live on the heap, not in an 8 MiB array on the stack. */
static void test_large_batch(void) {
    char *paths[] = {path_a, path_b, path_c};
    DataOptions o = opts(1, 1 << 20);
    o.seq_len_rater = 0;
    for (int pf = 0; pf <= 1; pf++) {
        o.prefetch = pf;
        DataLoader *d = open_paths(3, paths, &o);
        CHECK(d, "%s", dr_lasterr());
        DataBatch *b = data_batch_new(d);
        TEST_CHECK(data_next(d, b) == 0 && b->B == 1 << 20 && b->n_tokens == 1 << 20,
                   "a batch of 2^20 examples (prefetch %d): %s", pf, dr_lasterr());
        TEST_CHECK(data_range(d, 5, 1 << 20, b) == 0 && b->B == 1 << 20, "data_range of 2^20: %s",
                   dr_lasterr());
        data_batch_free(b);
        data_close(d);
    }
}

int main(void) {
    dr_set_progname("test_data");
    snprintf(dir, sizeof dir, "/tmp/dr_test_data.XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp");
    snprintf(path_a, sizeof path_a, "%s/a.drs", dir);
    snprintf(path_b, sizeof path_b, "%s/b.drs", dir);
    snprintf(path_c, sizeof path_c, "%s/c.drs", dir);
    write_shard(path_a, 0, lens_a, NA, 42, 0);
    write_shard(path_b, 1, lens_b, NB, 42, 64);    /* small blocks: many of them */
    int lens_c[200];
    for (int k = 0; k < 200; k++) lens_c[k] = 2 + (k * 37) % 50;
    write_shard(path_c, 2, lens_c, 200, 42, 256);

    for (int L = 1; L <= 9; L += 4) {
        test_windows(L, 2, 1 << 20);
        test_windows(L, 2, 0);
        if (L + 1 >= 4) test_windows(L, 4, 1 << 20);   /* L = 1: no window is that long */
    }
    test_windows(16, 2, 1 << 20);
    test_windows(16, 8, 0);
    test_index_across_shards();
    test_shuffle();
    test_bucketing();
    test_resume_and_prefetch(0);
    test_resume_and_prefetch(1);
    test_parts(0);
    test_parts(1);
    test_errors();
    test_fd_budget();
    test_replaced_under_readahead();
    test_large_batch();

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_data");
}
