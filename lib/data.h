/* data.h — the data loader: token shards -> examples -> batches (DESIGN §2.2).
 *
 * An EXAMPLE is a window of one document of up to seq_len + 1 tokens. Window w of a
 * document of n tokens covers its tokens [w·L, min(n, w·L + L + 1)), L = seq_len:
 * consecutive windows overlap by one token, so every token but the document's first is
 * a target exactly once. A document gives ceil((n − 1) / L) windows; the last may be
 * shorter (it is padded in a batch, with its valid length); windows with fewer than
 * max(data.min_tokens, 2) tokens are dropped. No end-of-text token is added.
 * Example id: "<doc id as 16 lowercase hex digits>:<window index>".
 *
 * Examples are numbered 0 … N−1 in SHARD ORDER (shards in list order, documents in
 * file order, windows in order). The loader's index holds 4 bytes per example, its
 * document's number across the shards (shard, window and length follow from it and the
 * shards' own index, 24 bytes per document): 10^8 short documents take 0.4 GB of it
 * beside the shards' 2.4 GB. All the shards together hold fewer than 2^32 − 1 documents.
 *
 * Views of a batch of B examples (padding is token 0):
 *   LM:    inputs[b,t] = window[t], targets[b,t] = window[t+1], t < T;
 *          n_valid[b] = window length − 1 (targets at t >= n_valid[b] are padding).
 *   rater: rater_tokens[b,t] = window[t], t < T_rater = seq_len_rater;
 *          rater_valid[b] = min(window length, seq_len_rater).
 *
 * The training stream (data_next) walks the examples epoch after epoch; epoch e is a
 * permutation drawn with the loader's own RNG from (seed, e) — integers only, so the
 * order is the same in float and double builds and for any thread count — or shard
 * order with shuffle off. Batch k takes positions [kB, kB + B) of the concatenated
 * epochs (a batch may straddle two epochs; every example is seen once per epoch).
 * With bucket_by_length, each chunk of 100 batches of the epoch's order is sorted by
 * length (longest first), cut into batches, and the batch order is shuffled; every
 * batch is then trimmed to its longest example (T = longest length − 1).
 * With prefetch > 0 a second thread reads that many batches ahead, so decompression
 * overlaps compute; the batches are identical to the synchronous ones.
 * data_position/data_set_position save and restore the stream (epoch, cursor, seed)
 * so a resumed run sees exactly the batches an uninterrupted one would.
 *
 * Small corpora (total tokens <= resident_max_tokens) are decoded once into memory;
 * larger ones are read through the shard readers (one set per thread) on demand.
 * Never returns garbage: a corrupt shard or a token id >= the shard's vocabulary size
 * fails with the file and the document named.
 */
#ifndef DR_DATA_H
#define DR_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "inputs.h"

typedef struct {
    int seq_len;            /* L: an example is a window of up to L + 1 tokens */
    int seq_len_rater;      /* rater view length (0 = no rater view) */
    int min_tokens;         /* shorter windows are dropped (at least 2 is enforced) */
    int batch_size;         /* B */
    int shuffle;            /* 0 = shard order */
    int bucket_by_length;   /* similar lengths batched together, batches trimmed */
    int prefetch;           /* batches read ahead on a second thread; 0 = synchronous */
    uint64_t seed;
    uint64_t resident_max_tokens;  /* decode everything up front when the corpus is
                                      at most this many tokens (0 = never) */
} DataOptions;

/* One example, as data_example computes it from the index. */
typedef struct {
    uint32_t shard;    /* index in the loader's shard list */
    uint32_t doc;      /* document index within the shard */
    uint32_t window;   /* window index within the document */
    uint32_t length;   /* tokens in the window: 2 … seq_len + 1 */
} DataExample;

/* Where the training stream stands: the next batch starts at position `cursor` of
 * epoch `epoch`'s order. seed and n_examples guard against restoring into a loader
 * that would give a different stream. */
typedef struct {
    uint64_t epoch, cursor, seed, n_examples;
} DataPosition;

/* A batch, owned by the caller (data_batch_new), refilled by every call. */
typedef struct {
    int B;                  /* examples in this batch (<= capacity) */
    int T;                  /* LM positions: seq_len, or trimmed to the longest example */
    int T_rater;            /* rater positions */
    int capacity;           /* B of the allocation */
    int32_t *inputs;        /* [B,T] */
    int32_t *targets;       /* [B,T] */
    int32_t *n_valid;       /* [B] target tokens of example b */
    int32_t *rater_tokens;  /* [B,T_rater] (NULL without a rater view) */
    int32_t *rater_valid;   /* [B] */
    uint64_t *index;        /* [B] example numbers (shard order) */
    long n_tokens;          /* Σ n_valid: target tokens in the batch */
} DataBatch;

typedef struct DataLoader DataLoader;

#define DATA_ID_MAX 32   /* "0123456789abcdef:4294967295" + NUL fits */

/* Options from a config's data section (+ experiment seed). */
void data_options_from_config(DataOptions *o, const Config *cfg);

/* Builds the example index of the shards (all must share one tokenizer fingerprint).
 * NULL + dr_seterr on an unreadable/corrupt shard, mixed tokenizers, or no examples. */
DataLoader *data_open(const ShardList *shards, const DataOptions *opt);
void data_close(DataLoader *d);

const DataOptions *data_options(const DataLoader *d);
uint64_t data_num_examples(const DataLoader *d);
uint64_t data_num_target_tokens(const DataLoader *d);   /* Σ (length − 1) */
uint64_t data_num_docs(const DataLoader *d);             /* documents with >= 1 example */
uint32_t data_vocab_size(const DataLoader *d);           /* the shards' vocabulary size */
uint64_t data_fingerprint(const DataLoader *d);
/* How many documents (by id) of b are also in a; *first: the first of them in b's order.
 * (Val must be held out: dr-meta and dr-train refuse a Val that shares documents with
 * what they train on.) */
uint64_t data_shared_documents(const DataLoader *a, const DataLoader *b, uint64_t *first);
const char *data_tokenizer_spec(const DataLoader *d);    /* of the first shard */
size_t data_num_shards(const DataLoader *d);
const char *data_shard_path(const DataLoader *d, size_t shard);

DataExample data_example(const DataLoader *d, uint64_t i);
uint64_t data_example_doc_id(const DataLoader *d, uint64_t i);
/* Writes "<doc id hex16>:<window>" into out (DATA_ID_MAX bytes). */
void data_example_id(const DataLoader *d, uint64_t i, char *out);
const char *data_example_source(const DataLoader *d, uint64_t i);

DataBatch *data_batch_new(const DataLoader *d);
void data_batch_free(DataBatch *b);

/* The training stream: fills b with the next batch. -1 + dr_seterr on a read error. */
int data_next(DataLoader *d, DataBatch *b);
DataPosition data_position(const DataLoader *d);
/* Restores a saved position; -1 + dr_seterr when seed or example count differ. */
int data_set_position(DataLoader *d, const DataPosition *p);

/* Random access, the same on every call (independent of the stream):
 * data_get: the n examples idx[0..n) (n <= capacity); trimmed when bucket_by_length.
 * data_range: examples start, start+1, … start+n−1 in shard order, modulo N (dr-meta's
 *   "examples tB … tB+B−1"; evaluation passes with n = min(B, N − start)). */
int data_get(DataLoader *d, const uint64_t *idx, int n, DataBatch *b);
int data_range(DataLoader *d, uint64_t start, int n, DataBatch *b);

/* Reading PART of a batch (a data-parallel rank's slice, docs/scale-out.md): the batch is
 * still the whole batch — B, T, T_rater (trimmed to the longest of ALL its examples),
 * n_valid, rater_valid, index and n_tokens describe every example, taken from the index
 * without reading a token — but only the examples [lo, hi) (0 <= lo <= hi <= B) are read
 * and decoded into their rows of inputs/targets/rater_tokens; the other rows are zeros.
 * Rows [lo, hi) hold exactly what the whole batch holds there.
 * data_set_part: every later data_next reads only [lo, hi) of its batch (hi <= batch_size;
 *   the stream itself, epochs and positions, is unchanged; read-ahead is restarted).
 * data_get_part / data_range_part: data_get / data_range reading only [lo, hi) of n. */
void data_set_part(DataLoader *d, int lo, int hi);
int data_get_part(DataLoader *d, const uint64_t *idx, int n, int lo, int hi, DataBatch *b);
int data_range_part(DataLoader *d, uint64_t start, int n, int lo, int hi, DataBatch *b);

/* The seq_len L under which window w of a document of n tokens holds t tokens, when only
 * one L does (window w is [w·L, min(n, w·L + L + 1))): t = L + 1 for a window that ends
 * inside the document, n − w·L for the last one; 0 when none or several do. For messages
 * about scores made with another data.seq_len (dr-filter, dr-train --weights, dr-cat). */
uint32_t data_window_seq_len(uint64_t n, uint64_t w, uint64_t t);
/* Copies the tokens of example i (length of them) into out. */
int data_read_example(DataLoader *d, uint64_t i, uint32_t *out);
/* The whole document example i is a window of: its length in tokens (from the index), and
 * its tokens, read and checked as the windows are; *tokens stays valid until the next read
 * of d (dr-filter --documents). -1 + dr_seterr. */
uint32_t data_document_length(const DataLoader *d, uint64_t i);
int data_read_document(DataLoader *d, uint64_t i, const uint32_t **tokens, uint32_t *length);

/* dr-cat --examples: one line per example in shard order, "<id>\t<window>", the window
 * as a JSON string decoded with the shards' tokenizer, or as space-separated token ids
 * when ids is non-zero; the first head examples only when head > 0. -1 + dr_seterr on a
 * read error, a write error or an unloadable tokenizer. */
int data_print_examples(DataLoader *d, FILE *f, int ids, uint64_t head);

#endif
