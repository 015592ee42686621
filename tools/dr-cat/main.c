/* dr-cat — print the documents of shards (or the examples a scores file ranks first)
 * as text, JSON lines or token ids. Thin: parse options, then lib/cat.c, or
 * lib/data_print.c for --examples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cat.h"
#include "check.h"
#include "cli.h"
#include "data.h"
#include "inputs.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: dr-cat [options] inputs...\n"
        "Prints the documents of token shards, decoded with the tokenizer the shards name.\n"
        "\n"
        "output (default: text, each document followed by one newline, so that a file of one\n"
        "document per line comes back byte for byte after dr-tokenize --lines):\n"
        "  --raw              text with nothing added after each document (dr-tokenize\n"
        "                     --format text, one document per file, then dr-cat --raw)\n"
        "  --jsonl            one JSON object per document: {\"id\", \"source\", \"n_tokens\", \"text\"}\n"
        "                     (text as valid UTF-8; with --ids: \"ids\" instead of \"text\")\n"
        "  --ids              token ids, one JSON array per document; needs no tokenizer\n"
        "  --list             \"<id>\\t<source>\\t<n_tokens>\" per document, from the index only\n"
        "filters:\n"
        "  --source S         only documents of source S\n"
        "  --split S          with a manifest: only shards of split S (train_a, val, train_b)\n"
        "  --head N           at most N documents (or examples)\n"
        "ranking by a scores file (DESIGN 2.4, from dr-score):\n"
        "  --scores F         print examples by score, highest first, with their score; an\n"
        "                     example is window w of its document: tokens [w*L, w*L + L + 1)\n"
        "  --top N            the N highest-scored examples\n"
        "  --bottom N         the N lowest-scored examples\n"
        "  --seq-len L        L of the examples (default 1024; the value dr-score used)\n"
        "examples as the data loader forms them:\n"
        "  --examples         one line per example: \"<id>\\t<window as JSON string>\" (with --ids:\n"
        "                     space-separated ids), windows of --seq-len L\n"
        "  --min-tokens N     windows shorter than N tokens are dropped (default 2)\n"
        "tokenizer:\n"
        "  --tokenizer K      byte, gpt2 or bpe instead of the shards' own (must match them)\n"
        "  --vocab-dir D      its vocabulary directory (gpt2, bpe)\n"
        "inputs: shards, directories (their *.drs), manifests, or '-' (a manifest on stdin)\n"
        "A closed stdout (dr-cat ... | head -1) ends dr-cat quietly, status 141 (as zcat).\n"
        "\n"
        "examples:\n"
        "  dr-tokenize --lines -o shards/ corpus.txt >/dev/null && dr-cat shards/ | cmp - corpus.txt\n"
        "      (byte for byte when corpus.txt has no empty lines: --lines skips them)\n"
        "  dr-cat --jsonl --source moby-dick --head 3 splits/manifest.tsv\n"
        "  dr-cat --scores scores.tsv --bottom 5 --seq-len 128 splits/train_b\n");
}

/* dr-cat --examples: the loader's windows, in shard order; head as in CatOptions
 * (UINT64_MAX: all; 0: none, after the inputs are checked). */
static int print_examples(const ShardList *shards, int seq_len, int min_tokens, int ids,
                          uint64_t head) {
    DataOptions dopt = {.seq_len = seq_len, .min_tokens = min_tokens, .batch_size = 1};
    DataLoader *d = data_open(shards, &dopt);
    if (!d) return -1;
    int rc = head == 0 ? 0 : data_print_examples(d, stdout, ids, head == UINT64_MAX ? 0 : head);
    data_close(d);
    return rc;
}

int main(int argc, char **argv) {
    dr_set_progname(argv[0]);
    CatOptions o;
    cat_options_default(&o);
    const char *split = NULL;
    int examples = 0, min_tokens = 2, ranked = 0, head_given = 0;
    char **inputs = xcalloc((size_t)argc, sizeof *inputs);
    int n_inputs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--version")) { cli_print_version(); exit(0); }
        else if (!strcmp(a, "--jsonl")) o.jsonl = 1;
        else if (!strcmp(a, "--ids")) o.ids = 1;
        else if (!strcmp(a, "--list")) o.list = 1;
        else if (!strcmp(a, "--raw")) o.raw = 1;
        else if (!strcmp(a, "--source")) o.source = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--split")) split = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--head")) {
            o.head = (uint64_t)cli_long(a, cli_value(argc, argv, &i), 0, 0x7fffffffffffffffL);
            head_given = 1;
        }
        else if (!strcmp(a, "--scores")) o.scores_path = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--top") || !strcmp(a, "--bottom")) {
            o.bottom = !strcmp(a, "--bottom");
            o.head = (uint64_t)cli_long(a, cli_value(argc, argv, &i), 1, 0x7fffffffffffffffL);
            ranked++;
        }
        else if (!strcmp(a, "--seq-len")) o.seq_len = (int)cli_long(a, cli_value(argc, argv, &i), 1, 1 << 24);
        else if (!strcmp(a, "--min-tokens")) min_tokens = (int)cli_long(a, cli_value(argc, argv, &i), 2, 1 << 24);
        else if (!strcmp(a, "--examples")) examples = 1;
        else if (!strcmp(a, "--tokenizer")) o.tokenizer_kind = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--vocab-dir")) o.vocab_dir = cli_value(argc, argv, &i);
        else if (a[0] == '-' && a[1] != 0) cli_unknown_option(a, "", usage);
        else inputs[n_inputs++] = (char *)a;
    }
    if (n_inputs == 0) dr_die("no inputs: give shards, directories or a manifest ('-' for stdin)");
    if (ranked > 1) dr_die("give one of --top and --bottom");
    if (ranked && head_given) dr_die("--head does not go with --top or --bottom: give one count");
    if (o.list && (o.jsonl || o.ids || o.raw))
        dr_die("--list prints ids, sources and lengths: it does not go with %s",
               o.jsonl ? "--jsonl" : o.ids ? "--ids" : "--raw");
    if (o.raw && (o.jsonl || o.ids)) dr_die("--raw is for text: it does not go with %s", o.jsonl ? "--jsonl" : "--ids");
    if (ranked && !o.scores_path) dr_die("--top and --bottom rank by --scores FILE: give it");
    if (examples && (o.scores_path || o.jsonl || o.list || o.source || o.tokenizer_kind || o.raw))
        dr_die("--examples takes only --ids, --seq-len, --min-tokens, --head, --split and inputs");

    ShardList shards = {0};
    if (shardlist_add_inputs(&shards, n_inputs, inputs) != 0) dr_die("%s", dr_lasterr());
    if (shardlist_select_split(&shards, split) != 0) dr_die("%s", dr_lasterr());
    /* `dr-cat … | head -1`: the closed pipe ends dr-cat quietly (status 141, no message),
     * as zcat, even under a parent that ignores SIGPIPE; see check.h */
    dr_install_cleanup_signals();
    int rc = examples ? print_examples(&shards, o.seq_len, min_tokens, o.ids, o.head)
                      : cat_run(&shards, &o, stdout);
    if (rc != 0) dr_die("%s", dr_lasterr());
    shardlist_free(&shards);
    free(inputs);
    return 0;
}
