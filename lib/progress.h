/* progress.h — progress on stderr: a redrawn bar with rate and ETA when stderr is a
 * terminal, otherwise one plain line per interval (default 10 s) so logs stay readable.
 *
 *   Progress p;
 *   progress_start(&p, "tokenize", "docs", n_docs);     // total 0 = unknown
 *   for (…) { …; progress_set_extra(&p, "%.1f MB", mb); progress_update(&p, i + 1); }
 *   progress_finish(&p);
 *
 * Terminal:  "\rtokenize [########------------]  41.0% 4100/10000 docs 812 docs/s ETA 0:07 12.5 MB"
 *            redrawn at most 10 times a second, cleared to the end of the line.
 * Otherwise: "tokenize: 4100/10000 docs (41.0%), 812 docs/s, 0:05 elapsed, ETA 0:07, 12.5 MB"
 *            once per interval, and a final "tokenize: done, …" line from progress_finish.
 * The interval of the plain lines is DR_PROGRESS_INTERVAL seconds when that is set to a
 * number >= 0 (0: a line at every update, as the CLI tests use it), else 10.
 * The rate is the average since progress_start. A resumed run calls progress_resume with
 * the count it starts from: the bar shows the whole run, the rate and ETA only this
 * process's part. Never prints on stdout (data goes there).
 */
#ifndef DR_PROGRESS_H
#define DR_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *label;     /* "tokenize", "meta-step", … */
    const char *unit;      /* "docs", "steps", "MB" */
    double total;          /* 0 = unknown */
    double done;
    double done0;          /* the count this process started from (progress_resume) */
    double t_start, t_last_print;
    double interval;       /* seconds between plain lines (10 or DR_PROGRESS_INTERVAL; may be
                            * changed after start) */
    int is_tty;            /* redraw with \r (set by progress_start from isatty(stderr)) */
    int drawn;             /* the bar has been drawn: once a data line clears it, the next
                            * update draws it again at once (progress_yield_line) */
    char extra[160];       /* text shown after the rate (e.g. "loss 3.21") */
    FILE *out;             /* stderr (may be changed after start, e.g. by tests) */
} Progress;

void progress_start(Progress *p, const char *label, const char *unit, double total);
void progress_resume(Progress *p, double done);        /* right after start: continues from done */
void progress_update(Progress *p, double done);
/* On a terminal, draws the bar now: a run whose first update is a long step away (a
 * meta-step of minutes) shows that it has started. Elsewhere nothing. */
void progress_show(Progress *p);        /* prints when due */
void progress_set_extra(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void progress_finish(Progress *p);                     /* final line */
void progress_abort(Progress *p);                      /* no final line: an error follows */
/* Before a line of data goes to `data` (a log or scores on stdout): when `data` is a
 * terminal and a bar is drawn on stderr, clears the bar's line, so that the data does
 * not run on from the bar; the bar comes back below it at its next redraw. */
void progress_yield_line(FILE *data);
double dr_now(void);                                   /* monotonic seconds */

#endif
