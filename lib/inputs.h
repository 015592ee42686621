/* inputs.h — turning command-line inputs into a list of shards (DESIGN §2.3).
 *
 * An input is a shard file (*.drs), a directory (its *.drs files, sorted by name),
 * a manifest file (lines "split<TAB>path", '#' comments; relative paths are relative
 * to the manifest's directory), or "-" (a manifest on stdin). Every shard carries the
 * split it came from ("" when given directly). The manifest header comments are kept
 * so tools can pass them on.
 */
#ifndef DR_INPUTS_H
#define DR_INPUTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    char *split;   /* "train_a", "val", "train_b", or "" */
    char *path;
} ShardRef;

typedef struct {
    char *name;        /* as given; "(stdin)" for "-" */
    int is_manifest;   /* else a shard or a directory given directly */
} ShardSource;

typedef struct {
    ShardRef *items;
    size_t n, cap;
    char *comments;   /* the manifests' '#' lines, each ending in '\n'; NULL if none */
    size_t comments_len, comments_cap;
    ShardSource *sources;   /* the inputs read by shardlist_add_inputs, for messages */
    size_t n_sources, cap_sources;
} ShardList;         /* start from ShardList list = {0} */

/* Appends the shards named by n inputs; -1 + dr_seterr on a missing/unreadable input,
 * a malformed manifest line (with its line number) or an input with no shards.
 * A file is a shard when its name ends in ".drs" or it starts with the shard magic,
 * otherwise a manifest; a manifest line may also name a directory. */
int shardlist_add_inputs(ShardList *list, int n, char **inputs);

/* One file named twice (two names, a directory and a file in it): sort FileKeys of the
 * stat'ed paths with file_key_cmp; equal neighbours (dev, ino) are one file, in the order
 * of their positions i. */
typedef struct { dev_t dev; ino_t ino; size_t i; } FileKey;
int file_key_cmp(const void *a, const void *b);
/* One shard file twice in the list (a directory and a shard in it, a manifest line
 * repeated, two names of one file) would count its documents twice: -1 + dr_seterr
 * naming both. Within one split always (shardlist_add_inputs checks it); across splits
 * too when across_splits (dr-split, which ignores the splits: "train_a<TAB>x.drs" and
 * "val<TAB>x.drs"); other tools may take one file in two splits on purpose. */
int shardlist_check_repeats(const ShardList *list, int across_splits);
/* Keeps only shards of the given split. */
void shardlist_filter_split(ShardList *list, const char *split);
/* The tools' --split: keeps only the shards of `split` (NULL: all). -1 + dr_seterr when
 * none is left (shardlist_no_split: "m.tsv: no shards of split 'S' (its splits: …)"). */
int shardlist_select_split(ShardList *list, const char *split);
/* -1 + dr_seterr for a list from shardlist_add_inputs that has no shard of `split`:
 * "WHO: no shards of split 'S'FOR_WHAT (its splits: a, b)HINT", WHO the manifests that
 * were read ("(stdin)" for "-"; three, then "and N more"), or, when no input was a
 * manifest, "WHO: … (they name no split: OPTION picks lines of a manifest)HINT", WHO the
 * inputs (option NULL: "(they name no split)"). for_what and hint may be "". */
int shardlist_no_split(const ShardList *list, const char *split, const char *for_what,
                       const char *option, const char *hint);
/* Appends to dst copies of src's shards of `split` (NULL: all of them). */
void shardlist_copy_split(ShardList *dst, const ShardList *src, const char *split);
/* 1 when a shard of `split` is there (split NULL: a shard of any named split, i.e. the
 * list came from a manifest). */
int shardlist_has_split(const ShardList *list, const char *split);
/* The distinct split names, in first-seen order, "a, b" into buf (for messages). */
void shardlist_split_names(const ShardList *list, char *buf, size_t cap);
/* Opens each shard header and checks all share one tokenizer fingerprint; -1 if not
 * (message names both files). Writes the common fingerprint/vocab size if non-NULL. */
int shardlist_check_tokenizer(const ShardList *list, uint64_t *fingerprint, uint32_t *vocab_size);
void shardlist_free(ShardList *list);

#endif
