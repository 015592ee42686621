/* metrics.h — JSON-lines metrics: one object per logged step, written whole and flushed
 * when it ends, so a crashed run keeps what it logged.  m = metrics_open(path);
 * metrics_begin(m); metrics_int(m,"step",…); metrics_num(m,"l_val",…); metrics_end(m). */
#ifndef DR_METRICS_H
#define DR_METRICS_H

#include <stdio.h>

typedef struct {
    FILE *f;
    FILE *line;    /* the line being built (a memory stream over line_buf) */
    char *line_buf;
    size_t line_cap;
    int first;     /* no field written yet on this line */
    int owned;     /* close on metrics_close */
    int failed;    /* a write failed: the error was reported once */
    char *path;    /* for messages ("(stdout)" for "-") */
} Metrics;

/* path NULL -> a disabled writer (every call is a no-op); "-" -> stdout.
 * append=1 continues an existing log (for --resume). NULL + dr_seterr when the file
 * cannot be opened. Every function also accepts a NULL Metrics as a no-op.
 * metrics_str(m, k, NULL) writes null. A line is built in memory and written with its
 * newline by metrics_end, which returns -1 with dr_seterr ("LOG: writing the log failed:
 * …") when the write or the flush fails (a full disk, a reader of the pipe that went
 * away): the caller decides what to save before it stops. */
Metrics *metrics_open(const char *path, int append);
void metrics_begin(Metrics *m);
void metrics_int(Metrics *m, const char *key, long long v);
void metrics_num(Metrics *m, const char *key, double v);   /* 17 significant digits; NaN/Inf as null */
void metrics_str(Metrics *m, const char *key, const char *v);
int metrics_end(Metrics *m);
/* The last line metrics_end was given, without its newline ("" before the first): what
 * a run that could not write it keeps in its saved state (dr-meta). */
const char *metrics_last_line(const Metrics *m);
/* Writes a whole line as it is (a line kept in a saved state, on resume); -1 as
 * metrics_end. */
int metrics_raw_line(Metrics *m, const char *line);
/* Flushes and closes; returns rc, or -1 with dr_seterr when rc >= 0 and the close
 * failed. A failing run (rc < 0) keeps its own message: the close error is dropped,
 * as is a second report of a write that metrics_end already reported. */
int metrics_close(Metrics *m, int rc);
/* Before a resumed run appends: keeps only the lines of the log at path whose `key`
 * (step, meta_step) is <= step, since the resumed run logs again what came after its
 * checkpoint (a run killed after its last checkpoint had logged further). Lines that do
 * not parse, or lack the key, are kept. A missing file or "-" is nothing to do. A read
 * error or a line over 16 MiB leaves the file as it was: -1 + dr_seterr. */
int metrics_truncate(const char *path, const char *key, long step);

#endif
