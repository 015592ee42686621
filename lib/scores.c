/* scores.c — reading, validating and writing scores.tsv (see scores.h). */
#include "scores.h"

#include <float.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "check.h"
#include "progress.h"

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

/* getline with a bound: the length read (the newline included), -1 at the end of the
 * file, -2 when the line runs past SCORES_LINE_MAX bytes */
static ssize_t read_line(char **line, size_t *cap, FILE *f) {
    size_t n = 0;
    int c = EOF;
    errno = 0;
    while ((c = getc_unlocked(f)) != EOF) {
        if (n + 2 > *cap) {
            *cap = *cap ? 2 * *cap : 256;
            *line = xrealloc(*line, *cap);
        }
        (*line)[n++] = (char)c;
        if (c == '\n') break;
        if (n > SCORES_LINE_MAX) return -2;
    }
    if (n == 0) return -1;
    (*line)[n] = 0;
    return (ssize_t)n;
}

int scores_read(const char *path, Scores *s) { return scores_read_shown(path, s, NULL); }

int scores_read_shown(const char *path, Scores *s, const char *label) {
    memset(s, 0, sizeof *s);
    struct stat st;
    if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return dr_seterr("%s: is a directory, not a scores file", path);
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) return dr_seterr("%s: cannot open: %s", path, strerror(errno));
    s->path = xstrdup(path);
    char *line = NULL;
    size_t cap = 0, n_alloc = 0;
    ssize_t got;
    long lineno = 0, blank = 0;   /* blank: the first of the empty lines just read */
    int rc = 0;
    Progress bar;   /* MB of the file; its size unknown (a pipe, stdin): no total */
    struct stat fst;
    uint64_t bytes = 0;
    if (label)
        progress_start(&bar, label, "MB", fstat(fileno(f), &fst) == 0 && S_ISREG(fst.st_mode) ?
                                          (double)fst.st_size / 1e6 : 0);
    while ((got = read_line(&line, &cap, f)) != -1) {
        lineno++;
        if (got > 0) bytes += (uint64_t)got;
        if (label && lineno % 4096 == 0) {
            progress_set_extra(&bar, "%zu scores", s->n);
            progress_update(&bar, (double)bytes / 1e6);
        }
        if (got == -2) {
            rc = dr_seterr("%s:%ld: a line longer than %u bytes: not a scores file", path, lineno,
                           SCORES_LINE_MAX);
            break;
        }
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
         * (refused below as beyond float), below it a zero or subnormal (kept) */
        double score = strtod(fld[1], NULL);
        if (fabs(score) > FLT_MAX) {   /* the weights are computed in the build's float */
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
        if (s->n == n_alloc) {
            n_alloc = n_alloc ? 2 * n_alloc : 1024;
            s->doc_id = xrealloc(s->doc_id, n_alloc * sizeof *s->doc_id);
            s->window = xrealloc(s->window, n_alloc * sizeof *s->window);
            s->score = xrealloc(s->score, n_alloc * sizeof *s->score);
            s->n_tokens = xrealloc(s->n_tokens, n_alloc * sizeof *s->n_tokens);
        }
        s->doc_id[s->n] = doc_id;
        s->window[s->n] = window;
        s->score[s->n] = score;
        s->n_tokens[s->n] = (uint32_t)nt;
        s->n++;
    }
    if (rc == 0 && ferror(f)) rc = dr_seterr("%s: read error: %s", path, strerror(errno));
    if (rc == 0 && lineno == 0) rc = dr_seterr("%s: empty file (expected a header line)", path);
    if (label) {
        if (rc == 0) {
            progress_set_extra(&bar, "%zu scores", s->n);
            progress_update(&bar, (double)bytes / 1e6);
        }
        progress_abort(&bar);   /* the next step's bar, or the error, replaces it */
    }
    free(line);
    if (f != stdin) fclose(f);
    if (rc != 0) scores_free(s);
    return rc;
}

/* Open-addressing hash table from (doc id, window) to the rows with that id, chained
 * (next[]; by score once built, scores_align), with a cursor to the first row of the
 * chain not yet matched. */
typedef struct {
    uint64_t *keys;   /* mixed key; 0 = empty slot (a real key of 0 is remapped) */
    uint32_t *head;   /* first row of the id's chain (file order, then by score) */
    uint32_t *first;  /* first row of the id in file order (for messages) */
    uint32_t *cursor; /* next unmatched row of the id, or NONE */
    size_t mask;
} RowMap;

#define NONE UINT32_MAX

static uint64_t mix_key(uint64_t doc_id, uint32_t window) {
    uint64_t x = doc_id ^ ((uint64_t)window * 0x9e3779b97f4a7c15ull);
    x ^= x >> 31; x *= 0xbf58476d1ce4e5b9ull; x ^= x >> 29;
    return x ? x : 1;
}

/* The slot of (doc_id, window): its own, or the empty one where it would go. */
static size_t find_slot(const RowMap *m, const Scores *s, uint64_t doc_id, uint32_t window) {
    uint64_t k = mix_key(doc_id, window);
    size_t h = k & m->mask;
    for (; m->keys[h] != 0; h = (h + 1) & m->mask) {
        uint32_t q = m->head[h];
        if (m->keys[h] == k && s->doc_id[q] == doc_id && s->window[q] == window) break;
    }
    return h;
}

/* The rows of one id ordered by score, lowest first (equal scores keep file order). */
typedef struct { double score; uint32_t row; } RowByScore;
static int cmp_row_by_score(const void *a, const void *b) {
    const RowByScore *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* Exact duplicate documents share an id (DESIGN §2.1), so an id may stand for several
 * examples: the file must then hold it as many times. Its scores go to the id's
 * examples in shard order from the lowest score up: the examples are identical (their
 * scores differ at most in the last bits, by their batch slot in dr-score), and the
 * assignment must not depend on the order of the lines, which sort or join may change. */
int scores_align(const Scores *s, const DataLoader *d, double *out) {
    return scores_align_shown(s, d, out, NULL);
}

int scores_align_shown(const Scores *s, const DataLoader *d, double *out, const char *label) {
    CHECK(s->n < NONE, "%zu score lines: too many", s->n);
    uint64_t n_ex = data_num_examples(d);
    Progress bar;   /* examples matched */
    if (label) {
        progress_start(&bar, label, "examples", (double)n_ex);
        progress_show(&bar);   /* on a terminal: the table of the lines is being built */
    }
    size_t cap = 16;
    while (cap < 2 * (s->n + 1)) cap <<= 1;
    RowMap m = { xcalloc(cap, sizeof(uint64_t)), xmalloc(cap * sizeof(uint32_t)),
                 xmalloc(cap * sizeof(uint32_t)), xmalloc(cap * sizeof(uint32_t)), cap - 1 };
    uint32_t *next = xmalloc((s->n ? s->n : 1) * sizeof *next);
    uint32_t *tail = xmalloc(cap * sizeof *tail);
    for (size_t r = 0; r < s->n; r++) {
        next[r] = NONE;
        size_t h = find_slot(&m, s, s->doc_id[r], s->window[r]);
        if (m.keys[h] == 0) {
            m.keys[h] = mix_key(s->doc_id[r], s->window[r]);
            m.head[h] = m.first[h] = m.cursor[h] = tail[h] = (uint32_t)r;
        } else {
            next[tail[h]] = (uint32_t)r;
            tail[h] = (uint32_t)r;
        }
    }
    free(tail);
    /* each id's chain of rows, reordered by score */
    RowByScore *chain = NULL;
    size_t chain_cap = 0;
    for (size_t h = 0; h <= m.mask; h++) {
        if (m.keys[h] == 0 || next[m.head[h]] == NONE) continue;
        size_t k = 0;
        for (uint32_t q = m.head[h]; q != NONE; q = next[q]) {
            if (k == chain_cap) {
                chain_cap = chain_cap ? 2 * chain_cap : 16;
                chain = xrealloc(chain, chain_cap * sizeof *chain);
            }
            chain[k++] = (RowByScore){ s->score[q], q };
        }
        qsort(chain, k, sizeof *chain, cmp_row_by_score);
        for (size_t j = 0; j + 1 < k; j++) next[chain[j].row] = chain[j + 1].row;
        next[chain[k - 1].row] = NONE;
        m.head[h] = m.cursor[h] = chain[0].row;
    }
    free(chain);
    uint8_t *used = xcalloc(s->n ? s->n : 1, 1);
    int rc = 0;
    if (label) progress_start(&bar, label, "examples", (double)n_ex);   /* the rate: matching only */
    uint64_t missing = UINT64_MAX;   /* the first example without a score */
    for (uint64_t i = 0; i < n_ex && rc == 0; i++) {
        const DataExample *e = data_example(d, i);
        uint64_t doc_id = data_example_doc_id(d, i);
        size_t h = find_slot(&m, s, doc_id, e->window);
        uint32_t row = m.keys[h] ? m.cursor[h] : NONE;
        if (row == NONE) {
            if (missing == UINT64_MAX) missing = i;
            continue;
        }
        m.cursor[h] = next[row];
        if (s->n_tokens[row] != e->length) {
            char id[DATA_ID_MAX];
            data_example_id(d, i, id);
            rc = dr_seterr("%s:%lu: example %s has %u tokens in the shards, not %u (another "
                           "data.seq_len?)", s->path, (unsigned long)row + 2, id, e->length,
                           s->n_tokens[row]);
            break;
        }
        used[row] = 1;
        out[i] = s->score[row];
        if (label && (i + 1) % 4096 == 0) progress_update(&bar, (double)(i + 1));
    }
    if (label) {
        if (rc == 0) progress_update(&bar, (double)n_ex);
        progress_abort(&bar);   /* the next step's bar, or the error, replaces it */
    }
    /* The first line (in file order) beyond what the shards hold: an id the shards hold k
     * times is refused at its (k+1)-th line in file order (the duplicate), whichever of
     * its lines the scores gave to the examples; an id not in the shards at its first.
     * Then the first example that no line scored. */
    uint32_t *times = NULL, *seen = NULL;   /* per slot: examples the id matched, lines so far */
    for (size_t r = 0; r < s->n && rc == 0; r++) {
        if (used[r] && !times) continue;   /* nothing refused before the first unused line */
        if (!times) {
            times = xcalloc(m.mask + 1, sizeof *times);
            seen = xcalloc(m.mask + 1, sizeof *seen);
            for (size_t q = 0; q < s->n; q++)
                if (used[q]) times[find_slot(&m, s, s->doc_id[q], s->window[q])]++;
            for (size_t q = 0; q < r; q++) seen[find_slot(&m, s, s->doc_id[q], s->window[q])]++;
        }
        size_t h = find_slot(&m, s, s->doc_id[r], s->window[r]);
        if (++seen[h] <= times[h]) continue;
        uint32_t first = m.first[h];
        if (times[h] > 1)
            rc = dr_seterr("%s:%zu: duplicate example id %016llx:%u (first at line %u): the "
                           "shards hold it %u times, the file more often", s->path, r + 2,
                           (unsigned long long)s->doc_id[r], s->window[r], first + 2, times[h]);
        else if (times[h] == 1)
            rc = dr_seterr("%s:%zu: duplicate example id %016llx:%u (first at line %u)",
                           s->path, r + 2, (unsigned long long)s->doc_id[r], s->window[r],
                           first + 2);
        else
            rc = dr_seterr("%s:%zu: example %016llx:%u is not in the shards", s->path, r + 2,
                           (unsigned long long)s->doc_id[r], s->window[r]);
    }
    free(times);
    free(seen);
    if (rc == 0 && missing != UINT64_MAX) {
        char id[DATA_ID_MAX];
        data_example_id(d, missing, id);
        rc = dr_seterr("%s: no score for example %s (in %s); the scores do not match these shards",
                       s->path, id, data_shard_path(d, data_example(d, missing)->shard));
    }
    free(used);
    free(next);
    free(m.keys);
    free(m.head);
    free(m.first);
    free(m.cursor);
    return rc;
}
