/* scores.c — reading, validating and writing scores.tsv (see scores.h). */
#include "scores.h"
#include "progress.h"


#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "check.h"

void scores_write_header(FILE *f) { fputs(SCORES_HEADER "\n", f); }

void scores_write_row(FILE *f, const char *example_id, double score, const char *source,
                      uint32_t n_tokens) {
    fprintf(f, "%s\t%.9g\t%s\t%u\n", example_id, score, source, n_tokens);
}

void scores_free(Scores *s) {
    free(s->doc_id);
    free(s->window);
    free(s->score);
    free(s->n_tokens);
    free(s->path);
    memset(s, 0, sizeof *s);
}

/* "<16 hex>:<window>" -> doc id, window. 0 on success. */
static int parse_example_id(const char *p, size_t len, uint64_t *doc_id, uint32_t *window) {
    if (len < 18 || p[16] != ':') return -1;
    uint64_t id = 0;
    for (int i = 0; i < 16; i++) {
        char c = p[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return -1;
        id = id << 4 | (uint64_t)v;
    }
    if (len > 18 && p[17] == '0') return -1;   /* "…:01": not the id dr-score writes ("…:1") */
    uint64_t w = 0;
    for (size_t i = 17; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        w = w * 10 + (uint64_t)(p[i] - '0');
        if (w > UINT32_MAX) return -1;
    }
    *doc_id = id;
    *window = (uint32_t)w;
    return 0;
}

/* A number as %.17g, %.9g, awk or Python print it: [-]digits[.digits][(e|E)[+-]digits]
 * ("0.5", "-3", "1e-05", "2.5E+38"; no leading space or '+', no hex, no ".5"). */
static int is_decimal(const char *p) {
    if (*p == '-') p++;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') p++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (*p < '0' || *p > '9') return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    return *p == 0;
}

/* What printf and Python print for non-finite values: [-]inf, [-]nan (any case),
 * "infinity": recognized only to be refused as not finite. */
static int is_nonfinite_word(const char *p) {
    if (*p == '-') p++;
    if (*p != 'i' && *p != 'I' && *p != 'n' && *p != 'N') return 0;   /* the usual case, at once */
    return !strcasecmp(p, "inf") || !strcasecmp(p, "infinity") || !strcasecmp(p, "nan");
}

/* A count: decimal digits only (no sign, no space). */
static int is_digits(const char *p) {
    if (!*p) return 0;
    for (; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return 1;
}

/* Splits line (no newline) at tabs into exactly 4 fields. */
static int split4(char *line, char **f, size_t *len) {
    int k = 0;
    char *p = line;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (k == 4) return -1;
        f[k] = p;
        len[k] = tab ? (size_t)(tab - p) : strlen(p);
        k++;
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
    return k == 4 ? 0 : -1;
}

/* A scores line is an id, a number, a source name and a count: far below this. A file
 * that is not one (/dev/zero, a binary) ends here, not in memory exhaustion. */
#define SCORES_LINE_MAX (1u << 20)

/* Reads the lines of a scores file, checking every one, and hands each to sink in file
 * order (row r = the r-th line after the header). -1 + dr_seterr("path:LINE: …") at the
 * first bad line or a read error; a sink's -1 stops the reading. label: progress on
 * stderr under it (MB of the file, cleared when done), or NULL. */
typedef int (*LineSink)(void *ctx, uint64_t doc_id, uint32_t window, double score, uint32_t n_tokens);

static int read_lines(const char *path, LineSink sink, void *ctx, const char *label) {
    struct stat st;
    if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return dr_seterr("%s: is a directory, not a scores file", path);
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return dr_seterr("%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long lineno = 0, blank = 0;   /* blank: the first of the empty lines just read */
    int rc = 0;
    Progress bar;   /* MB of the file; its size unknown (a pipe, stdin): no total */
    struct stat fst;
    uint64_t bytes = 0;
    if (label)
        progress_start(&bar, label, "MB", fstat(fileno(f), &fst) == 0 && S_ISREG(fst.st_mode) ?
                                          (double)fst.st_size / 1e6 : 0);
    while ((got = dr_getline_max(&line, &cap, f, SCORES_LINE_MAX)) != -1) {
        lineno++;
        if (got > 0) bytes += (uint64_t)got;
        if (label && lineno % 4096 == 0) {
            progress_set_extra(&bar, "%ld lines", lineno - 1);
            progress_update(&bar, (double)bytes / 1e6);
        }
        if (got == -2) {
            rc = dr_seterr("%s:%ld: a line longer than %u bytes: not a scores file", path, lineno,
                           SCORES_LINE_MAX);
            break;
        }
        if (lineno == 1) got = dr_drop_bom(line, got);   /* an editor's byte-order mark */
        if (got > 0 && line[got - 1] == '\n') line[--got] = 0;
        if (got > 0 && line[got - 1] == '\r') line[--got] = 0;
        if ((size_t)got != strlen(line)) { rc = dr_seterr("%s:%ld: NUL byte in line", path, lineno); break; }
        /* empty lines at the very end of the file (an editor's, a `echo >>`) are ignored;
         * one followed by more lines is refused below, at its own line number */
        if (got == 0 && lineno > 1) {
            if (!blank) blank = lineno;
            continue;
        }
        if (blank) {
            rc = dr_seterr("%s:%ld: expected 4 tab-separated fields (an empty line)", path, blank);
            break;
        }
        if (lineno == 1) {
            if (strcmp(line, SCORES_HEADER) != 0) {
                rc = dr_seterr("%s:1: expected the header '%s'", path,
                               "example_id<TAB>score<TAB>source<TAB>n_tokens");
                break;
            }
            continue;
        }
        char *fld[4];
        size_t len[4];
        if (split4(line, fld, len) != 0) {
            rc = dr_seterr("%s:%ld: expected 4 tab-separated fields", path, lineno);
            break;
        }
        uint64_t doc_id;
        uint32_t window;
        if (parse_example_id(fld[0], len[0], &doc_id, &window) != 0) {
            rc = dr_seterr("%s:%ld: bad example id '%.40s' (expected 16 hex digits ':' window)",
                           path, lineno, fld[0]);
            break;
        }
        if (is_nonfinite_word(fld[1])) {
            rc = dr_seterr("%s:%ld: score '%.40s' is not finite", path, lineno, fld[1]);
            break;
        }
        if (!is_decimal(fld[1])) {
            rc = dr_seterr("%s:%ld: score '%.40s' is not a number", path, lineno, fld[1]);
            break;
        }
        /* a decimal number: strtod cannot fail; past the double range it gives ±HUGE_VAL
         * (refused below as beyond float), below it a zero or subnormal (kept). The weights
         * are computed in the build's float: refused is what rounds to ±inf as a float, not
         * what exceeds FLT_MAX, so that FLT_MAX printed with %.9g (3.40282347e+38, a little
         * above it) reads back, as C's strtof and Python's numpy.float32 read it */
        double score = strtod(fld[1], NULL);
        if (isinf((float)score)) {
            rc = dr_seterr("%s:%ld: score '%.40s' is beyond the float range (|z| <= 3.4e38)",
                           path, lineno, fld[1]);
            break;
        }
        errno = 0;
        unsigned long long nt = is_digits(fld[3]) ? strtoull(fld[3], NULL, 10) : 0;
        if (!is_digits(fld[3]) || errno == ERANGE || nt > UINT32_MAX) {
            rc = dr_seterr("%s:%ld: n_tokens '%.40s' is not a count", path, lineno, fld[3]);
            break;
        }
        if (sink(ctx, doc_id, window, score, (uint32_t)nt) != 0) { rc = -1; break; }
    }
    if (rc == 0 && ferror(f)) rc = dr_seterr("%s: read error: %s", path, strerror(errno));
    if (rc == 0 && lineno == 0) rc = dr_seterr("%s: empty file (expected a header line)", path);
    if (label) {
        if (rc == 0) {
            progress_set_extra(&bar, "%ld lines", lineno > 0 ? lineno - 1 : 0);
            progress_update(&bar, (double)bytes / 1e6);
        }
        progress_abort(&bar);   /* the next step's bar, or the error, replaces it */
    }
    free(line);
    if (f != stdin) fclose(f);
    return rc;
}

typedef struct {
    Scores *s;
    size_t cap;
} ScoresSink;

static int scores_append(void *ctx, uint64_t doc_id, uint32_t window, double score, uint32_t n_tokens) {
    ScoresSink *k = ctx;
    Scores *s = k->s;
    if (s->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 1024;
        s->doc_id = xrealloc(s->doc_id, k->cap * sizeof *s->doc_id);
        s->window = xrealloc(s->window, k->cap * sizeof *s->window);
        s->score = xrealloc(s->score, k->cap * sizeof *s->score);
        s->n_tokens = xrealloc(s->n_tokens, k->cap * sizeof *s->n_tokens);
    }
    s->doc_id[s->n] = doc_id;
    s->window[s->n] = window;
    s->score[s->n] = score;
    s->n_tokens[s->n] = n_tokens;
    s->n++;
    return 0;
}

int scores_read(const char *path, Scores *s) {
    memset(s, 0, sizeof *s);
    s->path = xstrdup(path);
    ScoresSink k = { s, 0 };
    int rc = read_lines(path, scores_append, &k, NULL);
    if (rc != 0) scores_free(s);
    return rc;
}

/* ---- matching the lines to the examples ------------------------------------------------
 * One pass over the lines in file order, which are not kept: per example its score (the
 * caller's out), the row that gave it and its flags, and a table from an id to its first
 * example (2 to 4 slots of 4 bytes per example, compared through the loader's index):
 * 8 + 4 + 1 + 8…16 bytes per example, nothing per line. The lines of ids the shards hold
 * more than once (exact duplicate documents) are set aside and ordered by score at the
 * end; so is each row given to an example whose length it does not have (for the message). */

#define NONE UINT32_MAX

enum { EX_SCORED = 1, EX_BAD_COUNT = 2, EX_SHARED = 4 };   /* Aligner.flags */

typedef struct { double score; uint32_t first, row, n_tokens; } SharedLine;   /* first: the id's first example */
typedef struct { uint32_t first, ex; } SharedExample;                         /* a later example of first's id */
typedef struct { uint32_t ex, row, n_tokens; } BadCount;                      /* a row given to ex, its count not ex's */

#define ALIGN_CHUNK 64   /* rows read ahead of their matching (64 to 1024: about as fast) */
typedef struct { uint64_t doc_id; double score; uint32_t window, n_tokens; } ChunkRow;

typedef struct {
    const DataLoader *d;
    const char *path;
    double *out;
    uint64_t n_ex;
    uint32_t *slots;            /* 1 + the first example of an id (shard order); 0 = empty */
    size_t mask;
    uint32_t *row;              /* [n_ex] the row that scored the example */
    uint8_t *flags;             /* [n_ex] EX_* */
    SharedExample *shared_ex;   /* in shard order */
    SharedLine *shared;
    BadCount *bad;
    size_t n_shared_ex, cap_shared_ex, n_shared, cap_shared, n_bad, cap_bad;
    uint32_t n_rows;
    uint64_t next;              /* the example after the last one a row matched */
    int in_order;               /* the last row matched next (then the next row tries it first) */
    ChunkRow *chunk;            /* [ALIGN_CHUNK] rows not yet matched */
    uint32_t *chunk_slot;       /* [ALIGN_CHUNK] */
    size_t n_chunk;
    int chunk_out_of_order;     /* read the next chunk's slots and documents ahead */
    uint32_t n_table_rows;      /* rows matched through the table */
    uint64_t chunk_sink;        /* what the reads ahead add up to: kept, so that they are made */
    /* the first row (file order) beyond what the shards hold of its id, among ids held at
     * most once (the others' are found at the end): NONE, or that row, its id, the first
     * row of its id and how many examples hold the id (0 or 1) */
    uint32_t extra, extra_first, extra_times;
    uint64_t extra_doc_id;
    uint32_t extra_window;
} Aligner;

static uint64_t mix_key(uint64_t doc_id, uint32_t window) {
    uint64_t x = doc_id ^ ((uint64_t)window * 0x9e3779b97f4a7c15ull);
    x ^= x >> 31; x *= 0xbf58476d1ce4e5b9ull; x ^= x >> 29;
    return x;
}

/* The slot of (doc_id, window): the one holding its first example, or the empty one where
 * it would go. */
static size_t find_slot(const Aligner *a, uint64_t doc_id, uint32_t window) {
    size_t h = (size_t)mix_key(doc_id, window) & a->mask;
    for (; a->slots[h] != 0; h = (h + 1) & a->mask) {
        uint64_t q = a->slots[h] - 1;
        if (data_example_doc_id(a->d, q) == doc_id && data_example(a->d, q).window == window) break;
    }
    return h;
}

/* A row out of shard order, or an example being put in the table, waits for a few
 * dependent random reads (its slot, the slot's example, that example's document and
 * flags). For a chunk of them at once, read the slots first, then their examples: reads
 * that do not wait for each other, so that the matching finds them in the cache. */
static void read_ahead(Aligner *a) {
    uint64_t sum = 0;
    for (size_t k = 0; k < a->n_chunk; k++)
        a->chunk_slot[k] = a->slots[(size_t)mix_key(a->chunk[k].doc_id, a->chunk[k].window) & a->mask];
    for (size_t k = 0; k < a->n_chunk; k++) {
        uint32_t s = a->chunk_slot[k];
        if (s) sum += data_example_doc_id(a->d, s - 1) + a->flags[s - 1];
    }
    a->chunk_sink ^= sum;   /* used, so that the reads are made */
}

#define GROW(arr, n, cap) do { \
        if ((n) == (cap)) { (cap) = (cap) ? 2 * (cap) : 64; (arr) = xrealloc((arr), (cap) * sizeof *(arr)); } \
    } while (0)

/* Example ex, of length tokens, gets row's score (and row's n_tokens is checked). */
static void assign(Aligner *a, uint32_t ex, uint32_t length, uint32_t row, double score,
                   uint32_t n_tokens) {
    a->out[ex] = score;
    a->row[ex] = row;
    a->flags[ex] = (uint8_t)((a->flags[ex] & ~EX_BAD_COUNT) | EX_SCORED);
    if (n_tokens != length) {
        a->flags[ex] |= EX_BAD_COUNT;
        GROW(a->bad, a->n_bad, a->cap_bad);
        a->bad[a->n_bad++] = (BadCount){ ex, row, n_tokens };
    }
}

static void aligner_init(Aligner *a, const DataLoader *d, const char *path, double *out) {
    memset(a, 0, sizeof *a);
    a->d = d;
    a->path = path;
    a->out = out;
    a->n_ex = data_num_examples(d);
    a->extra = NONE;
    a->in_order = 1;
    CHECK(a->n_ex < NONE, "%llu examples: too many", (unsigned long long)a->n_ex);
    size_t cap = 16;
    while (cap < 2 * (a->n_ex + 1)) cap <<= 1;
    a->slots = xcalloc(cap, sizeof *a->slots);
    a->mask = cap - 1;
    a->row = xmalloc((a->n_ex ? a->n_ex : 1) * sizeof *a->row);
    a->flags = xcalloc(a->n_ex ? a->n_ex : 1, 1);
    a->chunk = xmalloc(ALIGN_CHUNK * sizeof *a->chunk);
    a->chunk_slot = xmalloc(ALIGN_CHUNK * sizeof *a->chunk_slot);
    for (uint64_t i = 0; i < a->n_ex; i++) {
        size_t k = i % ALIGN_CHUNK;
        if (k == 0) {   /* the ids of the next chunk of examples, their slots read ahead */
            a->n_chunk = a->n_ex - i < ALIGN_CHUNK ? (size_t)(a->n_ex - i) : ALIGN_CHUNK;
            for (size_t j = 0; j < a->n_chunk; j++)
                a->chunk[j] = (ChunkRow){ data_example_doc_id(d, i + j), 0, data_example(d, i + j).window, 0 };
            read_ahead(a);
        }
        size_t h = find_slot(a, a->chunk[k].doc_id, a->chunk[k].window);
        if (a->slots[h] == 0) {
            a->slots[h] = (uint32_t)(i + 1);
        } else {   /* an id held again: an exact duplicate document */
            uint32_t first = a->slots[h] - 1;
            a->flags[first] |= EX_SHARED;
            a->flags[i] |= EX_SHARED;
            GROW(a->shared_ex, a->n_shared_ex, a->cap_shared_ex);
            a->shared_ex[a->n_shared_ex++] = (SharedExample){ first, (uint32_t)i };
        }
    }
    a->n_chunk = 0;
}

static void aligner_free(Aligner *a) {
    free(a->slots);
    free(a->row);
    free(a->flags);
    free(a->shared_ex);
    free(a->shared);
    free(a->bad);
    free(a->chunk);
    free(a->chunk_slot);
    memset(a, 0, sizeof *a);
}

/* The next row, in file order. */
static void match_row(Aligner *a, uint64_t doc_id, uint32_t window, double score, uint32_t n_tokens) {
    CHECK(a->n_rows < NONE, "%u score lines: too many", a->n_rows);
    uint32_t r = a->n_rows++;
    /* Lines in shard order (as dr-score writes them) find their example right after the
     * last one matched: an id held once is that example whether found there or through
     * the table, and there it costs no random access. Tried while the lines come in
     * that order (a sorted file would pay for it with the random accesses it saves). */
    uint64_t c = a->next;
    DataExample e = {0};   /* set whenever s != 0 (gcc -O1 cannot tell) */
    uint32_t s;
    if (a->in_order && c < a->n_ex && !(a->flags[c] & EX_SHARED) &&
        data_example_doc_id(a->d, c) == doc_id && (e = data_example(a->d, c)).window == window) {
        s = (uint32_t)c + 1;
    } else {
        s = a->slots[find_slot(a, doc_id, window)];
        if (s != 0) e = data_example(a->d, s - 1);
        a->in_order = s - 1 == c;
        a->n_table_rows++;
    }
    if (s == 0) {   /* not in the shards */
        if (a->extra == NONE) {
            a->extra = r;
            a->extra_times = 0;
            a->extra_doc_id = doc_id;
            a->extra_window = window;
        }
        return;
    }
    uint32_t q = s - 1;
    a->next = (uint64_t)q + 1;
    if (a->flags[q] & EX_SHARED) {
        GROW(a->shared, a->n_shared, a->cap_shared);
        a->shared[a->n_shared++] = (SharedLine){ score, q, r, n_tokens };
    } else if (!(a->flags[q] & EX_SCORED)) {
        assign(a, q, e.length, r, score, n_tokens);
    } else {
        /* a second line of an id held once: a duplicate, named at its first such line
         * (until then row[q] is the id's first line); the lowest score still takes the
         * example, the earlier line on a tie */
        if (a->extra == NONE) {
            a->extra = r;
            a->extra_times = 1;
            a->extra_first = a->row[q];
            a->extra_doc_id = doc_id;
            a->extra_window = window;
        }
        if (score < a->out[q]) assign(a, q, e.length, r, score, n_tokens);
    }
}

/* Matches the rows held in the chunk, reading ahead unless the last chunk's rows came in
 * shard order (5 million shuffled rows: 0.9 s of matching instead of 1.9). */
static void aligner_flush(Aligner *a) {
    if (a->chunk_out_of_order) read_ahead(a);
    uint32_t before = a->n_table_rows;
    for (size_t k = 0; k < a->n_chunk; k++) {
        const ChunkRow *c = &a->chunk[k];
        match_row(a, c->doc_id, c->window, c->score, c->n_tokens);
    }
    /* the next chunk reads ahead when more than an eighth of this one's rows needed the table */
    a->chunk_out_of_order = (a->n_table_rows - before) * 8 > a->n_chunk;
    a->n_chunk = 0;
}

static int aligner_line(void *ctx, uint64_t doc_id, uint32_t window, double score, uint32_t n_tokens) {
    Aligner *a = ctx;
    a->chunk[a->n_chunk++] = (ChunkRow){ doc_id, score, window, n_tokens };
    if (a->n_chunk == ALIGN_CHUNK) aligner_flush(a);
    return 0;
}

static int cmp_shared_example(const void *x, const void *y) {
    const SharedExample *a = x, *b = y;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return (a->ex > b->ex) - (a->ex < b->ex);
}

/* By id (its first example), then score, lowest first, then file order. */
static int cmp_shared_line(const void *x, const void *y) {
    const SharedLine *a = x, *b = y;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

static int cmp_u32(const void *x, const void *y) {
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

/* The ids held more than once: their rows, lowest score first, to their examples in
 * shard order; the row past their count in file order, when it comes before the extra
 * row found so far. */
static void assign_shared(Aligner *a) {
    if (a->n_shared_ex == 0) return;   /* (then no line was set aside either) */
    qsort(a->shared_ex, a->n_shared_ex, sizeof *a->shared_ex, cmp_shared_example);
    if (a->n_shared) qsort(a->shared, a->n_shared, sizeof *a->shared, cmp_shared_line);
    uint32_t *ex = NULL, *rows = NULL;
    size_t cap_ex = 0, cap_rows = 0;
    size_t i = 0, j = 0;   /* i: shared_ex, j: shared */
    while (i < a->n_shared_ex) {
        uint32_t first = a->shared_ex[i].first;
        size_t n = 0;   /* the id's examples, in shard order */
        GROW(ex, n, cap_ex);
        ex[n++] = first;
        for (; i < a->n_shared_ex && a->shared_ex[i].first == first; i++) {
            GROW(ex, n, cap_ex);
            ex[n++] = a->shared_ex[i].ex;
        }
        while (j < a->n_shared && a->shared[j].first < first) j++;   /* (none: every line's id is here) */
        size_t j0 = j;
        for (; j < a->n_shared && a->shared[j].first == first; j++) {
            const SharedLine *l = &a->shared[j];
            if (j - j0 < n)
                assign(a, ex[j - j0], data_example(a->d, ex[j - j0]).length, l->row, l->score, l->n_tokens);
        }
        size_t m = j - j0;
        if (m > n) {   /* the (n+1)-th row of the id in file order is the duplicate */
            if (m > cap_rows) rows = xrealloc(rows, (cap_rows = m) * sizeof *rows);
            for (size_t k = 0; k < m; k++) rows[k] = a->shared[j0 + k].row;
            qsort(rows, m, sizeof *rows, cmp_u32);
            if (rows[n] < a->extra) {
                a->extra = rows[n];
                a->extra_times = (uint32_t)n;
                a->extra_first = rows[0];
                a->extra_doc_id = data_example_doc_id(a->d, first);
                a->extra_window = data_example(a->d, first).window;
            }
        }
    }
    free(ex);
    free(rows);
}

/* The scores' n_tokens of an example differ from its length here: almost always scores
 * made with another data.seq_len, named when only one gives the window n_tokens
 * (data_window_seq_len: made, else 0). Row: 0-based data row. */
static int scores_count_error(const char *path, uint32_t row, const char *id, uint32_t length,
                              uint32_t made, int seq_len, uint32_t n_tokens) {
#define COUNT_AT "%s:%lu: example %s has %u tokens in the shards at data.seq_len %d, not %u: "
    if (made)
        return dr_seterr(COUNT_AT "the scores were made with data.seq_len %u (the only one that "
                         "gives this window %u tokens); give the same --config, or --set "
                         "data.seq_len=%u", path, (unsigned long)row + 2, id, length, seq_len,
                         n_tokens, made, n_tokens, made);
    return dr_seterr(COUNT_AT "the scores were made with another data.seq_len; give the --config "
                     "(or --set data.seq_len=N) that dr-score used", path, (unsigned long)row + 2,
                     id, length, seq_len, n_tokens);
#undef COUNT_AT
}

/* After the last row: the scores in place, or the first thing wrong (see scores.h). */
static int aligner_finish(Aligner *a) {
    aligner_flush(a);
    free(a->slots);
    a->slots = NULL;
    assign_shared(a);
    const DataLoader *d = a->d;
    uint64_t bad = UINT64_MAX, missing = UINT64_MAX;   /* the first such example */
    for (uint64_t i = 0; i < a->n_ex && bad == UINT64_MAX; i++) {
        if (a->flags[i] & EX_BAD_COUNT) bad = i;
        else if (!(a->flags[i] & EX_SCORED) && missing == UINT64_MAX) missing = i;
    }
    char id[DATA_ID_MAX];
    if (bad != UINT64_MAX) {   /* its row: the last one given to it */
        uint32_t row = a->row[bad], n_tokens = 0;
        for (size_t k = a->n_bad; k-- > 0;)
            if (a->bad[k].ex == bad && a->bad[k].row == row) { n_tokens = a->bad[k].n_tokens; break; }
        data_example_id(d, bad, id);
        uint32_t made = data_window_seq_len(data_document_length(d, bad), data_example(d, bad).window,
                                            n_tokens);
        return scores_count_error(a->path, row, id, data_example(d, bad).length, made,
                                  data_options(d)->seq_len, n_tokens);
    }
    /* The first line (in file order) beyond what the shards hold: an id the shards hold k
     * times is refused at its (k+1)-th line in file order (the duplicate), whichever of
     * its lines the scores gave to the examples; an id not in the shards at its first.
     * Then the first example that no line scored. */
    if (a->extra != NONE) {
        size_t r = a->extra;
        if (a->extra_times > 1)
            return dr_seterr("%s:%zu: duplicate example id %016llx:%u (first at line %u): the "
                             "shards hold it %u times, the file more often", a->path, r + 2,
                             (unsigned long long)a->extra_doc_id, a->extra_window,
                             a->extra_first + 2, a->extra_times);
        if (a->extra_times == 1)
            return dr_seterr("%s:%zu: duplicate example id %016llx:%u (first at line %u)",
                             a->path, r + 2, (unsigned long long)a->extra_doc_id,
                             a->extra_window, a->extra_first + 2);
        return dr_seterr("%s:%zu: example %016llx:%u is not in the shards", a->path, r + 2,
                         (unsigned long long)a->extra_doc_id, a->extra_window);
    }
    if (missing != UINT64_MAX) {
        data_example_id(d, missing, id);
        return dr_seterr("%s: no score for example %s (in %s); the scores do not match these shards",
                         a->path, id, data_shard_path(d, data_example(d, missing).shard));
    }
    return 0;
}

/* Exact duplicate documents share an id (DESIGN §2.1), so an id may stand for several
 * examples: the file must then hold it as many times. Its scores go to the id's
 * examples in shard order from the lowest score up: the examples are identical (their
 * scores differ at most in the last bits, by their batch slot in dr-score), and the
 * assignment must not depend on the order of the lines, which sort or join may change. */
int scores_align(const Scores *s, const DataLoader *d, double *out) {
    CHECK(s->n < NONE, "%zu score lines: too many", s->n);
    Aligner a;
    aligner_init(&a, d, s->path, out);
    for (size_t r = 0; r < s->n; r++) aligner_line(&a, s->doc_id[r], s->window[r], s->score[r], s->n_tokens[r]);
    int rc = aligner_finish(&a);
    aligner_free(&a);
    return rc;
}

int scores_read_aligned(const char *path, const DataLoader *d, double *out, const char *label) {
    Aligner a;
    aligner_init(&a, d, path, out);
    int rc = read_lines(path, aligner_line, &a, label);
    if (rc == 0) rc = aligner_finish(&a);
    aligner_free(&a);
    return rc;
}
