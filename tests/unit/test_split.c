/* test_split.c — dr-split's library: the bucket rule (fractions within 1% on 100k ids,
 * val eligibility keeping the train_b : train_a proportion), and split_run on small
 * shards: splits disjoint, copies of a document (across shards and sources) in one
 * split, --dedup keeping one copy, --val-sources, identical bytes for any input order,
 * refusals (fractions, mixed tokenizers, no documents). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "inputs.h"
#include "shard.h"
#include "split.h"
#include "test.h"

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void test_bucket_rule(void) {
    uint64_t s = 1, counts[SPLIT_COUNT] = {0}, moved[SPLIT_COUNT] = {0};
    const int n = 100000;
    int unstable = 0, ineligible_in_val = 0, changed = 0;
    for (int i = 0; i < n; i++) {
        uint64_t id = splitmix(&s);
        int b = split_bucket(id, 5, 0.1, 0.3, 1);
        counts[b]++;
        unstable += split_bucket(id, 5, 0.1, 0.3, 1) != b;
        int c = split_bucket(id, 5, 0.1, 0.3, 0);
        ineligible_in_val += c == SPLIT_VAL;
        if (b == SPLIT_VAL) moved[c]++;
        else changed += c != b;
    }
    TEST_CHECK(unstable == 0, "bucket not a function of the id");
    TEST_CHECK(ineligible_in_val == 0, "ineligible documents went to val");
    TEST_CHECK(changed == 0, "eligibility changed non-val buckets");
    TEST_CHECK(labs((long)counts[SPLIT_VAL] - n / 10) < n / 100, "val %llu of %d", (unsigned long long)counts[SPLIT_VAL], n);
    TEST_CHECK(labs((long)counts[SPLIT_TRAIN_B] - 3 * n / 10) < n / 100, "train_b %llu", (unsigned long long)counts[SPLIT_TRAIN_B]);
    TEST_CHECK(labs((long)counts[SPLIT_TRAIN_A] - 6 * n / 10) < n / 100, "train_a %llu", (unsigned long long)counts[SPLIT_TRAIN_A]);
    /* ineligible val documents split 1:2 between train_b and train_a (0.3 : 0.6) */
    double share_b = (double)moved[SPLIT_TRAIN_B] / (double)(moved[SPLIT_TRAIN_B] + moved[SPLIT_TRAIN_A]);
    TEST_CHECK(share_b > 0.3 && share_b < 0.37, "moved documents: train_b share %.3f", share_b);
    int differ = 0;
    for (int i = 0; i < 100; i++) differ += split_bucket((uint64_t)i, 1, 0.5, 0, 1) != split_bucket((uint64_t)i, 2, 0.5, 0, 1);
    TEST_CHECK(differ > 20, "the seed does not change the buckets");
    TEST_CHECK(split_bucket(42, 0, 1.0, 0.0, 0) == SPLIT_TRAIN_A, "val 1, ineligible");
    TEST_CHECK(split_bucket(42, 0, 0.0, 0.0, 1) == SPLIT_TRAIN_A, "val 0");
}

/* Writes a shard of n documents numbered from first; every 5th repeats document 3
 * (same id and tokens) under source dup_source. */
static void make_shard(const char *path, uint64_t fingerprint, int first, int n, const char *dup_source) {
    static const char *sources[] = {"web", "books", "mail"};
    DrsWriter *w = drs_writer_open(path, 1000, fingerprint, "test");
    CHECK(w, "%s", dr_lasterr());
    drs_writer_set_block_bytes(w, 256);
    uint32_t toks[20];
    for (int i = 0; i < n; i++) {
        int doc = i % 5 == 4 ? 3 : first + i;
        int len = 1 + doc % 17;
        for (int k = 0; k < len; k++) toks[k] = (uint32_t)(doc * 7 + k) % 1000;
        const char *source = i % 5 == 4 ? dup_source : sources[doc % 3];
        CHECK(drs_writer_add(w, 1000003ull * (uint64_t)doc + 1, source, toks, (size_t)len) == 0, "%s", dr_lasterr());
    }
    CHECK(drs_writer_close(w) == 0, "%s", dr_lasterr());
}

typedef struct {
    uint64_t *ids;
    char **sources;
    size_t n;
} DocList;

static void list_split(const char *out_dir, int split, DocList *l) {
    memset(l, 0, sizeof *l);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", out_dir, split_name(split));
    ShardList sl = {0};
    char *in[] = {dir};
    struct stat st;
    if (stat(dir, &st) != 0 || shardlist_add_inputs(&sl, 1, in) != 0) return;
    for (size_t k = 0; k < sl.n; k++) {
        DrsReader *r = drs_open(sl.items[k].path);
        CHECK(r, "%s", dr_lasterr());
        CHECK(drs_verify(r) == 0, "%s", dr_lasterr());
        for (uint64_t i = 0; i < drs_num_docs(r); i++) {
            l->ids = xrealloc(l->ids, (l->n + 1) * sizeof *l->ids);
            l->sources = xrealloc(l->sources, (l->n + 1) * sizeof *l->sources);
            l->ids[l->n] = drs_doc(r, i)->id;
            l->sources[l->n++] = xstrdup(drs_doc_source(r, i));
        }
        drs_close(r);
    }
    shardlist_free(&sl);
}

static void free_list(DocList *l) {
    for (size_t i = 0; i < l->n; i++) free(l->sources[i]);
    free(l->ids);
    free(l->sources);
}

static int count_id(const DocList *l, uint64_t id) {
    int c = 0;
    for (size_t i = 0; i < l->n; i++) c += l->ids[i] == id;
    return c;
}

static int run(const char *dir, const char *out, const char **names, int n, SplitOptions *o, SplitStats *st) {
    ShardList sl = {0};
    char *paths[8];
    for (int i = 0; i < n; i++) {
        paths[i] = xmalloc(600);
        snprintf(paths[i], 600, "%s/%s", dir, names[i]);
    }
    int rc = shardlist_add_inputs(&sl, n, paths);
    o->out_dir = out;
    if (rc == 0) rc = split_run(&sl, o, NULL, st);
    for (int i = 0; i < n; i++) free(paths[i]);
    shardlist_free(&sl);
    return rc;
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void test_split_run(const char *dir) {
    char path[600], out1[600], out2[600], out3[600];
    snprintf(path, sizeof path, "%s/a.drs", dir);
    make_shard(path, 9, 0, 600, "web");
    snprintf(path, sizeof path, "%s/b.drs", dir);
    make_shard(path, 9, 600, 500, "mail");        /* document 3 again, as "mail" */
    snprintf(path, sizeof path, "%s/c.drs", dir);
    make_shard(path, 9, 1100, 400, "books");
    snprintf(out1, sizeof out1, "%s/out1", dir);
    snprintf(out2, sizeof out2, "%s/out2", dir);
    snprintf(out3, sizeof out3, "%s/out3", dir);

    SplitOptions o;
    split_options_default(&o);
    o.val = 0.2;
    o.train_b = 0.2;
    o.seed = 3;
    o.shard_bytes = 300;   /* several output shards per split */
    SplitStats st;
    const char *abc[] = {"a.drs", "b.drs", "c.drs"}, *cab[] = {"c.drs", "a.drs", "b.drs"};
    TEST_CHECK(run(dir, out1, abc, 3, &o, &st) == 0, "split: %s", dr_lasterr());
    TEST_CHECK(st.in_docs == 1500 && st.docs[0] + st.docs[1] + st.docs[2] == 1500, "document counts");
    TEST_CHECK(st.shards[SPLIT_TRAIN_A] > 1, "expected several train_a shards");
    o.background = 0;
    TEST_CHECK(run(dir, out2, cab, 3, &o, &st) == 0, "split reordered: %s", dr_lasterr());
    for (int s = 0; s < SPLIT_COUNT; s++)
        for (uint64_t k = 0; k < st.shards[s]; k++) {
            char f1[700], f2[700];
            snprintf(f1, sizeof f1, "%s/%s/%s-%05llu.drs", out1, split_name(s), split_name(s), (unsigned long long)k);
            snprintf(f2, sizeof f2, "%s/%s/%s-%05llu.drs", out2, split_name(s), split_name(s), (unsigned long long)k);
            TEST_CHECK(same_file(f1, f2), "%s differs with inputs reordered / without threads", f1);
        }

    DocList l[SPLIT_COUNT];
    for (int s = 0; s < SPLIT_COUNT; s++) list_split(out1, s, &l[s]);
    int in_splits = 0;
    uint64_t dup_id = 1000003ull * 3 + 1;
    for (int s = 0; s < SPLIT_COUNT; s++) in_splits += count_id(&l[s], dup_id) > 0;
    TEST_CHECK(in_splits == 1, "copies of one document in %d splits", in_splits);
    int overlaps = 0;
    for (size_t i = 0; i < l[0].n; i++) overlaps += count_id(&l[1], l[0].ids[i]) + count_id(&l[2], l[0].ids[i]);
    for (size_t i = 0; i < l[1].n; i++) overlaps += count_id(&l[2], l[1].ids[i]);
    TEST_CHECK(overlaps == 0, "%d documents in two splits", overlaps);
    for (int s = 0; s < SPLIT_COUNT; s++) free_list(&l[s]);

    /* --dedup: one copy of document 3 */
    o.dedup = 1;
    TEST_CHECK(run(dir, out3, abc, 3, &o, &st) == 0, "dedup: %s", dr_lasterr());
    int copies = 0;
    for (int s = 0; s < SPLIT_COUNT; s++) {
        list_split(out3, s, &l[s]);
        copies += count_id(&l[s], dup_id);
        free_list(&l[s]);
    }
    TEST_CHECK(copies == 1 && st.dup_docs == 1500 - st.docs[0] - st.docs[1] - st.docs[2],
               "dedup kept %d copies", copies);
    o.dedup = 0;

    /* --val-sources books: val holds books only, and never an id also seen elsewhere */
    split_set_val_sources(&o, "books");
    TEST_CHECK(run(dir, out3, abc, 3, &o, &st) == 0, "val-sources: %s", dr_lasterr());
    list_split(out3, SPLIT_VAL, &l[1]);
    int others = 0;
    for (size_t i = 0; i < l[1].n; i++) others += strcmp(l[1].sources[i], "books") != 0;
    TEST_CHECK(l[1].n > 0 && others == 0, "val: %zu documents, %d not of books", l[1].n, others);
    TEST_CHECK(count_id(&l[1], dup_id) == 0, "a document with copies outside books went to val");
    free_list(&l[1]);
    split_options_free(&o);

    /* refusals */
    o.val = 0.7;
    o.train_b = 0.4;
    TEST_CHECK(run(dir, out3, abc, 3, &o, &st) < 0 && strstr(dr_lasterr(), "exceed"), "fractions over 1");
    o.val = 0.1;
    o.train_b = 0;
    snprintf(path, sizeof path, "%s/other.drs", dir);
    make_shard(path, 10, 0, 10, "web");
    const char *mixed[] = {"a.drs", "other.drs"};
    TEST_CHECK(run(dir, out3, mixed, 2, &o, &st) < 0 && strstr(dr_lasterr(), "other.drs") &&
               strstr(dr_lasterr(), "a.drs"), "mixed tokenizers: %s", dr_lasterr());
    snprintf(path, sizeof path, "%s/empty.drs", dir);
    make_shard(path, 9, 0, 0, "web");
    const char *empty[] = {"empty.drs"};
    TEST_CHECK(run(dir, out3, empty, 1, &o, &st) < 0 && strstr(dr_lasterr(), "no documents"),
               "no documents: %s", dr_lasterr());
}

int main(void) {
    char dir[64] = "/dev/shm/test_split.XXXXXX";
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "/tmp/test_split.XXXXXX");
        CHECK(mkdtemp(dir), "mkdtemp failed");
    }
    test_bucket_rule();
    test_split_run(dir);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_split");
}
