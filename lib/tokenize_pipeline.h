/* tokenize_pipeline.h — what dr-tokenize does: read documents (JSON lines, one document
 * per line, or one per file), tokenize them on worker threads and write token shards in
 * input order; or collect the texts and train a BPE vocabulary.
 *
 * Inputs: files, directories (every regular file below, sorted by path, dot-files
 * skipped) or "-" (stdin), each read through textin_open (gzip and zstd decompressed,
 * known by their first bytes; a .gz/.zst/.zstd suffix left out of the name that picks the
 * format and the source). Format per file: TP_AUTO = JSON lines for stdin and for names
 * ending in .jsonl/.ndjson/.json, else the whole file is one document; TP_JSONL, TP_LINES
 * and TP_TEXT force one. Blank lines are skipped; empty documents are skipped and counted.
 * Fields (--field, --source-field) are found by json_get_path: "meta.source" is the key
 * itself, else the member "source" of the object "meta".
 * Source of a document: the string in --source-field when the line has a non-empty one,
 * else --source, else the input's name (file name without extension, the directory's
 * name for the files below a directory argument, "stdin"); a --source-field value that
 * is not a string (a number, null, true/false, an array, an object) is refused.
 * Doc id = xxh64(seed 0) of the document's raw text bytes (before any U+FFFD).
 * Output is deterministic: the same bytes whatever the thread count.
 * Errors (-1 + dr_seterr, one line naming the input and line): unreadable input,
 * malformed JSON line, missing or non-string text field, non-string source field,
 * invalid UTF-8 under TOK_UTF8_ERROR, no documents at all, write failures. Shards written
 * by a failed run are removed; none is ever left half-written; an output directory the
 * failed run created (with any parents it created) is removed while it is empty.
 */
#ifndef DR_TOKENIZE_PIPELINE_H
#define DR_TOKENIZE_PIPELINE_H

#include <stdint.h>
#include <stdio.h>

#include "tokenizer.h"

typedef enum { TP_AUTO = 0, TP_JSONL, TP_LINES, TP_TEXT } TpFormat;

typedef struct {
    const char *out_dir;        /* -o, created when missing */
    const char *prefix;         /* shard names: <out_dir>/<prefix>-NNNNN.drs ("shard") */
    const char *field;          /* JSON field holding the text ("text") */
    const char *source_field;   /* JSON field naming the source, or NULL */
    const char *source;         /* source of every document, or NULL (see above) */
    TpFormat format;
    TokInvalidUtf8 invalid;
    uint64_t shard_bytes;       /* start a new shard before this size is passed */
    int threads;                /* encoding threads (>= 1) */
    int zstd_level;
} TokenizeOptions;

typedef struct {
    uint64_t docs, tokens, bytes;     /* documents written, their tokens and text bytes */
    uint64_t invalid_docs;            /* documents that held invalid UTF-8 */
    uint64_t empty_docs;              /* empty documents skipped */
    uint64_t sourced_docs;            /* documents whose source came from --source-field */
    uint64_t shards;
    double seconds;
} TokenizeStats;

void tokenize_options_default(TokenizeOptions *o);

/* Tokenizes the inputs into shards; prints each shard's path on paths_out as it is
 * completed. */
int tokenize_run(const Tokenizer *t, const TokenizeOptions *o, int n_inputs, char **inputs,
                 FILE *paths_out, TokenizeStats *st);

/* Reads the inputs (same rules) and trains an n_vocab-token BPE into o->out_dir. */
int tokenize_train_bpe(const TokenizeOptions *o, int n_inputs, char **inputs, uint32_t n_vocab,
                       TokenizeStats *st);

#endif
