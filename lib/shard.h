/* shard.h — the token shard format *.drs (DESIGN §2.1): writer and verified reader.
 *
 * Layout, version 1 (all integers little-endian, written byte by byte):
 *   header, 72 bytes:
 *      0  magic "DRSHARD1"                 8 bytes
 *      8  format version (1)               u32
 *     12  token width in bytes (2 or 4)    u32   2 when vocab_size <= 65535, else 4
 *     16  vocab size                       u32   every token id is < vocab size
 *     20  reserved, 0                      u32
 *     24  tokenizer fingerprint            u64
 *     32  document count                   u64
 *     40  token count                      u64
 *     48  index offset                     u64
 *     56  index size                       u64   index offset + index size = file size
 *     64  xxh64 (seed 0) of bytes 0..63    u64
 *   blocks, from byte 72 on, back to back: one zstd frame each, ~1 MiB of tokens
 *     (token width bytes per token, little-endian) holding whole documents;
 *   index, up to the end of the file:
 *     u32 block count, u32 source count, u32 tokenizer spec length, u32 reserved (0);
 *     per block (32 bytes): u64 file offset, u32 compressed size, u32 uncompressed
 *       size, u64 xxh64 (seed 0) of the compressed frame, u64 xxh64 (seed 0) of the
 *       uncompressed bytes (the first catches the corruptions a decoder would accept
 *       and decode to the same bytes, the second the decoder's own failures);
 *     per document (24 bytes): u64 id, u32 block, u32 token offset in the block,
 *       u32 length in tokens, u32 source id;
 *     per source: u32 length + the name's bytes (no NUL, TAB or newline);
 *     the tokenizer spec's bytes (e.g. "gpt2", "bpe:/path/to/vocab"; may be empty);
 *     u64 xxh64 (seed 0) of all index bytes before it.
 * Documents are stored in order and tile the blocks exactly: each block holds one or
 * more consecutive documents (an empty document too), with no gap and no overlap.
 * The reader checks all of this when it opens a shard (header, index, every offset,
 * size and count against the file size and each other) and checks each block
 * (zstd frame, size, checksum, every id < vocab size) when it decodes it: any
 * truncation or corruption gives -1/NULL with dr_seterr("PATH: what is wrong"),
 * never garbage tokens, and no allocation is larger than the file justifies.
 * Writers write "<path>.tmp.<pid>" and rename on close: no half-written shard is seen.
 */
#ifndef DR_SHARD_H
#define DR_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "check.h"

#define DRS_VERSION 1
#define DRS_HEADER_SIZE 72
#define DRS_BLOCK_BYTES (1u << 20)   /* default target of uncompressed bytes per block */
#define DRS_ZSTD_LEVEL 1             /* default zstd level: fastest to write and to read; 6% larger than 2 */

typedef struct {
    uint64_t id;       /* xxh64 of the document's raw text bytes, seed 0 */
    uint32_t block;    /* block holding the document */
    uint32_t offset;   /* first token within the block's tokens */
    uint32_t length;   /* number of tokens */
    uint32_t source;   /* index into the shard's source-name table */
} DrsDoc;

typedef struct DrsWriter DrsWriter;
typedef struct DrsReader DrsReader;

/* ---- writer ------------------------------------------------------------------ */

/* vocab_size decides the token width (2 bytes when vocab_size <= 65535, else 4).
 * tokenizer_spec is stored verbatim (may be ""). NULL + dr_seterr on failure. */
DrsWriter *drs_writer_open(const char *path, uint32_t vocab_size, uint64_t tokenizer_fingerprint,
                           const char *tokenizer_spec);
/* Options, set before the first drs_writer_add: the target uncompressed bytes per
 * block (tests use tiny blocks), the zstd level, and background compression (one
 * worker thread per writer compresses and writes a full block while the caller
 * fills the next one; the bytes written are the same either way). */
void drs_writer_set_block_bytes(DrsWriter *w, size_t bytes);
void drs_writer_set_level(DrsWriter *w, int zstd_level);
int drs_writer_set_background(DrsWriter *w, int on);
/* -1 + dr_seterr on a token id >= vocab size, a bad source name (empty is allowed;
 * NUL, TAB, newline are not), a document too long for one block, or a write error. */
int drs_writer_add(DrsWriter *w, uint64_t doc_id, const char *source,
                   const uint32_t *tokens, size_t n_tokens);
/* The most tokens one document may have (it must fit in one block of at most 2 GiB). */
size_t drs_max_doc_tokens(uint32_t vocab_size);
uint64_t drs_writer_docs(const DrsWriter *w);
uint64_t drs_writer_tokens(const DrsWriter *w);
/* File size so far, an upper-bound estimate: blocks written, except the last one
 * flushed and the one being filled, which count uncompressed, + the index. The same
 * value with or without background compression (it never depends on timing). */
uint64_t drs_writer_bytes(const DrsWriter *w);
int drs_writer_close(DrsWriter *w);                   /* index, fsync, rename; frees w */
/* As close, but the shard stays under its temporary name and joins set, which renames
 * it with the others (dr_outset_commit); frees w. */
int drs_writer_finish(DrsWriter *w, DrOutputSet *set);

/* Numbered output shards "<prefix>-NNNNN.drs" (5 or more digits), as dr-tokenize and
 * dr-filter write them: the number of name, or -1 when name is not one. */
long long drs_numbered_name(const char *name, const char *prefix);
/* Removes dir's numbered shards of prefix with numbers >= from (the tail of an earlier,
 * larger output); returns how many. */
unsigned drs_remove_numbered(const char *dir, const char *prefix, size_t from);
/* "<dir>/<prefix>-NNNNN.drs", malloc'd: the k-th numbered shard. */
char *drs_numbered_path(const char *dir, const char *prefix, size_t k);
/* Publishes a run's numbered shards (done: their temporary and final names, in number
 * order): renames them into place and removes an earlier run's surplus ones, in one step
 * held against signals (the directory is all old or all new), then prints their paths,
 * one per line, on paths (NULL: not; a closed stdout then ends the tool quietly, its
 * output complete). *stale (may be NULL): the surplus shards removed. Frees done's names;
 * -1 + dr_seterr when a rename or the printing fails. */
int drs_publish_numbered(DrOutputSet *done, const char *dir, const char *prefix, FILE *paths,
                         unsigned *stale);
void drs_writer_abort(DrsWriter *w);                  /* removes the temp file; frees w */

/* ---- reader ------------------------------------------------------------------ */

DrsReader *drs_open(const char *path);                /* verifies header and index */
/* A second reader of like's file (one per thread): refused, NULL + dr_seterr, when the
 * file at like's path is no longer the one like opened (device, inode, size, modification
 * time, content), so that it never serves another shard's tokens under like's index. */
DrsReader *drs_reopen(const DrsReader *like);
/* The most shard files all readers of the process keep open at once (default: half the
 * soft `ulimit -n`, at least 16); past it the least recently read is closed and reopened
 * when next read, refused if the file was replaced or changed in between. n < 1: the
 * default again. */
void drs_set_fd_budget(long n);
void drs_close(DrsReader *r);
const char *drs_path(const DrsReader *r);
uint64_t drs_num_docs(const DrsReader *r);
uint64_t drs_num_tokens(const DrsReader *r);
uint32_t drs_num_blocks(const DrsReader *r);
uint32_t drs_token_width(const DrsReader *r);
uint32_t drs_vocab_size(const DrsReader *r);
uint64_t drs_fingerprint(const DrsReader *r);
const char *drs_tokenizer_spec(const DrsReader *r);
/* A hash of the shard's whole content (header and index checksums, which cover the
 * block checksums): equal for byte-identical shards, whatever their names. */
uint64_t drs_content_key(const DrsReader *r);
const DrsDoc *drs_doc(const DrsReader *r, uint64_t i);   /* i < drs_num_docs */
uint32_t drs_num_sources(const DrsReader *r);
const char *drs_source_name(const DrsReader *r, uint32_t source);
const char *drs_doc_source(const DrsReader *r, uint64_t i);
/* Copies document i's tokens into out[0 .. length-1]; decodes and verifies its block
 * (cached: one decoded block per reader, so reading documents in order decodes each
 * block once). A reader is not shared between threads; open one per thread. */
int drs_read_doc(DrsReader *r, uint64_t i, uint32_t *out);
/* Frees r's decoded-block cache and its compressed-bytes buffer (the next read decodes
 * again): a loader that keeps a reader per shard for a whole run calls it on the readers
 * it moved away from, so that its memory does not grow with the number of shards. */
void drs_drop_cache(DrsReader *r);
/* Decodes and verifies every block. */
int drs_verify(DrsReader *r);

/* ---- whole blocks, for tools that do their own compression (dr-split) ------- */

/* Decodes and verifies block b (cached, checked as drs_read_doc checks it) and returns
 * its bytes, token width bytes per token, little-endian; *n_bytes gets their number.
 * Valid until the next call on r. NULL + dr_seterr on failure. */
const unsigned char *drs_block_bytes(DrsReader *r, uint32_t b, size_t *n_bytes);
/* Appends a block the caller compressed (on threads of its own, say): frame is one
 * zstd frame of csize bytes, whose xxh64 (seed 0) is frame_hash, decoding to usize
 * bytes whose xxh64 (seed 0) is hash; they hold docs[0..n_docs-1] back to back (their
 * block and offset fields are ignored), sources[k] naming the source of docs[k]. A
 * block being filled by drs_writer_add is ended first. Checks the sizes, the frame
 * header and that the documents fill the block; the bytes and hashes are the caller's
 * word (every reader verifies them). -1 + dr_seterr otherwise. */
int drs_writer_add_block(DrsWriter *w, const void *frame, size_t csize, uint64_t frame_hash,
                         size_t usize, uint64_t hash, const DrsDoc *docs,
                         const char *const *sources, size_t n_docs);

#endif
