/* tokenizer.h — text <-> token ids: byte-level, exact GPT-2 BPE, trained BPE.
 *
 *  byte : ids 0–255 are the bytes, 256 is end-of-text. No files.
 *  gpt2 : OpenAI's GPT-2 byte-level BPE from encoder.json + vocab.bpe (default
 *         directory data/gpt2, fetched by `make vocab`), identical ids to tiktoken's
 *         "gpt2" encoding for every valid UTF-8 input.
 *  bpe  : a vocabulary trained by `dr-tokenize --train-bpe N`, same file format and
 *         the same pre-tokenization as gpt2.
 * Invalid UTF-8 in the input: TOK_UTF8_REPLACE (each maximal bad subsequence becomes
 * U+FFFD, as Python's decode(errors="replace")), TOK_UTF8_KEEP (bad bytes kept as
 * pieces of their own, so decoding gives the input back exactly) or TOK_UTF8_ERROR.
 * A Tokenizer is read-only after loading: one may be shared by many threads.
 */
#ifndef DR_TOKENIZER_H
#define DR_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TOK_UTF8_REPLACE = 0, TOK_UTF8_KEEP = 1, TOK_UTF8_ERROR = 2 } TokInvalidUtf8;

typedef struct Tokenizer Tokenizer;

typedef struct { uint32_t *ids; size_t n, cap; } TokenBuf;
typedef struct { char *bytes; size_t n, cap; } ByteBuf;

/* kind: "byte", "gpt2" or "bpe"; vocab_dir NULL = default (gpt2: data/gpt2 relative to
 * the executable's ../data or $DR_DATA). NULL + dr_seterr on missing/corrupt files. */
Tokenizer *tokenizer_load(const char *kind, const char *vocab_dir);
/* Loads from a shard's tokenizer spec string ("byte", "gpt2", "bpe:DIR"). */
Tokenizer *tokenizer_from_spec(const char *spec);
void tokenizer_free(Tokenizer *t);
const char *tokenizer_spec(const Tokenizer *t);      /* stored in shards */
uint32_t tokenizer_vocab_size(const Tokenizer *t);
uint32_t tokenizer_eot(const Tokenizer *t);           /* end-of-text id */
uint64_t tokenizer_fingerprint(const Tokenizer *t);   /* xxh64(kind + vocab + merges) */

/* Appends the ids of text[0..len) to out. *had_invalid (if non-NULL) is set to 1 when
 * the text held invalid UTF-8. Returns -1 only for TOK_UTF8_ERROR on invalid input
 * (dr_seterr names the byte offset). */
int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, TokInvalidUtf8 policy,
                     TokenBuf *out, int *had_invalid);
/* Appends the bytes of ids to out; -1 on an id outside the vocabulary. */
int tokenizer_decode(const Tokenizer *t, const uint32_t *ids, size_t n, ByteBuf *out);

/* Trains an n_vocab-token byte-level BPE (256 byte tokens + merges + end-of-text) on
 * the given texts with GPT-2's pre-tokenization; writes encoder.json and vocab.bpe
 * into dir. */
int tokenizer_train_bpe(const char *const *texts, const size_t *lens, size_t n_texts,
                        uint32_t n_vocab, const char *dir);

void tokenbuf_free(TokenBuf *b);
void bytebuf_free(ByteBuf *b);

#endif
