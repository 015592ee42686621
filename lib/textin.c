/* textin.c — text inputs that may be gzip- or zstd-compressed (see textin.h).
 * A compressed input (or a plain one read from a pipe, whose first bytes were already
 * taken to look at) is a glibc fopencookie stream over a small decoder; a plain regular
 * file is the FILE * of fopen itself (or stdin), put back where the look started. */
#include "textin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "check.h"

enum { TEXTIN_CHUNK = 1 << 17 };

typedef struct {
    FILE *src, *file;          /* what is read; the stream handed out */
    int own_src;               /* close src with the stream (not stdin) */
    TextinKind kind;
    unsigned char head[4];     /* PLAIN over a pipe: the first bytes, given back first */
    size_t head_len, head_pos;
    unsigned char *in;         /* compressed bytes read, [in_pos, in_len) not yet decoded */
    size_t in_len, in_pos;
    int src_eof;
    z_stream z;
    int members;               /* gzip members decoded whole */
    ZSTD_DStream *zs;
    size_t zstd_left;          /* ZSTD_decompressStream's last hint: 0 = frames complete */
    int failed;
} Textin;

/* The last decoding failure of this thread's streams, for textin_error. */
static _Thread_local FILE *failed_file;
static _Thread_local char failed_msg[200];

static ssize_t fail(Textin *t, const char *fmt, const char *detail) {
    t->failed = 1;
    failed_file = t->file;
    snprintf(failed_msg, sizeof failed_msg, fmt, detail ? detail : "");
    errno = EIO;
    return -1;
}

static TextinKind kind_of(const unsigned char *b, size_t n) {
    if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return TEXTIN_GZIP;
    if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) return TEXTIN_ZSTD;
    return TEXTIN_PLAIN;
}

const char *textin_kind_name(TextinKind k) {
    return k == TEXTIN_GZIP ? "gzip" : k == TEXTIN_ZSTD ? "zstd" : "plain";
}

/* More compressed input when all of it was decoded; 0 at the end of the source. */
static int fill(Textin *t) {
    if (t->in_pos < t->in_len) return 1;
    if (t->src_eof) return 0;
    t->in_pos = 0;
    t->in_len = fread(t->in, 1, TEXTIN_CHUNK, t->src);
    if (t->in_len == 0) {
        t->src_eof = 1;
        return ferror(t->src) ? -1 : 0;
    }
    return 1;
}

static ssize_t read_gzip(Textin *t, char *buf, size_t size) {
    t->z.next_out = (unsigned char *)buf;
    t->z.avail_out = (uInt)(size > (1u << 30) ? 1u << 30 : size);
    const uInt want = t->z.avail_out;
    while (t->z.avail_out == want) {   /* until something came out, or the end */
        int more = fill(t);
        if (more < 0) return fail(t, "read error: %s", strerror(errno));
        if (more == 0) {
            if (t->z.total_in == 0) return 0;   /* the last member ended cleanly */
            return fail(t, "truncated gzip data (the input ends inside a member)%s", NULL);
        }
        t->z.next_in = t->in + t->in_pos;
        t->z.avail_in = (uInt)(t->in_len - t->in_pos);
        int rc = inflate(&t->z, Z_NO_FLUSH);
        t->in_pos = t->in_len - t->z.avail_in;
        if (rc == Z_STREAM_END) {   /* a member ends; another may follow */
            inflateReset(&t->z);    /* total_in = 0: the end of the input is clean here */
            t->members++;
            continue;
        }
        if (rc == Z_DATA_ERROR && t->members > 0 && t->z.total_in <= 10)   /* not a gzip header */
            return fail(t, "data that is not gzip after the end of the gzip data%s", NULL);
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return fail(t, "corrupt gzip data (%s)", t->z.msg ? t->z.msg : "inflate failed");
    }
    return (ssize_t)(want - t->z.avail_out);
}

static ssize_t read_zstd(Textin *t, char *buf, size_t size) {
    ZSTD_outBuffer out = {buf, size, 0};
    while (out.pos == 0) {
        int more = fill(t);
        if (more < 0) return fail(t, "read error: %s", strerror(errno));
        if (more == 0) {
            if (t->zstd_left == 0) return 0;
            return fail(t, "truncated zstd data (the input ends inside a frame)%s", NULL);
        }
        ZSTD_inBuffer in = {t->in, t->in_len, t->in_pos};
        size_t rc = ZSTD_decompressStream(t->zs, &out, &in);
        t->in_pos = in.pos;
        if (ZSTD_isError(rc)) return fail(t, "corrupt zstd data (%s)", ZSTD_getErrorName(rc));
        t->zstd_left = rc;
    }
    return (ssize_t)out.pos;
}

static ssize_t cookie_read(void *cookie, char *buf, size_t size) {
    Textin *t = cookie;
    if (t->failed) { errno = EIO; return -1; }
    if (size == 0) return 0;
    if (t->kind == TEXTIN_GZIP) return read_gzip(t, buf, size);
    if (t->kind == TEXTIN_ZSTD) return read_zstd(t, buf, size);
    if (t->head_pos < t->head_len) {
        size_t n = t->head_len - t->head_pos < size ? t->head_len - t->head_pos : size;
        memcpy(buf, t->head + t->head_pos, n);
        t->head_pos += n;
        return (ssize_t)n;
    }
    size_t n = fread(buf, 1, size, t->src);
    if (n == 0 && ferror(t->src)) return -1;
    return (ssize_t)n;
}

static int cookie_close(void *cookie) {
    Textin *t = cookie;
    if (t->kind == TEXTIN_GZIP) inflateEnd(&t->z);
    if (t->zs) ZSTD_freeDStream(t->zs);
    int rc = t->own_src ? fclose(t->src) : 0;
    if (failed_file == t->file) failed_file = NULL;
    free(t->in);
    free(t);
    return rc;
}

FILE *textin_open(const char *path, TextinKind *kind_out) {
    int is_stdin = strcmp(path, "-") == 0;
    FILE *src = is_stdin ? stdin : fopen(path, "rb");
    if (!src) { dr_seterr("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    /* where reading starts: stdin redirected from a file may be past its start (the
     * caller's shell or `head -n 1` read some of it first); -1 for a pipe */
    const long start = ftell(src);
    unsigned char head[4];
    size_t n = fread(head, 1, sizeof head, src);
    if (n < sizeof head && ferror(src)) {
        dr_seterr("%s: read error: %s", is_stdin ? "stdin" : path, strerror(errno));
        if (!is_stdin) fclose(src);
        return NULL;
    }
    TextinKind kind = kind_of(head, n);
    if (kind_out) *kind_out = kind;
    if (kind == TEXTIN_PLAIN && start >= 0 && fseek(src, start, SEEK_SET) == 0) return src;   /* a regular file */
    clearerr(src);
    Textin *t = xcalloc(1, sizeof *t);
    t->src = src;
    t->own_src = !is_stdin;
    t->kind = kind;
    if (kind == TEXTIN_PLAIN) {   /* a pipe: give back what was looked at */
        memcpy(t->head, head, n);
        t->head_len = n;
    } else {
        t->in = xmalloc(TEXTIN_CHUNK);
        memcpy(t->in, head, n);
        t->in_len = n;
        int ok = kind == TEXTIN_GZIP ? inflateInit2(&t->z, 16 + MAX_WBITS) == Z_OK
                                     : (t->zs = ZSTD_createDStream()) != NULL &&
                                           !ZSTD_isError(ZSTD_initDStream(t->zs));
        if (!ok) {
            dr_seterr("%s: cannot start the %s decoder", is_stdin ? "stdin" : path, textin_kind_name(kind));
            if (t->zs) ZSTD_freeDStream(t->zs);
            free(t->in);
            free(t);
            if (!is_stdin) fclose(src);
            return NULL;
        }
        t->zstd_left = 0;
    }
    cookie_io_functions_t io = {.read = cookie_read, .close = cookie_close};
    t->file = fopencookie(t, "rb", io);
    if (!t->file) {
        dr_seterr("%s: cannot open: %s", is_stdin ? "stdin" : path, strerror(errno));
        cookie_close(t);
        return NULL;
    }
    return t->file;
}

void textin_close(FILE *f) {
    if (f && f != stdin) fclose(f);
}

TextinKind textin_kind_of_file(const char *path) {
    unsigned char head[4];
    FILE *f = fopen(path, "rb");
    if (!f) return TEXTIN_PLAIN;
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    return kind_of(head, n);
}

const char *textin_error(FILE *f) {
    static _Thread_local char msg[160];
    if (f && f == failed_file) return failed_msg;
    snprintf(msg, sizeof msg, "read error: %s", strerror(errno ? errno : EIO));
    return msg;
}
