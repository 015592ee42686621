/* shard.h — the token shard format *.drs (DESIGN §2.1): writer and verified reader.
 *
 * Layout (all little-endian):
 *   header (fixed size): magic "DRSHARD1", format version, token width (2 or 4 bytes),
 *     vocab size, tokenizer fingerprint, document count, token count, index offset,
 *     index size, xxh64 of the header bytes before it.
 *   blocks: independent zstd frames of ~1 MiB of tokens each (token width bytes each).
 *   index: per block (file offset, compressed size, uncompressed size, xxh64 of the
 *     uncompressed bytes); per document (64-bit id, block, token offset in block,
 *     length in tokens, source id); string table of source names; the tokenizer spec
 *     string (e.g. "gpt2" or "bpe:/path/to/vocab") so tools can decode without flags;
 *     xxh64 of the index.
 * A document never straddles blocks. Every reader call verifies what it touches and
 * fails (returns -1/NULL with dr_seterr naming the file and the problem) on any
 * truncation or corruption: it never returns garbage tokens.
 * Writers write "<path>.tmp.<pid>" and rename on close: no half-written shard is seen.
 */
#ifndef DR_SHARD_H
#define DR_SHARD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t id;       /* xxh64 of the document's raw text bytes, seed 0 */
    uint32_t block;    /* block holding the document */
    uint32_t offset;   /* first token within the block's tokens */
    uint32_t length;   /* number of tokens */
    uint32_t source;   /* index into the shard's source-name table */
} DrsDoc;

typedef struct DrsWriter DrsWriter;
typedef struct DrsReader DrsReader;

/* vocab_size decides the token width (2 bytes when vocab_size <= 65535, else 4).
 * tokenizer_spec is stored verbatim (may be "" ). */
DrsWriter *drs_writer_open(const char *path, uint32_t vocab_size, uint64_t tokenizer_fingerprint,
                           const char *tokenizer_spec);
int drs_writer_add(DrsWriter *w, uint64_t doc_id, const char *source,
                   const uint32_t *tokens, size_t n_tokens);
uint64_t drs_writer_docs(const DrsWriter *w);
uint64_t drs_writer_bytes(const DrsWriter *w);       /* bytes written so far (approx.) */
int drs_writer_close(DrsWriter *w);                   /* index, fsync, rename; frees w */
void drs_writer_abort(DrsWriter *w);                  /* removes the temp file; frees w */

DrsReader *drs_open(const char *path);                /* verifies header and index */
void drs_close(DrsReader *r);
const char *drs_path(const DrsReader *r);
uint64_t drs_num_docs(const DrsReader *r);
uint64_t drs_num_tokens(const DrsReader *r);
uint32_t drs_vocab_size(const DrsReader *r);
uint64_t drs_fingerprint(const DrsReader *r);
const char *drs_tokenizer_spec(const DrsReader *r);
const DrsDoc *drs_doc(const DrsReader *r, uint64_t i);
uint32_t drs_num_sources(const DrsReader *r);
const char *drs_source_name(const DrsReader *r, uint32_t source);
/* Copies document i's tokens into out[0 .. length-1]; verifies the block checksum.
 * One decoded block is cached per reader; a reader is not shared between threads. */
int drs_read_doc(DrsReader *r, uint64_t i, uint32_t *out);
/* Verifies every block (decompress + checksum). */
int drs_verify(DrsReader *r);

#endif
