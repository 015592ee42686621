/* textin.h — opening a text input that may be compressed, as corpora are shipped: gzip
 * (C4's and Dolma's *.json.gz; several concatenated members, as pigz and bgzip write
 * them) or zstd (RedPajama's *.jsonl.zst; several frames). The compression is recognized
 * by the first bytes, whatever the name, on files and on stdin alike; anything else is
 * read as it is. The stream is a plain FILE * (glibc's fopencookie), so line readers
 * need not know. Corrupt or truncated compressed data is a read error (ferror), whose
 * text textin_error gives: "corrupt gzip data (invalid block type)", "truncated zstd
 * data (the input ends inside a frame)". Never returns bytes past a corruption.
 */
#ifndef DR_TEXTIN_H
#define DR_TEXTIN_H

#include <stdio.h>

typedef enum { TEXTIN_PLAIN, TEXTIN_GZIP, TEXTIN_ZSTD } TextinKind;

/* Opens path ("-": stdin, which is not closed by textin_close) for reading, decompressing
 * when its first bytes say so. NULL + dr_seterr("PATH: cannot open: …") on failure. */
FILE *textin_open(const char *path, TextinKind *kind);
/* Closes what textin_open returned. */
void textin_close(FILE *f);
/* The compression of a regular file by its first bytes (TEXTIN_PLAIN when unreadable). */
TextinKind textin_kind_of_file(const char *path);
/* "gzip", "zstd" or "plain". */
const char *textin_kind_name(TextinKind k);
/* Why the last read of f failed: the decoder's message ("corrupt gzip data (…)"), else
 * "read error: " + strerror(errno). */
const char *textin_error(FILE *f);

#endif
