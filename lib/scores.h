/* scores.h — the scores file scores.tsv (DESIGN §2.4): reading, validating against the
 * examples of a set of shards, and writing.
 *
 *   example_id<TAB>score<TAB>source<TAB>n_tokens        (header line)
 *   0123456789abcdef:0<TAB>1.2345678<TAB>spam-2<TAB>129  (one line per example)
 *
 * score is the rater's logit z (or, with dr-score --lm, the example's mean token loss);
 * n_tokens is the window's length in tokens. Lines may come in any order (the file is
 * plain text so that sort, awk and join work on it): they are matched to the examples
 * by id. Exact duplicate documents share an id (DESIGN §2.1): an id the shards hold k
 * times must appear k times, and its scores, lowest first, go to its examples in shard
 * order (so the line order never changes the result). A
 * file that does not match the shards — a missing id, an id not in the shards, an id
 * more often than the shards hold it (a duplicate), a non-numeric or non-finite score,
 * a wrong token count — is refused with the first offending line (lines no example took
 * are reported before examples no line scored).
 * Numbers are read strictly: a score is a decimal as printf's %g, awk or Python print it
 * ([-]digits[.digits][e[+-]digits]; no spaces, '+', hex or ".5"; inf/nan are refused as
 * not finite), n_tokens plain digits. Empty lines at the very end of the file are
 * ignored; an empty line anywhere else is refused.
 */
#ifndef DR_SCORES_H
#define DR_SCORES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "data.h"

#define SCORES_HEADER "example_id\tscore\tsource\tn_tokens"

typedef struct {
    size_t n;
    uint64_t *doc_id;     /* [n] */
    uint32_t *window;     /* [n] */
    double *score;        /* [n] */
    uint32_t *n_tokens;   /* [n] */
    char *path;
} Scores;

/* Reads and checks the syntax of every line. -1 + dr_seterr("path:LINE: …"). */
int scores_read(const char *path, Scores *s);
void scores_free(Scores *s);

/* Aligns the scores to the loader's examples: out[i] = score of example i (shard order).
 * -1 + dr_seterr naming the first offending line or the first example without a score. */
int scores_align(const Scores *s, const DataLoader *d, double *out);
/* scores_read and scores_align in one pass that keeps no line: the same out and the same
 * first error (a bad line before any mismatch), in 21–29 bytes per example, out included
 * (scores_read alone holds 24 per line). dr-filter and dr-train --weights use it. label:
 * progress on stderr under it (MB of the file read, cleared when done), or NULL. */
int scores_read_aligned(const char *path, const DataLoader *d, double *out, const char *label);

/* One line; score printed with 9 significant digits (a float round-trips). */
void scores_write_header(FILE *f);
void scores_write_row(FILE *f, const char *example_id, double score, const char *source,
                      uint32_t n_tokens);

#endif
