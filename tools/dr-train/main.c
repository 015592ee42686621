/* dr-train — train a language model on token shards (or evaluate one on Val).
 * Thin: parse options, load the config, sort the inputs into Train/Val, call lib/train.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "config.h"
#include "dist.h"
#include "train.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: dr-train --config C.yaml [options] inputs...\n"
        "Trains the GPT-2 style LM of the config on the Train split and evaluates it on the\n"
        "Val split (L_val = mean per-example loss over the Val examples, in nats/token).\n"
        "Checkpoints: -o FILE (Hugging Face GPT-2 safetensors) + FILE.state (optimizer and\n"
        "data position), every train.checkpoint_every steps and train.save_minutes (10),\n"
        "when a shard cannot be read or the log written halfway, at the end and on Ctrl-C\n"
        "(or SIGTERM, SIGHUP: exit status 130; a second one ends at once); --resume continues\n"
        "bit-exactly. A NaN/Inf loss stops the run and keeps the last good state.\n"
        "-o, --config, --log, --init, --eval-only, --weights, --rater, --train-split and\n"
        "--val-split given twice are refused (--train, --val, --set repeat); a number or\n"
        "--device given twice: the last one counts.\n"
        "\n"
        "options:\n"
        "  --config C.yaml     config file (default: built-in defaults)\n"
        "  --set k=v           config override, e.g. --set lm.lr=3e-4 (repeatable)\n"
        "  --steps N           train N steps (overrides train.steps / train.tokens)\n"
        "  --tokens N          train ~N target tokens (steps = N / mean tokens per batch; not\n"
        "                      with --steps)\n"
        "  --log FILE          metrics as JSON lines (step, tokens, lr, l_train, grad_norm,\n"
        "                      seconds; l_val, val_tokens at eval steps; flops, flops_lm,\n"
        "                      flops_rater; w_mean with --weights, z_kept, z_all with --rater)\n"
        "  -o FILE             LM checkpoint (default lm.safetensors)\n"
        "  --resume            continue from -o FILE and FILE.state (give the same --log\n"
        "                      again: the log goes on only where it is named)\n"
        "  --restart           start afresh over FILE.state of an unfinished run (without it\n"
        "                      or --resume, such a state is refused, not replaced)\n"
        "  --init CKPT         start from CKPT's weights (an LM of the config's shape: ours, or\n"
        "                      Hugging Face GPT-2 with its config.json beside it), with a fresh\n"
        "                      optimizer, schedule and data order\n"
        "  --stop-at STEP      save a checkpoint and stop after STEP steps (as Ctrl-C would)\n"
        "  --eval-only CKPT    print {\"l_val\":…,\"examples\":…,\"tokens\":…} of CKPT on Val, train\n"
        "                      nothing (CKPT: ours, or Hugging Face GPT-2 as for --init)\n"
        "  --device D          cpu | auto | cuda (default experiment.device)\n"
        "  --train-split S     manifest split to train on (default train_b if present, else train_a)\n"
        "  --val-split S       manifest split to evaluate on (default val)\n"
        "  --train PATH        Train shards/directory/manifest instead of a split (of a manifest:\n"
        "                      its train_b lines, else train_a, or --train-split; repeatable)\n"
        "  --val PATH          Val shards/directory/manifest (of a manifest: its val lines, or\n"
        "                      --val-split; repeatable)\n"
        "  inputs: a manifest (or '-' for one on stdin), shards or directories\n"
        "\n"
        "curated training (docs/deploy.md):\n"
        "  --weights S.tsv     re-weight each example's loss by its score in S.tsv (dr-score\n"
        "                      --rater): w = the rater section's normalization of the batch's\n"
        "                      scores (rater.normalize, tau, clamp, mean_normalize), as dr-meta\n"
        "  --rater R           filter online with rater R: each step scores ceil(B/F)\n"
        "                      candidates of the Train stream and trains on the best B\n"
        "  --online-keep F     the kept fraction F in (0, 1] (default deploy.keep); F = 1 is\n"
        "                      plain training, bit for bit\n"
        "\n"
        "data-parallel (docs/scale-out.md): under mpirun -np N (or srun), every batch of\n"
        "data.batch_size examples is split over the N ranks and their gradients are summed in a\n"
        "fixed order; rank 0 writes the checkpoints and the log; --resume works with any N.\n"
        "\n"
        "examples:\n"
        "  dr-split --val 0.1 --train-b 0.45 -o splits shards/ > manifest.tsv\n"
        "  dr-train --config configs/cpu.yaml --log train.jsonl -o lm.safetensors manifest.tsv\n"
        "  dr-train --config configs/cpu.yaml --eval-only lm.safetensors manifest.tsv\n"
        "  dr-train --config configs/cpu.yaml --rater rater.safetensors --online-keep 0.6 \\\n"
        "      --train-split train_b --log online.jsonl -o online.safetensors manifest.tsv\n"
        "  mpirun -np 4 dr-train --config configs/cpu.yaml --set experiment.threads=4 \\\n"
        "      --log train.jsonl -o lm.safetensors splits/manifest.tsv\n");
}

int main(int argc, char **argv) {
    dr_set_progname(argv[0]);
    dist_init(&argc, &argv);   /* MPI only under mpirun/srun */
    const char *config_path = NULL, *eval_ckpt = NULL, *train_split = NULL, *val_split = NULL;
    char **sets = xcalloc((size_t)argc, sizeof *sets);
    char **inputs = xcalloc((size_t)argc, sizeof *inputs);
    char **train_in = xcalloc((size_t)argc, sizeof *train_in);
    char **val_in = xcalloc((size_t)argc, sizeof *val_in);
    int n_sets = 0, n_inputs = 0, n_train = 0, n_val = 0;
    TrainOptions o = {0};
    /* An option naming a file or the data given twice is refused (which one was meant?);
     * a number or the device given twice: the last one counts, so that a script can
     * override its defaults ("${BASE[@]}" --steps 20) as with --set */
    const char *out = NULL, *steps = NULL, *tokens = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--version")) { cli_print_version(); exit(0); }
        else if (!strcmp(a, "--config")) config_path = cli_value_once(argc, argv, &i, config_path);
        else if (!strcmp(a, "--set")) sets[n_sets++] = (char *)cli_value(argc, argv, &i);
        else if (!strcmp(a, "--steps"))
            o.steps = cli_long(a, steps = cli_value(argc, argv, &i), 1, 1L << 40);
        else if (!strcmp(a, "--tokens"))
            o.tokens = cli_long(a, tokens = cli_value(argc, argv, &i), 1, 1L << 60);
        else if (!strcmp(a, "--stop-at"))
            o.stop_at = cli_long(a, cli_value(argc, argv, &i), 1, 1L << 40);
        else if (!strcmp(a, "--log")) o.log_path = cli_value_once(argc, argv, &i, o.log_path);
        else if (!strcmp(a, "-o")) out = cli_value_once(argc, argv, &i, out);
        else if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--restart")) o.restart = 1;
        else if (!strcmp(a, "--init")) o.init_path = cli_value_once(argc, argv, &i, o.init_path);
        else if (!strcmp(a, "--eval-only")) eval_ckpt = cli_value_once(argc, argv, &i, eval_ckpt);
        else if (!strcmp(a, "--device")) o.device = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--train-split")) train_split = cli_value_once(argc, argv, &i, train_split);
        else if (!strcmp(a, "--val-split")) val_split = cli_value_once(argc, argv, &i, val_split);
        else if (!strcmp(a, "--train")) train_in[n_train++] = (char *)cli_value(argc, argv, &i);
        else if (!strcmp(a, "--val")) val_in[n_val++] = (char *)cli_value(argc, argv, &i);
        else if (!strcmp(a, "--weights")) o.weights_path = cli_value_once(argc, argv, &i, o.weights_path);
        else if (!strcmp(a, "--rater")) o.rater_path = cli_value_once(argc, argv, &i, o.rater_path);
        else if (!strcmp(a, "--online-keep")) {
            const char *v = cli_value(argc, argv, &i);   /* named as given: %g makes 1.0000001 "1" */
            o.online_keep = cli_double(a, v, -1e300, 1e300);
            if (!(o.online_keep > 0 && o.online_keep <= 1))
                dr_die("--online-keep: keep fraction %s is outside (0, 1]", v);
        }
        else if (a[0] == '-' && a[1] != 0) cli_unknown_option(a, "", usage);
        else inputs[n_inputs++] = (char *)a;
    }
    if (out && !strcmp(out, "-"))
        dr_die("-o -: the model is saved to a file (FILE.state beside it), not to stdout: name a file");
    o.out_path = out ? out : "lm.safetensors";
    if (steps && tokens)   /* as train.steps with train.tokens: which one would count? */
        dr_die("--steps %s and --tokens %s: give one (--steps overrides the config's train.steps "
               "and train.tokens, so does --tokens)", steps, tokens);
    if (n_inputs + n_train + n_val == 0) dr_die("no inputs: give a manifest, or --train and --val (see --help)");
    cli_no_stdin_on_ranks(dist_size(), n_inputs, inputs, "a manifest");
    cli_no_stdin_on_ranks(dist_size(), n_train, train_in, "--train");
    cli_no_stdin_on_ranks(dist_size(), n_val, val_in, "--val");
    if (o.weights_path) cli_no_stdin_on_ranks(dist_size(), 1, (char *const *)&o.weights_path, "--weights");
    if (eval_ckpt && o.resume) dr_die("--eval-only and --resume do not go together");
    if (o.resume && o.restart) dr_die("--resume and --restart do not go together: continue the run, or start it over");
    if (eval_ckpt && o.log_path)
        dr_die("--eval-only prints its one JSON line on stdout and writes no --log: redirect stdout");
    if (o.init_path && o.resume)
        dr_die("--init and --resume do not go together: --resume continues -o's own checkpoint");
    if (o.init_path && eval_ckpt) dr_die("--init is for training: --eval-only names its checkpoint");
    if (eval_ckpt && (o.weights_path || o.rater_path))
        dr_die("--eval-only evaluates a checkpoint: --weights and --rater are for training");
    if (o.online_keep != 0 && !o.rater_path) dr_die("--online-keep needs --rater R.safetensors");
    if (o.weights_path && o.rater_path)
        dr_die("--weights and --rater do not go together: re-weight by scores or filter online, not both");

    for (int i = 0; o.weights_path && !strcmp(o.weights_path, "-") && i < n_inputs + n_train + n_val; i++) {
        const char *in = i < n_inputs ? inputs[i] : i < n_inputs + n_train ? train_in[i - n_inputs]
                                                                           : val_in[i - n_inputs - n_train];
        if (!strcmp(in, "-"))
            dr_die("--weights - and a manifest on stdin ('-'): only one of them can be read from stdin");
    }
    if (config_load(&o.cfg, config_path, n_sets, sets) != 0) dr_die("%s", dr_lasterr());
    if (train_resolve_inputs(&o, n_inputs, inputs, n_train, train_in, n_val, val_in,
                             train_split, val_split) != 0)
        dr_die("%s", dr_lasterr());

    /* no output may replace an input (--resume reads -o and its .state on purpose) */
    CliFiles in = {0}, outs = {0};
    cli_files_add_run_inputs(&in, config_path, &o.train, &o.val, n_inputs, inputs, n_train,
                             train_in, n_val, val_in);
    cli_files_add(&in, "the --weights scores", o.weights_path);
    cli_files_add(&in, "the --rater model", o.rater_path);
    cli_files_add(&in, "the --init checkpoint", o.init_path);
    cli_files_add(&in, "the --eval-only checkpoint", eval_ckpt);
    if (!eval_ckpt) {
        char *state = xmalloc(strlen(o.out_path) + sizeof ".state");
        strcpy(state, o.out_path);
        strcat(state, ".state");
        cli_files_add(&outs, "-o", o.out_path);
        cli_files_add(&outs, "-o's .state", state);
        free(state);
    }
    cli_files_add(&outs, "--log", o.log_path);
    if (cli_check_outputs(&outs, &in) != 0) dr_die("%s", dr_lasterr());
    cli_files_free(&in);
    cli_files_free(&outs);

    int rc = eval_ckpt ? train_eval_only(&o, eval_ckpt) : train_run(&o);
    if (rc < 0) dr_die("%s", dr_lasterr());
    train_options_free(&o);
    free(sets); free(inputs); free(train_in); free(val_in);
    dist_finalize();
    return rc;
}
