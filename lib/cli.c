/* cli.c — shared option-parsing helpers of the dr-* tools (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "real.h"

void cli_print_version(void) { printf("%s %s (%s)\n", dr_progname(), DR_VERSION, REAL_NAME); }

const char *cli_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) dr_die("option %s needs a value (see --help)", argv[*i]);
    /* `--rater --config x.yaml`: the next option is not the value (it was taken as a file
     * name, and the error named --config) */
    const char *v = argv[*i + 1];
    if (v[0] == '-' && v[1] == '-' && v[2] != 0)
        dr_die("option %s needs a value, but the next argument is the option %s (see --help)", argv[*i], v);
    return argv[++*i];
}

const char *cli_value_once(int argc, char **argv, int *i, const char *prev) {
    if (prev) dr_die("option %s given twice (%s, then %s)", argv[*i], prev,
                     *i + 1 < argc ? argv[*i + 1] : "nothing");
    return cli_value(argc, argv, i);
}

void cli_no_stdin_on_ranks(int n_ranks, int n, char *const *paths, const char *what) {
    for (int i = 0; i < n && n_ranks > 1; i++)
        if (!strcmp(paths[i], "-"))
            dr_die("%s on stdin reaches only rank 0 of %d: give it as a file", what, n_ranks);
}

double cli_double(const char *opt, const char *s, double min, double max) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || !isfinite(v)) dr_die("%s: '%s' is not a number", opt, s);
    /* ERANGE on an underflow (1e-320) leaves a usable tiny value; the range check decides */
    if (v < min || v > max) dr_die("%s: %s is out of range [%g, %g]", opt, s, min, max);
    return v;
}

long cli_long(const char *opt, const char *s, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || errno == ERANGE) dr_die("%s: '%s' is not an integer", opt, s);
    if (v < min || v > max) dr_die("%s: %s is out of range [%ld, %ld]", opt, s, min, max);
    return v;
}

uint64_t cli_u64(const char *opt, const char *s) {
    int ok = *s != 0;
    for (const char *p = s; *p && ok; p++) ok = *p >= '0' && *p <= '9';
    errno = 0;
    unsigned long long v = ok ? strtoull(s, NULL, 10) : 0;
    if (!ok || errno == ERANGE)
        dr_die("%s: '%s' is not an integer in [0, 18446744073709551615]", opt, s);
    return (uint64_t)v;
}

/* ---- outputs that would replace inputs ------------------------------------------------ */

void cli_files_add(CliFiles *f, const char *role, const char *path) {
    if (!path || !path[0] || !strcmp(path, "-")) return;
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->role = xrealloc(f->role, f->cap * sizeof *f->role);
        f->path = xrealloc(f->path, f->cap * sizeof *f->path);
    }
    f->role[f->n] = xstrdup(role);
    f->path[f->n] = xstrdup(path);
    f->n++;
}

void cli_files_add_inputs(CliFiles *f, const ShardList *shards, int n, char *const *inputs) {
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (inputs[i] && stat(inputs[i], &st) == 0 && S_ISREG(st.st_mode)) cli_files_add(f, "an input file", inputs[i]);
    }
    for (size_t k = 0; shards && k < shards->n; k++) cli_files_add(f, "an input shard", shards->items[k].path);
}

void cli_files_add_run_inputs(CliFiles *f, const char *config_path, const ShardList *train,
                              const ShardList *val, int n_inputs, char *const *inputs,
                              int n_train, char *const *train_in, int n_val, char *const *val_in) {
    cli_files_add(f, "the --config file", config_path);
    cli_files_add_inputs(f, train, n_inputs, inputs);   /* shards and manifests */
    cli_files_add_inputs(f, val, 0, NULL);
    cli_files_add_inputs(f, NULL, n_train, train_in);
    cli_files_add_inputs(f, NULL, n_val, val_in);
}

void cli_files_free(CliFiles *f) {
    for (size_t i = 0; i < f->n; i++) {
        free(f->role[i]);
        free(f->path[i]);
    }
    free(f->role);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* The path with its directory resolved (the file itself need not exist), or NULL when
 * the directory does not resolve either. */
static char *resolved(const char *path) {
    char *full = realpath(path, NULL);
    if (full) return full;
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : xstrdup(".");
    CHECK(dir, "out of memory");
    char *rdir = realpath(dir, NULL);
    free(dir);
    if (!rdir) return NULL;
    const char *base = slash ? slash + 1 : path;
    size_t n = strlen(rdir) + strlen(base) + 2;
    char *out = xmalloc(n);
    snprintf(out, n, "%s/%s", strcmp(rdir, "/") ? rdir : "", base);
    free(rdir);
    return out;
}

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea != eb) return 0;   /* one exists, the other not: different names */
    char *ra = resolved(a), *rb = resolved(b);
    int same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}

int cli_check_outputs(const CliFiles *outputs, const CliFiles *inputs) {
    for (size_t o = 0; o < outputs->n; o++) {
        const char *out = outputs->path[o], *role = outputs->role[o];
        for (size_t i = 0; i < inputs->n; i++)
            if (same_file(out, inputs->path[i]))
                return dr_seterr("%s: the output of %s is the same file as the input %s (%s): "
                                 "writing it would destroy that input", out, role, inputs->path[i],
                                 inputs->role[i]);
        for (size_t p = 0; p < o; p++)
            if (same_file(out, outputs->path[p]))
                return dr_seterr("%s: the output of %s is the same file as the output of %s (%s): "
                                 "give them different paths", out, role, outputs->role[p], outputs->path[p]);
    }
    return 0;
}
