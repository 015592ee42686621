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

/* Edit distance of a[0..n) and b[0..m) with adjacent transpositions (optimal string
 * alignment), capped at 3 (more than 2 is "far"). */
static int option_distance(const char *a, size_t n, const char *b, size_t m) {
    enum { MAXLEN = 40 };
    if (n > MAXLEN || m > MAXLEN || (n > m ? n - m : m - n) > 2) return 3;
    int d[MAXLEN + 1][MAXLEN + 1];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m] > 2 ? 3 : d[n][m];
}

/* Does option name o (without "--") hold every '-'-separated word of w as one of its own
 * words ("split" in "train-split")? */
static int option_holds_words(const char *o, size_t on, const char *w, size_t wn) {
    for (size_t i = 0; i < wn;) {
        size_t k = i;
        while (k < wn && w[k] != '-') k++;
        int found = 0;
        for (size_t p = 0; p < on && !found;) {
            size_t q = p;
            while (q < on && o[q] != '-') q++;
            found = q - p == k - i && k > i && memcmp(o + p, w + i, k - i) == 0;
            p = q + 1;
        }
        if (!found) return 0;
        i = k + 1;
    }
    return wn > 0;
}

void cli_unknown_option(const char *arg, const char *context, void (*usage)(FILE *f)) {
    const char *raw = arg + strspn(arg, "-"), *eq = strchr(raw, '=');
    const size_t raw_len = eq ? (size_t)(eq - raw) : strlen(raw);   /* the name, no value */
    char want[48];   /* the name, '_' read as '-' */
    size_t wn = 0;
    for (; wn < raw_len && wn < sizeof want - 1; wn++) want[wn] = raw[wn] == '_' ? '-' : raw[wn];
    want[wn] = 0;
    char *text = NULL;   /* the options the usage text names, each once */
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) { usage(f); fclose(f); }
    const char *cand[64];
    size_t cand_len[64];
    int n_cand = 0, known = 0, takes_value = 0, listed_flag = 0;   /* of arg's own name */
    /* The tool's own options are those its usage text lists: on an option line ("  --steps
     * N   …", "  -o, --output F": indented, but less than the lines that go on describing
     * one; prose is not indented) or in a synopsis or example of this tool ("usage: dr-x
     * --scores F …", "  dr-x --keep F …", up to a pipe). A name met in a sentence may be
     * another tool's. One space and a word after a listed name: it takes a value; an
     * option line without them: it takes none. */
    for (const char *c = text ? text : ""; (c = strstr(c, "--")) != NULL;) {
        const char *name = c + 2, *line = c;
        size_t nl = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-");
        while (line > text && line[-1] != '\n') line--;
        const char *lead = line + strspn(line, " ");
        const char *own = dr_progname(), *pipe = memchr(line, '|', (size_t)(c - line));
        int synopsis = !pipe && (!strncmp(lead, "usage:", 6) ||
                                 (!strncmp(lead, own, strlen(own)) && lead[strlen(own)] == ' '));
        if (lead[0] == '-' && lead[1] != '-' && lead[2] == ',') lead += 3 + strspn(lead + 3, " ");
        int option_line = lead == c && lead - line >= 1 && lead - line <= 6;
        int starts = c == text || strchr(" \t\n([,|", c[-1]) != NULL;
        c = name + nl;
        if (!starts || nl < 2 || !(option_line || synopsis)) continue;
        if (nl == raw_len && memcmp(name, raw, nl) == 0) {
            int word = c[0] == ' ' && c[1] && !strchr(" \n-[(", c[1]);
            if (word) takes_value = 1;
            else if (option_line) listed_flag = 1;
            known = 1;
            continue;
        }
        int dup = 0;
        for (int k = 0; k < n_cand && !dup; k++)
            dup = cand_len[k] == nl && memcmp(cand[k], name, nl) == 0;
        if (!dup && n_cand < 64) {
            cand[n_cand] = name;
            cand_len[n_cand++] = nl;
        }
    }
    if (known && !eq) {   /* dr-meta's --lm-init without grad */
        free(text);
        dr_die("unknown option %s%s: the usage lists it for the command's other form (see "
               "--help)", arg, context);
    }
    if (known && eq && arg[1] == '-') {   /* --keep=0.6 */
        free(text);
        if (!takes_value && listed_flag)
            dr_die("unknown option %s%s: --%.*s takes no value (see --help)", arg, context,
                   (int)raw_len, raw);
        dr_die("unknown option %s%s: give the value as the next argument, --%.*s %s (see "
               "--help)", arg, context, (int)raw_len, raw, eq + 1);
    }
    /* the closest within 1 edit (2 from 5 letters on), else the names want abbreviates,
     * else the names holding its words; at most 3. An option of the tool's other mode
     * (known) suggests nothing in its place. */
    int best = wn >= 5 ? 2 : 1, picked[3], n_picked = 0;
    for (int k = 0; k < n_cand && wn >= 2; k++) {
        int dist = option_distance(want, wn, cand[k], cand_len[k]);
        if (dist > best) continue;
        if (dist < best) { best = dist; n_picked = 0; }
        if (n_picked < 3) picked[n_picked++] = k;
    }
    if (n_picked == 0 && wn >= 3)
        for (int k = 0; k < n_cand && n_picked < 3; k++)
            if (cand_len[k] > wn && memcmp(cand[k], want, wn) == 0) picked[n_picked++] = k;
    if (n_picked == 0 && wn >= 2)
        for (int k = 0; k < n_cand && n_picked < 3; k++)
            if (option_holds_words(cand[k], cand_len[k], want, wn)) picked[n_picked++] = k;
    char hint[256] = "";
    size_t h = 0;
    for (int q = 0; q < n_picked && h < sizeof hint; q++)
        h += (size_t)snprintf(hint + h, sizeof hint - h, "%s--%.*s",
                              q == 0 ? "did you mean " : q == n_picked - 1 ? " or " : ", ",
                              (int)cand_len[picked[q]], cand[picked[q]]);
    free(text);
    if (n_picked) dr_die("unknown option %s%s (%s? see --help)", arg, context, hint);
    dr_die("unknown option %s%s (see --help)", arg, context);
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
