/* score.c — dr-score's engine: batches of examples in shard order through a rater or
 * an LM, one scores.tsv line per example (see score.h). */
#include "score.h"

#include <stdlib.h>

#include "check.h"
#include "progress.h"
#include "scores.h"

static void write_rows(DataLoader *d, const DataBatch *b, const real *score, FILE *out) {
    char id[DATA_ID_MAX];
    for (int i = 0; i < b->B; i++) {
        uint64_t ex = b->index[i];
        data_example_id(d, ex, id);
        scores_write_row(out, id, (double)score[i], data_example_source(d, ex),
                         data_example(d, ex)->length);
    }
}

typedef enum { SCORE_RATER, SCORE_LM } ScoreKind;

static int score_all(const Backend *be, DataLoader *d, ScoreKind kind, const LMConfig *cfg,
                     const real *host_params, int batch, FILE *out) {
    uint64_t n = data_num_examples(d);
    size_t n_params = kind == SCORE_RATER ? rater_num_params(cfg) : lm_num_params(cfg);
    real *params = be->alloc(n_params * sizeof(real));
    be->to_device(params, host_params, n_params * sizeof(real));
    const DataOptions *opt = data_options(d);
    int T = kind == SCORE_RATER ? opt->seq_len_rater : opt->seq_len;
    RaterActs *ra = kind == SCORE_RATER ? rater_acts_new(be, cfg, batch, T) : NULL;
    LMActs *la = kind == SCORE_LM ? lm_acts_new(be, cfg, batch, T, 0) : NULL;
    DataBatch *b = data_batch_new(d);
    real *score = xmalloc((size_t)batch * sizeof *score);
    Progress p;
    progress_start(&p, "score", "examples", (double)n);
    scores_write_header(out);
    int rc = 0;
    for (uint64_t start = 0; start < n; start += (uint64_t)batch) {
        int nb = n - start < (uint64_t)batch ? (int)(n - start) : batch;
        if (data_range(d, start, nb, b) != 0) { rc = -1; break; }
        if (kind == SCORE_RATER)
            rater_forward(be, cfg, params, ra, b->rater_tokens, b->rater_valid, b->B,
                          b->T_rater, score);
        else
            lm_forward(be, cfg, params, la, b->inputs, b->targets, b->n_valid, b->B, b->T,
                       score);
        write_rows(d, b, score, out);
        progress_update(&p, (double)(start + (uint64_t)nb));
    }
    progress_finish(&p);
    if (rc == 0 && (fflush(out) != 0 || ferror(out))) rc = dr_seterr("error writing the scores");
    free(score);
    data_batch_free(b);
    if (ra) rater_acts_free(be, ra);
    if (la) lm_acts_free(be, la);
    be->free(params);
    return rc;
}

int score_with_rater(const Backend *be, DataLoader *d, const RaterConfig *rc, const real *phi,
                     int batch, FILE *out) {
    if (data_options(d)->seq_len_rater > rc->ctx)
        return dr_seterr("data.seq_len_rater %d exceeds the rater's %d positions",
                         data_options(d)->seq_len_rater, rc->ctx);
    if ((int)data_vocab_size(d) > rc->vocab)
        return dr_seterr("the shards' vocabulary (%u) is larger than the rater's (%d)",
                         data_vocab_size(d), rc->vocab);
    return score_all(be, d, SCORE_RATER, rc, phi, batch, out);
}

int score_with_lm(const Backend *be, DataLoader *d, const LMConfig *lc, const real *params,
                  int batch, FILE *out) {
    if (data_options(d)->seq_len > lc->ctx)
        return dr_seterr("data.seq_len %d exceeds the LM's %d positions",
                         data_options(d)->seq_len, lc->ctx);
    if ((int)data_vocab_size(d) > lc->vocab)
        return dr_seterr("the shards' vocabulary (%u) is larger than the LM's (%d)",
                         data_vocab_size(d), lc->vocab);
    return score_all(be, d, SCORE_LM, lc, params, batch, out);
}
