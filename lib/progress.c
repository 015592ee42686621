/* progress.c — progress reporting on stderr (see progress.h): a bar redrawn in place on
 * a terminal, plain periodic lines otherwise. Only ever writes to p->out (stderr). */
#include "progress.h"
#include "check.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define TTY_REDRAW_S 0.1
#define BAR_WIDTH 24

double dr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* DR_PROGRESS_INTERVAL: seconds between plain lines, a number >= 0; anything else (or
 * unset) the default 10. Read at every start, so nothing is kept between runs. */
static double plain_interval(void) {
    const char *env = getenv("DR_PROGRESS_INTERVAL");
    if (!env || !env[0]) return 10.0;
    char *end;
    double s = strtod(env, &end);
    return *end == 0 && s >= 0 && s <= 1e9 ? s : 10.0;
}

void progress_start(Progress *p, const char *label, const char *unit, double total) {
    memset(p, 0, sizeof *p);
    p->label = label ? label : "";
    p->unit = unit ? unit : "";
    p->total = total > 0 ? total : 0;
    p->t_start = p->t_last_print = dr_now();
    p->interval = plain_interval();
    const char *term = getenv("TERM");   /* a dumb terminal cannot redraw a line */
    p->is_tty = isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb"));
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

/* "1066 steps/s", "13.4 MB/s", below one a second the time each takes: "14.2 s/step" */
static void fmt_rate(char *buf, size_t n, double r, const char *unit) {
    if (r >= 100) snprintf(buf, n, "%.0f %s/s", r, unit);
    else if (r >= 1) snprintf(buf, n, "%.1f %s/s", r, unit);
    else if (r > 0) {
        size_t len = strlen(unit);   /* "steps" -> "step" */
        if (len > 1 && unit[len - 1] == 's') len--;
        snprintf(buf, n, "%.3g s/%.*s", 1 / r, (int)len, unit);
    } else snprintf(buf, n, "? %s/s", unit);   /* nothing done yet */
}

/* The terminal's width in columns (else $COLUMNS, else 80): read at every redraw, so
 * that a resized window is followed. */
static int terminal_width(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int n = c ? atoi(c) : 0;
    return n >= 20 && n <= 1000 ? n : 80;
}

/* The bar's line, fitted into width - 1 columns so that it never wraps (a wrapped line
 * cannot be redrawn in place: each redraw left a row behind). Narrower, it gives up in
 * turn: a shorter bar, the bar, the rate, the extra text (a run's loss), the ETA; what
 * is left is cut. */
static void draw_tty_line(Progress *p, double frac, const char *done, const char *total,
                          const char *rate, int final, const char *when) {
    static const int bar_widths[] = {BAR_WIDTH, 10, 0, 0, 0, 0};
    int width = terminal_width() - 1;
    char line[512];
    for (int level = 0; level < 6; level++) {
        int bw = bar_widths[level], with_rate = level < 3, with_extra = level < 4 && p->extra[0],
            with_when = level < 5;
        size_t n = (size_t)snprintf(line, sizeof line, "%s", p->label);
        if (p->total > 0 && bw > 0) {
            int fill = (int)(frac * bw);
            n += (size_t)snprintf(line + n, sizeof line - n, " [");
            for (int i = 0; i < bw && n + 2 < sizeof line; i++) line[n++] = i < fill ? '#' : '-';
            line[n++] = ']';
            line[n] = 0;
        }
        if (p->total > 0)
            n += (size_t)snprintf(line + n, sizeof line - n, " %5.1f%% %s/%s %s", 100 * frac, done, total, p->unit);
        else
            n += (size_t)snprintf(line + n, sizeof line - n, " %s %s", done, p->unit);
        if (with_rate && n < sizeof line) n += (size_t)snprintf(line + n, sizeof line - n, " %s", rate);
        if (with_when && n < sizeof line)
            n += (size_t)snprintf(line + n, sizeof line - n, " %s%s",
                                  p->total > 0 ? (final ? "in " : "ETA ") : "", when);
        if (with_extra && n < sizeof line) snprintf(line + n, sizeof line - n, " %s", p->extra);
        if ((int)strlen(line) <= width) break;
    }
    if (width > 0 && (int)strlen(line) > width) line[width] = 0;
    fprintf(p->out, "\r%s\033[K", line);
}

static void draw(Progress *p, double now, int final) {
    double el = now - p->t_start;
    double rate = el > 0 ? (p->done - p->done0) / el : 0;
    char done[32], total[32], rt[64], eta[32], elapsed[32];
    fmt_count(done, sizeof done, p->done);
    fmt_count(total, sizeof total, p->total);
    fmt_rate(rt, sizeof rt, rate, p->unit);
    fmt_duration(elapsed, sizeof elapsed, el);
    double frac = p->total > 0 ? p->done / p->total : 0;
    /* the final line of a run that ends before its total (Ctrl-C, --stop-at) says so */
    const char *ended = p->total > 0 && p->done < p->total ? "stopped" : "done";
    if (frac > 1) frac = 1;
    fmt_duration(eta, sizeof eta, rate > 0 && p->total > 0 ? (p->total - p->done) / rate : -1);
    if (p->is_tty) {
        draw_tty_line(p, frac, done, total, rt, final, final || p->total <= 0 ? elapsed : eta);
        dr_bar_on_stderr = !final;
        p->drawn = 1;
        if (final) fputc('\n', p->out);
    } else if (final && p->done0 > 0 && p->done <= p->done0) {   /* resumed with nothing left */
        fprintf(p->out, "%s: done, %s %s (nothing left to run)%s%s\n", p->label, done, p->unit,
                p->extra[0] ? ", " : "", p->extra);
    } else if (final && p->done0 > 0) {
        char part[32];
        fmt_count(part, sizeof part, p->done - p->done0);
        fprintf(p->out, "%s: %s, %s %s (%s in this run, in %s, %s)%s%s\n", p->label, ended, done,
                p->unit, part, elapsed, rt, p->extra[0] ? ", " : "", p->extra);
    } else if (final) {
        fprintf(p->out, "%s: %s, %s %s in %s (%s)%s%s\n", p->label, ended, done, p->unit, elapsed, rt,
                p->extra[0] ? ", " : "", p->extra);
    } else if (p->total > 0) {
        fprintf(p->out, "%s: %s/%s %s (%.1f%%), %s, %s elapsed, ETA %s%s%s\n", p->label, done, total, p->unit,
                100 * frac, rt, elapsed, eta, p->extra[0] ? ", " : "", p->extra);
    } else {
        fprintf(p->out, "%s: %s %s, %s, %s elapsed%s%s\n", p->label, done, p->unit, rt, elapsed,
                p->extra[0] ? ", " : "", p->extra);
    }
    fflush(p->out);
    p->t_last_print = now;
}

void progress_resume(Progress *p, double done) { p->done = p->done0 = done; }

void progress_update(Progress *p, double done) {
    p->done = done;
    double now = dr_now();
    if (now - p->t_last_print >= (p->is_tty ? TTY_REDRAW_S : p->interval) ||
        (p->is_tty && p->drawn && !dr_bar_on_stderr))   /* a data line cleared it */
        draw(p, now, 0);
}

void progress_show(Progress *p) {
    if (p->is_tty) draw(p, dr_now(), 0);
}

void progress_finish(Progress *p) { draw(p, dr_now(), 1); }

void progress_yield_line(FILE *data) {
    if (!dr_bar_on_stderr || !isatty(fileno(data))) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    dr_bar_on_stderr = 0;
}

void progress_abort(Progress *p) {
    if (!p->is_tty) return;
    fputs("\r\033[K", p->out);   /* the error replaces the bar */
    fflush(p->out);
    dr_bar_on_stderr = 0;
}
