/* test_split.c — dr-split's library: the bucket rule (fractions within 1% on 100k ids,
 * val eligibility keeping the train_b : train_a proportion), and split_run on small
 * shards: splits disjoint, copies of a document (across shards and sources) in one
 * split, --dedup keeping one copy, --val-sources, identical bytes for any input order,
 * refusals (fractions, mixed tokenizers, no documents); output blocks cut where
 * drs_writer_add cuts them and the same bytes with 1, 2 or 4 threads (tiny blocks,
 * documents bigger than a block); a stop flag (Ctrl-C) leaving no staging directory and
 * an earlier output as it was. */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
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
    o.threads = 1;
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

/* ---- threads and blocks ---------------------------------------------------------- */

/* A shard whose documents are 0 to 700 tokens long, some bigger than the 512-byte
 * output blocks of the tests below. */
static void make_long_shard(const char *path, int first, int n) {
    DrsWriter *w = drs_writer_open(path, 70000, 9, "test");   /* 4-byte tokens */
    CHECK(w, "%s", dr_lasterr());
    drs_writer_set_block_bytes(w, 4096);
    uint32_t toks[700];
    uint64_t rng = (uint64_t)first;
    for (int i = 0; i < n; i++) {
        int len = i % 37 == 5 ? 0 : 1 + (int)(splitmix(&rng) % (i % 10 == 0 ? 700 : 60));   /* some empty */
        for (int k = 0; k < len; k++) toks[k] = (uint32_t)(splitmix(&rng) % 70000);
        CHECK(drs_writer_add(w, splitmix(&rng), i % 2 ? "web" : "books", toks, (size_t)len) == 0, "%s", dr_lasterr());
    }
    CHECK(drs_writer_close(w) == 0, "%s", dr_lasterr());
}

static char *read_file(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0;
    *n = 0;
    for (;;) {
        if (*n == cap) buf = xrealloc(buf, cap = cap ? 2 * cap : 65536);
        size_t got = fread(buf + *n, 1, cap - *n, f);
        if (got == 0) break;
        *n += got;
    }
    fclose(f);
    return buf;
}

/* Rewrites every document of shard `path` with drs_writer_add (same block size and
 * level): split_run must have written exactly those bytes. */
static int same_as_plain_writer(const char *path, const char *tmp, size_t block_bytes) {
    DrsReader *r = drs_open(path);
    CHECK(r, "%s", dr_lasterr());
    DrsWriter *w = drs_writer_open(tmp, drs_vocab_size(r), drs_fingerprint(r), drs_tokenizer_spec(r));
    CHECK(w, "%s", dr_lasterr());
    drs_writer_set_block_bytes(w, block_bytes);
    uint32_t *toks = xmalloc(1000 * sizeof *toks);
    for (uint64_t i = 0; i < drs_num_docs(r); i++) {
        const DrsDoc *d = drs_doc(r, i);
        CHECK(drs_read_doc(r, i, toks) == 0, "%s", dr_lasterr());
        CHECK(drs_writer_add(w, d->id, drs_doc_source(r, i), toks, d->length) == 0, "%s", dr_lasterr());
    }
    CHECK(drs_writer_close(w) == 0, "%s", dr_lasterr());
    drs_close(r);
    free(toks);
    size_t na = 0, nb = 0;
    char *a = read_file(path, &na), *b = read_file(tmp, &nb);
    int same = a && b && na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    return same;
}

static int has_staging_dir(const char *out) {
    DIR *d = opendir(out);
    int found = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) found |= strncmp(e->d_name, ".dr-split.", 10) == 0;
    if (d) closedir(d);
    return found;
}

static void test_threads(const char *dir) {
    char path[700], out[3][256], tmp[600];
    snprintf(path, sizeof path, "%s/long1.drs", dir);
    make_long_shard(path, 1, 900);
    snprintf(path, sizeof path, "%s/long2.drs", dir);
    make_long_shard(path, 2, 700);
    snprintf(tmp, sizeof tmp, "%s/rewritten.drs", dir);
    const char *inputs[] = {"long1.drs", "long2.drs"};
    const int threads[3] = {1, 2, 4};
    SplitOptions o;
    split_options_default(&o);
    o.val = 0.2;
    o.train_b = 0.3;
    o.seed = 11;
    o.block_bytes = 512;      /* many blocks, and documents bigger than a block */
    o.shard_bytes = 40000;    /* several shards per split */
    SplitStats st[3];
    for (int t = 0; t < 3; t++) {
        snprintf(out[t], sizeof out[t], "%s/threads%d", dir, threads[t]);
        o.threads = threads[t];
        TEST_CHECK(run(dir, out[t], inputs, 2, &o, &st[t]) == 0, "%d threads: %s", threads[t], dr_lasterr());
    }
    TEST_CHECK(st[0].shards[SPLIT_TRAIN_A] > 2, "expected several train_a shards, got %llu",
               (unsigned long long)st[0].shards[SPLIT_TRAIN_A]);
    int compared = 0;
    for (int s = 0; s < SPLIT_COUNT; s++)
        for (uint64_t k = 0; k < st[0].shards[s]; k++) {
            char f[3][1200];
            for (int t = 0; t < 3; t++)
                snprintf(f[t], sizeof f[t], "%s/%s/%s-%05llu.drs", out[t], split_name(s), split_name(s),
                         (unsigned long long)k);
            TEST_CHECK(same_file(f[0], f[1]) && same_file(f[0], f[2]), "%s differs with 2 or 4 threads", f[0]);
            TEST_CHECK(same_as_plain_writer(f[0], tmp, o.block_bytes),
                       "%s: not the bytes drs_writer_add writes for its documents", f[0]);
            compared++;
        }
    TEST_CHECK(compared > 4, "compared %d shards", compared);
    for (int t = 1; t < 3; t++)
        for (int s = 0; s < SPLIT_COUNT; s++)
            TEST_CHECK(st[t].shards[s] == st[0].shards[s] && st[t].docs[s] == st[0].docs[s] &&
                       st[t].tokens[s] == st[0].tokens[s], "stats differ with %d threads", threads[t]);

    /* everything in train_a: no val or train_b directory */
    o.val = 0;
    o.train_b = 0;
    o.threads = 2;
    snprintf(out[1], sizeof out[1], "%s/all_train_a", dir);
    TEST_CHECK(run(dir, out[1], inputs, 2, &o, &st[1]) == 0, "all in train_a: %s", dr_lasterr());
    struct stat sb;
    snprintf(path, sizeof path, "%s/val", out[1]);
    TEST_CHECK(st[1].shards[SPLIT_VAL] == 0 && st[1].shards[SPLIT_TRAIN_B] == 0 && stat(path, &sb) != 0,
               "empty splits got shards");
    TEST_CHECK(st[1].docs[SPLIT_TRAIN_A] == 1600, "train_a holds %llu of 1600 documents",
               (unsigned long long)st[1].docs[SPLIT_TRAIN_A]);
}

/* ---- stop flag (a library caller's way to stop split_run; dr-split itself now ends on
 * a signal through check.h's handlers) ------------------------------------------------ */

static volatile sig_atomic_t stop_flag;

static void on_usr1(int sig) { stop_flag = sig != 0; }

typedef struct {
    const char *out;
    pthread_t target;
    _Atomic int done;
} Stopper;

/* Signals the run's thread (whose handler raises the flag) as soon
 * as the run's staging directory appears, or the run ends. */
static void *stopper_main(void *arg) {
    Stopper *s = arg;
    while (!s->done && !has_staging_dir(s->out)) usleep(50);
    pthread_kill(s->target, SIGUSR1);
    return NULL;
}

static void test_stop(const char *dir) {
    char out[600], f[700];
    snprintf(out, sizeof out, "%s/stopped", dir);
    const char *inputs[] = {"long1.drs", "long2.drs"};
    SplitOptions o;
    split_options_default(&o);
    o.block_bytes = 512;
    SplitStats st;
    TEST_CHECK(run(dir, out, inputs, 2, &o, &st) == 0, "split: %s", dr_lasterr());
    snprintf(f, sizeof f, "%s/train_a/train_a-00000.drs", out);
    size_t n_before = 0, n_after = 0;
    char *before = read_file(f, &n_before);
    TEST_CHECK(before != NULL, "no %s", f);

    /* stopped before it starts: nothing written, nothing left */
    signal(SIGUSR1, on_usr1);
    stop_flag = 1;
    o.stop = &stop_flag;
    o.seed = 5;   /* would change every output shard */
    TEST_CHECK(run(dir, out, inputs, 2, &o, &st) < 0 && strstr(dr_lasterr(), "interrupted"),
               "stop flag up: %s", dr_lasterr());
    TEST_CHECK(!has_staging_dir(out), "a staging directory was left behind");

    /* stopped while it runs (or, if the run wins the race, not at all) */
    for (int threads = 1; threads <= 2; threads++) {
        stop_flag = 0;
        o.threads = threads;
        Stopper stopper = {.out = out, .target = pthread_self()};
        pthread_t t;
        CHECK(pthread_create(&t, NULL, stopper_main, &stopper) == 0, "pthread_create");
        int rc = run(dir, out, inputs, 2, &o, &st);
        stopper.done = 1;
        pthread_join(t, NULL);
        TEST_CHECK(rc == 0 || strstr(dr_lasterr(), "interrupted"), "stopped run: %s", dr_lasterr());
        TEST_CHECK(!has_staging_dir(out), "a staging directory was left behind (%d threads)", threads);
        char *after = read_file(f, &n_after);
        if (rc < 0)
            TEST_CHECK(after && n_after == n_before && memcmp(before, after, n_before) == 0,
                       "an interrupted run changed the earlier output");
        else
            TEST_CHECK(after && !(n_after == n_before && memcmp(before, after, n_before) == 0),
                       "a complete run left the earlier output");
        free(after);
        if (rc == 0) break;   /* the output changed: the comparisons above no longer apply */
    }
    free(before);
}

int main(void) {
    char dir[64] = "/dev/shm/test_split.XXXXXX";
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "/tmp/test_split.XXXXXX");
        CHECK(mkdtemp(dir), "mkdtemp failed");
    }
    test_bucket_rule();
    test_split_run(dir);
    test_threads(dir);
    test_stop(dir);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_split");
}
