/* dr-tokenize — text (JSON lines, one document per line, or one per file) to token
 * shards *.drs; or, with --train-bpe N, a BPE vocabulary learned from the text.
 * Thin: parse options, load the tokenizer, then lib/tokenize_pipeline.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "shard.h"
#include "tokenize_pipeline.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: dr-tokenize [options] -o DIR [inputs...]\n"
        "       dr-tokenize --train-bpe N [options] -o VOCAB_DIR [inputs...]\n"
        "Tokenizes documents into zstd-compressed token shards DIR/<prefix>-NNNNN.drs and\n"
        "prints their paths on stdout (one per line); a summary goes to stderr. Documents\n"
        "keep their input order; a document's id is the xxh64 of its raw text bytes.\n"
        "\n"
        "  -o DIR               output directory (created when missing; shards of an earlier\n"
        "                       run with the same prefix and higher numbers are removed)\n"
        "  --tokenizer KIND     byte | gpt2 | bpe (default gpt2)\n"
        "                         byte: ids 0-255 are bytes, 256 end-of-text; no files\n"
        "                         gpt2: GPT-2's BPE, ids identical to tiktoken's \"gpt2\"\n"
        "                         bpe:  a vocabulary made by --train-bpe (needs --vocab-dir)\n"
        "  --vocab-dir DIR      encoder.json + vocab.bpe (gpt2 default: $DR_DATA/gpt2, else\n"
        "                       ../share/datarater/gpt2 from the executable's directory when\n"
        "                       installed, ../data/gpt2 in a build; fetch it with `make vocab`)\n"
        "  --field NAME         JSON field holding the text (default text); a dotted NAME\n"
        "                       reaches into objects (meta.text: {\"meta\": {\"text\": …}})\n"
        "                       when no key is NAME itself\n"
        "  --source-field NAME  JSON field naming each document's source, dotted as --field\n"
        "                       (optional; a line without it, or with \"\", takes the default\n"
        "                       source, and the summary counts the documents that had it; a\n"
        "                       value that is not a string is refused). --field and\n"
        "                       --source-field are refused with --lines and --format lines|text\n"
        "  --source NAME        source of every document (default: the input's name without\n"
        "                       extension, the directory's name, or \"stdin\")\n"
        "  --lines              one document per line (plain text; = --format lines)\n"
        "  --format F           auto | jsonl | lines | text (default auto: JSON lines for stdin\n"
        "                       and *.jsonl/*.ndjson/*.json, else one document per file);\n"
        "                       --lines and --format choosing different formats are refused\n"
        "                       Inputs compressed with gzip or zstd (known by their first\n"
        "                       bytes, files and stdin alike) are read decompressed; a .gz,\n"
        "                       .zst or .zstd suffix is left out of the name for the format\n"
        "                       and the source (c4.json.gz: JSON lines of source \"c4\")\n"
        "  --invalid-utf8 P     replace | keep | error (default replace)\n"
        "                         replace: each bad sequence becomes U+FFFD (as Python's\n"
        "                                  decode(errors=\"replace\")) before tokenizing\n"
        "                         keep:    bad bytes become tokens of their own; decoding\n"
        "                                  gives the input back exactly\n"
        "                         error:   refuse the input, naming file, line and offset\n"
        "  --shard-size MB      start a new shard before its tokens pass MB MiB (uncompressed,\n"
        "                       token width bytes each; default 64)\n"
        "  --prefix NAME        shard file prefix (default shard; no '/', newline or CR, nor\n"
        "                       in DIR: the paths are printed one per line)\n"
        "  --threads N          encoding threads (default: the number of CPUs)\n"
        "  --level N            zstd level of the shards (default %d)\n"
        "  --train-bpe N        learn an N-token byte-level BPE (256 bytes + N-257 merges +\n"
        "                       <|endoftext|>) with GPT-2's pre-tokenization and write\n"
        "                       VOCAB_DIR/encoder.json and vocab.bpe (GPT-2 format); the\n"
        "                       shard options (--tokenizer, --vocab-dir, --shard-size,\n"
        "                       --prefix, --level) are refused with it\n"
        "  inputs: files (not *.drs shards), directories (all files below but *.drs\n"
        "                       shards, sorted) or '-' (stdin, the default)\n"
        "\n"
        "Empty documents (an empty text, an empty --lines line, an empty file) and blank\n"
        "JSON lines are skipped; a text of spaces is a document. Errors (malformed JSON, a\n"
        "missing field, an unreadable file, a file given twice, no documents, bad vocabulary\n"
        "files) stop the run with one line naming the input and line; no shard of the failed\n"
        "or interrupted run (Ctrl-C, SIGTERM, SIGHUP: status 128 + the signal) is left\n"
        "behind, nor an -o directory that it created, and DIR's earlier shards stay as they\n"
        "were. A closed stdout (| head -1) ends it quietly (status 141) once DIR is complete.\n"
        "File formats, document ids and the shard layout: docs/formats.md.\n"
        "\n"
        "examples:\n"
        "  dr-tokenize --tokenizer gpt2 --field text --source-field source -o shards corpus.jsonl\n"
        "  dr-tokenize --tokenizer byte --source moby-dick -o shards moby-dick.txt\n"
        "  dr-tokenize --train-bpe 4096 -o vocab corpus.jsonl\n"
        "  dr-tokenize --tokenizer bpe --vocab-dir vocab -o shards corpus.jsonl\n",
        DRS_ZSTD_LEVEL);
}

static TokInvalidUtf8 parse_policy(const char *s) {
    if (!strcmp(s, "replace")) return TOK_UTF8_REPLACE;
    if (!strcmp(s, "keep")) return TOK_UTF8_KEEP;
    if (!strcmp(s, "error")) return TOK_UTF8_ERROR;
    dr_die("--invalid-utf8: '%s' is not replace, keep or error", s);
}

static TpFormat parse_format(const char *s) {
    if (!strcmp(s, "auto")) return TP_AUTO;
    if (!strcmp(s, "jsonl")) return TP_JSONL;
    if (!strcmp(s, "lines")) return TP_LINES;
    if (!strcmp(s, "text")) return TP_TEXT;
    dr_die("--format: '%s' is not auto, jsonl, lines or text", s);
}

/* --lines and --format each choose the input format: a second choice that differs is
 * refused (the last one winning silently would read the input as something else).
 * prev names the earlier choice ("--lines", "--format jsonl"), or is empty. */
static void set_format(TokenizeOptions *o, char *prev, size_t cap, const char *opt, const char *val,
                       TpFormat f) {
    char what[256];
    snprintf(what, sizeof what, "%s%s%s", opt, val ? " " : "", val ? val : "");
    if (prev[0] && o->format != f)
        dr_die("%s conflicts with %s: give one input format (--lines is --format lines)", what, prev);
    snprintf(prev, cap, "%s", what);
    o->format = f;
}

static const char *policy_word(TokInvalidUtf8 p) {
    return p == TOK_UTF8_REPLACE ? "replaced by U+FFFD" : p == TOK_UTF8_KEEP ? "kept as bytes" : "";
}

int main(int argc, char **argv) {
    dr_set_progname(argv[0]);
    TokenizeOptions o;
    tokenize_options_default(&o);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o.threads = ncpu > 0 ? (int)(ncpu < 64 ? ncpu : 64) : 1;
    const char *kind = "gpt2", *vocab_dir = NULL;
    long train = 0;
    char **inputs = xcalloc((size_t)argc, sizeof *inputs);
    int n_inputs = 0;
    char format_opt[256] = "";   /* the option that chose the input format, if any */
    const char *shard_opt = NULL;   /* an option about the shards (meaningless with --train-bpe) */
    const char *field_opt = NULL;   /* --field / --source-field (JSON lines only) */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--version")) { cli_print_version(); exit(0); }
        else if (!strcmp(a, "-o")) o.out_dir = cli_value_once(argc, argv, &i, o.out_dir);
        else if (!strcmp(a, "--tokenizer")) { kind = cli_value(argc, argv, &i); shard_opt = a; }
        else if (!strcmp(a, "--vocab-dir")) { vocab_dir = cli_value(argc, argv, &i); shard_opt = a; }
        else if (!strcmp(a, "--field")) { o.field = cli_value(argc, argv, &i); field_opt = a; }
        else if (!strcmp(a, "--source-field")) { o.source_field = cli_value(argc, argv, &i); field_opt = a; }
        else if (!strcmp(a, "--source")) o.source = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--lines")) set_format(&o, format_opt, sizeof format_opt, a, NULL, TP_LINES);
        else if (!strcmp(a, "--format")) {
            const char *v = cli_value(argc, argv, &i);
            set_format(&o, format_opt, sizeof format_opt, a, v, parse_format(v));
        }
        else if (!strcmp(a, "--invalid-utf8")) o.invalid = parse_policy(cli_value(argc, argv, &i));
        else if (!strcmp(a, "--shard-size")) {
            o.shard_bytes = (uint64_t)(cli_double(a, cli_value(argc, argv, &i), 0.001, 1e6) * (1 << 20));
            shard_opt = a;
        }
        else if (!strcmp(a, "--prefix")) { o.prefix = cli_value(argc, argv, &i); shard_opt = a; }
        else if (!strcmp(a, "--threads")) o.threads = (int)cli_long(a, cli_value(argc, argv, &i), 1, 64);
        else if (!strcmp(a, "--level")) {
            o.zstd_level = (int)cli_long(a, cli_value(argc, argv, &i), -7, 19);
            shard_opt = a;
        }
        else if (!strcmp(a, "--train-bpe")) train = cli_long(a, cli_value(argc, argv, &i), 258, 1 << 24);
        else if (a[0] == '-' && a[1] != 0) cli_unknown_option(a, "", usage);
        else inputs[n_inputs++] = (char *)a;
    }
    if (!o.out_dir) dr_die("-o DIR is required (see --help)");
    /* stdin is the default input, but a terminal is not a corpus: waiting for one looked
     * like a hang */
    if (n_inputs == 0 && isatty(STDIN_FILENO))
        dr_die("no inputs: give files or directories, or pipe the corpus in ('-' reads the terminal)");
    /* an option that would be ignored is refused: the user meant something by it */
    if (train && shard_opt)
        dr_die("%s is about token shards, which --train-bpe does not write (it writes a "
               "vocabulary; tokenize with it in a second run: --tokenizer bpe --vocab-dir DIR)", shard_opt);
    if (field_opt && (o.format == TP_LINES || o.format == TP_TEXT))
        dr_die("%s names a JSON field, but %s reads plain text", field_opt, format_opt);
    if (!o.prefix[0] || strchr(o.prefix, '/')) dr_die("--prefix '%s': must be a non-empty file name", o.prefix);
    /* the output paths are printed one per line: a newline in them would make two */
    if (strpbrk(o.out_dir, "\n\r"))
        dr_die("-o '%s': holds a newline or carriage return, which a printed path (one per line) cannot hold",
               o.out_dir);
    if (strpbrk(o.prefix, "\n\r"))
        dr_die("--prefix '%s': holds a newline or carriage return, which a printed path (one per line) "
               "cannot hold", o.prefix);
    dr_install_cleanup_signals();
    TokenizeStats st;

    if (train) {
        if (tokenize_train_bpe(&o, n_inputs, inputs, (uint32_t)train, &st) != 0) dr_die("%s", dr_lasterr());
        printf("%s%sencoder.json\n%s%svocab.bpe\n", o.out_dir, dr_dir_sep(o.out_dir), o.out_dir,
               dr_dir_sep(o.out_dir));
        fprintf(stderr, "%s: trained a %ld-token BPE on %llu documents (%.1f MB) in %.1f s -> %s\n",
                dr_progname(), train, (unsigned long long)st.docs, (double)st.bytes / 1e6, st.seconds,
                o.out_dir);
        free(inputs);
        return 0;
    }

    Tokenizer *t = tokenizer_load(kind, vocab_dir);
    if (!t) dr_die("%s", dr_lasterr());
    if (tokenize_run(t, &o, n_inputs, inputs, stdout, &st) != 0) dr_die("%s", dr_lasterr());
    fprintf(stderr, "%s: %llu document%s, %llu tokens (%s), %.2f bytes/token, %.1f MB in %.2f s = %.1f MB/s, "
            "%llu with invalid UTF-8%s%s%s",
            dr_progname(), (unsigned long long)st.docs, st.docs == 1 ? "" : "s", (unsigned long long)st.tokens,
            tokenizer_spec(t),
            st.tokens ? (double)st.bytes / (double)st.tokens : 0.0, (double)st.bytes / 1e6, st.seconds,
            st.seconds > 0 ? (double)st.bytes / 1e6 / st.seconds : 0.0, (unsigned long long)st.invalid_docs,
            st.invalid_docs ? " (" : "", st.invalid_docs ? policy_word(o.invalid) : "", st.invalid_docs ? ")" : "");
    if (st.empty_docs) fprintf(stderr, ", %llu empty skipped", (unsigned long long)st.empty_docs);
    if (o.source_field)
        fprintf(stderr, ", %llu with a source field \"%s\"", (unsigned long long)st.sourced_docs,
                o.source_field);
    fprintf(stderr, "; %llu shard%s in %s\n", (unsigned long long)st.shards, st.shards == 1 ? "" : "s", o.out_dir);
    if (o.source_field && st.sourced_docs == 0)   /* a typo, or a field of another name */
        fprintf(stderr, "%s: warning: no document has a source field \"%s\" (a string): every "
                "one took its input's default source\n", dr_progname(), o.source_field);
    tokenizer_free(t);
    free(inputs);
    return 0;
}
