/* metrics.h — JSON-lines metrics: one object per logged step, flushed per line so a
 * crashed run keeps what it logged.  m = metrics_open(path); metrics_begin(m);
 * metrics_int(m,"step",…); metrics_num(m,"l_val",…); metrics_end(m). */
#ifndef DR_METRICS_H
#define DR_METRICS_H

#include <stdio.h>

typedef struct {
    FILE *f;
    int first;     /* no field written yet on this line */
    int owned;     /* close on metrics_close */
    char *path;    /* for messages ("(stdout)" for "-") */
} Metrics;

/* path NULL -> a disabled writer (every call is a no-op); "-" -> stdout.
 * append=1 continues an existing log (for --resume). NULL + dr_seterr when the file
 * cannot be opened. Every function also accepts a NULL Metrics as a no-op. A write
 * error (disk full) is fatal (CHECK). metrics_str(m, k, NULL) writes null. */
Metrics *metrics_open(const char *path, int append);
void metrics_begin(Metrics *m);
void metrics_int(Metrics *m, const char *key, long long v);
void metrics_num(Metrics *m, const char *key, double v);   /* 17 significant digits; NaN/Inf as null */
void metrics_str(Metrics *m, const char *key, const char *v);
void metrics_end(Metrics *m);
void metrics_close(Metrics *m);
/* Before a resumed run appends: keeps only the lines of the log at path whose `key`
 * (step, meta_step) is <= step, since the resumed run logs again what came after its
 * checkpoint (a run killed after its last checkpoint had logged further). Lines that do
 * not parse, or lack the key, are kept. A missing file or "-" is nothing to do. */
int metrics_truncate(const char *path, const char *key, long step);

#endif
