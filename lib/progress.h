/* progress.h — progress on stderr: a redrawn bar with rate and ETA when stderr is a
 * terminal, otherwise one plain line per interval (default 10 s) so logs stay readable. */
#ifndef DR_PROGRESS_H
#define DR_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *label;     /* "tokenize", "meta-step", … */
    const char *unit;      /* "docs", "steps", "MB" */
    double total;          /* 0 = unknown */
    double done;
    double t_start, t_last_print;
    double interval;       /* seconds between plain lines */
    int is_tty;
    char extra[160];       /* text shown after the rate (e.g. "loss 3.21") */
} Progress;

void progress_start(Progress *p, const char *label, const char *unit, double total);
void progress_update(Progress *p, double done);        /* prints when due */
void progress_set_extra(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void progress_finish(Progress *p);                     /* final line */
double dr_now(void);                                   /* monotonic seconds */

#endif
