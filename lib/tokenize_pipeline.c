/* tokenize_pipeline.c — dr-tokenize's reading / encoding / writing pipeline.
 *
 * Threads: one reader (fills batches of ~1 MiB of raw input, split into records: a line
 * or a whole file), N workers (parse JSON, hash, encode a whole batch with their own
 * TokEncoder), and the calling thread, which takes the batches back in input order and
 * writes the shards (lib/shard.h, compressing on the shard writer's background thread).
 * A ring of 2N + 2 slots bounds the memory in flight. Since batches are cut by the reader
 * alone and written in order, the output does not depend on the thread count.
 * Errors found by the reader or a worker travel inside their batch, so the first error
 * in input order is the one reported.
 * Must never: write a document out of order, leave a temp file, keep going after an error.
 */
#include "tokenize_pipeline.h"
#include "check.h"
#include "json.h"
#include "progress.h"
#include "inputs.h"
#include "shard.h"
#include "textin.h"
#include "unicode.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define BATCH_BYTES (1u << 20)

void tokenize_options_default(TokenizeOptions *o) {
    memset(o, 0, sizeof *o);
    o->prefix = "shard";
    o->field = "text";
    o->format = TP_AUTO;
    o->invalid = TOK_UTF8_REPLACE;
    o->shard_bytes = 64ull << 20;
    o->threads = 2;
    o->zstd_level = DRS_ZSTD_LEVEL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- inputs ------------------------------------------------------------------------ */

typedef struct {
    char *path;       /* "-" for stdin */
    char *name;       /* for messages */
    char *source;     /* default source name */
    TpFormat format;
    uint64_t size;    /* bytes (0 for stdin), for the progress line */
    int compressed;   /* gzip or zstd (by its first bytes): its text's size is unknown */
} InputFile;

typedef struct { InputFile *v; size_t n, cap; } InputList;

/* A source name as the shard keeps it: TAB, newline, CR and NUL bytes (which would break
 * the lines of a manifest, scores.tsv or dr-cat --list) and bytes that are not valid UTF-8
 * (which a UTF-8 reader of those files would refuse) become '_'. */
static void clean_source_bytes(char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = uni_decode((const unsigned char *)s + i, n - i, &cp);
        if (cp == UINT32_MAX || cp == '\t' || cp == '\n' || cp == '\r' || cp == 0)
            memset(s + i, '_', len);
        i += len;
    }
}

static void clean_source(char *s) { clean_source_bytes(s, strlen(s)); }

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* The length of path without a compression suffix (.gz, .zst, .zstd): "c4.json.gz" is
 * read as "c4.json" for its format and its source name. A file named just ".gz" keeps its
 * name (there is nothing before the suffix to be the name). */
static size_t uncompressed_len(const char *path) {
    static const char *const sufs[] = {".gz", ".zst", ".zstd"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof sufs / sizeof sufs[0]; i++) {
        size_t m = strlen(sufs[i]);
        if (ends_with(path, sufs[i]) && n > m && path[n - m - 1] != '/') return n - m;
    }
    return n;
}

static char *base_name(const char *path, int strip_ext) {
    size_t n = strip_ext ? uncompressed_len(path) : strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    char *s = xmalloc(n - b + 1);
    memcpy(s, path + b, n - b);
    s[n - b] = 0;
    if (strip_ext) {
        char *dot = strrchr(s, '.');
        if (dot && dot != s) *dot = 0;
    }
    clean_source(s);
    return s;
}

static void input_add(InputList *l, const char *path, const char *source, TpFormat forced) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    InputFile *f = &l->v[l->n++];
    f->path = xstrdup(path);
    f->name = xstrdup(strcmp(path, "-") == 0 ? "stdin" : path);
    f->source = xstrdup(source);
    struct stat st;
    f->size = strcmp(path, "-") != 0 && stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    f->compressed = f->size > 0 && textin_kind_of_file(path) != TEXTIN_PLAIN;
    char *plain = xstrdup(path);   /* the name without .gz / .zst */
    plain[uncompressed_len(path)] = 0;
    if (forced != TP_AUTO) f->format = forced;
    else if (strcmp(path, "-") == 0 || ends_with(plain, ".jsonl") || ends_with(plain, ".ndjson") ||
             ends_with(plain, ".json"))
        f->format = TP_JSONL;
    else f->format = TP_TEXT;
    free(plain);
}

/* Bytes of the inputs for the progress bar; 0 (unknown) when one is compressed, whose
 * text is longer than its file. */
static uint64_t inputs_bytes(const InputList *l) {
    uint64_t total = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].compressed) return 0;
        total += l->v[i].size;
    }
    return total;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Token shards (*.drs) are never text: a directory walk skips them, and one named as an
 * input is refused. */
static int is_shard_name(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && strcmp(path + n - 4, ".drs") == 0;
}

static int walk_dir(InputList *l, const char *dir, const char *source, TpFormat forced, int depth) {
    if (depth > 64) return dr_seterr("%s: directories nested too deep", dir);
    DIR *d = opendir(dir);
    if (!d) return dr_seterr("%s: cannot open directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) { cap = cap ? 2 * cap : 64; names = xrealloc(names, cap * sizeof *names); }
        names[n++] = dr_path_join(dir, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (rc == 0) {
            if (stat(names[i], &st) != 0) rc = dr_seterr("%s: cannot open: %s", names[i], strerror(errno));
            else if (S_ISDIR(st.st_mode)) rc = walk_dir(l, names[i], source, forced, depth + 1);
            else if (S_ISREG(st.st_mode) && !is_shard_name(names[i]))   /* e.g. an -o inside */
                input_add(l, names[i], source, forced);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static void inputs_free(InputList *l) {
    for (size_t i = 0; i < l->n; i++) { free(l->v[i].path); free(l->v[i].name); free(l->v[i].source); }
    free(l->v);
}


/* One file twice (named twice, or a directory and a file in it, or named and also
 * redirected to stdin: `- a.jsonl < a.jsonl`) would tokenize its documents twice:
 * refused, as dr-split refuses a shard given twice. Only regular files count (a FIFO or
 * stdin given twice reads once: only the first '-' counts). */
static int check_no_repeats(const InputList *l) {
    FileKey *k = xmalloc((l->n ? l->n : 1) * sizeof *k);
    size_t m = 0;
    int stdin_seen = 0;
    for (size_t i = 0; i < l->n; i++) {
        struct stat st;
        int is_stdin = strcmp(l->v[i].path, "-") == 0;
        if (is_stdin && stdin_seen) continue;
        stdin_seen |= is_stdin;
        if ((is_stdin ? fstat(STDIN_FILENO, &st) : stat(l->v[i].path, &st)) == 0 && S_ISREG(st.st_mode))
            k[m++] = (FileKey){st.st_dev, st.st_ino, i};
    }
    qsort(k, m, sizeof *k, file_key_cmp);
    int rc = 0;
    for (size_t a = 0; a + 1 < m && rc == 0; a++)
        if (k[a + 1].dev == k[a].dev && k[a + 1].ino == k[a].ino) {
            const char *x = l->v[k[a].i].name, *y = l->v[k[a + 1].i].name;
            rc = strcmp(x, y) == 0
                     ? dr_seterr("%s is given twice: its documents would count twice", y)
                     : dr_seterr("%s is given twice (also as %s): its documents would count twice", y, x);
        }
    free(k);
    return rc;
}

static int expand_inputs(InputList *l, const TokenizeOptions *o, int n, char **args) {
    static char dash[] = "-";
    char *stdin_only[] = {dash};
    if (n == 0) { n = 1; args = stdin_only; }
    for (int i = 0; i < n; i++) {
        const char *a = args[i];
        if (strcmp(a, "-") == 0) {
            input_add(l, a, o->source ? o->source : "stdin", o->format);
            continue;
        }
        struct stat st;
        if (stat(a, &st) != 0) return dr_seterr("%s: cannot open: %s", a, strerror(errno));
        if (S_ISDIR(st.st_mode)) {
            char *src = o->source ? xstrdup(o->source) : base_name(a, 0);
            if (!o->source && (strcmp(src, ".") == 0 || strcmp(src, "..") == 0)) {
                char *real = realpath(a, NULL);   /* "dr-tokenize ." names the directory */
                if (real) { free(src); src = base_name(real, 0); free(real); }
            }
            size_t before = l->n;
            int rc = walk_dir(l, a, src, o->format, 0);
            free(src);
            if (rc != 0) return -1;
            if (l->n == before) return dr_seterr("%s: directory holds no files", a);
        } else {
            /* a shard named as an input would be tokenized as one binary "text" (and the
             * output of the same name would replace it): never what was meant */
            if (is_shard_name(a))
                return dr_seterr("%s: a token shard (*.drs), not text: dr-tokenize reads text "
                                 "(dr-cat prints a shard's documents)", a);
            char *src = o->source ? xstrdup(o->source) : base_name(a, 1);
            input_add(l, a, src, o->format);
            free(src);
        }
    }
    for (size_t i = 0; i < l->n; i++) clean_source(l->v[i].source);
    return check_no_repeats(l);
}

/* ---- batches ----------------------------------------------------------------------- */

typedef struct { size_t off, len; uint64_t line; uint32_t input; } Record;

typedef struct {
    uint64_t id;
    size_t tok_off, n_tok;     /* into tokens (encode) */
    size_t text_off, n_text;   /* into texts (train) */
    long src_off;              /* into strings, or -1: the input's default source */
    uint32_t input;
    int invalid;
} DocOut;

enum { B_DATA, B_EOF, B_ERROR };

typedef struct {
    int kind;
    char *buf;
    size_t len, cap;
    uint64_t raw;              /* input bytes it covers (for progress) */
    Record *recs;
    size_t n_recs, cap_recs;
    char *error;               /* reader or worker error (first in record order) */
    /* results */
    TokenBuf tokens;
    ByteBuf texts;
    ByteBuf strings;
    DocOut *docs;
    size_t n_docs, cap_docs;
    uint64_t empty;
} Batch;

static Batch *batch_new(int kind) {
    Batch *b = xcalloc(1, sizeof *b);
    b->kind = kind;
    return b;
}

static void batch_free(Batch *b) {
    if (!b) return;
    free(b->buf); free(b->recs); free(b->error); free(b->docs);
    tokenbuf_free(&b->tokens); bytebuf_free(&b->texts); bytebuf_free(&b->strings);
    free(b);
}

/* 0, or -1 when the memory is exhausted (the reader names the input and line) */
static int batch_reserve(Batch *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : BATCH_BYTES + 65536;
    while (cap < b->len + extra) cap *= 2;
    char *buf = realloc(b->buf, cap);
    if (!buf) return -1;
    b->buf = buf;
    b->cap = cap;
    return 0;
}

static void batch_record(Batch *b, size_t off, size_t len, uint64_t line, uint32_t input) {
    if (b->n_recs == b->cap_recs) {
        b->cap_recs = b->cap_recs ? 2 * b->cap_recs : 1024;
        b->recs = xrealloc(b->recs, b->cap_recs * sizeof *b->recs);
    }
    b->recs[b->n_recs++] = (Record){off, len, line, input};
}

static void batch_seterr(Batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void batch_seterr(Batch *b, const char *fmt, ...) {
    if (b->error) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->error = xstrdup(msg);
}

/* ---- the ring ---------------------------------------------------------------------- */

enum { SLOT_FREE, SLOT_FILLED, SLOT_WORKING, SLOT_DONE };

typedef struct {
    const Tokenizer *tok;      /* NULL: collect texts (training) */
    const TokenizeOptions *o;
    const InputList *inputs;
    pthread_mutex_t mu;
    pthread_cond_t cv_filled, cv_done, cv_free;
    Batch **slot;
    int *state;
    size_t n_slots;
    uint64_t next_fill, next_work, next_write;
    int stop;                  /* writer gave up: reader and workers finish */
} Pipe;

/* Reader: hands batch b (sequence next_fill) to the workers. Returns 0, or -1 on stop. */
static int pipe_put(Pipe *p, Batch *b) {
    pthread_mutex_lock(&p->mu);
    size_t s = p->next_fill % p->n_slots;
    while (p->state[s] != SLOT_FREE && !p->stop) pthread_cond_wait(&p->cv_free, &p->mu);
    if (p->stop) { pthread_mutex_unlock(&p->mu); batch_free(b); return -1; }
    b->raw = b->len;
    p->slot[s] = b;
    p->state[s] = SLOT_FILLED;
    p->next_fill++;
    pthread_cond_broadcast(&p->cv_filled);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* ---- reader -------------------------------------------------------------------------- */

/* The most bytes of one record (a line, or a whole file with --format text) read as a
 * document, where the byte tokenizer's exact bound below does not apply: with the GPT-2
 * and trained BPE tokenizers, in JSON lines, and when training a BPE. A longer record is
 * refused while it is read, not gathered whole first (a line of /dev/zero, or a sparse
 * 40 GB file, would fill the memory before a named error). 1 GiB, about the most tokens
 * one shard block holds (drs_max_doc_tokens): all it refuses that a block could hold is a
 * document of 1 to a few GiB of text (a GPT-2 token is about 4 bytes), far beyond any
 * training window. The messages say "1 GiB". */
#define DOC_MAX_BYTES ((size_t)1 << 30)

/* max_tokens: with the byte tokenizer (at least a token per byte), the most tokens of a
 * document; in the raw formats (lines, text) a longer line or file is refused while it is
 * read, in those exact terms; 0: other tokenizers, training */
typedef struct { Pipe *p; Batch *cur; size_t max_tokens; } Reader;

/* The byte tokenizer's bound on the records of input `in`, 0 if none: then DOC_MAX_BYTES */
static size_t record_max_tokens(const Reader *r, const InputFile *in) {
    return in->format == TP_JSONL ? 0 : r->max_tokens;
}
/* The longest record of input `in` the reader takes (+ 4: a BOM, a CR, never a false
 * refusal by the byte tokenizer's bound). */
static size_t record_max(const Reader *r, const InputFile *in) {
    size_t max_tok = record_max_tokens(r, in);
    return max_tok ? max_tok + 4 : DOC_MAX_BYTES;
}

static int reader_flush(Reader *r) {
    Batch *b = r->cur;
    r->cur = batch_new(B_DATA);
    return pipe_put(r->p, b);
}

/* Stops the reading with one error. The current batch keeps its first `keep` bytes and
 * its records, handed over first, so that an earlier line's error still comes first. */
static void reader_fail(Reader *r, size_t keep, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reader_fail(Reader *r, size_t keep, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->cur->len = keep;
    if (r->cur->n_recs && reader_flush(r) != 0) return;
    Batch *e = batch_new(B_ERROR);
    batch_seterr(e, "%s", msg);
    pipe_put(r->p, e);
}

/* One file as one document: appended whole to the current batch. */
static int read_whole(Reader *r, FILE *f, const InputFile *in, uint32_t idx) {
    if (r->cur->len >= BATCH_BYTES && reader_flush(r) != 0) return -1;
    Batch *b = r->cur;
    size_t start = b->len, max_raw = record_max(r, in);
    for (;;) {
        if (b->len - start > max_raw) {
            if (!record_max_tokens(r, in))
                reader_fail(r, start, "%s: a file of more than %zu bytes is too long for one document "
                            "(at most 1 GiB)", in->name, max_raw);
            else
                reader_fail(r, start, "%s: a document of more than %zu tokens is too long for one shard block "
                            "(at most %zu)", in->name, max_raw - 4, max_raw - 4);
            return -1;
        }
        if (batch_reserve(b, 1 << 16) != 0) {
            reader_fail(r, start, "%s: a document of more than %zu bytes does not fit in memory", in->name,
                        b->len - start);
            return -1;
        }
        size_t got = fread(b->buf + b->len, 1, b->cap - b->len, f);
        b->len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        Batch *e = batch_new(B_ERROR);
        batch_seterr(e, "%s: %s", in->name, textin_error(f));
        pipe_put(r->p, e);
        return -1;
    }
    batch_record(b, start, b->len - start, 0, idx);
    return 0;
}

/* Line-based formats: each line a record; a batch ends after BATCH_BYTES. */
static int read_lines(Reader *r, FILE *f, const InputFile *in, uint32_t idx) {
    uint64_t line = 1;
    Batch *b = r->cur;
    size_t line_start = b->len, scan = b->len, max_raw = record_max(r, in);
    for (;;) {
        if (b->len - line_start > max_raw) {
            if (!record_max_tokens(r, in))
                reader_fail(r, line_start, "%s:%llu: a line of more than %zu bytes is too long for one document "
                            "(at most 1 GiB)", in->name, (unsigned long long)line, max_raw);
            else
                reader_fail(r, line_start, "%s:%llu: a document of more than %zu tokens is too long for one shard "
                            "block (at most %zu)", in->name, (unsigned long long)line, max_raw - 4, max_raw - 4);
            return -1;
        }
        if (batch_reserve(b, 1 << 16) != 0) {
            reader_fail(r, line_start, "%s:%llu: a line of more than %zu bytes does not fit in memory", in->name,
                        (unsigned long long)line, b->len - line_start);
            return -1;
        }
        size_t got = fread(b->buf + b->len, 1, b->cap - b->len, f);
        if (got == 0) break;
        b->len += got;
        char *nl;
        while ((nl = memchr(b->buf + scan, '\n', b->len - scan))) {
            size_t end = (size_t)(nl - b->buf);
            size_t cr = end > line_start && b->buf[end - 1] == '\r';   /* "\r\n" ends it too */
            batch_record(b, line_start, end - line_start - cr, line++, idx);
            line_start = scan = end + 1;
        }
        scan = b->len;
        if (line_start >= BATCH_BYTES) {         /* hand over; move the partial line */
            Batch *nb = batch_new(B_DATA);
            size_t tail = b->len - line_start;
            if (batch_reserve(nb, tail + (1 << 16)) != 0) {
                batch_free(nb);
                reader_fail(r, line_start, "%s:%llu: a line of more than %zu bytes does not fit in memory",
                            in->name, (unsigned long long)line, tail);
                return -1;
            }
            memcpy(nb->buf, b->buf + line_start, tail);
            nb->len = tail;
            b->len = line_start;
            r->cur = nb;
            if (pipe_put(r->p, b) != 0) return -1;
            b = nb;
            line_start = 0;
            scan = tail;
        }
    }
    if (ferror(f)) {
        Batch *e = batch_new(B_ERROR);
        batch_seterr(e, "%s:%llu: %s", in->name, (unsigned long long)line, textin_error(f));
        pipe_put(r->p, e);
        return -1;
    }
    if (b->len > line_start) batch_record(b, line_start, b->len - line_start, line, idx);
    return 0;
}

static void *reader_main(void *arg) {
    Pipe *p = arg;
    Reader r = {p, batch_new(B_DATA), 0};
    if (p->tok && tokenizer_kind(p->tok) == TOK_BYTE)
        r.max_tokens = drs_max_doc_tokens(tokenizer_vocab_size(p->tok));
    for (size_t i = 0; i < p->inputs->n; i++) {
        const InputFile *in = &p->inputs->v[i];
        FILE *f = textin_open(in->path, NULL);   /* gzip and zstd decoded on the way */
        if (!f) {
            if (r.cur->n_recs && reader_flush(&r) != 0) goto out;
            Batch *e = batch_new(B_ERROR);
            batch_seterr(e, "%s", dr_lasterr());
            pipe_put(p, e);
            goto out;
        }
        int rc = in->format == TP_TEXT ? read_whole(&r, f, in, (uint32_t)i)
                                       : read_lines(&r, f, in, (uint32_t)i);
        textin_close(f);
        if (rc != 0) goto out;
    }
    if (r.cur->n_recs && reader_flush(&r) != 0) goto out;
    pipe_put(p, batch_new(B_EOF));
out:
    batch_free(r.cur);
    return NULL;
}

/* ---- workers ------------------------------------------------------------------------- */

static void doc_push(Batch *b, DocOut d) {
    if (b->n_docs == b->cap_docs) {
        b->cap_docs = b->cap_docs ? 2 * b->cap_docs : 256;
        b->docs = xrealloc(b->docs, b->cap_docs * sizeof *b->docs);
    }
    b->docs[b->n_docs++] = d;
}

static int all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* What a line that does not parse as a JSON object may mean: a pretty-printed or
 * array-form JSON file given as JSON lines. */
static const char *json_lines_hint(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\t' || *s == '\r')) { s++; n--; }
    if (n && (*s == '{' || *s == '['))
        return " (JSON-lines input holds one whole JSON object per line; a pretty-printed or"
               " array-form .json file is not read)";
    return "";
}

/* Invalid UTF-8 in a JSON line's text that its raw bytes do not have came from a \u
 * escape of an unpaired surrogate (json.h: JSON_LONE_SURROGATE_BYTES). */
static const char *escape_note(const InputFile *in, const char *raw, size_t n) {
    if (in->format != TP_JSONL || uni_first_invalid(raw, n) < n) return "";
    return " of the text field (a \\u escape of an unpaired surrogate, \\uD800..\\uDFFF)";
}

static void process_batch(const Pipe *p, TokEncoder *enc, Batch *b) {
    const TokenizeOptions *o = p->o;
    for (size_t k = 0; k < b->n_recs && !b->error; k++) {
        const Record *rec = &b->recs[k];
        const InputFile *in = &p->inputs->v[rec->input];
        const char *text = b->buf + rec->off;
        size_t len = rec->len;
        long src_off = -1;
        JsonDoc *jd = NULL;
        if (in->format != TP_TEXT) {
            if (rec->line == 1 && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) { text += 3; len -= 3; }
        }
        if (in->format == TP_JSONL) {
            if (all_space(text, len)) continue;
            /* the numbers are not used (±inf beyond a double, as Python reads them); a
             * lone \uD800 becomes invalid UTF-8 bytes, for the --invalid-utf8 policy */
            jd = json_parse(text, len, JSON_KEEP_INVALID_UTF8 | JSON_LONE_SURROGATE_BYTES | JSON_HUGE_NUMBER_INF);
            if (!jd) {
                batch_seterr(b, "%s:%llu: malformed JSON: %s%s", in->name, (unsigned long long)rec->line,
                             dr_lasterr(), json_lines_hint(text, len));
                break;
            }
            const JsonValue *root = json_root(jd);
            const JsonValue *v = root->type == JSON_OBJECT ? json_get_path(root, o->field) : NULL;
            if (root->type != JSON_OBJECT) {
                batch_seterr(b, "%s:%llu: expected a JSON object, found %s%s", in->name,
                             (unsigned long long)rec->line, json_type_name(root->type),
                             json_lines_hint(text, len));
            } else if (!v) {
                batch_seterr(b, "%s:%llu: no field \"%s\"", in->name, (unsigned long long)rec->line, o->field);
            } else if (v->type != JSON_STRING) {
                batch_seterr(b, "%s:%llu: field \"%s\" is not a string (found %s)", in->name,
                             (unsigned long long)rec->line, o->field, json_type_name(v->type));
            }
            if (b->error) { json_free(jd); break; }
            text = v->str;
            len = v->len;
            if (o->source_field) {
                /* a line without the key (or with "") takes the input's default source;
                 * any other non-string is refused, as for the text field */
                const JsonValue *sv = json_get_path(root, o->source_field);
                if (sv && sv->type != JSON_STRING) {
                    batch_seterr(b, "%s:%llu: source field \"%s\" is not a string (found %s)",
                                 in->name, (unsigned long long)rec->line, o->source_field,
                                 json_type_name(sv->type));
                    json_free(jd);
                    break;
                }
                if (sv && sv->len > 0) {
                    src_off = (long)b->strings.n;
                    size_t at = b->strings.n;
                    bytebuf_append(&b->strings, sv->str, sv->len);
                    bytebuf_append(&b->strings, "", 1);
                    clean_source_bytes(b->strings.bytes + at, sv->len);
                }
            }
        }
        if (len == 0) { b->empty++; json_free(jd); continue; }   /* an empty text, --lines line or file */
        DocOut d = {XXH64(text, len, 0), 0, 0, 0, 0, src_off, rec->input, 0};
        if (enc) {
            /* the byte tokenizer gives at least a token per byte: a document too long for
             * a block is refused before it is encoded (a 1.1 GB line took 19 s and 6.7 GB
             * to be refused after encoding) */
            size_t max_tok = drs_max_doc_tokens(tokenizer_vocab_size(p->tok));
            size_t n_tok = tokenizer_kind(p->tok) == TOK_BYTE && len > max_tok ? len : 0;
            d.tok_off = b->tokens.n;
            if (!n_tok && tok_encoder_encode(enc, text, len, o->invalid, &b->tokens, &d.invalid) != 0) {
                if (in->format == TP_TEXT) batch_seterr(b, "%s: %s", in->name, dr_lasterr());
                else batch_seterr(b, "%s:%llu: %s%s", in->name, (unsigned long long)rec->line, dr_lasterr(),
                                  escape_note(in, b->buf + rec->off, rec->len));
                json_free(jd);
                break;
            }
            d.n_tok = n_tok ? n_tok : b->tokens.n - d.tok_off;
            d.n_text = len;
            if (d.n_tok > max_tok) {
                if (in->format == TP_TEXT)
                    batch_seterr(b, "%s: a document of %s%zu tokens is too long for one shard block (at most %zu)",
                                 in->name, n_tok ? "at least " : "", d.n_tok, max_tok);
                else
                    batch_seterr(b, "%s:%llu: a document of %s%zu tokens is too long for one shard block (at most %zu)",
                                 in->name, (unsigned long long)rec->line, n_tok ? "at least " : "", d.n_tok, max_tok);
                json_free(jd);
                break;
            }
        } else {
            /* training refuses invalid UTF-8 here, where the file and line are known
             * (tokenizer_train_bpe only knows the text's index among all documents) */
            size_t bad = o->invalid == TOK_UTF8_ERROR ? uni_first_invalid(text, len) : len;
            if (bad < len) {
                if (in->format == TP_TEXT)
                    batch_seterr(b, "%s: invalid UTF-8 at byte offset %zu", in->name, bad);
                else
                    batch_seterr(b, "%s:%llu: invalid UTF-8 at byte offset %zu%s", in->name,
                                 (unsigned long long)rec->line, bad, escape_note(in, b->buf + rec->off, rec->len));
                json_free(jd);
                break;
            }
            d.text_off = b->texts.n;
            d.n_text = len;
            bytebuf_append(&b->texts, text, len);
        }
        doc_push(b, d);
        json_free(jd);
    }
    /* the raw input is no longer needed */
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}

static void *worker_main(void *arg) {
    Pipe *p = arg;
    TokEncoder *enc = p->tok ? tok_encoder_new(p->tok) : NULL;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        size_t s = p->next_work % p->n_slots;
        if (p->stop) break;
        if (p->state[s] != SLOT_FILLED) { pthread_cond_wait(&p->cv_filled, &p->mu); continue; }
        Batch *b = p->slot[s];
        p->state[s] = SLOT_WORKING;
        p->next_work++;
        pthread_mutex_unlock(&p->mu);
        if (b->kind == B_DATA) process_batch(p, enc, b);
        pthread_mutex_lock(&p->mu);
        p->state[s] = SLOT_DONE;
        pthread_cond_broadcast(&p->cv_done);
        /* after an EOF or error batch nothing more comes: wait for stop */
    }
    pthread_mutex_unlock(&p->mu);
    tok_encoder_free(enc);
    return NULL;
}

/* ---- driver ------------------------------------------------------------------------ */

typedef struct {
    Pipe p;
    pthread_t reader;
    pthread_t *workers;
    int n_workers;
} Running;

static void pipeline_start(Running *run, const Tokenizer *tok, const TokenizeOptions *o,
                           const InputList *inputs) {
    Pipe *p = &run->p;
    memset(p, 0, sizeof *p);
    p->tok = tok;
    p->o = o;
    p->inputs = inputs;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_filled, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    pthread_cond_init(&p->cv_free, NULL);
    run->n_workers = o->threads > 0 ? o->threads : 1;
    p->n_slots = 2 * (size_t)run->n_workers + 2;
    p->slot = xcalloc(p->n_slots, sizeof *p->slot);
    p->state = xcalloc(p->n_slots, sizeof *p->state);
    run->workers = xcalloc((size_t)run->n_workers, sizeof *run->workers);
    CHECK(pthread_create(&run->reader, NULL, reader_main, p) == 0, "pthread_create failed");
    for (int i = 0; i < run->n_workers; i++)
        CHECK(pthread_create(&run->workers[i], NULL, worker_main, p) == 0, "pthread_create failed");
}

/* Next batch in input order (the caller frees it with pipeline_release). */
static Batch *pipeline_next(Running *run) {
    Pipe *p = &run->p;
    pthread_mutex_lock(&p->mu);
    size_t s = p->next_write % p->n_slots;
    while (p->state[s] != SLOT_DONE) pthread_cond_wait(&p->cv_done, &p->mu);
    Batch *b = p->slot[s];
    p->slot[s] = NULL;
    p->state[s] = SLOT_FREE;
    p->next_write++;
    pthread_cond_broadcast(&p->cv_free);
    pthread_mutex_unlock(&p->mu);
    return b;
}

static void pipeline_stop(Running *run) {
    Pipe *p = &run->p;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv_filled);
    pthread_cond_broadcast(&p->cv_free);
    pthread_cond_broadcast(&p->cv_done);
    pthread_mutex_unlock(&p->mu);
    pthread_join(run->reader, NULL);
    for (int i = 0; i < run->n_workers; i++) pthread_join(run->workers[i], NULL);
    for (size_t i = 0; i < p->n_slots; i++) batch_free(p->slot[i]);
    free(p->slot);
    free(p->state);
    free(run->workers);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_filled);
    pthread_cond_destroy(&p->cv_done);
    pthread_cond_destroy(&p->cv_free);
}

static int no_documents(const InputList *in, uint64_t empty) {
    char what[1024];   /* the inputs (the files found in a directory): "a, b, c and 2 more" */
    const char **names = xmalloc((in->n + 1) * sizeof *names);
    for (size_t i = 0; i < in->n; i++) names[i] = in->v[i].name;
    dr_join_names(what, sizeof what, names, in->n, 3);
    free(names);
    if (empty) return dr_seterr("%s: no documents (%llu empty one%s skipped)", what, (unsigned long long)empty,
                                empty == 1 ? "" : "s");
    return dr_seterr("%s: no documents", what);
}

/* ---- shards -------------------------------------------------------------------------- */

typedef struct {
    const Tokenizer *tok;
    const TokenizeOptions *o;
    DrsWriter *w;
    DrOutputSet done;          /* completed shards, under temporary names until the end */
} ShardOut;

static char *shard_path(const TokenizeOptions *o, size_t k) { return drs_numbered_path(o->out_dir, o->prefix, k); }

static int shard_close(ShardOut *so) {
    if (!so->w) return 0;
    DrsWriter *w = so->w;
    so->w = NULL;
    return drs_writer_finish(w, &so->done);
}

static int shard_add(ShardOut *so, uint64_t id, const char *source, const uint32_t *tokens, size_t n) {
    uint32_t width = tokenizer_vocab_size(so->tok) <= 65535 ? 2 : 4;
    /* --shard-size counts uncompressed token bytes (docs/formats.md §1), not the file's
     * size: a shard of compressible text must not hold several times what was asked */
    if (so->w && drs_writer_docs(so->w) > 0 &&
        (drs_writer_tokens(so->w) + (uint64_t)n) * width > so->o->shard_bytes)
        if (shard_close(so) != 0) return -1;
    if (!so->w) {
        char *path = shard_path(so->o, so->done.n);
        so->w = drs_writer_open(path, tokenizer_vocab_size(so->tok), tokenizer_fingerprint(so->tok),
                                tokenizer_spec(so->tok));
        free(path);
        if (!so->w) return -1;
        drs_writer_set_level(so->w, so->o->zstd_level);
        drs_writer_set_background(so->w, 1);
    }
    return drs_writer_add(so->w, id, source, tokens, n);
}

int tokenize_run(const Tokenizer *t, const TokenizeOptions *o, int n_inputs, char **inputs,
                 FILE *paths_out, TokenizeStats *st) {
    memset(st, 0, sizeof *st);
    double t0 = now_s();
    if (!o->out_dir) return dr_seterr("no output directory (-o DIR)");
    InputList in = {0};
    if (expand_inputs(&in, o, n_inputs, inputs) != 0) { inputs_free(&in); return -1; }
    char *made = NULL;   /* the topmost directory this run created: removed if it fails or is interrupted */
    if (dr_make_output_dirs(o->out_dir, &made) != 0) {
        inputs_free(&in);
        return -1;
    }

    Running run;
    pipeline_start(&run, t, o, &in);
    ShardOut so = {t, o, NULL, {0}};
    int rc = 0;
    uint64_t total = inputs_bytes(&in), done = 0;
    Progress prog;
    progress_start(&prog, "dr-tokenize", "MB", (double)total / 1e6);
    for (;;) {
        Batch *b = pipeline_next(&run);
        if (b->kind == B_EOF) { batch_free(b); break; }
        done += b->raw;
        if (b->kind == B_DATA) {
            for (size_t i = 0; i < b->n_docs && rc == 0; i++) {
                const DocOut *d = &b->docs[i];
                const char *src = d->src_off >= 0 ? b->strings.bytes + d->src_off : in.v[d->input].source;
                rc = shard_add(&so, d->id, src, b->tokens.ids + d->tok_off, d->n_tok);
                st->docs++;
                st->tokens += d->n_tok;
                st->bytes += d->n_text;
                st->invalid_docs += (uint64_t)d->invalid;
                st->sourced_docs += d->src_off >= 0;
            }
            st->empty_docs += b->empty;
        }
        if (rc == 0 && b->error) rc = dr_seterr("%s", b->error);
        batch_free(b);
        if (rc != 0) break;
        progress_set_extra(&prog, "%llu documents", (unsigned long long)st->docs);   /* this batch's included */
        progress_update(&prog, (double)done / 1e6);
    }
    pipeline_stop(&run);
    if (rc == 0 && st->docs == 0) rc = no_documents(&in, st->empty_docs);
    if (rc == 0) rc = shard_close(&so);
    progress_abort(&prog);   /* the summary or the error replaces the bar */
    size_t n_shards = so.done.n;
    if (rc != 0) {   /* nothing of this run appears; an earlier run's shards stay */
        if (so.w) drs_writer_abort(so.w);
        dr_outset_abort(&so.done);
    } else {
        rc = drs_publish_numbered(&so.done, o->out_dir, o->prefix, paths_out, NULL);   /* all together */
    }
    st->shards = rc == 0 ? n_shards : 0;
    if (rc != 0) dr_remove_created_dirs(o->out_dir, made);   /* only while empty */
    dr_created_dirs_forget();
    free(made);
    inputs_free(&in);
    st->seconds = now_s() - t0;
    return rc;
}

int tokenize_train_bpe(const TokenizeOptions *o, int n_inputs, char **inputs, uint32_t n_vocab,
                       TokenizeStats *st) {
    memset(st, 0, sizeof *st);
    double t0 = now_s();
    if (!o->out_dir) return dr_seterr("no output directory (-o DIR)");
    InputList in = {0};
    if (expand_inputs(&in, o, n_inputs, inputs) != 0) { inputs_free(&in); return -1; }
    /* where the two files go is checked before the corpus is read: a directory or a
     * device in the way of vocab.bpe would otherwise be found only after encoder.json
     * had already been replaced */
    char *made = NULL;   /* the topmost directory this run created: removed if it fails or is interrupted */
    int rc = dr_make_output_dirs(o->out_dir, &made);
    static const char *const files[] = {"encoder.json", "vocab.bpe"};
    for (int k = 0; k < 2 && rc == 0; k++) {
        char *path = dr_path_join(o->out_dir, files[k]);
        rc = dr_check_output_dir(path);
        free(path);
    }
    if (rc != 0) {
        dr_remove_created_dirs(o->out_dir, made);
        dr_created_dirs_forget();
        free(made);
        inputs_free(&in);
        return -1;
    }
    Running run;
    pipeline_start(&run, NULL, o, &in);
    /* each batch's pre-tokens are counted as it comes: only the counts are held, not the
     * corpus (a 1 GB corpus held 1.1 GB when its text was gathered first); one thread of
     * the budget is left to the readers that parse the next batches meanwhile */
    BpeCounts *counts = bpe_counts_new(o->invalid, o->threads > 2 ? o->threads - 1 : 1);
    bpe_counts_show_progress(counts);   /* then the merges' bar */
    const char **texts = NULL;
    size_t *lens = NULL, cap = 0;
    uint64_t total = inputs_bytes(&in), done = 0;   /* input bytes (stdin's size unknown: 0) */
    Progress prog;
    progress_start(&prog, "count", "MB", (double)total / 1e6);
    for (;;) {
        Batch *b = pipeline_next(&run);
        if (b->kind == B_EOF) { batch_free(b); break; }
        done += b->raw;
        if (b->kind == B_DATA && !b->error) {
            if (b->n_docs > cap) {
                cap = b->n_docs;
                texts = xrealloc(texts, cap * sizeof *texts);
                lens = xrealloc(lens, cap * sizeof *lens);
            }
            for (size_t i = 0; i < b->n_docs; i++) {
                const DocOut *d = &b->docs[i];
                texts[i] = b->texts.bytes + d->text_off;
                lens[i] = d->n_text;
                st->docs++;
                st->bytes += d->n_text;
            }
            rc = bpe_counts_add(counts, texts, lens, b->n_docs);
            st->empty_docs += b->empty;
        }
        if (b->error && rc == 0) rc = dr_seterr("%s", b->error);
        batch_free(b);
        if (rc != 0) break;
        progress_set_extra(&prog, "%llu documents", (unsigned long long)st->docs);
        progress_update(&prog, (double)done / 1e6);
    }
    pipeline_stop(&run);
    progress_abort(&prog);   /* the merges' bar, or the error, replaces it */
    if (rc == 0 && st->docs == 0) rc = no_documents(&in, st->empty_docs);
    if (rc == 0) rc = bpe_counts_train(counts, n_vocab, o->out_dir);
    bpe_counts_free(counts);
    free(texts);
    free(lens);
    if (rc != 0) dr_remove_created_dirs(o->out_dir, made);   /* only while empty */
    dr_created_dirs_forget();
    free(made);
    inputs_free(&in);
    st->seconds = now_s() - t0;
    return rc;
}
