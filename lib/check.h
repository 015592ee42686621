/* check.h — error reporting for libdr and the tools.
 *
 * Two kinds of failure:
 *  - bad input (a corrupt shard, a malformed JSON line, a bad config value): the
 *    library returns -1 (or NULL) after dr_seterr("path: what is wrong"); the tool
 *    prints it with dr_die("%s", dr_lasterr()). Library code never exits on bad input,
 *    so tests can feed it corrupted files and check the message.
 *  - a broken invariant or an exhausted resource (out of memory, write error): the
 *    check macros print the source file and line and exit.
 * Output files are written to a temporary name and renamed when complete; paths
 * registered with dr_tmp_register() (and the output directories a run registered as its
 * own) are removed by dr_die(), dr_fail_at() and on SIGINT/SIGTERM/SIGHUP/SIGPIPE, so a
 * failed or interrupted run never leaves a half-written file behind.
 */
#ifndef DR_CHECK_H
#define DR_CHECK_H

#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdnoreturn.h>
#include <sys/types.h>

/* The program name used as prefix of every message ("dr-tokenize: ..."). Called first
 * in main: it also records the main thread, the one the signal handlers below act on,
 * gives a closed stdin/stdout/stderr a /dev/null that fails every use (so no file the
 * tool opens takes its number), and ignores SIGXFSZ (a write past `ulimit -f` is an
 * error the tool reports, naming the file). */
void dr_set_progname(const char *argv0);
const char *dr_progname(void);

/* Print "progname: message" on stderr, remove registered temp files, exit(1). The
 * message's control characters (a newline in a path) are printed escaped (\n, \t, \r,
 * \xNN), so that one error is always one line; dr_fail_at likewise. */
noreturn void dr_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The first half of dr_die for code that ends the process its own way (MPI_Abort):
 * "progname: prefix message" as one line on stderr (control characters escaped), then
 * the registered temporary files and created directories removed. */
void dr_vreport_fatal(const char *prefix, const char *fmt, va_list ap);

/* Thread-local last error message of a library call that returned -1/NULL. */
int dr_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* returns -1 */
const char *dr_lasterr(void);
/* v for a message, in buf: "%g", but "NaN" for every NaN (printf writes "-nan" for some). */
const char *dr_number(char *buf, size_t n, double v);

/* Internal failure with source location: "progname: file.c:123: message". */
noreturn void dr_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond, ...) \
    do { if (!(cond)) dr_fail_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)

void *dr_malloc_at(size_t n, const char *file, int line);
void *dr_calloc_at(size_t n, size_t size, const char *file, int line);
void *dr_realloc_at(void *p, size_t n, const char *file, int line);
char *dr_strdup_at(const char *s, const char *file, int line);
#define xmalloc(n)      dr_malloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, s)   dr_calloc_at((n), (s), __FILE__, __LINE__)
#define xrealloc(p, n)  dr_realloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s)      dr_strdup_at((s), __FILE__, __LINE__)

/* Temporary output files: register before writing, unregister after the rename. */
void dr_tmp_register(const char *path);
void dr_tmp_unregister(const char *path);
/* Handlers for SIGINT, SIGTERM, SIGHUP and SIGPIPE that remove the registered temporary
 * files and created directories, then end the process by the same signal (the shell's
 * status 128 + n: 130 for Ctrl-C, 143 SIGTERM, 129 SIGHUP, 141 SIGPIPE). On SIGINT,
 * SIGTERM and SIGHUP one line "progname: interrupted (SIGINT)" goes to stderr.
 * A SIGINT, SIGTERM or SIGHUP that the parent ignores stays ignored (`nohup dr-… &`
 * survives the hangup). SIGPIPE (the reader of stdout went away: `dr-cat … | head -1`)
 * ends the tool quietly, as zcat or cat in the same place: no message, status 141, even
 * when the parent ignored SIGPIPE (the handler replaces that ignore: a tool never keeps
 * computing output that nobody reads, nor prints an error per write; dr-tokenize,
 * dr-split, dr-cat, dr-score and dr-filter call this at the start of their work).
 * A signal the kernel hands to another thread is passed on to the main thread (the one
 * that called dr_set_progname), which registers and creates the outputs: it cleans up
 * and ends, so no file is created after the sweep.
 * Async-signal-safe: tools with their
 * own Ctrl-C handling (dr-train, dr-meta: checkpoint on interrupt) call it from their
 * handler, so that a second Ctrl-C ends the process at once. */
void dr_install_cleanup_signals(void);
/* 1 while a progress bar is drawn on stderr (progress.c): a message written from a signal
 * handler first clears its line, so that it does not run on from the bar. */
extern volatile sig_atomic_t dr_bar_on_stderr;
/* dr-train and dr-meta's first Ctrl-C: one line, written from the handler (async-signal-
 * safe), that the run stops after the step in progress and saves, and that a second
 * signal ends it at once without saving what the step did. */
void dr_say_stopping(const char *unit);
/* dr-train and dr-meta: SIGINT, SIGTERM and SIGHUP call handler (which asks for a
 * checkpoint at the end of the step and calls dr_install_cleanup_signals, so that a
 * second signal ends the process at once), except a signal the parent ignores (nohup).
 * dr_stop_signals_reset() puts the default action back on the ones it took. It also
 * ignores SIGPIPE for the rest of the process (dr_install_cleanup_signals then leaves it
 * so): a log written to a pipe whose reader went away (`--log - | head`) fails with EPIPE,
 * which the run reports after saving its state, instead of dying of the signal. */
void dr_install_stop_signals(void (*handler)(int));
void dr_stop_signals_reset(void);
/* What such a handler calls instead of dr_install_cleanup_signals: the same, except that a
 * signal arriving within 100 ms of this call is taken as the same request, not a second
 * one. `timeout -s INT` (coreutils) signals its child and then its whole process group,
 * so the child gets every signal twice within microseconds; before, a multi-threaded
 * dr-meta took the second copy as a second Ctrl-C and quit without saving. A person's
 * second Ctrl-C comes much later than 100 ms. Async-signal-safe. */
void dr_install_cleanup_signals_after_stop(void);
/* A stretch that a signal must not cut in two: renaming the outputs of a set into place
 * and then removing an earlier run's surplus ones (any outputs that belong together).
 * Between dr_signals_hold() and dr_signals_release() the handlers above only note a
 * signal; the release then acts on it (cleans up, ends the process by that signal), so
 * the outputs are either all as before or all new, never a mixture. Nests; main thread. */
void dr_signals_hold(void);
void dr_signals_release(void);

/* Atomic output: opens "path.tmp.<pid>" for writing and registers it. */
FILE *dr_atomic_open(const char *path, char **tmp_path_out);
/* Flush, fsync, close and rename to path; returns -1 with dr_seterr on failure. */
int dr_atomic_commit(FILE *f, char *tmp_path, const char *path);
/* Close and remove the temp file (on a failed write). */
void dr_atomic_abort(FILE *f, char *tmp_path);
/* dr_atomic_commit in two steps: finish (flush, fsync, close; the temp file stays,
 * registered) and rename (unregisters and frees tmp_path either way). */
int dr_atomic_finish(FILE *f, char *tmp_path, const char *path);
int dr_atomic_rename(char *tmp_path, const char *path);

/* Outputs that must appear together or not at all (the shards of one dr-tokenize or
 * dr-filter run): each is finished under its temporary name, still registered for
 * removal, and added here (the set owns both strings); commit renames them all in
 * order and prints each final path to paths_out (may be NULL); abort removes them.
 * An interrupted or failed run thus leaves no part of its output, and an earlier run's
 * output in the same place stays as it was until the commit. */
typedef struct { char **tmp, **path; size_t n; } DrOutputSet;
void dr_outset_add(DrOutputSet *s, char *tmp_path, char *path);
int dr_outset_commit(DrOutputSet *s);
void dr_outset_abort(DrOutputSet *s);

/* mkdir -p dir (refusing ""); -1 + dr_seterr unless dir then is a writable directory. */
int dr_make_dirs(const char *dir);
/* The same; *created receives (malloc'd) the topmost directory this call created, or NULL
 * when dir and all its parents existed before: what a failed run passes to
 * dr_remove_created_dirs so that it leaves no empty output directory behind. */
int dr_make_dirs_created(const char *dir, char **created);
/* rmdir dir, then its parents up to and including top (from dr_make_dirs_created), each
 * only while it is empty; stops at the first one that is not. A NULL top does nothing:
 * a directory that existed before the run is never removed. */
void dr_remove_created_dirs(const char *dir, const char *top);
/* The same, left to dr_die, dr_fail_at and the handlers of dr_install_cleanup_signals:
 * registers dir and its parents up to top (NULL: nothing) as created by this run, so that
 * an interrupted run, too, leaves no empty output directory behind (each is removed only
 * while empty, after the temporary files). dr_created_dirs_forget() once the run's output
 * is in place. Main thread. */
void dr_created_dirs_register(const char *dir, const char *top);
void dr_created_dirs_forget(void);
/* An output directory for a run: dr_make_dirs_created and dr_created_dirs_register in
 * one step that a signal cannot cut between the mkdir and the register. On failure
 * removes what it made (*created NULL) and returns -1 + dr_seterr. */
int dr_make_output_dirs(const char *dir, char **created);
/* "/" to join dir and a name, or "" when dir already ends with one ("-o out/"). */
const char *dr_dir_sep(const char *dir);
/* dir + dr_dir_sep(dir) + name, malloc'd. */
char *dr_path_join(const char *dir, const char *name);
/* Reads a whole (small) file into a NUL-terminated malloc'd buffer, its size in *len.
 * At most max bytes: a larger regular file is refused before it is read, a pipe or a
 * device (/dev/zero) once it passes max, with "path: too large for WHAT: … more than
 * 1 GiB" (what: "a vocabulary file"). NULL + dr_seterr("path: cannot open: …") on any
 * failure. */
char *dr_read_file(const char *path, size_t max, const char *what, size_t *len);
/* "a, b, c and 2 more" into buf: the first `most` of n names, joined, and how many more
 * there are (for messages that name the inputs). */
void dr_join_names(char *buf, size_t cap, const char *const *names, size_t n, size_t most);
/* getline with a bound, for line-based inputs whose one endless line (/dev/zero, a
 * binary file) must not fill the memory: the length read, the newline included, into
 * *line (grown as needed, NUL-terminated); -1 at the end of the file or on a read error
 * (ferror tells); -2 once the line runs past max bytes (the rest of it is not read). */
ssize_t dr_getline_max(char **line, size_t *cap, FILE *f, size_t max);
/* A line of len bytes (NUL-terminated) without its leading UTF-8 byte-order mark
 * (EF BB BF, which editors put at the start of a file): moved down in place; the new
 * length. */
ssize_t dr_drop_bom(char *line, ssize_t len);
/* RAM + swap of this machine in bytes, 0 when unknown: the most a process can hold, for
 * refusing a config before it allocates what cannot fit. */
double dr_machine_bytes(void);

/* Before long work that ends in writing path: its directory must exist, be a directory
 * and be writable, and path must not be empty, a directory or any other non-regular
 * file (a device, a FIFO: the final rename would replace it). -1 + dr_seterr("path: …") otherwise. */
int dr_check_output_dir(const char *path);

#endif
