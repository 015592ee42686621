/* cli.h — the small pieces every dr-* tool's argument parsing shares (DESIGN §7):
 * the version line, option values with clear errors, numbers parsed strictly. */
#ifndef DR_CLI_H
#define DR_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "inputs.h"

#define DR_VERSION "0.1.0"

/* Prints "<prog> <version> (<float|double>)" on stdout. */
void cli_print_version(void);
/* The value of option argv[*i] (advances *i); dies "option X needs a value". */
const char *cli_value(int argc, char **argv, int *i);
/* cli_value for an option that may be given once: dies "option X given twice" when
 * prev (its earlier value) is not NULL (a second --config, --scores, -o or --rater would
 * silently replace the first one). */
const char *cli_value_once(int argc, char **argv, int *i, const char *prev);
/* Dies on an unknown option arg: "unknown option --split (did you mean --train-split or
 * --val-split? see --help)". The candidates are the options the tool's usage text names
 * (usage(f) prints it to f): the same name with '_' for '-', a name one edit away (two
 * from 5 letters on), else names that arg abbreviates, else names holding arg's words. "--name=value" is answered with "--name value"
 * (the tools take a value as the next argument). context: appended to the option
 * ("" or e.g. " for grad"). */
void cli_unknown_option(const char *arg, const char *context, void (*usage)(FILE *f));
/* Under mpirun stdin reaches rank 0 only: an input '-' among paths[0 .. n) (what: how the
 * message names it) is refused when n_ranks > 1. */
void cli_no_stdin_on_ranks(int n_ranks, int n, char *const *paths, const char *what);
/* Strict conversions; die naming the option on anything that is not a number in range. */
double cli_double(const char *opt, const char *s, double min, double max);
long cli_long(const char *opt, const char *s, long min, long max);
/* An unsigned 64-bit integer, decimal digits only (a seed: experiment.seed's range,
 * 0 … 18446744073709551615); dies naming the option otherwise. */
uint64_t cli_u64(const char *opt, const char *s);

/* The files a run reads and the files it writes, so that an output path that names one
 * of its inputs (`-o` onto a shard, `--log` onto the config, `-o` onto the --rater …) is
 * refused before any work instead of replacing the input at the end. Each entry is a
 * role ("-o", "--log", "the --weights scores", "an input shard") and a path; NULL, ""
 * and "-" paths are skipped. */
typedef struct {
    size_t n, cap;
    char **role, **path;
} CliFiles;   /* start from CliFiles f = {0} */
void cli_files_add(CliFiles *f, const char *role, const char *path);
/* Every shard of the list, and the command-line inputs (shard files and manifests;
 * directories add nothing: their shards are in the list). */
void cli_files_add_inputs(CliFiles *f, const ShardList *shards, int n, char *const *inputs);
/* -1 + dr_seterr when an output is the same file as an input (the same device and inode
 * when both exist, else the same resolved path) or as another output:
 *   "OUT: the output of -o is the same file as the input IN (an input shard): writing it
 *    would destroy that input" */
/* What a training run (dr-train, dr-meta) reads: the --config file, its train and val
 * shards, and the files named on the command line, --train and --val. */
void cli_files_add_run_inputs(CliFiles *f, const char *config_path, const ShardList *train,
                              const ShardList *val, int n_inputs, char *const *inputs,
                              int n_train, char *const *train_in, int n_val, char *const *val_in);
int cli_check_outputs(const CliFiles *outputs, const CliFiles *inputs);
void cli_files_free(CliFiles *f);

#endif
