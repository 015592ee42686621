/* test_progress_metrics.c — metrics JSON lines (exact numbers, NaN/Inf as null,
 * escaping, append, disabled writer) and the two progress formats (terminal redraw
 * with \r, plain lines with rate and ETA). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "json.h"
#include "metrics.h"
#include "progress.h"
#include "test.h"

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    CHECK(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc(*n + 1);
    CHECK(fread(p, 1, *n, f) == *n, "short read");
    p[*n] = 0;
    fclose(f);
    return p;
}

static void test_metrics(void) {
    char path[] = "/tmp/dr-test-metrics-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    Metrics *m = metrics_open(path, 0);
    TEST_CHECK(m != NULL, "open: %s", dr_lasterr());
    double vals[] = {0.1, 1.0 / 3.0, 1e300, 5e-324, -0.0, 2.5};
    for (int step = 0; step < 3; step++) {
        metrics_begin(m);
        metrics_int(m, "step", step);
        metrics_num(m, "l_val", vals[step]);
        metrics_num(m, "small", vals[step + 3]);
        metrics_num(m, "nan", NAN);
        metrics_num(m, "inf", step ? -INFINITY : INFINITY);
        metrics_str(m, "note", "tab\there \"q\" é");
        metrics_str(m, "none", NULL);
        TEST_CHECK(metrics_end(m) == 0, "line %d: %s", step, dr_lasterr());
    }
    TEST_CHECK(metrics_close(m, 0) == 0, "close");
    /* Append continues the file. */
    m = metrics_open(path, 1);
    metrics_begin(m);
    metrics_int(m, "step", 3);
    TEST_CHECK(metrics_end(m) == 0 && !strcmp(metrics_last_line(m), "{\"step\":3}"), "last line: %s",
               metrics_last_line(m));
    TEST_CHECK(metrics_raw_line(m, "{\"step\":4}") == 0, "raw line");
    TEST_CHECK(metrics_close(m, 0) == 0, "close");

    size_t n;
    char *text = slurp(path, &n);
    int lines = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1, lines++) {
        JsonDoc *d = json_parse(line, (size_t)(nl - line), 0);
        TEST_CHECK(d != NULL, "line %d is JSON: %s", lines, dr_lasterr());
        if (!d) continue;
        const JsonValue *r = json_root(d);
        TEST_CHECK(json_get(r, "step") && json_get(r, "step")->number == lines, "step %d", lines);
        if (lines < 3) {
            const JsonValue *lv = json_get(r, "l_val"), *sm = json_get(r, "small");
            TEST_CHECK(lv && lv->number == vals[lines], "l_val exact: %.17g", lv ? lv->number : 0);
            TEST_CHECK(sm && sm->number == vals[lines + 3] && signbit(sm->number) == signbit(vals[lines + 3]),
                       "small exact");
            TEST_CHECK(json_get(r, "nan") && json_get(r, "nan")->type == JSON_NULL, "NaN -> null");
            TEST_CHECK(json_get(r, "inf") && json_get(r, "inf")->type == JSON_NULL, "Inf -> null");
            const JsonValue *note = json_get(r, "note");
            TEST_CHECK(note && !strcmp(note->str, "tab\there \"q\" é"), "string escaped and read back");
            TEST_CHECK(json_get(r, "none") && json_get(r, "none")->type == JSON_NULL, "NULL string -> null");
            /* Keys in the order written. */
            TEST_CHECK(r->len == 7 && !strcmp(r->keys[0], "step") && !strcmp(r->keys[6], "none"), "key order");
        }
        json_free(d);
    }
    TEST_CHECK(lines == 5, "5 lines (%d)", lines);
    /* the shortest digits that read back (checked exact above), as Python's repr prints them */
    TEST_CHECK(strstr(text, "\"l_val\":0.1,") && strstr(text, "\"l_val\":0.3333333333333333,") &&
               strstr(text, "\"l_val\":1e+300,") && strstr(text, "\"small\":5e-324,") &&
               strstr(text, "\"small\":-0,") && strstr(text, "\"small\":2.5,"), "shortest digits: %s", text);
    free(text);
    unlink(path);

    /* Disabled writer and NULL are no-ops; an unwritable path is an error. */
    m = metrics_open(NULL, 0);
    TEST_CHECK(m != NULL, "disabled writer");
    metrics_begin(m);
    metrics_num(m, "x", 1);
    TEST_CHECK(metrics_end(m) == 0 && metrics_close(m, 0) == 0, "disabled writer: no error");
    metrics_begin(NULL);
    metrics_int(NULL, "x", 1);
    TEST_CHECK(metrics_end(NULL) == 0 && metrics_close(NULL, 0) == 0, "NULL: no error");

    /* A write that fails (a full disk): an error naming the log; the line is kept for the
     * caller; the close keeps an earlier error and reports the failed write otherwise. */
    if (access("/dev/full", W_OK) == 0) {
        for (int rc_in = 0; rc_in >= -1; rc_in--) {
            m = metrics_open("/dev/full", 0);
            TEST_CHECK(m != NULL, "open /dev/full: %s", dr_lasterr());
            if (!m) break;
            metrics_begin(m);
            metrics_int(m, "step", 7);
            TEST_CHECK(metrics_end(m) == -1 && strstr(dr_lasterr(), "/dev/full: writing the log failed: No space"),
                       "write error named: %s", dr_lasterr());
            TEST_CHECK(!strcmp(metrics_last_line(m), "{\"step\":7}"), "failed line kept: %s", metrics_last_line(m));
            if (rc_in < 0) dr_seterr("an earlier error");
            int rc = metrics_close(m, rc_in);
            TEST_CHECK(rc == -1, "close after a failed write: -1");
            TEST_CHECK(rc_in == 0 ? strstr(dr_lasterr(), "/dev/full: writing the log failed") != NULL
                                  : !strcmp(dr_lasterr(), "an earlier error"), "close message: %s", dr_lasterr());
        }
    } else {
        printf("NOT CHECKED: /dev/full is not writable here\n");
    }
    TEST_CHECK(metrics_open("/nonexistent-dir/m.jsonl", 0) == NULL && strstr(dr_lasterr(), "/nonexistent-dir/m.jsonl"),
               "unwritable path: %s", dr_lasterr());
}

static char *capture(Progress *p, void (*fn)(Progress *), char **buf, size_t *len) {
    FILE *f = open_memstream(buf, len);
    p->out = f;
    fn(p);
    fclose(f);
    p->out = stderr;
    return *buf;
}

static void run_plain(Progress *p) {
    p->is_tty = 0;
    p->interval = 0;   /* a line per update */
    p->t_start -= 10;  /* pretend 10 s have passed: rate 25/s at 250 done */
    progress_set_extra(p, "loss %.2f", 3.21);
    progress_update(p, 250);
    progress_finish(p);
}

static void run_tty(Progress *p) {
    p->is_tty = 1;
    p->t_start -= 10;
    p->t_last_print -= 1;
    progress_update(p, 500);
    progress_update(p, 501);   /* too soon after the last draw: not drawn */
    progress_finish(p);
}

/* progress_show: at once on a terminal (a first step minutes away), nothing elsewhere */
static void run_show_tty(Progress *p) { p->is_tty = 1; progress_show(p); }
static void run_show_plain(Progress *p) { p->is_tty = 0; progress_show(p); }

/* A data line for a terminal (dr-train --log -, dr-score to stdout) clears the bar
 * first, and the bar comes back at the next update, not 0.1 s later. */
static void run_tty_yield(Progress *p) {
    p->is_tty = 1;
    p->t_last_print -= 1;
    progress_update(p, 1);          /* drawn: a first draw is due */
    dr_bar_on_stderr = 0;           /* what progress_yield_line does */
    progress_update(p, 2);          /* at once again */
    progress_update(p, 3);          /* too soon: not drawn */
    progress_abort(p);
}

static void test_yield_line(void) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        printf("NOT CHECKED: progress_yield_line: no pseudo-terminal here\n");
        return;
    }
    FILE *tty = fopen(ptsname(master), "w");
    char errpath[] = "/tmp/dr-test-yield-XXXXXX";
    int errfd = mkstemp(errpath), saved = dup(STDERR_FILENO);
    CHECK(tty && errfd >= 0 && saved >= 0, "pty, temp file");
    fflush(stderr);
    dup2(errfd, STDERR_FILENO);
    dr_bar_on_stderr = 1;
    FILE *file = tmpfile();
    progress_yield_line(file);                               /* a file: the bar stays */
    int kept = dr_bar_on_stderr;
    progress_yield_line(tty);                                /* a terminal: cleared */
    int cleared = !dr_bar_on_stderr;
    progress_yield_line(tty);                                /* nothing drawn: nothing */
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    size_t n;
    char *err = slurp(errpath, &n);
    TEST_CHECK(kept && cleared && n == 4 && !memcmp(err, "\r\033[K", 4),
               "progress_yield_line: kept for a file %d, cleared for a terminal %d, %zu bytes", kept, cleared, n);
    free(err);
    unlink(errpath);
    close(errfd);
    fclose(tty);
    fclose(file);
    close(master);

    Progress p;
    char *buf = NULL;
    size_t len = 0;
    progress_start(&p, "train", "steps", 10);
    capture(&p, run_tty_yield, &buf, &len);
    int draws = 0;
    for (char *q = buf; (q = strstr(q, "/10 steps")); q++) draws++;
    TEST_CHECK(draws == 2 && strstr(buf, "2/10") && !strstr(buf, "3/10"),
               "a bar cleared by a data line is drawn at the next update (%d draws): %s", draws, buf);
    free(buf);
}

static void test_progress(void) {
    double t0 = dr_now();
    TEST_CHECK(dr_now() >= t0, "monotonic clock");
    Progress p;
    char *buf = NULL;
    size_t len = 0;
    progress_start(&p, "tokenize", "docs", 1000);
    capture(&p, run_plain, &buf, &len);
    TEST_CHECK(strstr(buf, "tokenize: 250/1000 docs (25.0%), 25.0 docs/s, 0:10 elapsed, ETA 0:30, loss 3.21\n") != NULL,
               "plain line: %s", buf);
    /* it ended at 250 of 1000 (Ctrl-C, --stop-at): "stopped", not "done" */
    TEST_CHECK(strstr(buf, "tokenize: stopped, 250 docs in 0:10") != NULL, "final plain line: %s", buf);
    TEST_CHECK(strchr(buf, '\r') == NULL, "no \\r when not a terminal");
    free(buf);

    progress_start(&p, "meta-step", "steps", 1000);
    buf = NULL;
    capture(&p, run_tty, &buf, &len);
    TEST_CHECK(buf[0] == '\r' && strstr(buf, "meta-step [") && strstr(buf, " 50.0% 500/1000 steps 50.0 steps/s ETA 0:10"),
               "terminal bar: %s", buf);
    TEST_CHECK(strstr(buf, "501/1000") && strstr(buf, " in 0:10") && buf[len - 1] == '\n',
               "final redraw ends the line: %s", buf);
    int draws = 0;
    for (char *q = buf; (q = strchr(q, '\r')); q++) draws++;
    TEST_CHECK(draws == 2, "redraws throttled (%d)", draws);
    free(buf);

    /* terminals of 200, 80, 60 and 40 columns: every redrawn line fits (a wrapped line
     * cannot be redrawn in place), giving up the bar, the rate, the extra text, the ETA */
    static const struct { const char *cols, *has, *lacks; } narrow[] = {
        {"200", "steps 50.0 steps/s ETA 0:10 loss 3.2100 val 3.4000 lr 1.00e-03", NULL},
        {"80", "meta-step  50.0% 500/1000 steps ETA 0:10 loss 3.2100 val 3.4000 lr 1.00e-03", "[#"},
        {"60", "meta-step  50.0% 500/1000 steps ETA 0:10", "loss"},
        {"40", "meta-step  50.0% 500/1000 steps", "ETA"},
    };
    for (size_t k = 0; k < sizeof narrow / sizeof *narrow; k++) {
        setenv("COLUMNS", narrow[k].cols, 1);
        progress_start(&p, "meta-step", "steps", 1000);
        progress_set_extra(&p, "loss 3.2100 val 3.4000 lr 1.00e-03");
        buf = NULL;
        capture(&p, run_tty, &buf, &len);
        int longest = 0, cur = 0;
        for (size_t i = 0; i < len; i++) {
            if (buf[i] == '\r' || buf[i] == '\n') { cur = 0; continue; }
            if (buf[i] == '\033') { i += 2; continue; }   /* \033[K */
            if (++cur > longest) longest = cur;
        }
        TEST_CHECK(longest < atoi(narrow[k].cols) && strstr(buf, narrow[k].has) &&
                   (!narrow[k].lacks || !strstr(buf, narrow[k].lacks)),
                   "a %s-column terminal: longest line %d: %s", narrow[k].cols, longest, buf);
        free(buf);
    }
    unsetenv("COLUMNS");

    progress_start(&p, "meta-step", "steps", 12);
    buf = NULL;
    capture(&p, run_show_tty, &buf, &len);
    TEST_CHECK(buf[0] == '\r' && strstr(buf, "0/12 steps ? steps/s ETA ?"), "progress_show on a terminal: %s", buf);
    free(buf);
    buf = NULL;
    capture(&p, run_show_plain, &buf, &len);
    TEST_CHECK(len == 0, "progress_show elsewhere prints nothing: %s", buf);
    free(buf);

    progress_start(&p, "read", "MB", 0);   /* unknown total */
    p.is_tty = 0;
    buf = NULL;
    FILE *f = open_memstream(&buf, &len);
    p.out = f;
    p.interval = 0;
    progress_update(&p, 12.5);
    fclose(f);
    TEST_CHECK(strstr(buf, "read: 12.5 MB, ") && !strstr(buf, "ETA"), "unknown total: %s", buf);
    free(buf);

    /* a run that reaches its total (or has none) ends with "done" */
    for (int total = 0; total <= 40; total += 40) {
        progress_start(&p, "train", "steps", total);
        p.is_tty = 0;
        buf = NULL;
        f = open_memstream(&buf, &len);
        p.out = f;
        progress_update(&p, 40);
        progress_finish(&p);
        fclose(f);
        TEST_CHECK(strstr(buf, "train: done, 40 steps in ") != NULL, "total %d: final line: %s", total, buf);
        free(buf);
    }

    /* DR_PROGRESS_INTERVAL: the seconds between plain lines (0: every update, as the CLI
     * tests use it); not a number >= 0: the default 10 */
    static const struct { const char *env; double interval; } intervals[] = {
        {NULL, 10}, {"0", 0}, {"2.5", 2.5}, {"", 10}, {"-1", 10}, {"x", 10}, {"3s", 10}, {"nan", 10},
    };
    for (size_t k = 0; k < sizeof intervals / sizeof *intervals; k++) {
        if (intervals[k].env) setenv("DR_PROGRESS_INTERVAL", intervals[k].env, 1);
        else unsetenv("DR_PROGRESS_INTERVAL");
        progress_start(&p, "split", "M tokens", 3);
        TEST_CHECK(p.interval == intervals[k].interval, "DR_PROGRESS_INTERVAL=%s: interval %g",
                   intervals[k].env ? intervals[k].env : "(unset)", p.interval);
    }
    setenv("DR_PROGRESS_INTERVAL", "0", 1);
    progress_start(&p, "split", "M tokens", 3);
    p.is_tty = 0;
    buf = NULL;
    f = open_memstream(&buf, &len);
    p.out = f;
    progress_update(&p, 1.5);
    progress_update(&p, 3);
    progress_abort(&p);   /* not a terminal: no final line */
    fclose(f);
    TEST_CHECK(strstr(buf, "split: 1.5/3 M tokens (50.0%), ") && strstr(buf, "split: 3/3 M tokens (100.0%), ") &&
               !strstr(buf, "done"), "DR_PROGRESS_INTERVAL=0: a line per update: %s", buf);
    free(buf);
    unsetenv("DR_PROGRESS_INTERVAL");

    test_yield_line();
}

int main(void) {
    test_metrics();
    test_progress();
    return test_finish("test_progress_metrics");
}
