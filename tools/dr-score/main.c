/* dr-score — score every example of a set of shards with a frozen rater (score = the
 * rater's logit) or with an LM (score = mean token loss), scores.tsv on stdout.
 * Thin: parse options, load the checkpoint, call lib/score.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "checkpoint.h"
#include "cli.h"
#include "config.h"
#include "data.h"
#include "inputs.h"
#include "score.h"

static void usage(void) {
    printf(
        "usage: dr-score (--rater R.safetensors | --lm LM.safetensors) [options] inputs... > scores.tsv\n"
        "Scores every example (a window of data.seq_len+1 tokens of a document) in shard\n"
        "order: one line 'example_id<TAB>score<TAB>source<TAB>n_tokens' per example after a\n"
        "header line. With --rater the score is the rater's logit z (higher = better);\n"
        "with --lm it is the example's mean token loss in nats (the perplexity-filter\n"
        "baseline). Deterministic: the same bytes for any batch size and thread count.\n"
        "\n"
        "options:\n"
        "  --config C.yaml  config (data.seq_len, data.seq_len_rater, data.batch_size)\n"
        "  --set k=v        config override (repeatable)\n"
        "  --batch B        examples per forward pass (default data.batch_size)\n"
        "  --split S        with a manifest: only shards of split S\n"
        "  --device D       cpu | auto (default experiment.device)\n"
        "  inputs: shards, directories, a manifest, or '-' (manifest on stdin)\n"
        "\n"
        "example:\n"
        "  dr-score --rater rater.safetensors --config configs/cpu.yaml --split train_b splits/manifest.tsv > scores.tsv\n");
}

int main(int argc, char **argv) {
    dr_set_progname(argv[0]);
    const char *rater_path = NULL, *lm_path = NULL, *config_path = NULL, *split = NULL;
    const char *device = NULL;
    char **sets = xcalloc((size_t)argc, sizeof *sets);
    char **inputs = xcalloc((size_t)argc, sizeof *inputs);
    int n_sets = 0, n_inputs = 0;
    long batch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        else if (!strcmp(a, "--version")) { cli_print_version(); return 0; }
        else if (!strcmp(a, "--rater")) rater_path = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--lm")) lm_path = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--config")) config_path = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--set")) sets[n_sets++] = (char *)cli_value(argc, argv, &i);
        else if (!strcmp(a, "--split")) split = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--device")) device = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--batch")) batch = cli_long(a, cli_value(argc, argv, &i), 1, 1 << 20);
        else if (a[0] == '-' && a[1] != 0) dr_die("unknown option %s (see --help)", a);
        else inputs[n_inputs++] = (char *)a;
    }
    if (!rater_path == !lm_path) dr_die("give exactly one of --rater and --lm (see --help)");
    if (n_inputs == 0) dr_die("no input shards (see --help)");

    Config cfg;
    if (config_load(&cfg, config_path, n_sets, sets) != 0) dr_die("%s", dr_lasterr());
    const Backend *be = backend_select(device ? device : cfg.device);
    if (!be) dr_die("%s", dr_lasterr());
    if (batch == 0) batch = cfg.data.batch_size;

    LMConfig mc;
    real *params = NULL;
    if (rater_path ? rater_load(rater_path, &mc, &params) : lm_load(lm_path, &mc, &params))
        dr_die("%s", dr_lasterr());

    ShardList shards = {0};
    if (shardlist_add_inputs(&shards, n_inputs, inputs) != 0) dr_die("%s", dr_lasterr());
    if (split) shardlist_filter_split(&shards, split);
    if (shards.n == 0) dr_die("no shards of split '%s' in the inputs", split ? split : "");
    DataOptions dopt;
    data_options_from_config(&dopt, &cfg);
    dopt.shuffle = 0;
    dopt.bucket_by_length = 0;
    dopt.batch_size = (int)batch;
    /* The rater sees as many leading tokens as it has positions (its training's
     * data.seq_len_rater); the LM scores whole windows. */
    dopt.seq_len_rater = rater_path ? mc.ctx : 0;
    DataLoader *d = data_open(&shards, &dopt);
    if (!d) dr_die("%s", dr_lasterr());

    int rc = rater_path ? score_with_rater(be, d, &mc, params, (int)batch, stdout)
                        : score_with_lm(be, d, &mc, params, (int)batch, stdout);
    if (rc != 0) dr_die("%s", dr_lasterr());
    if (fclose(stdout) != 0) dr_die("error writing the scores to stdout");

    data_close(d);
    shardlist_free(&shards);
    free(params);
    free(sets);
    free(inputs);
    return 0;
}
