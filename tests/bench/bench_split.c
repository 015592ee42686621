/* bench_split.c — dr-split's cost against reading the same shards twice (the issue's
 * target: a split must cost less than two reads, since it reads once and writes once).
 *
 * Makes a synthetic corpus (text-like token statistics: Zipf-distributed ids over the
 * GPT-2 vocabulary, with recurring phrases), then times: one full read of every
 * document, two reads, and split_run with 1 and 2 threads. Prints numbers and ratios,
 * never pass/fail. Usage: bench_split [million tokens (default 40) | DIR of shards] [tmp dir].
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "check.h"
#include "inputs.h"
#include "shard.h"
#include "split.h"

enum { VOCAB = 50257, N_SHARDS = 4, N_PHRASES = 4096, PHRASE_LEN = 8 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    double *cdf;                          /* Zipf(1) over the vocabulary */
    uint32_t phrases[N_PHRASES][PHRASE_LEN];
    uint64_t rng;
} Gen;

static uint32_t zipf(Gen *g) {
    double u = (double)(splitmix(&g->rng) >> 11) * 0x1.0p-53;
    size_t lo = 0, hi = VOCAB - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->cdf[mid] < u) lo = mid + 1; else hi = mid;
    }
    return (uint32_t)lo;
}

static void gen_init(Gen *g) {
    g->rng = 42;
    g->cdf = xmalloc(VOCAB * sizeof *g->cdf);
    double sum = 0;
    for (int i = 0; i < VOCAB; i++) sum += 1.0 / (i + 1);
    double acc = 0;
    for (int i = 0; i < VOCAB; i++) g->cdf[i] = (acc += 1.0 / (i + 1) / sum);
    for (int p = 0; p < N_PHRASES; p++)
        for (int k = 0; k < PHRASE_LEN; k++) g->phrases[p][k] = zipf(g);
}

/* A document: Zipf tokens, a third of them in recurring phrases. */
static size_t gen_doc(Gen *g, uint32_t *out, size_t max_len) {
    size_t n = 20 + splitmix(&g->rng) % max_len, i = 0;
    while (i < n) {
        if (splitmix(&g->rng) % 3 == 0) {
            const uint32_t *ph = g->phrases[zipf(g) % N_PHRASES];
            for (int k = 0; k < PHRASE_LEN && i < n; k++) out[i++] = ph[k];
        } else {
            out[i++] = zipf(g);
        }
    }
    return n;
}

static void make_corpus(const char *dir, double mtokens, ShardList *list) {
    Gen g;
    gen_init(&g);
    uint32_t *doc = xmalloc(2000 * sizeof *doc);
    uint64_t per_shard = (uint64_t)(mtokens * 1e6 / N_SHARDS);
    static const char *sources[] = {"web", "books", "mail", "news"};
    for (int s = 0; s < N_SHARDS; s++) {
        char path[512];
        snprintf(path, sizeof path, "%s/in-%d.drs", dir, s);
        DrsWriter *w = drs_writer_open(path, VOCAB, 1, "bench");
        CHECK(w, "%s", dr_lasterr());
        drs_writer_set_background(w, 1);
        for (uint64_t i = 0; drs_writer_tokens(w) < per_shard; i++) {
            size_t n = gen_doc(&g, doc, 1500);
            CHECK(drs_writer_add(w, XXH64(doc, n * 4, 0), sources[i % 4], doc, n) == 0, "%s", dr_lasterr());
        }
        CHECK(drs_writer_close(w) == 0, "%s", dr_lasterr());
        char *argv[] = {path};
        CHECK(shardlist_add_inputs(list, 1, argv) == 0, "%s", dr_lasterr());
    }
    free(doc);
    free(g.cdf);
}

/* One read of every document of every shard; returns tokens read. */
static uint64_t read_all(const ShardList *list) {
    uint64_t tokens = 0;
    uint32_t *buf = NULL;
    size_t cap = 0;
    for (size_t k = 0; k < list->n; k++) {
        DrsReader *r = drs_open(list->items[k].path);
        CHECK(r, "%s", dr_lasterr());
        for (uint64_t i = 0; i < drs_num_docs(r); i++) {
            uint32_t n = drs_doc(r, i)->length;
            if (n > cap) buf = xrealloc(buf, (cap = n) * sizeof *buf);
            CHECK(drs_read_doc(r, i, buf) == 0, "%s", dr_lasterr());
            tokens += n;
        }
        drs_close(r);
    }
    free(buf);
    return tokens;
}

typedef struct { double wall, cpu; } Timing;

/* Best of `reps` runs (the machine may be shared: the minimum is the least disturbed). */
static void keep_best(Timing *best, double wall, double cpu) {
    if (best->wall == 0 || wall < best->wall) best->wall = wall;
    if (best->cpu == 0 || cpu < best->cpu) best->cpu = cpu;
}

static void time_reads(const ShardList *list, int times, Timing *best) {
    double w0 = now(), c0 = cpu_now();
    for (int k = 0; k < times; k++) read_all(list);
    keep_best(best, now() - w0, cpu_now() - c0);
}

static void time_split(const ShardList *list, const char *dir, int background, Timing *best) {
    char out[512];
    snprintf(out, sizeof out, "%s/split-%d", dir, background);
    SplitOptions o;
    split_options_default(&o);
    o.val = 0.1;
    o.train_b = 0.3;
    o.out_dir = out;
    o.background = background;
    if (getenv("BENCH_LEVEL")) o.zstd_level = atoi(getenv("BENCH_LEVEL"));
    SplitStats st;
    double w0 = now(), c0 = cpu_now();
    CHECK(split_run(list, &o, NULL, &st) == 0, "%s", dr_lasterr());
    keep_best(best, now() - w0, cpu_now() - c0);
}

int main(int argc, char **argv) {
    /* bench_split DIR: time the shards of DIR (e.g. a tokenized real corpus) instead */
    struct stat in_st;
    const char *inputs_dir = argc > 1 && stat(argv[1], &in_st) == 0 && S_ISDIR(in_st.st_mode) ? argv[1] : NULL;
    double mtokens = argc > 1 && !inputs_dir ? atof(argv[1]) : 40;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bench_split.XXXXXX", argc > 2 ? argv[2] : "/dev/shm");
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "/tmp/bench_split.XXXXXX");
        CHECK(mkdtemp(dir), "mkdtemp failed");
    }
    ShardList list = {0};
    double t0 = now();
    if (inputs_dir) CHECK(shardlist_add_inputs(&list, 1, (char **)&inputs_dir) == 0, "%s", dr_lasterr());
    else make_corpus(dir, mtokens, &list);
    double t_make = now() - t0;
    uint64_t tokens = read_all(&list);   /* also warms the page cache */
    uint64_t bytes = 0;
    for (size_t k = 0; k < list.n; k++) {
        struct stat sb;
        if (stat(list.items[k].path, &sb) == 0) bytes += (uint64_t)sb.st_size;
    }
    Timing once = {0}, twice = {0}, split1 = {0}, split2 = {0};
    for (int rep = 0; rep < 3; rep++) {
        time_reads(&list, 1, &once);
        time_reads(&list, 2, &twice);
        time_split(&list, dir, 0, &split1);
        time_split(&list, dir, 1, &split2);
    }
    printf("bench_split: %.1f M tokens in %zu shards%s%s, %.2f bytes/token (made in %.2f s); output zstd "
           "level %d; best of 3\n", tokens / 1e6, list.n, inputs_dir ? " of " : " synthetic",
           inputs_dir ? inputs_dir : "", (double)bytes / (double)tokens, t_make, DRS_ZSTD_LEVEL);
    printf("  %-20s %7s %7s %12s %22s\n", "", "wall s", "cpu s", "M tokens/s", "wall / read-twice wall");
    const struct { const char *name; Timing *t; } rows[] = {
        {"read once", &once}, {"read twice", &twice}, {"dr-split 1 thread", &split1}, {"dr-split 2 threads", &split2}};
    for (int i = 0; i < 4; i++)
        printf("  %-20s %7.3f %7.3f %12.1f %22.2f\n", rows[i].name, rows[i].t->wall, rows[i].t->cpu,
               tokens / rows[i].t->wall / 1e6, rows[i].t->wall / twice.wall);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_split: could not remove %s\n", dir);
    shardlist_free(&list);
    return 0;
}
