/* cli.c — shared option-parsing helpers of the dr-* tools (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "real.h"

void cli_print_version(void) { printf("%s %s (%s)\n", dr_progname(), DR_VERSION, REAL_NAME); }

const char *cli_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) dr_die("option %s needs a value (see --help)", argv[*i]);
    return argv[++*i];
}

const char *cli_value_once(int argc, char **argv, int *i, const char *prev) {
    if (prev) dr_die("option %s given twice (%s, then %s)", argv[*i], prev,
                     *i + 1 < argc ? argv[*i + 1] : "nothing");
    return cli_value(argc, argv, i);
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
