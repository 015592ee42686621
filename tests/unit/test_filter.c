/* test_filter.c — the keep/drop policies of dr-filter (the in-place ranking against
 * qsort's) and the validation of scores.tsv against the examples of real shards (exact
 * duplicate documents included), in two steps and in one pass, against the rule of
 * scores.h computed directly on random files. */
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

/* --min-score: score >= S per example (inverted: < S, the complement), at a tied score
 * and beyond every score; filter_cut's extremes against a direct scan; and the summary's
 * claim: where --keep's lowest kept score is above its highest dropped one, --min-score
 * of that score keeps the same examples. */
static void test_min_score(void) {
    enum { N = 517 };
    double s[N];
    uint8_t m[N], m2[N];
    uint64_t x = 99;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        s[i] = (double)((x >> 33) % 200) / 7.0 - 10.0;   /* many ties */
    }
    FilterOptions o = { .policy = FILTER_MIN_SCORE };
    const double cuts[] = { s[3], s[100], -1e300, 1e300, 0.0 };
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        o.min_score = cuts[c];
        o.invert = 0;
        filter_select(&o, s, N, m);
        o.invert = 1;
        filter_select(&o, s, N, m2);
        int ok = 1, comp = 1;
        for (int i = 0; i < N; i++) {
            ok &= m[i] == (s[i] >= cuts[c]);
            comp &= m2[i] == !m[i];
        }
        TEST_CHECK(ok, "--min-score %g keeps exactly the scores >= it", cuts[c]);
        TEST_CHECK(comp, "--invert --min-score %g keeps exactly the rest", cuts[c]);
        FilterCut cut;
        filter_cut(s, m, N, &cut);
        double lk = 1e308, hk = -1e308, ld = 1e308, hd = -1e308;
        uint64_t nk = 0;
        for (int i = 0; i < N; i++) {
            if (m[i]) { nk++; lk = fmin(lk, s[i]); hk = fmax(hk, s[i]); }
            else { ld = fmin(ld, s[i]); hd = fmax(hd, s[i]); }
        }
        TEST_CHECK(cut.kept == nk && cut.dropped == N - nk, "filter_cut counts (%g)", cuts[c]);
        TEST_CHECK((!nk || (cut.lowest_kept == lk && cut.highest_kept == hk)) &&
                   (nk == N || (cut.lowest_dropped == ld && cut.highest_dropped == hd)),
                   "filter_cut extremes (%g)", cuts[c]);
    }
    int hinted = 0, tied = 0;
    for (double f = 0.05; f < 1; f += 0.05) {
        FilterOptions top = { .policy = FILTER_TOP, .keep = f };
        filter_select(&top, s, N, m);
        FilterCut cut;
        filter_cut(s, m, N, &cut);
        if (!(cut.lowest_kept > cut.highest_dropped)) { tied++; continue; }
        hinted++;
        o.invert = 0;
        o.min_score = cut.lowest_kept;
        filter_select(&o, s, N, m2);
        TEST_CHECK(memcmp(m, m2, N) == 0, "--keep %g: --min-score %g keeps the same", f, o.min_score);
        top.invert = 1;
        filter_select(&top, s, N, m);
        filter_cut(s, m, N, &cut);
        if (cut.highest_kept < cut.lowest_dropped) {
            o.invert = 1;
            o.min_score = cut.lowest_dropped;
            filter_select(&o, s, N, m2);
            TEST_CHECK(memcmp(m, m2, N) == 0, "--invert --keep %g: --invert --min-score %g keeps the same",
                       f, o.min_score);
        }
    }
    TEST_CHECK(hinted > 0 && tied > 0, "both kinds of cut occur (%d without a tie, %d tied)", hinted, tied);
}

/* The ranking (score descending, then example index) against qsort's, on inputs that
 * trouble a quicksort (sorted, reversed, all equal, few values, organ pipe, sawtooth):
 * the kept set of --keep and --keep-middle at many fractions, for sizes around the
 * insertion-sort cutoff and large ones. */
typedef struct { double score; uint64_t index; } RefRanked;
static int cmp_ref_ranked(const void *a, const void *b) {
    const RefRanked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

static void test_ranking(void) {
    static const uint64_t sizes[] = { 0, 1, 2, 3, 15, 16, 17, 18, 33, 100, 1000, 4099, 10000 };
    uint64_t x = 7;
    int bad = 0, cases = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        uint64_t n = sizes[si];
        double *z = xmalloc((n ? n : 1) * sizeof *z);
        uint8_t *m = xmalloc(n ? n : 1), *want = xmalloc(n ? n : 1);
        RefRanked *r = xmalloc((n ? n : 1) * sizeof *r);
        for (int pattern = 0; pattern < 7; pattern++) {
            for (uint64_t i = 0; i < n; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                z[i] = pattern == 0 ? (double)(x >> 11) : pattern == 1 ? (double)i
                     : pattern == 2 ? -(double)i : pattern == 3 ? 1.0 : pattern == 4 ? (double)((x >> 40) % 3)
                     : pattern == 5 ? (double)(i < n / 2 ? i : n - i) : (double)(i % 7);
            }
            for (int invert = 0; invert < 2; invert++) {
                for (uint64_t i = 0; i < n; i++) r[i] = (RefRanked){ invert ? -z[i] : z[i], i };
                qsort(r, n, sizeof *r, cmp_ref_ranked);
                for (int policy = 0; policy < 2; policy++)
                    for (double keep = 0.1; keep < 1.01; keep += 0.1) {
                        FilterOptions o = { .policy = policy ? FILTER_MIDDLE : FILTER_TOP, .keep = keep,
                                            .invert = invert };
                        filter_select(&o, z, n, m);
                        double kx = keep * (double)n;   /* round_count's two roundings */
                        kx += 0.5;
                        uint64_t k = (uint64_t)floor(kx), skip = 0;
                        if (k > n) k = n;
                        if (policy) skip = (n - k) / 2;
                        memset(want, 0, n);
                        for (uint64_t i = skip; i < skip + k; i++) want[r[i].index] = 1;
                        bad += memcmp(m, want, n) != 0;
                        cases++;
                    }
            }
        }
        free(z);
        free(m);
        free(want);
        free(r);
    }
    TEST_CHECK(bad == 0, "ranking: %d of %d kept sets differ from qsort's ranking", bad, cases);
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

/* The scores of tsv aligned to d both ways, as scores_read + scores_align and in one pass
 * (scores_read_aligned): the same result, the same scores, the same message. */
static int align_both(const char *tsv, const DataLoader *d, double *out, size_t c) {
    uint64_t n = data_num_examples(d);
    double *out2 = xmalloc((n ? n : 1) * sizeof *out2);
    Scores s;
    int rc = scores_read(tsv, &s);
    if (rc == 0) { rc = scores_align(&s, d, out); scores_free(&s); }
    char err[1024];
    snprintf(err, sizeof err, "%s", rc ? dr_lasterr() : "");
    int rc2 = scores_read_aligned(tsv, d, out2, NULL);
    TEST_CHECK(rc == rc2 && (rc == 0 ? memcmp(out, out2, n * sizeof *out) == 0 : strcmp(err, dr_lasterr()) == 0),
               "case %zu: read + align gave %d '%s', read_aligned %d '%s'", c, rc, err, rc2,
               rc2 ? dr_lasterr() : "");
    free(out2);
    if (rc) dr_seterr("%s", err);
    return rc;
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
        double out[3];
        int rc = align_both(tsv, d, out, c);
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
        double out[3] = {0};
        int rc = align_both(tsv, d, out, c);
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

/* The rule of scores.h computed the slow obvious way, for random shards and files: ids
 * held once, several times (also with other lengths) or not at all, lines missing,
 * repeated, with other counts, in shard order, shuffled or half and half, and past
 * ALIGN_CHUNK rows (the read-ahead of lib/scores.c switching on and off). */
typedef struct { uint64_t id; uint32_t window, n_tokens; double score; } RefRow;

static int same_key(const DataLoader *d, uint64_t i, const RefRow *r) {
    return data_example_doc_id(d, i) == r->id && data_example(d, i).window == r->window;
}

/* out and the message (empty: accepted) as scores.h defines them */
static void align_reference(const DataLoader *d, const char *path, const RefRow *rows, size_t m,
                            double *out, char *msg, size_t cap) {
    uint64_t n = data_num_examples(d), bad = UINT64_MAX, missing = UINT64_MAX;
    size_t bad_row = 0, *order = xmalloc((m ? m : 1) * sizeof *order);
    msg[0] = 0;
    for (uint64_t i = 0; i < n; i++) {
        size_t j = 0, k = 0;   /* j: earlier examples of i's id; k: its rows, lowest score first */
        for (uint64_t q = 0; q < i; q++)
            j += data_example_doc_id(d, q) == data_example_doc_id(d, i) &&
                 data_example(d, q).window == data_example(d, i).window;
        for (size_t r = 0; r < m; r++) {
            if (!same_key(d, i, &rows[r])) continue;
            size_t at = k++;
            while (at > 0 && rows[order[at - 1]].score > rows[r].score) { order[at] = order[at - 1]; at--; }
            order[at] = r;
        }
        if (j >= k) {
            if (missing == UINT64_MAX) missing = i;
            continue;
        }
        out[i] = rows[order[j]].score;
        if (rows[order[j]].n_tokens != data_example(d, i).length && bad == UINT64_MAX) {
            bad = i;
            bad_row = order[j];
        }
    }
    char id[DATA_ID_MAX];
    if (bad != UINT64_MAX) {
        data_example_id(d, bad, id);
        uint32_t len = data_example(d, bad).length, nt = rows[bad_row].n_tokens;
        int n = snprintf(msg, cap, "%s:%zu: example %s has %u tokens in the shards at data.seq_len "
                         "%d, not %u: ", path, bad_row + 2, id, len, data_options(d)->seq_len, nt);
        /* the seq_len that gives this window nt tokens, by trying every one */
        uint64_t doc = data_document_length(d, bad), w = data_example(d, bad).window, made = 0;
        int found = 0;
        for (uint64_t L = 1; L <= doc + 1; L++) {
            uint64_t start = w * L, end = start + L + 1 < doc ? start + L + 1 : doc;
            if (start < doc && end - start == nt) { made = L; found++; }   /* L > doc + 1: as doc + 1 */
        }
        if (found == 1)
            snprintf(msg + n, cap - n, "the scores were made with data.seq_len %u (the only one "
                     "that gives this window %u tokens); give the same --config, or --set "
                     "data.seq_len=%u", (unsigned)made, nt, (unsigned)made);
        else
            snprintf(msg + n, cap - n, "the scores were made with another data.seq_len; give the "
                     "--config (or --set data.seq_len=N) that dr-score used");
    }
    for (size_t r = 0; r < m && !msg[0]; r++) {
        uint64_t held = 0;
        size_t before = 0, first = r;
        for (uint64_t i = 0; i < n; i++) held += same_key(d, i, &rows[r]);
        for (size_t q = 0; q < r; q++)
            if (rows[q].id == rows[r].id && rows[q].window == rows[r].window) {
                if (before++ == 0) first = q;
            }
        if (before < held) continue;
        if (held > 1)
            snprintf(msg, cap, "%s:%zu: duplicate example id %016llx:%u (first at line %zu): the "
                     "shards hold it %llu times, the file more often", path, r + 2,
                     (unsigned long long)rows[r].id, rows[r].window, first + 2, (unsigned long long)held);
        else if (held == 1)
            snprintf(msg, cap, "%s:%zu: duplicate example id %016llx:%u (first at line %zu)", path,
                     r + 2, (unsigned long long)rows[r].id, rows[r].window, first + 2);
        else
            snprintf(msg, cap, "%s:%zu: example %016llx:%u is not in the shards", path, r + 2,
                     (unsigned long long)rows[r].id, rows[r].window);
    }
    if (!msg[0] && missing != UINT64_MAX) {
        data_example_id(d, missing, id);
        snprintf(msg, cap, "%s: no score for example %s (in %s); the scores do not match these "
                 "shards", path, id, data_shard_path(d, data_example(d, missing).shard));
    }
    free(order);
}

static uint64_t lcg(uint64_t *x) {
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x >> 33;
}

static void test_scores_random(const char *dir) {
    char shard[512], tsv[512];
    snprintf(shard, sizeof shard, "%s/rand.drs", dir);
    snprintf(tsv, sizeof tsv, "%s/rand.tsv", dir);
    uint64_t x = 99;
    uint32_t tok[40];
    for (int t = 0; t < 40; t++) tok[t] = (uint32_t)t + 1;
    static const double values[] = { -1, 0, 0.5, 0.5, 2, 3.25 };   /* ties */
    int trials = 0, accepted = 0, refused = 0;
    for (int corpus = 0; corpus < 17; corpus++) {
        int big = corpus == 16, n_docs = big ? 3000 : 1 + (int)(lcg(&x) % 25);
        DrsWriter *w = drs_writer_open(shard, 300, 42, "byte");
        CHECK(w, "%s", dr_lasterr());
        for (int k = 0; k < n_docs; k++) {
            /* ids from a small pool: exact duplicates, now and then with another length */
            uint64_t id = big ? 0x5000 + lcg(&x) % 2900 : 0x7000 + lcg(&x) % 12;
            size_t len = (size_t)(id * 7 % 13) + (lcg(&x) % 8 == 0 ? lcg(&x) % 5 : 0);
            CHECK(drs_writer_add(w, id, "s", tok, len) == 0, "%s", dr_lasterr());
        }
        CHECK(drs_writer_close(w) == 0, "%s", dr_lasterr());
        ShardList sl = {0};
        char *in[1] = { shard };
        TEST_CHECK(shardlist_add_inputs(&sl, 1, in) == 0, "inputs: %s", dr_lasterr());
        DataOptions o = { .seq_len = 4, .min_tokens = 2, .batch_size = 2 };
        DataLoader *d = data_open(&sl, &o);
        if (!d) { shardlist_free(&sl); continue; }   /* no example */
        uint64_t n = data_num_examples(d);
        RefRow *rows = xmalloc((2 * n + 8) * sizeof *rows);
        double *out = xmalloc(n * sizeof *out), *want = xmalloc(n * sizeof *want);
        char msg[1024];
        for (int f = 0; f < (big ? 6 : 150); f++, trials++) {
            size_t m = 0;
            for (uint64_t i = 0; i < n; i++)
                rows[m++] = (RefRow){ data_example_doc_id(d, i), data_example(d, i).window,
                                      data_example(d, i).length, values[lcg(&x) % 6] };
            int changes = (int)(lcg(&x) % 4);   /* 0: the file as dr-score writes it */
            for (int c = 0; c < changes; c++) {
                size_t r = m ? lcg(&x) % m : 0;
                switch (lcg(&x) % 5) {
                case 0: if (m) rows[r] = rows[--m]; break;                        /* a line missing */
                case 1: if (m) rows[m++] = rows[r]; break;                        /* a line twice */
                case 2: rows[m++] = (RefRow){ 0x9999, 0, 3, 1 }; break;           /* an id not there */
                case 3: if (m) rows[r].n_tokens += 1; break;                      /* another count */
                default: if (m) rows[r].score = values[lcg(&x) % 6]; break;
                }
            }
            uint64_t how = lcg(&x) % 3;   /* shard order, shuffled, or shuffled from the middle on */
            for (size_t r = how == 2 ? m / 2 : 0; how > 0 && r + 1 < m; r++) {
                size_t q = r + lcg(&x) % (m - r);
                RefRow t = rows[r]; rows[r] = rows[q]; rows[q] = t;
            }
            FILE *fp = fopen(tsv, "w");
            CHECK(fp, "%s", tsv);
            fprintf(fp, "%s\n", SCORES_HEADER);
            for (size_t r = 0; r < m; r++)
                fprintf(fp, "%016llx:%u\t%.17g\ts\t%u\n", (unsigned long long)rows[r].id, rows[r].window,
                        rows[r].score, rows[r].n_tokens);
            fclose(fp);
            align_reference(d, tsv, rows, m, want, msg, sizeof msg);
            int rc = align_both(tsv, d, out, (size_t)trials);
            if (!msg[0]) {
                accepted++;
                TEST_CHECK(rc == 0 && memcmp(out, want, n * sizeof *out) == 0,
                           "random case %d: accepted with the reference's scores (%s)", trials,
                           rc ? dr_lasterr() : "other scores");
            } else {
                refused++;
                TEST_CHECK(rc != 0 && strcmp(dr_lasterr(), msg) == 0, "random case %d: got '%s', want '%s'",
                           trials, rc ? dr_lasterr() : "(accepted)", msg);
            }
        }
        free(rows);
        free(out);
        free(want);
        data_close(d);
        shardlist_free(&sl);
    }
    TEST_CHECK(accepted > 200 && refused > 200, "random cases: %d accepted, %d refused", accepted, refused);
}

int main(void) {
    char dir[] = "/tmp/dr-test-filter-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    test_policies();
    test_min_score();
    test_exact_rules();
    test_ranking();
    test_scores_align(dir);
    test_scores_duplicates(dir);
    test_scores_random(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_filter");
}
