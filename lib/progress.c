/* progress.c — progress reporting on stderr (see progress.h): a bar redrawn in place on
 * a terminal, plain periodic lines otherwise. Only ever writes to p->out (stderr). */
#include "progress.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TTY_REDRAW_S 0.1
#define BAR_WIDTH 24

double dr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(Progress *p, const char *label, const char *unit, double total) {
    memset(p, 0, sizeof *p);
    p->label = label ? label : "";
    p->unit = unit ? unit : "";
    p->total = total > 0 ? total : 0;
    p->t_start = p->t_last_print = dr_now();
    p->interval = 10.0;
    p->is_tty = isatty(STDERR_FILENO);
    p->out = stderr;
}

void progress_set_extra(Progress *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->extra, sizeof p->extra, fmt, ap);
    va_end(ap);
}

/* "0:07", "12:34", "3:02:01" */
static void fmt_duration(char *buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* Counts print as integers when they are; fractional quantities (MB) with one decimal. */
static void fmt_count(char *buf, size_t n, double v) {
    if (v == (double)(long long)v) snprintf(buf, n, "%lld", (long long)v);
    else snprintf(buf, n, "%.1f", v);
}

static void fmt_rate(char *buf, size_t n, double r) {
    if (r >= 100) snprintf(buf, n, "%.0f", r);
    else if (r >= 1) snprintf(buf, n, "%.1f", r);
    else snprintf(buf, n, "%.3g", r);
}

static void draw(Progress *p, double now, int final) {
    double el = now - p->t_start;
    double rate = el > 0 ? (p->done - p->done0) / el : 0;
    char done[32], total[32], rt[32], eta[32], elapsed[32];
    fmt_count(done, sizeof done, p->done);
    fmt_count(total, sizeof total, p->total);
    fmt_rate(rt, sizeof rt, rate);
    fmt_duration(elapsed, sizeof elapsed, el);
    double frac = p->total > 0 ? p->done / p->total : 0;
    /* the final line of a run that ends before its total (Ctrl-C, --stop-at) says so */
    const char *ended = p->total > 0 && p->done < p->total ? "stopped" : "done";
    if (frac > 1) frac = 1;
    fmt_duration(eta, sizeof eta, rate > 0 && p->total > 0 ? (p->total - p->done) / rate : -1);
    const char *sep = p->extra[0] ? " " : "";
    if (p->is_tty) {
        if (p->total > 0) {
            char bar[BAR_WIDTH + 1];
            int fill = (int)(frac * BAR_WIDTH);
            for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < fill ? '#' : '-';
            bar[BAR_WIDTH] = 0;
            fprintf(p->out, "\r%s [%s] %5.1f%% %s/%s %s %s %s/s %s %s%s%s\033[K", p->label, bar, 100 * frac, done, total,
                    p->unit, rt, p->unit, final ? "in" : "ETA", final ? elapsed : eta, sep, p->extra);
        } else {
            fprintf(p->out, "\r%s %s %s %s %s/s %s%s%s\033[K", p->label, done, p->unit, rt, p->unit, elapsed, sep,
                    p->extra);
        }
        if (final) fputc('\n', p->out);
    } else if (final && p->done0 > 0 && p->done <= p->done0) {   /* resumed with nothing left */
        fprintf(p->out, "%s: done, %s %s (nothing left to run)%s%s\n", p->label, done, p->unit,
                p->extra[0] ? ", " : "", p->extra);
    } else if (final && p->done0 > 0) {
        char part[32];
        fmt_count(part, sizeof part, p->done - p->done0);
        fprintf(p->out, "%s: %s, %s %s (%s in this run, in %s, %s %s/s)%s%s\n", p->label, ended, done,
                p->unit, part, elapsed, rt, p->unit, p->extra[0] ? ", " : "", p->extra);
    } else if (final) {
        fprintf(p->out, "%s: %s, %s %s in %s (%s %s/s)%s%s\n", p->label, ended, done, p->unit, elapsed, rt,
                p->unit, p->extra[0] ? ", " : "", p->extra);
    } else if (p->total > 0) {
        fprintf(p->out, "%s: %s/%s %s (%.1f%%), %s %s/s, %s elapsed, ETA %s%s%s\n", p->label, done, total, p->unit,
                100 * frac, rt, p->unit, elapsed, eta, p->extra[0] ? ", " : "", p->extra);
    } else {
        fprintf(p->out, "%s: %s %s, %s %s/s, %s elapsed%s%s\n", p->label, done, p->unit, rt, p->unit, elapsed,
                p->extra[0] ? ", " : "", p->extra);
    }
    fflush(p->out);
    p->t_last_print = now;
}

void progress_resume(Progress *p, double done) { p->done = p->done0 = done; }

void progress_update(Progress *p, double done) {
    p->done = done;
    double now = dr_now();
    if (now - p->t_last_print >= (p->is_tty ? TTY_REDRAW_S : p->interval)) draw(p, now, 0);
}

void progress_finish(Progress *p) { draw(p, dr_now(), 1); }

void progress_abort(Progress *p) {
    if (p->is_tty) { fputs("\r\033[K", p->out); fflush(p->out); }   /* the error replaces the bar */
}
