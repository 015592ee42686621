/* cli.h — the small pieces every dr-* tool's argument parsing shares (DESIGN §7):
 * the version line, option values with clear errors, numbers parsed strictly. */
#ifndef DR_CLI_H
#define DR_CLI_H

#define DR_VERSION "0.1.0"

/* Prints "<prog> <version> (<float|double>)" on stdout. */
void cli_print_version(void);
/* The value of option argv[*i] (advances *i); dies "option X needs a value". */
const char *cli_value(int argc, char **argv, int *i);
/* cli_value for an option that may be given once: dies "option X given twice" when
 * prev (its earlier value) is not NULL (a second --config would silently replace the
 * first file). */
const char *cli_value_once(int argc, char **argv, int *i, const char *prev);
/* Strict conversions; die naming the option on anything that is not a number in range. */
double cli_double(const char *opt, const char *s, double min, double max);
long cli_long(const char *opt, const char *s, long min, long max);

#endif
