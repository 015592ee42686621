/* check.c — error messages, checked allocation and temp-file cleanup (see check.h). */
#include "check.h"
#include "progress.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

static const char *progname = "datarater";
static _Thread_local char last_error[1024];

/* Registered temp files: a process-wide list of slots, changed only by the main
 * thread and read by the signal handler. Slots come in chunks that are linked in once
 * filled in and never freed, and a slot's path is set before its flag: the handler
 * never sees a half-made entry, and no path is ever truncated or dropped. */
#define DR_TMP_CHUNK 256
typedef struct TmpChunk {
    char *path[DR_TMP_CHUNK];
    volatile sig_atomic_t used[DR_TMP_CHUNK];
    struct TmpChunk *volatile next;
} TmpChunk;
static TmpChunk tmp_first;

/* The thread that runs main: the one that registers and creates the outputs, and so the
 * one that must run the cleanup (cleanup_signal). */
static pthread_t main_thread;
static volatile sig_atomic_t have_main_thread;

void dr_set_progname(const char *argv0) {
    main_thread = pthread_self();
    have_main_thread = 1;
    const char *slash = strrchr(argv0, '/');
    progname = slash ? slash + 1 : argv0;
    /* A standard stream the caller closed (`<&-`, `>&-`) would be the number of the next
     * file this process opens: a shard would then receive what is printed to stdout, or
     * be read as stdin. Its slot gets /dev/null opened the wrong way round instead, so
     * that using it still fails (EBADF) as the closed stream would. */
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
            int nfd = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
            if (nfd >= 0 && nfd != fd) close(nfd);   /* a lower slot was free: it took that */
        }
    /* A file-size limit (`ulimit -f`) makes a write fail with EFBIG, reported with the
     * file's name and the temporary files removed, instead of SIGXFSZ killing the tool
     * with neither */
    signal(SIGXFSZ, SIG_IGN);
}
const char *dr_progname(void) { return progname; }

/* Output directories this run created (dr_created_dirs_register): deepest first, each
 * path set before the count that makes it visible to a handler; a slot's old string is
 * freed only when the slot is reused, never under a handler's feet. */
#define DR_CREATED_MAX 64
static char *created_dir[DR_CREATED_MAX];
static volatile sig_atomic_t n_created;

/* What a failed or interrupted run leaves: nothing. Async-signal-safe (unlink, rmdir). */
static void remove_leftovers(void) {
    for (TmpChunk *c = &tmp_first; c; c = c->next)
        for (int i = 0; i < DR_TMP_CHUNK; i++)
            if (c->used[i]) { unlink(c->path[i]); c->used[i] = 0; }
    for (int i = 0; i < n_created; i++) rmdir(created_dir[i]);   /* only while empty */
    n_created = 0;
}

/* Prints "progname: [prefix]message\n" on stderr in one write. Control characters of
 * the message (a newline or tab in a path or in quoted input) are escaped as \n, \t, \r
 * or \xNN: one error is always one line, whatever the names it quotes. No allocation
 * (this also reports out-of-memory): a message past the buffer is cut with "...". */
static void print_error_line(const char *prefix, const char *fmt, va_list ap) {
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char out[sizeof msg * 4 + 512];
    size_t n = (size_t)snprintf(out, 512, "%s: %s", progname, prefix);
    if (n >= 512) n = 511;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        unsigned char c = *p;
        if (c >= 0x20 && c != 0x7f) out[n++] = (char)c;
        else if (c == '\n') { out[n++] = '\\'; out[n++] = 'n'; }
        else if (c == '\t') { out[n++] = '\\'; out[n++] = 't'; }
        else if (c == '\r') { out[n++] = '\\'; out[n++] = 'r'; }
        else n += (size_t)snprintf(out + n, 5, "\\x%02x", c);
    }
    if (strlen(msg) == sizeof msg - 1) { memcpy(out + n, "...", 3); n += 3; }
    out[n++] = '\n';
    fflush(stdout);
    fwrite(out, 1, n, stderr);
    fflush(stderr);
}

void dr_vreport_fatal(const char *prefix, const char *fmt, va_list ap) {
    print_error_line(prefix, fmt, ap);
    remove_leftovers();
}

void dr_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    print_error_line("", fmt, ap);
    va_end(ap);
    remove_leftovers();
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
const char *dr_number(char *buf, size_t n, double v) {
    if (isnan(v)) snprintf(buf, n, "NaN");
    else snprintf(buf, n, "%g", v);
    return buf;
}

void dr_fail_at(const char *file, int line, const char *fmt, ...) {
    char where[300];
    snprintf(where, sizeof where, "%s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    print_error_line(where, fmt, ap);
    va_end(ap);
    remove_leftovers();
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
    for (TmpChunk *c = &tmp_first;; c = c->next) {
        for (int i = 0; i < DR_TMP_CHUNK; i++)
            if (!c->used[i]) {
                char *old = c->path[i];
                c->path[i] = xstrdup(path);
                free(old);
                c->used[i] = 1;
                return;
            }
        if (!c->next) c->next = xcalloc(1, sizeof(TmpChunk));   /* zeroed, then linked */
    }
}
void dr_tmp_unregister(const char *path) {
    for (TmpChunk *c = &tmp_first; c; c = c->next)
        for (int i = 0; i < DR_TMP_CHUNK; i++)
            if (c->used[i] && strcmp(c->path[i], path) == 0) { c->used[i] = 0; return; }
}

/* "dir///" -> "dir" ("/" stays). */
static void strip_slashes(char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
}

/* ---- signals ------------------------------------------------------------------------
 * SIGINT, SIGTERM, SIGHUP: remove what the run wrote, one line on stderr, die of the
 * signal (so the caller sees 128 + n, as from any Unix tool killed by it). SIGPIPE: the
 * same without the line: `dr-cat … | head -1` ends as quietly as `zcat … | head -1`.
 * Inside dr_signals_hold() a signal is only noted, and acted on at the release. */
static volatile sig_atomic_t hold_depth, held_signal;
/* dr_install_cleanup_signals_after_stop: when the stop request came (dr_now seconds, a
 * clock_gettime, which is async-signal-safe; 0: none). Written once by a handler, read by
 * another. */
static volatile double stop_request_at;
static int pipe_errors;   /* SIGPIPE ignored for good (dr_install_stop_signals) */

volatile sig_atomic_t dr_bar_on_stderr;

/* One line on stderr from a signal handler: the parts joined, after clearing a bar. */
static void write_signal_line(const char *const *parts, int n_parts) {
    char line[400];
    size_t n = 0;
    if (dr_bar_on_stderr)
        for (const char *c = "\r\033[K"; *c; c++) line[n++] = *c;
    for (int k = 0; k < n_parts; k++)
        for (const char *c = parts[k]; *c && n < sizeof line; c++) line[n++] = *c;
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void dr_say_stopping(const char *unit) {
    const char *parts[] = {progname, ": saving a checkpoint after this ", unit,
                           " (again: quit now, unsaved)\n"};
    write_signal_line(parts, 4);
}

static void die_of_signal(int sig) {
    remove_leftovers();
    if (sig != SIGPIPE) {
        const char *name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : "a signal";
        const char *parts[] = {progname, ": interrupted (", name, ")\n"};
        write_signal_line(parts, 4);
    }
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);   /* inside its own handler sig is blocked */
    raise(sig);
    _exit(128 + sig);   /* not reached */
}

static void cleanup_signal(int sig) {
    /* the kernel may run this on any thread (OpenMP's, OpenBLAS's, a tool's worker); the
     * main thread would go on creating files between the sweep and the end: it gets the
     * signal instead (pthread_kill and pthread_self are async-signal-safe) */
    if (have_main_thread && !pthread_equal(pthread_self(), main_thread)) {
        pthread_kill(main_thread, sig);
        return;
    }
    if (sig != SIGPIPE && stop_request_at > 0 && dr_now() - stop_request_at < 0.1)
        return;   /* the stop request's own signal, delivered twice (timeout(1)) */
    if (hold_depth > 0) {   /* a commit in progress: finish it first */
        if (!held_signal) held_signal = sig;
        return;
    }
    die_of_signal(sig);
}

/* A SIGINT, SIGTERM or SIGHUP that the parent ignores stays ignored: `nohup dr-… &`
 * survives the hangup, and a script's background job its Ctrl-C, as with any Unix tool.
 * SIGPIPE is taken whatever the parent did (see check.h). */
void dr_install_cleanup_signals(void) {
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cleanup_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);   /* one cleanup at a time: the others wait */
    for (int k = 0; k < 4; k++) sigaddset(&sa.sa_mask, sigs[k]);
    for (int k = 0; k < 4; k++) {
        if (sigs[k] == SIGPIPE && pipe_errors) continue;   /* dr-train, dr-meta: see below */
        if (sigs[k] != SIGPIPE && sigaction(sigs[k], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(sigs[k], &sa, NULL);
    }
}

void dr_install_cleanup_signals_after_stop(void) {
    stop_request_at = dr_now();
    dr_install_cleanup_signals();
}

static const int stop_sigs[] = {SIGINT, SIGTERM, SIGHUP};
static int stop_taken[3];

void dr_install_stop_signals(void (*handler)(int)) {
    /* a log on a pipe whose reader went away: a write error (EPIPE) the run handles
     * (it saves first), not a death by SIGPIPE that loses the run */
    signal(SIGPIPE, SIG_IGN);
    pipe_errors = 1;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int k = 0; k < 3; k++) {
        stop_taken[k] = !(sigaction(stop_sigs[k], NULL, &old) == 0 && old.sa_handler == SIG_IGN);
        if (stop_taken[k]) sigaction(stop_sigs[k], &sa, NULL);
    }
}

void dr_stop_signals_reset(void) {
    for (int k = 0; k < 3; k++)
        if (stop_taken[k]) signal(stop_sigs[k], SIG_DFL);
}

void dr_signals_hold(void) { hold_depth++; }

void dr_signals_release(void) {
    CHECK(hold_depth > 0, "dr_signals_release without dr_signals_hold");
    if (--hold_depth > 0) return;
    int sig = held_signal;
    if (sig) die_of_signal(sig);
}

/* dir, then each of its parents up to top (deepest first), while visit returns 0;
 * nothing when top is NULL or not a prefix of dir. */
static void walk_up_to(const char *dir, const char *top, int (*visit)(const char *)) {
    if (!top) return;
    char *p = xstrdup(dir), *t = xstrdup(top);
    strip_slashes(p);
    strip_slashes(t);
    size_t top_len = strlen(t);
    if (strncmp(p, t, top_len) == 0 && (p[top_len] == 0 || p[top_len] == '/')) {
        for (;;) {
            if (visit(p) != 0) break;
            if (strlen(p) <= top_len) break;
            char *slash = strrchr(p, '/');
            if (!slash || slash == p) break;
            *slash = 0;
            strip_slashes(p);
        }
    }
    free(p);
    free(t);
}

static int register_created(const char *p) {
    if (n_created == DR_CREATED_MAX) return 1;   /* past that many: the upper ones stay */
    char *old = created_dir[n_created];
    created_dir[n_created] = xstrdup(p);
    free(old);
    n_created++;
    return 0;
}

void dr_created_dirs_register(const char *dir, const char *top) { walk_up_to(dir, top, register_created); }

void dr_created_dirs_forget(void) { n_created = 0; }

int dr_make_output_dirs(const char *dir, char **created) {
    dr_signals_hold();   /* a signal between the mkdir and the register would leave it */
    int rc = dr_make_dirs_created(dir, created);
    if (rc == 0) {
        dr_created_dirs_register(dir, *created);
    } else {
        dr_remove_created_dirs(dir, *created);
        free(*created);
        *created = NULL;
    }
    dr_signals_release();
    return rc;
}

/* An existing path that is not a regular file (a device such as /dev/null, a FIFO)
 * would be replaced by the rename: refused. */
static int not_a_regular_file(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return dr_seterr("%s: %s, not a regular file: outputs are written to a temporary file "
                         "and renamed over the name", path,
                         S_ISDIR(st.st_mode) ? "is a directory" : "exists");
    return 0;
}

/* Removes a registered temporary file and frees its name. */
static void tmp_discard(char *tmp_path) {
    unlink(tmp_path);
    dr_tmp_unregister(tmp_path);
    free(tmp_path);
}

FILE *dr_atomic_open(const char *path, char **tmp_path_out) {
    if (!path[0]) { dr_seterr("an empty output path"); return NULL; }
    if (not_a_regular_file(path)) return NULL;
    size_t n = strlen(path) + 32;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    dr_tmp_register(tmp);   /* before it exists: a signal can come at any moment */
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        dr_seterr("%s: cannot create: %s", path, strerror(errno));
        dr_tmp_unregister(tmp);
        free(tmp);
        return NULL;
    }
    *tmp_path_out = tmp;
    return f;
}

int dr_atomic_finish(FILE *f, char *tmp_path, const char *path) {
    int bad = ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0;
    int saved = errno;
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        tmp_discard(tmp_path);
        return dr_seterr("%s: write failed: %s", path, strerror(saved ? saved : EIO));
    }
    return 0;
}

int dr_atomic_rename(char *tmp_path, const char *path) {
    if (rename(tmp_path, path) != 0) {
        int rc = dr_seterr("%s: cannot rename into place: %s", path, strerror(errno));
        tmp_discard(tmp_path);
        return rc;
    }
    dr_tmp_unregister(tmp_path);
    free(tmp_path);
    return 0;
}

int dr_atomic_commit(FILE *f, char *tmp_path, const char *path) {
    if (dr_atomic_finish(f, tmp_path, path) != 0) return -1;
    return dr_atomic_rename(tmp_path, path);
}

void dr_outset_add(DrOutputSet *s, char *tmp_path, char *path) {
    s->tmp = xrealloc(s->tmp, (s->n + 1) * sizeof *s->tmp);
    s->path = xrealloc(s->path, (s->n + 1) * sizeof *s->path);
    s->tmp[s->n] = tmp_path;
    s->path[s->n++] = path;
}

static void outset_free(DrOutputSet *s) {
    for (size_t i = 0; i < s->n; i++) free(s->path[i]);
    free(s->tmp);
    free(s->path);
    memset(s, 0, sizeof *s);
}

void dr_outset_abort(DrOutputSet *s) {
    for (size_t i = 0; i < s->n; i++) tmp_discard(s->tmp[i]);
    outset_free(s);
}

int dr_outset_commit(DrOutputSet *s) {
    int rc = 0;
    dr_signals_hold();   /* a Ctrl-C now would leave some renamed and the rest not */
    for (size_t i = 0; i < s->n; i++) {
        if (rc != 0) {   /* after a failed rename: the rest are removed, not renamed */
            tmp_discard(s->tmp[i]);
            continue;
        }
        rc = dr_atomic_rename(s->tmp[i], s->path[i]);
    }
    dr_signals_release();
    outset_free(s);
    return rc;
}

void dr_atomic_abort(FILE *f, char *tmp_path) {
    if (f) fclose(f);
    tmp_discard(tmp_path);
}

/* A '.' or '..' component after one that does not exist yet ("new/../out"): mkdir -p
 * would make "new" only to step out of it, and the failure path, which walks the name's
 * text back up, could not remove it. Refused: such a name is never needed. */
static int dots_after_missing(const char *dir) {
    char *p = xstrdup(dir);
    int missing = 0, bad = 0;
    for (char *s = p + 1; !bad; s++) {
        if (*s != '/' && *s != 0) continue;
        char c = *s;
        *s = 0;
        const char *name = strrchr(p, '/') ? strrchr(p, '/') + 1 : p;
        if (missing && (!strcmp(name, ".") || !strcmp(name, ".."))) bad = 1;
        else if (!missing && access(p, F_OK) != 0) missing = 1;
        *s = c;
        if (c == 0) break;
    }
    free(p);
    return bad;
}

int dr_make_dirs_created(const char *dir, char **created) {
    if (created) *created = NULL;
    if (!dir[0]) return dr_seterr("an empty output directory");
    if (dots_after_missing(dir))
        return dr_seterr("%s: '.' or '..' after a directory that does not exist yet: give the "
                         "directory without it", dir);
    char *p = xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1; rc == 0; s++) {
        if (*s != '/' && *s != 0) continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0777) == 0) {
            if (created && !*created) *created = xstrdup(p);   /* the topmost new one */
        } else if (errno != EEXIST) {
            rc = dr_seterr("%s: cannot create directory: %s", p, strerror(errno));
        }
        *s = c;
        if (c == 0) break;
    }
    free(p);
    if (rc) return rc;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return dr_seterr("%s: not a directory", dir);
    if (access(dir, W_OK) != 0) return dr_seterr("%s: cannot write there: %s", dir, strerror(errno));
    return 0;
}

const char *dr_dir_sep(const char *dir) {
    size_t len = strlen(dir);
    return len > 0 && dir[len - 1] == '/' ? "" : "/";
}

char *dr_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s%s%s", dir, dr_dir_sep(dir), name);
    return p;
}

int dr_make_dirs(const char *dir) { return dr_make_dirs_created(dir, NULL); }

static int remove_if_empty(const char *p) { return rmdir(p) != 0; }   /* not empty: it and its parents stay */

void dr_remove_created_dirs(const char *dir, const char *top) { walk_up_to(dir, top, remove_if_empty); }

int dr_check_output_dir(const char *path) {
    if (!path[0]) return dr_seterr("an empty output path");
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    const char *d = slash ? dir : ".";
    struct stat st;
    int rc = 0;
    if (stat(d, &st) != 0) rc = dr_seterr("%s: cannot write there: %s", path, strerror(errno));
    else if (!S_ISDIR(st.st_mode)) rc = dr_seterr("%s: cannot write there: %s", path, strerror(ENOTDIR));
    else if (access(d, W_OK) != 0) rc = dr_seterr("%s: cannot write there: %s", path, strerror(errno));
    else rc = not_a_regular_file(path);   /* a directory, a device, a FIFO */
    free(dir);
    return rc;
}

/* bytes in words for a limit: "1 GiB", "256 MiB", else "N bytes" */
static const char *size_words(char *buf, size_t cap, uint64_t bytes) {
    if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0)
        snprintf(buf, cap, "%llu GiB", (unsigned long long)(bytes >> 30));
    else if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0)
        snprintf(buf, cap, "%llu MiB", (unsigned long long)(bytes >> 20));
    else
        snprintf(buf, cap, "%llu bytes", (unsigned long long)bytes);
    return buf;
}

char *dr_read_file(const char *path, size_t max, const char *what, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { dr_seterr("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    char limit[32];
    size_words(limit, sizeof limit, max);
    /* a regular file's size is known before reading (a sparse 40 GB file is refused at
     * once); a pipe or a device (/dev/zero) is stopped once it passes max */
    struct stat st;
    size_t cap = 1 << 20;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size > max) {
            fclose(f);
            dr_seterr("%s: too large for %s: %llu bytes, more than %s", path, what,
                      (unsigned long long)st.st_size, limit);
            return NULL;
        }
        cap = (size_t)st.st_size + 1;   /* + 1: the first read meets the end of the file */
    }
    if (cap > max + 1) cap = max + 1;
    size_t n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {   /* a file within the limit that still does not fit: its name, not the allocator's line */
            fclose(f);
            dr_seterr("%s: too large to read into memory (more than %zu bytes)", path, n ? n : cap - 1);
            return NULL;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        if (n > max) {   /* read max + 1 bytes: the file holds more than max */
            free(buf);
            fclose(f);
            dr_seterr("%s: too large for %s: more than %s", path, what, limit);
            return NULL;
        }
        cap = cap > max / 2 ? max + 1 : 2 * cap;
        char *more = realloc(buf, cap + 1);
        if (!more) free(buf);
        buf = more;
    }
    int bad = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (bad) { free(buf); dr_seterr("%s: read error: %s", path, strerror(bad)); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

void dr_join_names(char *buf, size_t cap, const char *const *names, size_t n, size_t most) {
    size_t len = 0, shown = n < most ? n : most;
    buf[0] = 0;
    for (size_t i = 0; i < shown && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", names[i]);
    if (n > shown && len < cap) snprintf(buf + len, cap - len, " and %zu more", n - shown);
}

ssize_t dr_drop_bom(char *line, ssize_t len) {
    if (len < 3 || memcmp(line, "\xEF\xBB\xBF", 3) != 0) return len;
    memmove(line, line + 3, (size_t)len - 2);   /* the NUL too */
    return len - 3;
}

ssize_t dr_getline_max(char **line, size_t *cap, FILE *f, size_t max) {
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
        if (n > max) return -2;
    }
    if (n == 0) return -1;
    (*line)[n] = 0;
    return (ssize_t)n;
}

double dr_machine_bytes(void) {
    struct sysinfo si;
    if (sysinfo(&si) != 0) return 0;
    return ((double)si.totalram + (double)si.totalswap) * si.mem_unit;
}
