/* bench_tokenizer.c — tokenizer throughput: MB/s for byte and gpt2 on 1 and 2 threads
 * (targets: gpt2 >= 10 MB/s per thread, byte >= 300 MB/s), the cost of a 1 MB word
 * without spaces (BPE must stay O(n log n)), and BPE training time. Prints numbers,
 * never fails on them.
 *
 *   build/float/bench/bench_tokenizer [TEXT_FILE] [MB]
 * Without TEXT_FILE, MB (default 16) of generated English-like text: words from a fixed
 * list with punctuation, digits, newlines and some non-ASCII. Documents are 4 KiB
 * pieces of it. Needs data/gpt2 (make vocab) or $DR_DATA/gpt2 for the gpt2 rows.
 */
#include "check.h"
#include "tokenizer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double load_average(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) { if (fscanf(f, "%lf", &l) != 1) l = -1; fclose(f); }
    return l;
}

static char *make_text(size_t n) {
    static const char *words[] = {
        "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be",
        "by", "on", "not", "he", "I", "this", "are", "or", "his", "from", "at", "which", "but",
        "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her",
        "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no",
        "government", "people", "whale", "Ahab", "Congress", "message", "subscribe", "mailing",
        "list", "http://example.com/path", "don't", "it's", "we'll", "caf\xc3\xa9", "na\xc3\xafve",
        "\xd0\x96\xd0\xb8\xd0\xb7\xd0\xbd\xd1\x8c", "\xe4\xb8\xad\xe6\x96\x87", "1999", "2024",
        "$100", "(see", "below)", "e-mail", "--", "...", "information", "constitutional",
        "extraordinarily", "Nantucket", "harpooneer", "unsubscribe",
    };
    const size_t nw = sizeof words / sizeof *words;
    char *t = xmalloc(n + 64);
    size_t i = 0;
    uint64_t r = 0x9E3779B97F4A7C15ull;
    while (i < n) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        char made[32];
        const char *w = words[r % nw];
        if ((r >> 20) % 4 == 0) {          /* a made-up word of 1-4 syllables: a long tail */
            static const char *syl[] = {"ka", "ro", "mi", "ten", "sha", "lu", "vor", "ne", "qui",
                                        "ble", "ith", "om", "st", "ar", "pel", "ux"};
            size_t m = 0;
            for (unsigned k = 0, ns = 1 + (unsigned)(r >> 24) % 4; k < ns; k++) {
                const char *y = syl[(r >> (28 + 4 * k)) % 16];
                memcpy(made + m, y, strlen(y));
                m += strlen(y);
            }
            made[m] = 0;
            w = made;
        }
        size_t l = strlen(w);
        if (i + l + 2 > n) break;
        memcpy(t + i, w, l);
        i += l;
        unsigned k = (unsigned)(r >> 40) % 40;
        t[i++] = k == 0 ? '\n' : k == 1 ? ',' : k == 2 ? '.' : ' ';
        if (k == 2) t[i++] = ' ';
    }
    while (i < n) t[i++] = ' ';
    t[n] = 0;
    return t;
}

typedef struct {
    const Tokenizer *t;
    const char *text;
    size_t begin, end;        /* byte range, cut into 4 KiB documents */
    size_t tokens;
    double cpu_s;
} Job;

static void *run_job(void *arg) {
    Job *j = arg;
    TokEncoder *e = tok_encoder_new(j->t);
    TokenBuf out = {0};
    double c0 = cpu();
    for (size_t off = j->begin; off < j->end; off += 4096) {
        size_t n = j->end - off < 4096 ? j->end - off : 4096;
        out.n = 0;
        tok_encoder_encode(e, j->text + off, n, TOK_UTF8_REPLACE, &out, NULL);
        j->tokens += out.n;
    }
    j->cpu_s = cpu() - c0;
    tokenbuf_free(&out);
    tok_encoder_free(e);
    return NULL;
}

static void bench(const char *name, const Tokenizer *t, const char *text, size_t n, int threads, int quiet) {
    Job jobs[8];
    pthread_t th[8];
    double w0 = wall();
    for (int i = 0; i < threads; i++) {
        size_t b = n / (size_t)threads * (size_t)i, e = i == threads - 1 ? n : n / (size_t)threads * (size_t)(i + 1);
        jobs[i] = (Job){t, text, b, e, 0, 0};
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    size_t tokens = 0;
    double cpu_s = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        tokens += jobs[i].tokens;
        cpu_s += jobs[i].cpu_s;
    }
    double ws = wall() - w0;
    if (quiet) return;
    printf("%-5s %d thread%s  %8.1f MB/s wall  %8.1f MB/s per thread (CPU time)  %.2f bytes/token\n",
           name, threads, threads > 1 ? "s" : " ", (double)n / 1e6 / ws,
           (double)n / 1e6 / cpu_s,
           (double)n / (double)tokens);
}

int main(int argc, char **argv) {
    size_t mb = argc > 2 ? (size_t)atol(argv[2]) : 16;
    char *text;
    size_t n;
    if (argc > 1) {
        FILE *f = fopen(argv[1], "rb");
        if (!f) { fprintf(stderr, "bench_tokenizer: %s: cannot open\n", argv[1]); return 1; }
        text = xmalloc(mb << 20);
        n = fread(text, 1, mb << 20, f);
        fclose(f);
        printf("text: %zu bytes of %s\n", n, argv[1]);
    } else {
        n = mb << 20;
        text = make_text(n);
        printf("text: %zu bytes of generated English-like text\n", n);
    }

    Tokenizer *byte = tokenizer_load("byte", NULL);
    printf("(MB/s wall depends on what else runs; CPU-time rates do not: load average now %.1f)\n", load_average());
    bench("byte", byte, text, n, 1, 1);   /* warm-up: page in the text and the buffers */
    bench("byte", byte, text, n, 1, 0);
    bench("byte", byte, text, n, 2, 0);

    const char *env = getenv("DR_DATA");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/gpt2", env && *env ? env : "data");
    Tokenizer *gpt2 = tokenizer_load("gpt2", dir);
    if (!gpt2) {
        printf("gpt2: skipped (%s)\n", dr_lasterr());
    } else {
        double l0 = wall();
        Tokenizer *again = tokenizer_load("gpt2", dir);
        printf("gpt2  load: %.0f ms\n", (wall() - l0) * 1e3);
        tokenizer_free(again);
        bench("gpt2", gpt2, text, n, 1, 0);
        bench("gpt2", gpt2, text, n, 2, 0);

        /* timing sanity: 1 MB of 'a' without spaces (one piece: BPE on the heap path) */
        size_t an = 1 << 20;
        char *aaa = xmalloc(an);
        memset(aaa, 'a', an);
        TokenBuf out = {0};
        double t0 = wall();
        tokenizer_encode(gpt2, aaa, an, TOK_UTF8_REPLACE, &out, NULL);
        printf("gpt2  1 MB of 'a' without spaces: %.1f ms, %zu tokens\n", (wall() - t0) * 1e3, out.n);
        for (size_t i = 0; i < an; i++) aaa[i] = "abcdefghijklmnopqrstuvwxyz"[(i * 7 + i / 3) % 26];
        out.n = 0;
        t0 = wall();
        tokenizer_encode(gpt2, aaa, an, TOK_UTF8_REPLACE, &out, NULL);
        printf("gpt2  1 MB of mixed letters without spaces: %.1f ms, %zu tokens\n", (wall() - t0) * 1e3, out.n);
        tokenbuf_free(&out);
        free(aaa);
        tokenizer_free(gpt2);
    }

    /* BPE training on (up to) 8 MB of the text */
    size_t tn = n < (8u << 20) ? n : (8u << 20);
    size_t nd = (tn + 4095) / 4096;
    const char **docs = xmalloc(nd * sizeof *docs);
    size_t *lens = xmalloc(nd * sizeof *lens);
    for (size_t i = 0; i < nd; i++) {
        docs[i] = text + i * 4096;
        lens[i] = tn - i * 4096 < 4096 ? tn - i * 4096 : 4096;
    }
    char tmp[] = "/tmp/bench_tokenizer.XXXXXX";
    if (mkdtemp(tmp)) {
        for (int t = 1; t <= 2; t++) {
            double t0 = wall();
            int rc = tokenizer_train_bpe(docs, lens, nd, 4096, TOK_UTF8_REPLACE, t, tmp);
            printf("train-bpe 4096 on %.1f MB, %d thread%s: %s %.2f s\n", (double)tn / 1e6, t, t > 1 ? "s" : "",
                   rc == 0 ? "" : dr_lasterr(), wall() - t0);
        }
        char p[256];
        snprintf(p, sizeof p, "%s/encoder.json", tmp); unlink(p);
        snprintf(p, sizeof p, "%s/vocab.bpe", tmp); unlink(p);
        rmdir(tmp);
    }
    free(docs);
    free(lens);
    tokenizer_free(byte);
    free(text);
    return 0;
}
