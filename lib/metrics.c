/* metrics.c — JSON-lines metrics (see metrics.h). Numbers are written with 17
 * significant digits so they read back bit-exactly; NaN and ±Inf, which JSON cannot
 * hold, become null. Each line is built in memory, then written and flushed whole when
 * it ends. A disabled writer (path NULL) and a NULL Metrics make every call a no-op. */
#include "metrics.h"
#include "progress.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"

Metrics *metrics_open(const char *path, int append) {
    Metrics *m = xcalloc(1, sizeof *m);
    m->first = 1;
    if (!path) return m;
    if (strcmp(path, "-") == 0) {
        m->f = stdout;
        m->path = xstrdup("(stdout)");
    } else {
        m->f = fopen(path, append ? "a" : "w");
        if (!m->f) {
            dr_seterr("%s: cannot open for writing: %s", path, strerror(errno));
            free(m);
            return NULL;
        }
        m->owned = 1;
        m->path = xstrdup(path);
    }
    m->line = open_memstream(&m->line_buf, &m->line_cap);
    CHECK(m->line, "open_memstream: %s", strerror(errno));
    return m;
}

static void key(Metrics *m, const char *k) {
    if (!m->first) fputc(',', m->line);
    m->first = 0;
    json_write_string(m->line, k, strlen(k));
    fputc(':', m->line);
}

void metrics_begin(Metrics *m) {
    if (!m || !m->f) return;
    rewind(m->line);
    fputc('{', m->line);
    m->first = 1;
}

void metrics_int(Metrics *m, const char *k, long long v) {
    if (!m || !m->f) return;
    key(m, k);
    fprintf(m->line, "%lld", v);
}

void metrics_num(Metrics *m, const char *k, double v) {
    if (!m || !m->f) return;
    key(m, k);
    char num[JSON_NUMBER_MAX];
    if (isfinite(v)) fputs(json_format_number(num, v), m->line);
    else fputs("null", m->line);
}

void metrics_str(Metrics *m, const char *k, const char *v) {
    if (!m || !m->f) return;
    key(m, k);
    if (v) json_write_string(m->line, v, strlen(v));
    else fputs("null", m->line);
}

/* text[0..n) and a newline to the log, flushed */
static int write_line(Metrics *m, const char *text, size_t n) {
    progress_yield_line(m->f);   /* --log - on the terminal of the bar */
    errno = 0;
    if (fwrite(text, 1, n, m->f) != n || fputc('\n', m->f) == EOF || fflush(m->f) != 0 || ferror(m->f)) {
        m->failed = 1;
        /* a full disk or a closed pipe: one line naming the log (not an internal error) */
        return dr_seterr("%s: writing the log failed: %s", m->path, errno ? strerror(errno) : "write error");
    }
    return 0;
}

int metrics_end(Metrics *m) {
    if (!m || !m->f) return 0;
    fputc('}', m->line);
    long n = ftell(m->line);
    fputc(0, m->line);   /* terminates the text for metrics_last_line */
    CHECK(n >= 0 && fflush(m->line) == 0, "building a log line failed");
    m->first = 1;
    return write_line(m, m->line_buf, (size_t)n);
}

const char *metrics_last_line(const Metrics *m) {
    return m && m->line_buf ? m->line_buf : "";
}

int metrics_raw_line(Metrics *m, const char *line) {
    if (!m || !m->f) return 0;
    return write_line(m, line, strlen(line));
}

int metrics_close(Metrics *m, int rc) {
    if (!m) return rc;
    int bad = 0, err = 0;
    if (m->f && m->owned) bad = fclose(m->f) != 0;
    else if (m->f) bad = fflush(m->f) != 0;
    if (bad) err = errno;
    if (rc >= 0 && m->failed)   /* a caller that went on after metrics_end failed */
        rc = dr_seterr("%s: writing the log failed", m->path);
    else if (rc >= 0 && bad)
        rc = dr_seterr("%s: closing the log failed: %s", m->path, strerror(err));
    if (m->line) fclose(m->line);
    free(m->line_buf);
    free(m->path);
    free(m);
    return rc;
}

int metrics_truncate(const char *path, const char *key, long step) {
    if (!strcmp(path, "-")) return 0;   /* stdout: nothing to trim */
    FILE *f = fopen(path, "rb");
    if (!f) return 0;   /* no log yet */
    char *tmp;
    FILE *g = dr_atomic_open(path, &tmp);
    if (!g) { fclose(f); return -1; }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    /* a line of the tools' logs is a few hundred bytes; 16 MiB is no log of theirs */
    while ((len = dr_getline_max(&line, &cap, f, (size_t)16 << 20)) > 0) {
        if (line[len - 1] != '\n') break;   /* the last line, cut short by a killed writer */
        JsonDoc *doc = json_parse(line, (size_t)len, 0);
        const JsonValue *v = doc ? json_get(json_root(doc), key) : NULL;
        int keep = !v || v->type != JSON_NUMBER || v->number <= (double)step;
        json_free(doc);
        if (keep) fwrite(line, 1, (size_t)len, g);
    }
    free(line);
    /* a read error or an endless line: the log stays as it was, the run does not start */
    int bad = len == -2 || ferror(f), err = errno;
    fclose(f);
    if (bad) {
        dr_atomic_abort(g, tmp);
        return len == -2 ? dr_seterr("%s: a line longer than 16 MiB: not a log of this tool "
                                     "(give another --log)", path)
                         : dr_seterr("%s: read error: %s", path, strerror(err));
    }
    return dr_atomic_commit(g, tmp, path);
}
