/* tokenizer.h — text <-> token ids: byte-level, exact GPT-2 BPE, trained BPE.
 *
 *  byte : ids 0–255 are the bytes, 256 is end-of-text. No files.
 *  gpt2 : OpenAI's GPT-2 byte-level BPE from encoder.json + vocab.bpe (default
 *         directory data/gpt2, fetched by `make vocab`), identical ids to tiktoken's
 *         "gpt2" encoding for every valid UTF-8 input (Unicode 16.0 tables, as
 *         tiktoken's regex engine: see unicode.h).
 *  bpe  : a vocabulary trained by `dr-tokenize --train-bpe N`, same file format and
 *         the same pre-tokenization as gpt2.
 * Invalid UTF-8 in the input (all three kinds): TOK_UTF8_REPLACE (each maximal bad
 * subsequence becomes U+FFFD, as Python's decode(errors="replace"), before
 * pre-tokenization), TOK_UTF8_KEEP (each maximal bad subsequence is a piece of its
 * own, so decoding gives the input back exactly) or TOK_UTF8_ERROR.
 *
 * A Tokenizer is read-only after loading: one may be shared by many threads. Encoding
 * needs scratch memory and a cache of pre-token -> ids: a TokEncoder holds them, one
 * per thread. tokenizer_encode() is the one-shot form (a TokEncoder made and freed
 * inside: fine for tests and short texts, slow for a corpus).
 */
#ifndef DR_TOKENIZER_H
#define DR_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TOK_UTF8_REPLACE = 0, TOK_UTF8_KEEP = 1, TOK_UTF8_ERROR = 2 } TokInvalidUtf8;
typedef enum { TOK_BYTE = 0, TOK_GPT2 = 1, TOK_BPE = 2 } TokKind;

typedef struct Tokenizer Tokenizer;
typedef struct TokEncoder TokEncoder;

typedef struct { uint32_t *ids; size_t n, cap; } TokenBuf;
typedef struct { char *bytes; size_t n, cap; } ByteBuf;

/* kind: "byte", "gpt2" or "bpe"; vocab_dir NULL = default (gpt2 only: $DR_DATA/gpt2 when
 * DR_DATA is set; else, for an installed tool, <bin>/../share/datarater/gpt2; else data/gpt2
 * next to the executable: <bin>/../data/gpt2, also tried two and three levels up). bpe
 * needs vocab_dir. NULL + dr_seterr on an unknown kind or missing/corrupt files (the
 * message names the file). */
Tokenizer *tokenizer_load(const char *kind, const char *vocab_dir);
/* Loads from a shard's tokenizer spec string ("byte", "gpt2", "gpt2:DIR", "bpe:DIR"). */
Tokenizer *tokenizer_from_spec(const char *spec);
void tokenizer_free(Tokenizer *t);
TokKind tokenizer_kind(const Tokenizer *t);
const char *tokenizer_spec(const Tokenizer *t);      /* stored in shards ("bpe:" + absolute dir) */
uint32_t tokenizer_vocab_size(const Tokenizer *t);
uint32_t tokenizer_eot(const Tokenizer *t);           /* end-of-text id */
uint64_t tokenizer_fingerprint(const Tokenizer *t);   /* xxh64(kind + vocab + merges) */
/* 0 when t is the tokenizer the shards were made with (their fingerprint); otherwise
 * -1 + dr_seterr naming both fingerprints and the shard (e.g. a vocabulary retrained in
 * place since). */
int tokenizer_check_fingerprint(const Tokenizer *t, uint64_t fingerprint, const char *shard);
/* The bytes of token id (end-of-text: "<|endoftext|>"); NULL when id is out of range. */
const char *tokenizer_token_bytes(const Tokenizer *t, uint32_t id, size_t *len);

/* Appends the ids of text[0..len) to out. *had_invalid (if non-NULL) is set to 1 when
 * the text held invalid UTF-8, else 0. Returns -1 only for TOK_UTF8_ERROR on invalid
 * input (dr_seterr names the byte offset). Never appends end-of-text. */
int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, TokInvalidUtf8 policy,
                     TokenBuf *out, int *had_invalid);
/* Appends the bytes of ids to out; -1 on an id outside the vocabulary. */
int tokenizer_decode(const Tokenizer *t, const uint32_t *ids, size_t n, ByteBuf *out);

/* Per-thread encoding state (scratch + a bounded cache of pre-token -> ids). */
TokEncoder *tok_encoder_new(const Tokenizer *t);
void tok_encoder_free(TokEncoder *e);
int tok_encoder_encode(TokEncoder *e, const char *text, size_t len, TokInvalidUtf8 policy,
                       TokenBuf *out, int *had_invalid);

/* Splits valid-or-kept text into GPT-2 pre-tokens: returns the end of the piece that
 * starts at text[pos] (pos < len). The regex it implements, exactly:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Each maximal invalid UTF-8 subsequence is a piece of its own (and counts as \S). */
size_t tok_pretoken_end(const char *text, size_t len, size_t pos);
/* Rewrites text with each maximal invalid UTF-8 subsequence replaced by U+FFFD (EF BF BD)
 * into out (cleared first). Returns the number of replacements. */
size_t tok_utf8_replace(const char *text, size_t len, ByteBuf *out);

/* Trains an n_vocab-token byte-level BPE (256 byte tokens + n_vocab-257 merges +
 * <|endoftext|> as the last id) on the given texts with GPT-2's pre-tokenization;
 * invalid UTF-8 is handled by policy (TOK_UTF8_ERROR: -1 naming the text index).
 * Merges: most frequent pair first, ties to the smaller (left id, right id); a pair whose
 * bytes are already a token is never merged. Uses up to n_threads threads for counting.
 * Writes encoder.json and vocab.bpe (GPT-2 format) into dir atomically; -1 + dr_seterr
 * when the corpus cannot give that many merges or dir cannot be written. */
int tokenizer_train_bpe(const char *const *texts, const size_t *lens, size_t n_texts,
                        uint32_t n_vocab, TokInvalidUtf8 policy, int n_threads, const char *dir);

/* The same in pieces, so that a corpus is counted batch by batch and never held whole:
 * bpe_counts_add counts a batch's pre-tokens (over up to n_threads threads; the texts
 * may be freed when it returns), bpe_counts_train learns the merges from every batch
 * counted and writes dir as tokenizer_train_bpe does. The vocabulary depends only on the
 * multiset of texts, not on how they were batched. After bpe_counts_show_progress,
 * bpe_counts_train shows its merges on stderr (progress.h: a "merge" bar, cleared when
 * done); otherwise it prints nothing. */
typedef struct BpeCounts BpeCounts;
BpeCounts *bpe_counts_new(TokInvalidUtf8 policy, int n_threads);
void bpe_counts_show_progress(BpeCounts *c);
int bpe_counts_add(BpeCounts *c, const char *const *texts, const size_t *lens, size_t n_texts);
int bpe_counts_train(BpeCounts *c, uint32_t n_vocab, const char *dir);
void bpe_counts_free(BpeCounts *c);

void tokenbuf_push(TokenBuf *b, uint32_t id);
void bytebuf_append(ByteBuf *b, const void *data, size_t n);
void tokenbuf_free(TokenBuf *b);
void bytebuf_free(ByteBuf *b);

#endif
