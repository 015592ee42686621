/* dr-filter — keep the best examples by score and write them as new shards.
 * Thin: parse options, then lib/scores.c (read + align), lib/filter.c (select + write). */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "config.h"
#include "data.h"
#include "filter.h"
#include "inputs.h"
#include "scores.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: dr-filter --scores scores.tsv POLICY -o DIR [options] inputs...\n"
        "Keeps examples by score (scores.tsv from dr-score, for the same shards and\n"
        "data.seq_len) and writes them to new shards in DIR, one document per kept\n"
        "example (with --documents: whole documents), in shard order; prints the shard paths on stdout and a summary\n"
        "(examples and tokens kept, kept fraction per source) on stderr. A scores file\n"
        "that does not match the shards is refused with its first offending line.\n"
        "The shards appear together at the end: a failed or interrupted run (Ctrl-C,\n"
        "SIGTERM, SIGHUP: status 128 + the signal) leaves DIR as it was and no -o directory\n"
        "that it created; a closed stdout (| head -1) ends it quietly (status 141) once DIR\n"
        "is complete.\n"
        "\n"
        "policies (higher score = better; F in (0, 1]):\n"
        "  --keep F         keep the top fraction F: round(F*N) examples\n"
        "  --per-batch B    bottom-K within consecutive batches of B examples (shard\n"
        "                   order): keep the top ceil(F*b) of each\n"
        "  --cdf            keep each example with probability q^((1-F)/F), q = its CDF\n"
        "                   position (N - rank)/N, rank 0 = best (F = 0.5: probability = q), seeded\n"
        "  --keep-middle F  keep the middle fraction F (perplexity filtering; an odd number\n"
        "                   dropped loses one more from the worst end)\n"
        "  --random F       keep round(F*N) examples chosen uniformly, seeded\n"
        "  --min-score S    keep every example whose score is >= S (none kept is not an\n"
        "                   error); decided per example, so per-shard runs with one S\n"
        "                   keep what one run over all the shards keeps. The summary of\n"
        "                   a --keep F run names the S that keeps the same examples\n"
        "  (exact rules, random numbers included: docs/deploy.md, \"The selection, exactly\")\n"
        "  (--per-batch and --cdf take F from --keep F, --fraction F or deploy.keep)\n"
        "  no policy option: the config's deploy.policy (filter = --keep, per_batch,\n"
        "  cdf, keep_middle, random) with deploy.keep (or --fraction F) and deploy.batch\n"
        "options:\n"
        "  --fraction F     the keep fraction of --per-batch, --cdf or (with no policy\n"
        "                   option) the config's deploy.policy, instead of deploy.keep\n"
        "  --documents AGG  select whole documents, each scored by AGG over its examples'\n"
        "                   scores: mean (weighted by their tokens), min, max or first;\n"
        "                   the kept documents are written whole (ids, sources, tokens)\n"
        "  --invert         keep the worst instead (sanity checks); with --min-score S:\n"
        "                   the examples scored below S, those the plain run drops\n"
        "  --seed S         seed of --cdf and --random (default: experiment.seed)\n"
        "  --config C.yaml  config (data.seq_len defines the examples; the deploy section)\n"
        "  --set k=v        config override (repeatable)\n"
        "  --shard-size MB  start a new output shard once one reaches MB*10^6 bytes (its\n"
        "                   estimated file size; default 64)\n"
        "  --prefix NAME    output shard names NAME-00000.drs, … (default 'filtered'); older\n"
        "                   NAME-*.drs beyond the new ones are removed from DIR\n"
        "  --split S        with a manifest: only shards of split S\n"
        "  inputs: shards, directories, a manifest, or '-' (manifest on stdin)\n"
        "\n"
        "examples:\n"
        "  dr-score --rater rater.safetensors --config configs/cpu.yaml -o scores.tsv splits/train_b\n"
        "  dr-filter --scores scores.tsv --keep 0.6 --config configs/cpu.yaml -o kept/ splits/train_b\n"
        "  dr-filter --scores scores.tsv --per-batch 64 --keep 0.6 --config configs/cpu.yaml -o kept/ splits/train_b\n"
        "  dr-filter --scores scores.tsv --documents mean --keep 0.6 --config configs/cpu.yaml -o docs/ splits/train_b\n"
        "  dr-filter --scores part-07.tsv --min-score 0.0123 --config configs/cpu.yaml --prefix p07 -o kept/ part-07.drs\n");
}

int main(int argc, char **argv) {
    dr_set_progname(argv[0]);
    const char *scores_path = NULL, *out_dir = NULL, *config_path = NULL, *split = NULL;
    const char *prefix = "filtered", *prefix_given = NULL;
    char **sets = xcalloc((size_t)argc, sizeof *sets);
    char **inputs = xcalloc((size_t)argc, sizeof *inputs);
    int n_sets = 0, n_inputs = 0, n_policies = 0, seed_given = 0, top = 0;
    double fraction = -1, shard_mb = 64;
    FilterOptions fo = { .policy = FILTER_TOP, .keep = -1, .progress = 1, .documents = -1 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--version")) { cli_print_version(); exit(0); }
        else if (!strcmp(a, "--scores")) scores_path = cli_value_once(argc, argv, &i, scores_path);
        else if (!strcmp(a, "-o")) out_dir = cli_value_once(argc, argv, &i, out_dir);
        else if (!strcmp(a, "--config")) config_path = cli_value_once(argc, argv, &i, config_path);
        else if (!strcmp(a, "--set")) sets[n_sets++] = (char *)cli_value(argc, argv, &i);
        else if (!strcmp(a, "--split")) split = cli_value_once(argc, argv, &i, split);
        else if (!strcmp(a, "--prefix")) {
            prefix = cli_value_once(argc, argv, &i, prefix_given);
            prefix_given = prefix;
            if (!prefix[0] || strchr(prefix, '/')) dr_die("--prefix '%s': must be a non-empty file name", prefix);
        }
        else if (!strcmp(a, "--invert")) fo.invert = 1;
        else if (!strcmp(a, "--documents")) {
            const char *v = cli_value(argc, argv, &i);
            if (fo.documents >= 0) dr_die("--documents: given twice");
            if ((fo.documents = filter_doc_score_parse(v)) < 0)
                dr_die("--documents '%s': the document's score is mean, min, max or first", v);
        }
        else if (!strcmp(a, "--shard-size")) shard_mb = cli_double(a, cli_value(argc, argv, &i), 0.001, 1e6);
        else if (!strcmp(a, "--seed")) { fo.seed = cli_u64(a, cli_value(argc, argv, &i)); seed_given = 1; }
        else if (!strcmp(a, "--fraction") || !strcmp(a, "--keep")) {
            const char *v = cli_value(argc, argv, &i);   /* named as given: %g makes 1.0000001 "1" */
            double f = cli_double(a, v, -1e300, 1e300);
            if (!(f > 0 && f <= 1)) dr_die("%s: keep fraction %s is outside (0, 1]", a, v);
            if (fraction >= 0) dr_die("%s: the keep fraction is already given", a);
            fraction = f;
            top |= !strcmp(a, "--keep");
        } else if (!strcmp(a, "--keep-middle") || !strcmp(a, "--random")) {
            fo.policy = !strcmp(a, "--random") ? FILTER_RANDOM : FILTER_MIDDLE;
            const char *v = cli_value(argc, argv, &i);
            fo.keep = cli_double(a, v, -1e300, 1e300);
            if (!(fo.keep > 0 && fo.keep <= 1)) dr_die("%s: keep fraction %s is outside (0, 1]", a, v);
            n_policies++;
        } else if (!strcmp(a, "--per-batch")) {
            fo.policy = FILTER_PER_BATCH;
            fo.batch = (int)cli_long(a, cli_value(argc, argv, &i), 1, 1 << 30);
            n_policies++;
        } else if (!strcmp(a, "--cdf")) { fo.policy = FILTER_CDF; n_policies++; }
        else if (!strcmp(a, "--min-score")) {
            fo.policy = FILTER_MIN_SCORE;
            fo.min_score = cli_double(a, cli_value(argc, argv, &i), -DBL_MAX, DBL_MAX);
            n_policies++;
        }
        else if (a[0] == '-' && a[1] != 0) cli_unknown_option(a, "", usage);
        else inputs[n_inputs++] = (char *)a;
    }
    if (!scores_path) dr_die("--scores scores.tsv is required (see --help)");
    if (!out_dir) dr_die("-o DIR is required (see --help)");
    if (n_policies > 1 || (n_policies == 1 && fo.policy == FILTER_MIN_SCORE && top))
        dr_die("give one policy: --keep F, --per-batch B, --cdf, --keep-middle F, --random F or --min-score S");
    if (n_policies == 1 && fo.policy == FILTER_MIN_SCORE && fraction >= 0)
        dr_die("--min-score keeps by score, not by fraction: drop --fraction");
    if (n_policies == 1 && (fo.policy == FILTER_MIDDLE || fo.policy == FILTER_RANDOM) && fraction >= 0)
        dr_die("--keep-middle and --random take their own fraction: drop --keep/--fraction");
    if (n_inputs == 0) dr_die("no input shards (see --help)");
    /* the output paths are printed one per line: a newline in them would make two */
    if (strpbrk(out_dir, "\n\r"))
        dr_die("-o '%s': holds a newline or carriage return, which a printed path (one per line) cannot hold",
               out_dir);
    if (strpbrk(prefix, "\n\r"))
        dr_die("--prefix '%s': holds a newline or carriage return, which a printed path (one per line) "
               "cannot hold", prefix);
    for (int i = 0; i < n_inputs; i++)
        if (!strcmp(scores_path, "-") && !strcmp(inputs[i], "-"))
            dr_die("--scores - and a manifest on stdin ('-'): only one of them can be read from stdin");

    Config cfg;
    if (config_load(&cfg, config_path, n_sets, sets) != 0) dr_die("%s", dr_lasterr());
    if (!seed_given) fo.seed = cfg.seed;
    if (n_policies == 0 && !top) {   /* no policy option: the config's deploy section */
        const char *p = cfg.deploy.policy;
        if (!strcmp(p, "reweight") || !strcmp(p, "online"))
            dr_die("deploy.policy = %s is a dr-train mode (--weights, --rater --online-keep): give "
                   "dr-filter a policy (--keep F, --per-batch B, --cdf, --keep-middle F, --random F)", p);
        fo.policy = !strcmp(p, "per_batch") ? FILTER_PER_BATCH : !strcmp(p, "cdf") ? FILTER_CDF
                  : !strcmp(p, "keep_middle") ? FILTER_MIDDLE : !strcmp(p, "random") ? FILTER_RANDOM
                  : FILTER_TOP;
        fo.batch = cfg.deploy.batch;
        const int fraction_given = fraction >= 0;   /* --fraction F: the config's policy, F kept */
        if (!fraction_given) fraction = cfg.deploy.keep;
        fo.keep = fraction;
        n_policies = fo.policy != FILTER_TOP;
        top = fo.policy == FILTER_TOP;
        fprintf(stderr, "%s: policy from the config: deploy.policy = %s, %s = %g%s\n", dr_progname(), p,
                fraction_given ? "--fraction" : "deploy.keep", fraction,
                fo.policy == FILTER_PER_BATCH ? ", deploy.batch" : "");
    }
    if (n_policies == 0) fo.keep = fraction;   /* --keep F alone: the top fraction */
    if (fo.policy == FILTER_PER_BATCH || fo.policy == FILTER_CDF) {
        fo.keep = fraction >= 0 ? fraction : cfg.deploy.keep;
        if (!(fo.keep > 0 && fo.keep <= 1)) dr_die("deploy.keep: keep fraction %g is outside (0, 1]", fo.keep);
    }

    ShardList shards = {0};
    if (shardlist_add_inputs(&shards, n_inputs, inputs) != 0) dr_die("%s", dr_lasterr());
    if (shardlist_select_split(&shards, split) != 0) dr_die("%s", dr_lasterr());
    DataOptions dopt;
    data_options_from_config(&dopt, &cfg);
    dopt.shuffle = 0;
    dopt.bucket_by_length = 0;
    dopt.prefetch = 0;
    dopt.seq_len_rater = 0;
    DataLoader *d = data_open(&shards, &dopt);
    if (!d) dr_die("%s", dr_lasterr());

    uint64_t n = data_num_examples(d);
    double *aligned = xmalloc(n * sizeof *aligned);   /* the lines are matched as read, not kept */
    if (scores_read_aligned(scores_path, d, aligned, "scores") != 0) dr_die("%s", dr_lasterr());
    uint8_t *keep = xmalloc(n ? n : 1);
    FilterDocs docs = {0};   /* --documents: the units, scored from their examples */
    const FilterDocs *units = NULL;
    if (fo.documents >= 0) {
        filter_documents(d, aligned, fo.documents, &docs);
        memcpy(aligned, docs.score, docs.n * sizeof *aligned);
        free(docs.score);
        docs.score = NULL;
        n = docs.n;
        units = &docs;
    }
    filter_select(&fo, aligned, n, keep);
    FilterCut cut;
    filter_cut(aligned, keep, n, &cut);
    free(aligned);   /* the mask is all the rest needs */

    dr_install_cleanup_signals();
    FilterSummary sum;
    if (filter_write(d, units, keep, out_dir, prefix, (uint64_t)(shard_mb * 1e6),
                     fo.policy == FILTER_MIN_SCORE, stdout, &sum) != 0)
        dr_die("%s", dr_lasterr());
    filter_print_summary(d, units, keep, &fo, &cut, &sum, stderr);
    filter_docs_free(&docs);

    free(keep);
    data_close(d);
    shardlist_free(&shards);
    free(sets);
    free(inputs);
    return 0;
}
