/* test_filter.c — the keep/drop policies of dr-filter and the validation of scores.tsv
 * against the examples of real shards (exact duplicate documents included). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data.h"
#include "filter.h"
#include "inputs.h"
#include "scores.h"
#include "shard.h"
#include "test.h"

static uint64_t count(const uint8_t *m, uint64_t n) {
    uint64_t k = 0;
    for (uint64_t i = 0; i < n; i++) k += m[i];
    return k;
}

static void test_policies(void) {
    enum { N = 1003 };
    double s[N];
    uint8_t m[N], m2[N];
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        s[i] = (double)(x >> 11) / 9007199254740992.0;
    }
    s[7] = s[8];   /* a tie */

    FilterOptions o = { .policy = FILTER_TOP, .keep = 0.6, .seed = 1 };
    filter_select(&o, s, N, m);
    uint64_t k = count(m, N);
    TEST_CHECK(llabs((long long)k - (long long)llround(0.6 * N)) <= 1, "top 0.6 kept %llu of %d", (unsigned long long)k, N);
    double min_kept = 1e9, max_dropped = -1e9;
    for (int i = 0; i < N; i++) {
        if (m[i] && s[i] < min_kept) min_kept = s[i];
        if (!m[i] && s[i] > max_dropped) max_dropped = s[i];
    }
    TEST_CHECK(min_kept >= max_dropped, "top keeps the highest scores (%g < %g)", min_kept, max_dropped);

    o.invert = 1;
    filter_select(&o, s, N, m2);
    double max_kept = -1e9, min_dropped = 1e9;
    for (int i = 0; i < N; i++) {
        if (m2[i] && s[i] > max_kept) max_kept = s[i];
        if (!m2[i] && s[i] < min_dropped) min_dropped = s[i];
    }
    TEST_CHECK(count(m2, N) == k, "invert keeps as many");
    TEST_CHECK(max_kept <= min_dropped, "invert keeps the lowest (%g > %g)", max_kept, min_dropped);
    o.invert = 0;

    o.policy = FILTER_PER_BATCH; o.batch = 10; o.keep = 0.35;
    filter_select(&o, s, N, m);
    int ok = 1;
    for (int start = 0; start < N; start += 10) {
        int b = N - start < 10 ? N - start : 10, need = (int)ceil(0.35 * b - 1e-9), got = 0;
        for (int i = start; i < start + b; i++) got += m[i];
        if (got != need) ok = 0;
        for (int i = start; i < start + b; i++)
            for (int j = start; j < start + b; j++)
                if (m[i] && !m[j] && s[i] < s[j]) ok = 0;
    }
    TEST_CHECK(ok, "per-batch keeps exactly the top ceil(keep*B) of every batch");

    o.policy = FILTER_RANDOM; o.keep = 0.3; o.seed = 7;
    filter_select(&o, s, N, m);
    filter_select(&o, s, N, m2);
    TEST_CHECK(memcmp(m, m2, N) == 0, "random with a seed is reproducible");
    TEST_CHECK(count(m, N) == (uint64_t)llround(0.3 * N), "random keeps round(keep*N)");
    o.seed = 8;
    filter_select(&o, s, N, m2);
    TEST_CHECK(memcmp(m, m2, N) != 0, "another seed, another sample");

    o.policy = FILTER_MIDDLE; o.keep = 0.5;
    filter_select(&o, s, N, m);
    int lo = 0, hi = 0;
    for (int i = 0; i < N; i++) if (!m[i]) { if (s[i] < 0.5) lo++; else hi++; }
    TEST_CHECK(count(m, N) == (uint64_t)llround(0.5 * N), "keep-middle count");
    TEST_CHECK(abs(lo - hi) < N / 20, "keep-middle drops both tails (%d low, %d high)", lo, hi);

    o.policy = FILTER_CDF; o.keep = 0.5; o.seed = 3;
    filter_select(&o, s, N, m);
    filter_select(&o, s, N, m2);
    TEST_CHECK(memcmp(m, m2, N) == 0, "cdf with a seed is reproducible");
    double frac = (double)count(m, N) / N, mean_kept = 0;
    for (int i = 0; i < N; i++) if (m[i]) mean_kept += s[i];
    mean_kept /= (double)count(m, N);
    TEST_CHECK(fabs(frac - 0.5) < 0.06, "cdf keeps about half (%g)", frac);
    TEST_CHECK(mean_kept > 0.6, "cdf favours high scores (mean kept %g)", mean_kept);
}

/* The exact rules of docs/deploy.md ("The selection, exactly"): masks pinned to the values
 * tests/xcheck/formats_ref.py's select_ref (written from that text) computes, so that a
 * change of the ranking, the tie-breaking, the counts or the random numbers shows here. */
static int mask_is(const uint8_t *m, uint64_t n, const char *want) {
    for (uint64_t i = 0; i < n; i++)
        if (m[i] != (uint8_t)(want[i] == '1')) return 0;
    return 1;
}

static void test_exact_rules(void) {
    double s8[8] = { 0.5, 2.0, 0.5, -1.0, 2.0, 0.5, 3.0, -1.0 };   /* ties: 2, 0.5, -1 */
    double z[1000] = {0};
    uint8_t m[1000];
    FilterOptions o = { .policy = FILTER_TOP, .keep = 0.5 };
    struct { int policy; double keep; int invert; uint64_t seed, n; const char *want; } c[] = {
        /* round(0.5·7) = 4 (halves up); ties: the earlier first, also inverted */
        { FILTER_TOP, 0.5, 0, 0, 7, "1100101" },
        { FILTER_TOP, 0.5, 1, 0, 7, "1011010" },
        /* K = 4 of 7: D = 1 dropped at the best end, 2 at the worst */
        { FILTER_MIDDLE, 0.5, 0, 0, 7, "1110100" },
        { FILTER_MIDDLE, 0.5, 1, 0, 7, "1110010" },
        { FILTER_MIDDLE, 0.5, 0, 0, 8, "10101100" },
        /* q = (N − rank)/N, p = q^a, u from U(s ^ i·γ), s = seed ^ 0x5EEDF11E7 */
        { FILTER_CDF, 0.6, 0, 5, 8, "01101010" },
        { FILTER_CDF, 0.6, 1, 5, 8, "10110111" },
        { FILTER_CDF, 0.5, 0, 1, 8, "11011010" },
        /* partial Fisher–Yates on one splitmix64 stream */
        { FILTER_RANDOM, 0.5, 0, 0, 10, "0001111010" },
        { FILTER_RANDOM, 0.3, 0, 42, 7, "0011000" },
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        o.policy = c[k].policy; o.keep = c[k].keep; o.invert = c[k].invert; o.seed = c[k].seed;
        filter_select(&o, c[k].policy == FILTER_RANDOM ? z : s8, c[k].n, m);
        TEST_CHECK(mask_is(m, c[k].n, c[k].want), "exact rule case %zu (policy %d keep %g invert %d seed %llu): "
                   "want %s", k, c[k].policy, c[k].keep, c[k].invert, (unsigned long long)c[k].seed, c[k].want);
    }
    /* the largest --seed, N = 1000: K = round(370) and the first kept indices */
    o = (FilterOptions){ .policy = FILTER_RANDOM, .keep = 0.37, .seed = 0x7fffffffffffffffull };
    filter_select(&o, z, 1000, m);
    uint64_t first[10] = { 0, 1, 8, 11, 12, 14, 17, 20, 22, 25 }, got = 0, ok = count(m, 1000) == 370;
    for (uint64_t i = 0; i < 1000 && got < 10; i++)
        if (m[i]) ok &= i == first[got++];
    TEST_CHECK(ok, "random 0.37 of 1000, seed 2^63-1: 370 kept, starting 0 1 8 11 12 14 17 20 22 25");
    /* per-batch counts: 0.28·25 = 7.000000000000001 in double counts as 7, not 8; the last
     * batch of 10: ceil(2.8) = 3 */
    for (int i = 0; i < 35; i++) z[i] = (double)(i % 7);
    o = (FilterOptions){ .policy = FILTER_PER_BATCH, .keep = 0.28, .batch = 25 };
    filter_select(&o, z, 35, m);
    TEST_CHECK(count(m, 25) == 7 && count(m + 25, 10) == 3, "per-batch 0.28 of 25 + 10: %llu + %llu kept, want 7 + 3",
               (unsigned long long)count(m, 25), (unsigned long long)count(m + 25, 10));
}

/* Two documents -> examples with seq_len 4: doc A 9 tokens (windows 0 and 1, 5 tokens each), doc B 3 tokens. */
static void test_scores_align(const char *dir) {
    char shard[512], tsv[512];
    snprintf(shard, sizeof shard, "%s/a.drs", dir);
    snprintf(tsv, sizeof tsv, "%s/s.tsv", dir);
    DrsWriter *w = drs_writer_open(shard, 300, 42, "byte");
    uint32_t a[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, b[3] = {10, 11, 12};
    TEST_CHECK(w && drs_writer_add(w, 0xaaaa, "src1", a, 9) == 0 && drs_writer_add(w, 0xbbbb, "src2", b, 3) == 0
               && drs_writer_close(w) == 0, "write shard: %s", dr_lasterr());
    ShardList sl = {0};
    char *in[1] = { shard };
    TEST_CHECK(shardlist_add_inputs(&sl, 1, in) == 0, "inputs: %s", dr_lasterr());
    DataOptions o = { .seq_len = 4, .min_tokens = 2, .batch_size = 2 };
    DataLoader *d = data_open(&sl, &o);
    TEST_CHECK(d && data_num_examples(d) == 3, "3 examples");
    if (!d) return;

    struct { const char *body; const char *expect; } cases[] = {
        { "000000000000aaaa:1\t0.5\tsrc1\t5\n000000000000bbbb:0\t-1\tsrc2\t3\n000000000000aaaa:0\t2\tsrc1\t5\n", NULL },
        { "000000000000aaaa:0\t2\tsrc1\t5\n000000000000bbbb:0\t-1\tsrc2\t3\n", "no score for example 000000000000aaaa:1" },
        { "000000000000aaaa:0\t2\tsrc1\t5\n000000000000aaaa:1\t2\tsrc1\t5\n000000000000bbbb:0\t-1\tsrc2\t3\n000000000000cccc:0\t1\tx\t3\n", ":5: example 000000000000cccc:0 is not in the shards" },
        { "000000000000aaaa:0\t2\tsrc1\t5\n000000000000aaaa:0\t2\tsrc1\t5\n", ":3: duplicate example id" },
        { "000000000000aaaa:0\tabc\tsrc1\t5\n", ":2: score 'abc' is not a number" },
        { "000000000000aaaa:0\tnan\tsrc1\t5\n", ":2: score 'nan' is not finite" },
        { "000000000000aaaa:0\t1\tsrc1\n", ":2: expected 4 tab-separated fields" },
        { "000000000000aaaa:0\t2\tsrc1\t5\n000000000000aaaa:1\t2\tsrc1\t7\n000000000000bbbb:0\t-1\tsrc2\t3\n", ":3: example 000000000000aaaa:1 has 5 tokens" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        FILE *f = fopen(tsv, "w");
        fprintf(f, "%s\n%s", SCORES_HEADER, cases[c].body);
        fclose(f);
        Scores s;
        double out[3];
        int rc = scores_read(tsv, &s);
        if (rc == 0) { rc = scores_align(&s, d, out); scores_free(&s); }
        if (!cases[c].expect) {
            TEST_CHECK(rc == 0, "case %zu accepted: %s", c, dr_lasterr());
            TEST_CHECK(rc != 0 || (out[0] == 2 && out[1] == 0.5 && out[2] == -1), "case %zu aligned by id", c);
        } else {
            TEST_CHECK(rc != 0 && strstr(dr_lasterr(), cases[c].expect), "case %zu: got '%s', want '%s'",
                       c, rc ? dr_lasterr() : "(accepted)", cases[c].expect);
        }
    }
    data_close(d);
    shardlist_free(&sl);
}

/* Exact duplicate documents share an id: the file holds the id as often as the shards
 * do, its n-th line scoring the n-th example. Doc B appears twice (ids bbbb, bbbb). */
static void test_scores_duplicates(const char *dir) {
    char shard[512], tsv[512];
    snprintf(shard, sizeof shard, "%s/dup.drs", dir);
    snprintf(tsv, sizeof tsv, "%s/dup.tsv", dir);
    DrsWriter *w = drs_writer_open(shard, 300, 42, "byte");
    uint32_t a[3] = {1, 2, 3}, b[3] = {10, 11, 12};
    TEST_CHECK(w && drs_writer_add(w, 0xbbbb, "s", b, 3) == 0 && drs_writer_add(w, 0xaaaa, "s", a, 3) == 0
               && drs_writer_add(w, 0xbbbb, "s", b, 3) == 0 && drs_writer_close(w) == 0,
               "write shard: %s", dr_lasterr());
    ShardList sl = {0};
    char *in[1] = { shard };
    TEST_CHECK(shardlist_add_inputs(&sl, 1, in) == 0, "inputs: %s", dr_lasterr());
    DataOptions o = { .seq_len = 4, .min_tokens = 2, .batch_size = 2 };
    DataLoader *d = data_open(&sl, &o);
    TEST_CHECK(d && data_num_examples(d) == 3, "3 examples");
    if (!d) return;
    struct { const char *body; const char *expect; } cases[] = {
        { "000000000000bbbb:0\t1\ts\t3\n000000000000aaaa:0\t2\ts\t3\n000000000000bbbb:0\t3\ts\t3\n", NULL },
        { "000000000000bbbb:0\t1\ts\t3\n000000000000aaaa:0\t2\ts\t3\n",
          "no score for example 000000000000bbbb:0" },
        { "000000000000bbbb:0\t1\ts\t3\n000000000000aaaa:0\t2\ts\t3\n000000000000bbbb:0\t3\ts\t3\n"
          "000000000000bbbb:0\t4\ts\t3\n",
          ":5: duplicate example id 000000000000bbbb:0 (first at line 2): the shards hold it 2 times" },
        { "000000000000aaaa:0\t2\ts\t3\n000000000000aaaa:0\t2\ts\t3\n000000000000bbbb:0\t1\ts\t3\n"
          "000000000000bbbb:0\t3\ts\t3\n", ":3: duplicate example id 000000000000aaaa:0 (first at line 2)" },
        /* the duplicate is the line past the shards' count in file order, whichever line
         * the lowest-first assignment gave the example: here the later, lower one took
         * aaaa's example, and line 2 (its first) must not be named as its own duplicate */
        { "000000000000aaaa:0\t5\ts\t3\n000000000000bbbb:0\t1\ts\t3\n000000000000bbbb:0\t3\ts\t3\n"
          "000000000000aaaa:0\t2\ts\t3\n", ":5: duplicate example id 000000000000aaaa:0 (first at line 2)" },
        { "000000000000bbbb:0\t9\ts\t3\n000000000000aaaa:0\t2\ts\t3\n000000000000bbbb:0\t8\ts\t3\n"
          "000000000000bbbb:0\t1\ts\t3\n",
          ":5: duplicate example id 000000000000bbbb:0 (first at line 2): the shards hold it 2 times" },
        /* an id not in the shards is named at its first line, even after a duplicate's */
        { "000000000000cccc:0\t1\ts\t3\n000000000000bbbb:0\t1\ts\t3\n000000000000aaaa:0\t2\ts\t3\n"
          "000000000000bbbb:0\t3\ts\t3\n", ":2: example 000000000000cccc:0 is not in the shards" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        FILE *f = fopen(tsv, "w");
        fprintf(f, "%s\n%s", SCORES_HEADER, cases[c].body);
        fclose(f);
        Scores s;
        double out[3] = {0};
        int rc = scores_read(tsv, &s);
        if (rc == 0) { rc = scores_align(&s, d, out); scores_free(&s); }
        if (!cases[c].expect) {
            TEST_CHECK(rc == 0, "duplicates case %zu accepted: %s", c, dr_lasterr());
            TEST_CHECK(out[0] == 1 && out[1] == 2 && out[2] == 3, "duplicates: n-th line to n-th example");
        } else {
            TEST_CHECK(rc != 0 && strstr(dr_lasterr(), cases[c].expect), "duplicates case %zu: got '%s', want '%s'",
                       c, rc ? dr_lasterr() : "(accepted)", cases[c].expect);
        }
    }
    data_close(d);
    shardlist_free(&sl);
}

int main(void) {
    char dir[] = "/tmp/dr-test-filter-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    test_policies();
    test_exact_rules();
    test_scores_align(dir);
    test_scores_duplicates(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_filter");
}
