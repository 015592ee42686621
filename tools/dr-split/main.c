/* dr-split — hash-based disjoint train_a / val / train_b splits of token shards.
 * Thin: parse options, then lib/split.c (plan from the indexes, one streaming pass). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "inputs.h"
#include "progress.h"
#include "shard.h"
#include "split.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: dr-split [options] -o DIR inputs...\n"
        "Splits the documents of token shards into disjoint train_a / val / train_b sets by\n"
        "a hash of each document's id, writes them as shards DIR/<split>/<split>-NNNNN.drs\n"
        "and DIR/manifest.tsv (paths relative to DIR), and prints the manifest on stdout\n"
        "(split<TAB>path lines, with '#' lines recording hash, seed, fractions and counts);\n"
        "a summary on stderr.\n"
        "\n"
        "  -o DIR             output directory (created with its parents; stale shards of\n"
        "                     an earlier run removed)\n"
        "  --val F            fraction of documents in val (default 0.1)\n"
        "  --train-b F        fraction in train_b (default 0); train_a gets the rest\n"
        "  --seed S           seed of the hash, 0 .. 2^64-1 (default 0)\n"
        "  --val-sources a,b  only documents of these sources can be in val (and only when\n"
        "                     no copy of them is of another source); the others go to\n"
        "                     train. --val F is then the fraction of those documents\n"
        "  --val-sources-file FILE  the same, one source name per line (long lists, names\n"
        "                     with commas); adds to --val-sources\n"
        "  --dedup            keep one copy of exact duplicates (same document id): the first\n"
        "                     in canonical order (shards by content, documents in file order)\n"
        "  --shard-size MB    start a new output shard after MB MiB of tokens (default 64)\n"
        "  --level N          zstd level of the output (default %d)\n"
        "  --threads N        threads in all (default 2): 1 reads and compresses on one\n"
        "                     thread; N > 1 adds N-1 compressing threads (same bytes either way)\n"
        "  inputs: shards, directories (their *.drs), manifests, or '-' (manifest on stdin);\n"
        "                     one shard file given twice (two names, or two splits of a\n"
        "                     manifest) is refused: its documents would count twice\n"
        "Ctrl-C (or SIGTERM, SIGHUP) stops it at once and removes what it wrote (the\n"
        "staging directory DIR/.dr-split.<pid>/, and DIR when the run made it): the output\n"
        "of an earlier run into DIR stays as it was; status 128 + the signal (130 for\n"
        "Ctrl-C). A signal that comes while the shards are moved into place takes effect\n"
        "once DIR is all new. A signal the parent ignores stays ignored (nohup).\n"
        "\n"
        "A document's split depends on its id and the seed (u = ((xxh64 of the id as 8\n"
        "little-endian bytes, seeded with S) >> 11) / 2^53: val if u < F_val, train_b if\n"
        "u < F_val + F_train_b, else train_a; with --val-sources, also on the sources of\n"
        "its copies; docs/formats.md section 3), so copies of a document always land in\n"
        "the same split, and the output bytes do not depend on the order of the inputs.\n"
        "All inputs must share one tokenizer.\n"
        "\n"
        "examples:\n"
        "  dr-split --val 0.1 --train-b 0.3 --seed 1 -o splits shards/ > splits.tsv\n"
        "  dr-split --val 0.2 --val-sources sotu,moby-dick --dedup -o splits shards/ | \\\n"
        "      dr-meta --config configs/cpu.yaml -o rater.safetensors\n",
        DRS_ZSTD_LEVEL);
}


static void print_summary(const SplitStats *st, double seconds) {
    fprintf(stderr, "%s: %llu documents, %llu tokens from %llu shard%s", dr_progname(),
            (unsigned long long)st->in_docs, (unsigned long long)st->in_tokens,
            (unsigned long long)st->in_shards, st->in_shards == 1 ? "" : "s");
    if (st->dup_docs) fprintf(stderr, "; %llu duplicates dropped", (unsigned long long)st->dup_docs);
    fprintf(stderr, "\n");
    for (int s = 0; s < SPLIT_COUNT; s++)
        fprintf(stderr, "  %-8s %10llu documents (%5.2f%%) %12llu tokens  %llu shard%s\n", split_name(s),
                (unsigned long long)st->docs[s],
                st->in_docs ? 100.0 * (double)st->docs[s] / (double)(st->in_docs - st->dup_docs) : 0.0,
                (unsigned long long)st->tokens[s], (unsigned long long)st->shards[s],
                st->shards[s] == 1 ? "" : "s");
    fprintf(stderr, "  %.2f s, %.1f M tokens/s\n", seconds, seconds > 0 ? (double)st->in_tokens / seconds / 1e6 : 0.0);
}

/* A split asked for (a fraction > 0) that got no document: dr-meta and dr-train then find
 * no Val or Train_B, far from here; said now, with the likely cause. */
static void warn_empty_splits(const SplitStats *st, const SplitOptions *o) {
    const double frac[SPLIT_COUNT] = {[SPLIT_TRAIN_A] = 1 - o->val - o->train_b, [SPLIT_VAL] = o->val,
                                      [SPLIT_TRAIN_B] = o->train_b};
    for (int s = 0; s < SPLIT_COUNT; s++)
        if (frac[s] > 0 && st->docs[s] == 0)
            fprintf(stderr, "%s: warning: %s got no documents (fraction %g of %llu%s): %s\n", dr_progname(),
                    split_name(s), frac[s], (unsigned long long)(st->in_docs - st->dup_docs),
                    s == SPLIT_VAL && o->n_val_sources ? " documents, of the --val-sources' ones" : " documents",
                    st->in_docs - st->dup_docs < 20 ? "too few documents (a text file is one document: "
                    "dr-tokenize --lines makes one per line)" : "raise the fraction");
}

int main(int argc, char **argv) {
    dr_set_progname(argv[0]);
    SplitOptions o;
    split_options_default(&o);
    char **inputs = xcalloc((size_t)argc, sizeof *inputs);
    int n_inputs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--version")) { cli_print_version(); exit(0); }
        else if (!strcmp(a, "-o")) o.out_dir = cli_value_once(argc, argv, &i, o.out_dir);
        else if (!strcmp(a, "--val")) o.val = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--train-b")) o.train_b = cli_double(a, cli_value(argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--seed")) o.seed = cli_u64(a, cli_value(argc, argv, &i));   /* xxh64's u64 seed */
        else if (!strcmp(a, "--val-sources")) {
            if (split_set_val_sources(&o, cli_value(argc, argv, &i)) != 0) dr_die("%s", dr_lasterr());
        }
        else if (!strcmp(a, "--val-sources-file")) {
            if (split_add_val_sources_file(&o, cli_value(argc, argv, &i)) != 0) dr_die("%s", dr_lasterr());
        }
        else if (!strcmp(a, "--dedup")) o.dedup = 1;
        else if (!strcmp(a, "--shard-size"))
            /* a shard closes once its bytes reach MB MiB: whole bytes reach x when they
             * reach ceil(x) (0.001 MiB = 1048.576: a shard of 1048 bytes stays open) */
            o.shard_bytes = (uint64_t)ceil(cli_double(a, cli_value(argc, argv, &i), 0.001, 1e6) * (1 << 20));
        else if (!strcmp(a, "--level")) o.zstd_level = (int)cli_long(a, cli_value(argc, argv, &i), -7, 19);
        else if (!strcmp(a, "--threads")) o.threads = (int)cli_long(a, cli_value(argc, argv, &i), 1, 64);
        else if (a[0] == '-' && a[1] != 0) cli_unknown_option(a, "", usage);
        else inputs[n_inputs++] = (char *)a;
    }
    if (!o.out_dir) dr_die("-o DIR is required (see --help)");
    if (n_inputs == 0) dr_die("no inputs: give shards, directories or a manifest ('-' for stdin)");
    if (o.val + o.train_b > 1) dr_die("--val %g + --train-b %g is more than 1", o.val, o.train_b);

    ShardList shards = {0};
    if (shardlist_add_inputs(&shards, n_inputs, inputs) != 0) dr_die("%s", dr_lasterr());
    /* a signal removes what split_run has registered: the staging directory and its
     * shards, DIR when the run made it */
    dr_install_cleanup_signals();
    double t0 = dr_now();
    SplitStats st;
    if (split_run(&shards, &o, stdout, &st) != 0) dr_die("%s", dr_lasterr());
    print_summary(&st, dr_now() - t0);
    warn_empty_splits(&st, &o);
    shardlist_free(&shards);
    split_options_free(&o);
    free(inputs);
    return 0;
}
