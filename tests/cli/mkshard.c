/* mkshard.c — test-only shard maker: writes *.drs from token ids, without a tokenizer.
 * Compiled by tests/cli/helpers.bash (and the split benchmark) against libdr.a.
 *
 *   mkshard [options] OUT.drs < docs.tsv     one document per line:
 *                                           source<TAB>id<TAB>space-separated token ids
 *                                           (id: 16 hex digits, or "-" = xxh64 of the ids text)
 *   mkshard --random N [options] OUT.drs     N generated documents (see below)
 *   mkshard --text KIND [options] OUT.drs    each stdin line (newline excluded) one
 *                                           document, encoded with tokenizer KIND
 * options:
 *   --vocab V          vocabulary size (default 50257)
 *   --spec S           tokenizer spec stored in the shard (default "test")
 *   --fingerprint HEX  tokenizer fingerprint (default 0x7e57)
 *   --block-bytes N    block size target (default 1 MiB)
 *   --seed S           generator seed (--random)
 *   --sources a,b,c    sources, taken in turn (--random; default "web,books,mail")
 *   --max-len L        lengths uniform in [2, L + 2] (--random; default 400)
 *   --dup-every K      every K-th document repeats an earlier one: a duplicate (--random)
 *   --first-id I       number documents from I (--random), so shards can be disjoint
 * Random tokens follow a Zipf-like law over the vocabulary, like text tokens.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "check.h"
#include "shard.h"
#include "tokenizer.h"

typedef struct {
    uint32_t vocab;
    const char *spec;
    uint64_t fingerprint;
    size_t block_bytes;
    uint64_t random_docs, seed, first_id;
    int random;
    const char *sources;
    uint32_t max_len, dup_every;
    const char *text_kind;
    const char *out;
} Options;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int add_text_lines(DrsWriter *w, const Tokenizer *t, const char *source) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    TokenBuf ids = {0};
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n') n--;
        ids.n = 0;
        rc = tokenizer_encode(t, line, (size_t)n, TOK_UTF8_KEEP, &ids, NULL);
        if (rc == 0) rc = drs_writer_add(w, XXH64(line, (size_t)n, 0), source, ids.ids, ids.n);
    }
    free(line);
    tokenbuf_free(&ids);
    return rc;
}

static int add_from_lines(DrsWriter *w) {
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    uint32_t *toks = NULL;
    size_t tcap = 0;
    while (getline(&line, &cap, stdin) >= 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2) dr_die("stdin:%ld: expected source<TAB>id<TAB>tokens", lineno);
        *t1 = *t2 = '\0';
        char *ids_text = t2 + 1;
        uint64_t id = strcmp(t1 + 1, "-") == 0 ? XXH64(ids_text, strlen(ids_text), 0)
                                               : strtoull(t1 + 1, NULL, 16);
        size_t n = 0;
        for (char *p = ids_text, *end; *p; p = end) {
            unsigned long v = strtoul(p, &end, 10);
            if (end == p) break;
            if (n == tcap) toks = xrealloc(toks, (tcap = tcap ? 2 * tcap : 256) * sizeof *toks);
            toks[n++] = (uint32_t)v;
        }
        if (drs_writer_add(w, id, line, toks, n) < 0) return -1;
    }
    free(line);
    free(toks);
    return 0;
}

static int add_random(DrsWriter *w, const Options *o) {
    char *names = xstrdup(o->sources), *save = NULL;
    const char *sources[64];
    int n_sources = 0;
    for (char *t = strtok_r(names, ",", &save); t && n_sources < 64; t = strtok_r(NULL, ",", &save))
        sources[n_sources++] = t;
    uint32_t *toks = xmalloc(((size_t)o->max_len + 3) * sizeof *toks);
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < o->random_docs; i++) {
        uint64_t doc = o->first_id + i;
        if (o->dup_every && i >= o->dup_every && i % o->dup_every == 0) doc -= o->dup_every / 2 + 1;
        uint64_t s = o->seed * 0x100000001B3ull + doc;      /* the document's content seed */
        /* 2 + tokens: the first two number the document, so distinct documents differ */
        uint32_t n = 2 + (uint32_t)(splitmix(&s) % ((uint64_t)o->max_len + 1));
        toks[0] = (uint32_t)(doc % o->vocab);
        toks[1] = (uint32_t)(doc / o->vocab % o->vocab);
        for (uint32_t k = 2; k < n; k++) {
            double u = (double)(splitmix(&s) >> 11) * 0x1.0p-53;
            toks[k] = (uint32_t)((double)o->vocab * u * u * u * u) % o->vocab;   /* small ids frequent */
        }
        uint64_t id = XXH64(toks, n * sizeof *toks, 0);    /* equal content -> equal id */
        rc = drs_writer_add(w, id, sources[doc % (uint64_t)n_sources], toks, n);
    }
    free(toks);
    free(names);
    return rc;
}

int main(int argc, char **argv) {
    dr_set_progname(argv[0]);
    Options o = {.vocab = 50257, .spec = "test", .fingerprint = 0x7e57, .sources = "web,books,mail",
                 .max_len = 400};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-' || !a[1]) { o.out = a; continue; }
        if (!v) dr_die("%s needs a value", a);
        i++;
        if (!strcmp(a, "--vocab")) o.vocab = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--spec")) o.spec = v;
        else if (!strcmp(a, "--fingerprint")) o.fingerprint = strtoull(v, NULL, 16);
        else if (!strcmp(a, "--block-bytes")) o.block_bytes = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--random")) { o.random = 1; o.random_docs = strtoull(v, NULL, 10); }
        else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--first-id")) o.first_id = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--sources")) o.sources = v;
        else if (!strcmp(a, "--max-len")) o.max_len = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--text")) o.text_kind = v;
        else if (!strcmp(a, "--dup-every")) o.dup_every = (uint32_t)strtoul(v, NULL, 10);
        else dr_die("unknown option %s", a);
    }
    if (!o.out) dr_die("usage: mkshard [options] OUT.drs (see the comment in tests/cli/mkshard.c)");
    Tokenizer *t = NULL;
    if (o.text_kind) {
        if (!(t = tokenizer_load(o.text_kind, NULL))) dr_die("%s", dr_lasterr());
        o.vocab = tokenizer_vocab_size(t);
        o.fingerprint = tokenizer_fingerprint(t);
        o.spec = tokenizer_spec(t);
    }
    DrsWriter *w = drs_writer_open(o.out, o.vocab, o.fingerprint, o.spec);
    if (!w) dr_die("%s", dr_lasterr());
    if (o.block_bytes) drs_writer_set_block_bytes(w, o.block_bytes);
    int rc = t ? add_text_lines(w, t, o.sources) : o.random ? add_random(w, &o) : add_from_lines(w);
    if (rc < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dr_lasterr());
        drs_writer_abort(w);
        dr_die("%s", msg);
    }
    if (drs_writer_close(w) < 0) dr_die("%s", dr_lasterr());
    if (t) tokenizer_free(t);
    return 0;
}
