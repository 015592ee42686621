/* dr-meta — meta-train the DataRater (DESIGN §4), or compute one meta-gradient.
 * Thin: parse options, load the config, sort the inputs into Train_A and Val, call
 * lib/meta_run.c (meta_run / meta_grad_run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "config.h"
#include "dist.h"
#include "meta.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: dr-meta --config C.yaml [options] [manifest | - | shards...]\n"
        "       dr-meta grad --config C.yaml --lm-init LM.safetensors --rater-init R.safetensors\n"
        "               --train SHARDS --val SHARDS -o grad.safetensors\n"
        "\n"
        "With no inputs and stdin not a terminal, the manifest is read from stdin.\n"
        "\n"
        "Meta-trains the rater: a population of meta.population_K inner LMs, each running\n"
        "meta.T inner steps per meta-step on Train_A batches weighted by the rater; the Val loss\n"
        "is differentiated exactly back through those steps into the rater (forward-over-reverse,\n"
        "checkpointed every meta.checkpoint_every steps), the members' meta-gradients combined\n"
        "(meta.combine) and applied by AdamW (rater.lr, clip rater.clip). Inputs: the train_a\n"
        "and val splits of a dr-split manifest (a file, or '-' for one on stdin), or --train and\n"
        "--val. Val and Train_A must not share documents.\n"
        "Outputs: -o FILE (the rater), FILE minus .safetensors + .ema.safetensors (its EMA,\n"
        "meta.ema) and FILE.state (everything --resume needs, bit-exact), saved every\n"
        "meta.save_every meta-steps and meta.save_minutes (10) and at the end. Ctrl-C (SIGTERM,\n"
        "SIGHUP) saves the state after the current meta-step, exit status 130; so does a log\n"
        "that can no longer be written (exit status 1). A NaN/Inf meta-gradient or inner loss\n"
        "stops with the step number and keeps the last good rater. -o, --config, --log (and\n"
        "grad's --lm-init, --rater-init) given twice are refused. docs/meta.md explains the\n"
        "algorithm and the metrics.\n"
        "Under mpirun -np N (or srun) member k runs on rank k mod N and the members'\n"
        "meta-gradients are combined in member order: the same rater as one process, bit for\n"
        "bit; rank 0 writes the files and the log (docs/scale-out.md).\n"
        "\n"
        "options:\n"
        "  --config C.yaml     config file (default: built-in defaults)\n"
        "  --set k=v           config override, e.g. --set meta.T=16 (repeatable)\n"
        "  --print-config      print the resulting config as YAML and exit\n"
        "  -o FILE             rater checkpoint (default rater.safetensors)\n"
        "  --log FILE          metrics as JSON lines, one per meta.log_every meta-steps: meta_step,\n"
        "                      step, l_train, l_val, l_val_uniform, l_val_gain, objective, score_mean/std/\n"
        "                      min/max/entropy, frac_at_min/max, meta_grad_norm, inner_clip_frac,\n"
        "                      seconds, step_seconds\n"
        "  --resume            continue from FILE.state (same data; same config but for\n"
        "                      meta.rounds, lm.lr, lm.clip, the log and save intervals,\n"
        "                      threads, device and memory options: docs/meta.md section 4;\n"
        "                      give the same --log again: the log goes on only where named)\n"
        "  --restart           start afresh over FILE.state of an unfinished run (without it\n"
        "                      or --resume, such a state is refused, not replaced)\n"
        "  --stop-at N         save the state and stop after meta-step N (as Ctrl-C would)\n"
        "  --device D          cpu | auto | cuda (default experiment.device)\n"
        "  --train PATH        Train_A shards/directory/manifest (its train_a lines; repeatable)\n"
        "  --val PATH          Val shards/directory/manifest (its val lines; repeatable)\n"
        "\n"
        "grad: the meta-gradient dJ/dphi of ONE meta-step of ONE member from the given LM and\n"
        "rater checkpoints, fresh optimizer state, unshuffled data (Train_A batch t = examples\n"
        "tB..tB+B-1 in shard order, modulo the example count; Val batch j likewise); written\n"
        "under the rater's tensor names with the scalars l_val and objective, to compare with\n"
        "other implementations.\n"
        "  --lm-init FILE      the inner LM's checkpoint (the member's starting weights)\n"
        "  --rater-init FILE   the rater's checkpoint (phi)\n"
        "  -o FILE             the meta-gradient (default grad.safetensors)\n"
        "\n"
        "examples:\n"
        "  dr-split --val 0.1 --seed 1 -o splits shards/ | dr-meta --config configs/cpu.yaml \\\n"
        "      --log meta.jsonl -o rater.safetensors -\n"
        "  dr-meta --config configs/cpu.yaml --resume --log meta.jsonl -o rater.safetensors \\\n"
        "      splits/manifest.tsv\n"
        "  mpirun -np 4 dr-meta --config configs/cpu.yaml --set meta.population_K=4 \\\n"
        "      -o rater.safetensors splits/manifest.tsv\n"
        "  dr-meta grad --config configs/tiny.yaml --lm-init lm.safetensors --rater-init r.safetensors \\\n"
        "      --train splits/train_a --val splits/val -o grad.safetensors\n");
}

int main(int argc, char **argv) {
    dr_set_progname(argv[0]);
    dist_init(&argc, &argv);   /* MPI only under mpirun/srun */
    const char *config_path = NULL, *lm_init = NULL, *rater_init = NULL, *out = NULL;
    char **sets = xcalloc((size_t)argc, sizeof *sets);
    char **inputs = xcalloc((size_t)argc, sizeof *inputs);
    char **train_in = xcalloc((size_t)argc, sizeof *train_in);
    char **val_in = xcalloc((size_t)argc, sizeof *val_in);
    int n_sets = 0, n_inputs = 0, n_train = 0, n_val = 0, grad = 0, first = 1, print_config = 0;
    MetaOptions o = { 0 };
    if (argc > 1 && !strcmp(argv[1], "grad")) {
        grad = 1;
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--version")) { cli_print_version(); exit(0); }
        else if (!strcmp(a, "--config")) config_path = cli_value_once(argc, argv, &i, config_path);
        else if (!strcmp(a, "--set")) sets[n_sets++] = (char *)cli_value(argc, argv, &i);
        else if (!strcmp(a, "--print-config")) print_config = 1;
        else if (!strcmp(a, "-o")) out = cli_value_once(argc, argv, &i, out);
        else if (!strcmp(a, "--log") && !grad) o.log_path = cli_value_once(argc, argv, &i, o.log_path);
        else if (!strcmp(a, "--resume") && !grad) o.resume = 1;
        else if (!strcmp(a, "--restart") && !grad) o.restart = 1;
        else if (!strcmp(a, "--stop-at") && !grad)
            o.stop_at = cli_long(a, cli_value(argc, argv, &i), 1, 1L << 40);
        else if (!strcmp(a, "--device")) o.device = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--train")) train_in[n_train++] = (char *)cli_value(argc, argv, &i);
        else if (!strcmp(a, "--val")) val_in[n_val++] = (char *)cli_value(argc, argv, &i);
        else if (!strcmp(a, "--lm-init") && grad) lm_init = cli_value_once(argc, argv, &i, lm_init);
        else if (!strcmp(a, "--rater-init") && grad) rater_init = cli_value_once(argc, argv, &i, rater_init);
        else if (a[0] == '-' && a[1] != 0) cli_unknown_option(a, grad ? " for grad" : "", usage);
        else inputs[n_inputs++] = (char *)a;
    }
    if (print_config) {
        if (config_load(&o.cfg, config_path, n_sets, sets) != 0) dr_die("%s", dr_lasterr());
        config_write_yaml(&o.cfg, stdout);
        return 0;
    }
    if (n_inputs + n_train + n_val == 0) {
        if (dist_size() > 1)
            dr_die("no inputs: under mpirun give the manifest as a file (stdin reaches rank 0 only)");
        if (isatty(STDIN_FILENO))
            dr_die("no inputs: give a manifest (or pipe one in from dr-split), or --train and --val (see --help)");
        inputs[n_inputs++] = "-";   /* `dr-split … | dr-meta …`: the manifest on stdin */
    }
    if (grad && (!lm_init || !rater_init)) dr_die("grad needs --lm-init and --rater-init (see --help)");
    if (o.resume && o.restart) dr_die("--resume and --restart do not go together: continue the run, or start it over");
    cli_no_stdin_on_ranks(dist_size(), n_inputs, inputs, "a manifest");
    cli_no_stdin_on_ranks(dist_size(), n_train, train_in, "--train");
    cli_no_stdin_on_ranks(dist_size(), n_val, val_in, "--val");

    if (config_load(&o.cfg, config_path, n_sets, sets) != 0) dr_die("%s", dr_lasterr());
    if (meta_resolve_inputs(&o, n_inputs, inputs, n_train, train_in, n_val, val_in) != 0)
        dr_die("%s", dr_lasterr());

    /* no output may replace an input (--resume reads -o and its state on purpose) */
    CliFiles in = {0}, outs = {0};
    cli_files_add_run_inputs(&in, config_path, &o.train, &o.val, n_inputs, inputs, n_train,
                             train_in, n_val, val_in);
    cli_files_add(&in, "the --lm-init checkpoint", lm_init);
    cli_files_add(&in, "the --rater-init checkpoint", rater_init);
    if (out && !strcmp(out, "-"))
        dr_die("-o -: %s saved to a file%s, not to stdout: name a file", grad ? "the meta-gradient is" : "the rater is",
               grad ? "" : " (its EMA and FILE.state beside it)");
    const char *out_path = out ? out : grad ? "grad.safetensors" : "rater.safetensors";
    cli_files_add(&outs, "-o", out_path);
    if (!grad) {
        char *ema = meta_ema_path(out_path), *state = meta_state_path(out_path);
        cli_files_add(&outs, "-o's .ema.safetensors", ema);
        cli_files_add(&outs, "-o's .state", state);
        free(ema);
        free(state);
    }
    cli_files_add(&outs, "--log", o.log_path);
    if (cli_check_outputs(&outs, &in) != 0) dr_die("%s", dr_lasterr());
    cli_files_free(&in);
    cli_files_free(&outs);

    int rc;
    if (grad) {
        MetaGradOptions g = { .cfg = o.cfg, .lm_init = lm_init, .rater_init = rater_init,
                              .out_path = out ? out : "grad.safetensors", .device = o.device,
                              .train = o.train, .val = o.val };
        o.train = (ShardList){ 0 };
        o.val = (ShardList){ 0 };
        rc = meta_grad_run(&g);
        if (rc < 0) dr_die("%s", dr_lasterr());
        meta_grad_options_free(&g);
    } else {
        o.out_path = out ? out : "rater.safetensors";
        rc = meta_run(&o);
        if (rc < 0) dr_die("%s", dr_lasterr());
    }
    meta_options_free(&o);
    free(sets); free(inputs); free(train_in); free(val_in);
    dist_finalize();
    return rc;
}
