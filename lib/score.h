/* score.h — scoring every example of a set of shards (dr-score): with a frozen rater
 * (score = its logit z) or with an LM (score = the example's mean token loss, the
 * perplexity-filter baseline). Rows go out in shard order, one batch at a time; the
 * result does not depend on the batch size or the thread count (every op computes a
 * row with one thread, and examples never interact in the rater). */
#ifndef DR_SCORE_H
#define DR_SCORE_H

#include <stdio.h>

#include "backend.h"
#include "data.h"
#include "lm.h"
#include "rater.h"

/* phi / params: HOST parameter buffers (copied to the backend here). Writes the header
 * and one line per example to out. -1 + dr_seterr on a read error. */
int score_with_rater(const Backend *be, DataLoader *d, const RaterConfig *rc, const real *phi,
                     int batch, FILE *out);
int score_with_lm(const Backend *be, DataLoader *d, const LMConfig *lc, const real *params,
                  int batch, FILE *out);

#endif
