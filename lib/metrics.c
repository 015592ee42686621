/* metrics.c — JSON-lines metrics (see metrics.h). Numbers are written with 17
 * significant digits so they read back bit-exactly; NaN and ±Inf, which JSON cannot
 * hold, become null. Each line is flushed when it ends. A disabled writer (path NULL)
 * and a NULL Metrics make every call a no-op. */
#include "metrics.h"

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
        return m;
    }
    m->f = fopen(path, append ? "a" : "w");
    if (!m->f) {
        dr_seterr("%s: cannot open for writing: %s", path, strerror(errno));
        free(m);
        return NULL;
    }
    m->owned = 1;
    m->path = xstrdup(path);
    return m;
}

static void key(Metrics *m, const char *k) {
    if (!m->first) fputc(',', m->f);
    m->first = 0;
    json_write_string(m->f, k, strlen(k));
    fputc(':', m->f);
}

void metrics_begin(Metrics *m) {
    if (!m || !m->f) return;
    fputc('{', m->f);
    m->first = 1;
}

void metrics_int(Metrics *m, const char *k, long long v) {
    if (!m || !m->f) return;
    key(m, k);
    fprintf(m->f, "%lld", v);
}

void metrics_num(Metrics *m, const char *k, double v) {
    if (!m || !m->f) return;
    key(m, k);
    if (isfinite(v)) fprintf(m->f, "%.17g", v);
    else fputs("null", m->f);
}

void metrics_str(Metrics *m, const char *k, const char *v) {
    if (!m || !m->f) return;
    key(m, k);
    if (v) json_write_string(m->f, v, strlen(v));
    else fputs("null", m->f);
}

void metrics_end(Metrics *m) {
    if (!m || !m->f) return;
    fputs("}\n", m->f);
    /* a full disk or a closed pipe: one line naming the log (not an internal error) */
    if (fflush(m->f) != 0 || ferror(m->f)) dr_die("%s: writing the log failed: %s", m->path, strerror(errno));
    m->first = 1;
}

void metrics_close(Metrics *m) {
    if (!m) return;
    if (m->f && m->owned && fclose(m->f) != 0) dr_die("%s: closing the log failed: %s", m->path, strerror(errno));
    else if (m->f && !m->owned) fflush(m->f);
    free(m->path);
    free(m);
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
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') break;   /* the last line, cut short by a killed writer */
        JsonDoc *doc = json_parse(line, (size_t)len, 0);
        const JsonValue *v = doc ? json_get(json_root(doc), key) : NULL;
        int keep = !v || v->type != JSON_NUMBER || v->number <= (double)step;
        json_free(doc);
        if (keep) fwrite(line, 1, (size_t)len, g);
    }
    free(line);
    fclose(f);
    return dr_atomic_commit(g, tmp, path);
}
