/* check.c — error messages, checked allocation and temp-file cleanup (see check.h). */
#include "check.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *progname = "datarater";
static _Thread_local char last_error[1024];

/* Registered temp files: a process-wide list, touched only by the main thread and
 * read by the signal handler (hence fixed-size, no allocation). */
#define DR_MAX_TMP 64
static char tmp_paths[DR_MAX_TMP][512];
static volatile sig_atomic_t tmp_used[DR_MAX_TMP];

void dr_set_progname(const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    progname = slash ? slash + 1 : argv0;
}
const char *dr_progname(void) { return progname; }

static void remove_tmp_files(void) {
    for (int i = 0; i < DR_MAX_TMP; i++)
        if (tmp_used[i]) { unlink(tmp_paths[i]); tmp_used[i] = 0; }
}

void dr_die(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    remove_tmp_files();
    exit(1);
}

int dr_seterr(const char *fmt, ...) {
    /* formatted into a copy first: callers prefix the previous error,
     * dr_seterr("%s: %s", path, dr_lasterr()), which must not overlap the output */
    char buf[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(last_error, buf, sizeof buf);
    return -1;
}
const char *dr_lasterr(void) { return last_error[0] ? last_error : "unknown error"; }

void dr_fail_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: %s:%d: ", progname, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    remove_tmp_files();
    exit(2);
}

void *dr_malloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) dr_fail_at(file, line, "out of memory allocating %zu bytes", n);
    return p;
}
void *dr_calloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) dr_fail_at(file, line, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}
void *dr_realloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) dr_fail_at(file, line, "out of memory reallocating %zu bytes", n);
    return q;
}
char *dr_strdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = dr_malloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

void dr_tmp_register(const char *path) {
    for (int i = 0; i < DR_MAX_TMP; i++)
        if (!tmp_used[i]) {
            snprintf(tmp_paths[i], sizeof tmp_paths[i], "%s", path);
            tmp_used[i] = 1;
            return;
        }
}
void dr_tmp_unregister(const char *path) {
    for (int i = 0; i < DR_MAX_TMP; i++)
        if (tmp_used[i] && strcmp(tmp_paths[i], path) == 0) { tmp_used[i] = 0; return; }
}

static void cleanup_signal(int sig) {
    remove_tmp_files();
    signal(sig, SIG_DFL);
    raise(sig);
}
void dr_install_cleanup_signals(void) {
    signal(SIGINT, cleanup_signal);
    signal(SIGTERM, cleanup_signal);
    signal(SIGPIPE, cleanup_signal);
}

FILE *dr_atomic_open(const char *path, char **tmp_path_out) {
    size_t n = strlen(path) + 32;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        dr_seterr("%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return NULL;
    }
    dr_tmp_register(tmp);
    *tmp_path_out = tmp;
    return f;
}

int dr_atomic_commit(FILE *f, char *tmp_path, const char *path) {
    int bad = ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0;
    int saved = errno;
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        unlink(tmp_path);
        dr_tmp_unregister(tmp_path);
        free(tmp_path);
        return dr_seterr("%s: write failed: %s", path, strerror(saved ? saved : EIO));
    }
    if (rename(tmp_path, path) != 0) {
        saved = errno;
        unlink(tmp_path);
        dr_tmp_unregister(tmp_path);
        free(tmp_path);
        return dr_seterr("%s: cannot rename into place: %s", path, strerror(saved));
    }
    dr_tmp_unregister(tmp_path);
    free(tmp_path);
    return 0;
}

void dr_atomic_abort(FILE *f, char *tmp_path) {
    if (f) fclose(f);
    unlink(tmp_path);
    dr_tmp_unregister(tmp_path);
    free(tmp_path);
}

int dr_check_output_dir(const char *path) {
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    const char *d = slash ? dir : ".";
    struct stat st;
    int rc = 0;
    if (stat(d, &st) != 0) rc = dr_seterr("%s: cannot write there: %s", path, strerror(errno));
    else if (!S_ISDIR(st.st_mode)) rc = dr_seterr("%s: cannot write there: %s", path, strerror(ENOTDIR));
    else if (access(d, W_OK) != 0) rc = dr_seterr("%s: cannot write there: %s", path, strerror(errno));
    else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) rc = dr_seterr("%s: is a directory, not a file", path);
    free(dir);
    return rc;
}

char *dr_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { dr_seterr("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    size_t cap = 1 << 20, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        buf = xrealloc(buf, cap + 1);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); dr_seterr("%s: read error", path); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}
