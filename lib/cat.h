/* cat.h — dr-cat's logic: print the documents of shards, or the examples a scores file
 * ranks highest or lowest, as text, JSON lines or token ids.
 *
 * Formats, one record per document (or per example with scores):
 *   text   : the decoded bytes of the document followed by one "\n". Documents made
 *            from one line each therefore come back byte for byte: dr-tokenize --lines
 *            f.txt, then dr-cat, gives f.txt (when it ends in a newline and has no blank
 *            line, which dr-tokenize skips). With raw, nothing is added: dr-tokenize
 *            --format text f.txt (one document per file), then dr-cat --raw, gives f.txt.
 *            With scores, a line "### <example id> score <s> source <src>" comes before
 *            each example's text.
 *   jsonl  : {"id": "<16 hex>", "source": …, "n_tokens": N, "text": …} per line; text
 *            is valid UTF-8 (invalid bytes as U+FFFD). With ids: "ids": [...] instead
 *            of "text". With scores: "example", "score" and "window" too.
 *   ids    : one JSON array of token ids per line.
 *   list   : "<16 hex id>\t<source>\t<n_tokens>" per document, from the index alone
 *            (no block is decoded: fast, for inventories and tests).
 * An example (DESIGN §2.2, the same windows as the data loader in data.h): window w of
 * a document of n tokens covers tokens [w·L, min(n, w·L + L + 1)), L = seq_len.
 */
#ifndef DR_CAT_H
#define DR_CAT_H

#include <stdint.h>
#include <stdio.h>

#include "inputs.h"

typedef struct {
    int jsonl;                    /* JSON lines */
    int ids;                      /* token ids instead of text */
    int list;                     /* id, source and length only (no --scores) */
    int raw;                      /* text: nothing after each document */
    const char *source;           /* only documents of this source (NULL: all) */
    uint64_t head;                /* at most this many records (UINT64_MAX: all; 0: none) */
    const char *tokenizer_kind;   /* override the shards' tokenizer spec (NULL: use it) */
    const char *vocab_dir;
    const char *scores_path;      /* rank examples by a scores.tsv (NULL: documents) */
    int bottom;                   /* with scores: lowest first instead of highest */
    int seq_len;                  /* with scores: L of the examples (default 1024) */
} CatOptions;

void cat_options_default(CatOptions *o);
/* Prints to out; -1 + dr_seterr on an unreadable or corrupt shard, mixed tokenizers,
 * a tokenizer that cannot be loaded or does not match, or a bad scores file. */
int cat_run(const ShardList *shards, const CatOptions *o, FILE *out);

#endif
