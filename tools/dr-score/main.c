/* dr-score — score every example of a set of shards with a frozen rater (score = the
 * rater's logit) or with an LM (score = mean token loss), scores.tsv on stdout.
 * Thin: parse options, load the checkpoint, call lib/score.c. */
#include <errno.h>
#include <omp.h>
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
#include "safetensors.h"
#include "score.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: dr-score (--rater R.safetensors | --lm LM.safetensors) [options] inputs... > scores.tsv\n"
        "Scores every example (a window of data.seq_len+1 tokens of a document) in shard\n"
        "order: one line 'example_id<TAB>score<TAB>source<TAB>n_tokens' per example after a\n"
        "header line. With --rater the score is the rater's logit z (higher = better),\n"
        "from the first positions of the window the rater has (its data.seq_len_rater);\n"
        "with --lm it is the example's mean token loss in nats (the perplexity-filter\n"
        "baseline). Use the config the model was trained with: data.seq_len defines the\n"
        "examples (without --config, the data settings the model records are used).\n"
        "Batches run on experiment.threads threads (0: all cores), one batch per\n"
        "thread: the same bytes for any thread count (for a given --batch). Progress, and\n"
        "at the end the examples/s and FLOPs spent, on stderr.\n"
        "\n"
        "options:\n"
        "  --config C.yaml  config (data.seq_len, data.batch_size, experiment.threads)\n"
        "  --set k=v        config override (repeatable)\n"
        "  --batch B        examples per forward pass (default data.batch_size)\n"
        "  --split S        with a manifest: only shards of split S\n"
        "  -o FILE          write the scores to FILE (atomically: a failed or interrupted run\n"
        "                   leaves FILE as it was) instead of stdout (-o -: stdout); a closed stdout\n"
        "                   (| head -1) ends dr-score quietly (status 141)\n"
        "  --device D       auto | cpu | cuda (default experiment.device)\n"
        "  inputs: shards, directories, a manifest, or '-' (manifest on stdin)\n"
        "\n"
        "examples:\n"
        "  dr-score --rater rater.safetensors --config configs/cpu.yaml --split train_b -o scores.tsv splits/manifest.tsv\n"
        "  dr-score --lm lm.safetensors --config configs/cpu.yaml -o ppl.tsv splits/train_b\n");
}

/* A warning when the checkpoint's own training config (safetensors metadata) made
 * examples of another length than the config given here. */
static void warn_seq_len(const char *path, int is_rater, const Config *cfg, int ctx) {
    int trained = 0;
    Config rcfg;
    if (is_rater) {
        if (checkpoint_run_config(path, &rcfg) > 0) trained = rcfg.data.seq_len;
    } else {
        trained = ctx;   /* the LM's positions are its training data.seq_len */
    }
    if (trained > 0 && trained != cfg->data.seq_len)
        fprintf(stderr, "%s: warning: %s was trained on windows of data.seq_len = %d tokens; "
                "scoring windows of %d (pass the config it was trained with)\n", dr_progname(),
                path, trained, cfg->data.seq_len);
}

int main(int argc, char **argv) {
    dr_set_progname(argv[0]);
    const char *rater_path = NULL, *lm_path = NULL, *config_path = NULL, *split = NULL;
    const char *device = NULL, *out_path = NULL;
    char **sets = xcalloc((size_t)argc, sizeof *sets);
    char **inputs = xcalloc((size_t)argc, sizeof *inputs);
    int n_sets = 0, n_inputs = 0;
    long batch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--version")) { cli_print_version(); exit(0); }
        else if (!strcmp(a, "--rater")) rater_path = cli_value_once(argc, argv, &i, rater_path);
        else if (!strcmp(a, "--lm")) lm_path = cli_value_once(argc, argv, &i, lm_path);
        else if (!strcmp(a, "--config")) config_path = cli_value_once(argc, argv, &i, config_path);
        else if (!strcmp(a, "--set")) sets[n_sets++] = (char *)cli_value(argc, argv, &i);
        else if (!strcmp(a, "--split")) split = cli_value_once(argc, argv, &i, split);
        else if (!strcmp(a, "--device")) device = cli_value(argc, argv, &i);
        else if (!strcmp(a, "-o")) out_path = cli_value_once(argc, argv, &i, out_path);
        else if (!strcmp(a, "--batch")) batch = cli_long(a, cli_value(argc, argv, &i), 1, 1 << 20);
        else if (a[0] == '-' && a[1] != 0) cli_unknown_option(a, "", usage);
        else inputs[n_inputs++] = (char *)a;
    }
    if (out_path && !strcmp(out_path, "-")) out_path = NULL;   /* -o -: stdout, the default */
    if (!rater_path == !lm_path) dr_die("give exactly one of --rater and --lm (see --help)");
    if (n_inputs == 0) dr_die("no input shards (see --help)");

    if (out_path && dr_check_output_dir(out_path) != 0) dr_die("%s", dr_lasterr());
    Config cfg, trained;
    const char *model_path = rater_path ? rater_path : lm_path;
    int data_as_trained = !config_path && checkpoint_run_config(model_path, &trained) > 0;
    if (data_as_trained) {
        /* no --config: the windows the model was trained on (its recorded data section);
         * scoring 1024-token windows with a rater trained on 32 gave scores no later step
         * could use */
        config_defaults(&cfg);
        cfg.data = trained.data;
        if (config_apply_sets(&cfg, n_sets, sets) != 0) dr_die("%s", dr_lasterr());
    } else if (config_load(&cfg, config_path, n_sets, sets) != 0) {
        dr_die("%s", dr_lasterr());
    }
    const Backend *be = backend_select_from(device, cfg.device);
    if (!be || backend_set_precision(be, cfg.precision) != 0) dr_die("%s", dr_lasterr());
    if (batch == 0) batch = cfg.data.batch_size;
    if (cfg.threads > 0) omp_set_num_threads(cfg.threads);

    LMConfig mc;
    real *params = NULL;
    if (rater_path ? rater_load(rater_path, &mc, &params) : lm_load(lm_path, &mc, &params))
        dr_die("%s", dr_lasterr());
    lm_config_run_as(&mc, rater_path ? &cfg.rater.shape : &cfg.lm.shape);   /* lm.head_chunk: the logits' memory */

    ShardList shards = {0};
    if (shardlist_add_inputs(&shards, n_inputs, inputs) != 0) dr_die("%s", dr_lasterr());
    if (shardlist_select_split(&shards, split) != 0) dr_die("%s", dr_lasterr());
    if (out_path) {   /* -o must not replace an input */
        CliFiles in = {0}, outs = {0};
        cli_files_add(&in, "the --config file", config_path);
        cli_files_add(&in, rater_path ? "the --rater model" : "the --lm model", model_path);
        cli_files_add_inputs(&in, &shards, n_inputs, inputs);
        cli_files_add(&outs, "-o", out_path);
        if (cli_check_outputs(&outs, &in) != 0) dr_die("%s", dr_lasterr());
        cli_files_free(&in);
        cli_files_free(&outs);
    }
    DataOptions dopt;
    data_options_from_config(&dopt, &cfg);
    dopt.shuffle = 0;
    dopt.bucket_by_length = 0;
    dopt.batch_size = (int)batch;
    /* The rater sees as many leading tokens as it has positions (its training's
     * data.seq_len_rater); the LM scores whole windows. */
    dopt.seq_len_rater = rater_path ? mc.ctx : 0;
    if (score_check_memory(batch, cfg.data.seq_len) != 0)
        dr_die("%s", dr_lasterr());
    DataLoader *d = data_open(&shards, &dopt);
    if (!d || score_check_model(d, rater_path != NULL, &mc, model_path) != 0) dr_die("%s", dr_lasterr());

    char *tmp = NULL;
    FILE *out = stdout;
    dr_install_cleanup_signals();   /* Ctrl-C removes -o's temporary file; a closed stdout ends quietly */
    if (out_path) {
        out = dr_atomic_open(out_path, &tmp);
        if (!out) dr_die("%s", dr_lasterr());
    }
    warn_seq_len(model_path, rater_path != NULL, &cfg, mc.ctx);   /* after every refusal */
    ScoreStats st;
    int rc = rater_path ? score_with_rater(be, d, &mc, params, (int)batch, out, &st)
                        : score_with_lm(be, d, &mc, params, (int)batch, out, &st);
    if (rc != 0) dr_die("%s: %s", ferror(out) ? (out_path ? out_path : "(stdout)") : model_path, dr_lasterr());
    if (out_path ? dr_atomic_commit(out, tmp, out_path) != 0 : fclose(stdout) != 0) {
        if (out_path) dr_die("%s", dr_lasterr());
        dr_die("(stdout): writing the scores failed: %s", strerror(errno));
    }
    fprintf(stderr, "%s: %llu examples in %.2f s (%.0f examples/s, %d thread%s), %.3g FLOPs "
            "(%s forward, %llu positions)%s\n", dr_progname(), (unsigned long long)st.examples,
            st.seconds, st.seconds > 0 ? (double)st.examples / st.seconds : 0.0, st.threads,
            st.threads == 1 ? "" : "s", st.flops, rater_path ? "rater" : "LM",
            (unsigned long long)st.positions,
            data_as_trained ? "; no --config: windows of the model's own training data.seq_len" : "");

    data_close(d);
    shardlist_free(&shards);
    free(params);
    free(sets);
    free(inputs);
    return 0;
}
