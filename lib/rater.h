/* rater.h — the DataRater R(x; φ) of DESIGN §3: one logit z_i per example.
 *
 *   tokens ─▶ wte[tok] + wpe[t] ─▶ n_layer × GPT-2 block WITHOUT causal mask (keys
 *   j ≥ valid_len[b] masked) ─▶ LN_f ─▶ mean over the valid positions ─▶
 *   Linear d→d ─▶ GELU ─▶ Linear d→1 ─▶ z_i
 *
 * Its own token and position embeddings (no tied output). The trunk is lm.h's; the
 * rater is differentiated once (first order: the meta-gradient needs (∂z/∂φ)ᵀ z̄).
 * Flat layout = checkpoint order: rater.wte, rater.wpe, rater.h.{i}.… (GPT-2 block
 * names), rater.ln_f.{weight,bias}, rater.head.fc.{weight [d,d], bias [d]},
 * rater.head.out.{weight [d,1], bias [1]}.
 * Memory conventions as lm.h: flat φ buffers in backend memory; tokens, valid_len, z and
 * dz in host memory. Never allocates after rater_acts_new.
 */
#ifndef DR_RATER_H
#define DR_RATER_H

#include <stddef.h>
#include <stdint.h>
#include "backend.h"
#include "lm.h"

typedef LMConfig RaterConfig;   /* same fields; ctx = data.seq_len_rater */

typedef struct {
    LMParams trunk;        /* rater.wte … rater.ln_f (the lm.h views, rater's buffer) */
    real *head_fc_w;       /* [C, C] */
    real *head_fc_b;       /* [C]    */
    real *head_out_w;      /* [C, 1] */
    real *head_out_b;      /* [1]    */
} RaterParams;

size_t rater_num_params(const RaterConfig *cfg);
int rater_num_tensors(const RaterConfig *cfg);
void rater_param_table(const RaterConfig *cfg, ParamInfo *table);
void rater_point_params(RaterParams *views, real *flat, const RaterConfig *cfg);
/* Trunk as the LM's (DESIGN §3 init); head weights normal(0, init_std), biases 0.
 * Deterministic in seed alone (see lm_init_params). */
void rater_init_params(const Backend *be, const RaterConfig *cfg, real *phi, uint64_t seed);

typedef struct {
    RaterConfig cfg;
    int B, T;                      /* allocated maximum */
    int B_cur, T_cur;              /* batch of the last forward */
    int32_t *tokens, *valid_len;   /* backend copies of the last batch */
    LMTensors fwd;                 /* trunk activations */
    LMGrads bwd;                   /* trunk cotangents */
    real *pooled;                  /* [B,C] mean over valid positions */
    real *h;                       /* [B,C] head.fc output   */
    real *h_gelu;                  /* [B,C] after GELU       */
    real *z;                       /* [B]   logits           */
    real *d_pooled, *d_h, *d_h_gelu, *d_z;   /* their cotangents */
} RaterActs;

RaterActs *rater_acts_new(const Backend *be, const RaterConfig *cfg, int B, int T);
void rater_acts_free(const Backend *be, RaterActs *acts);

/* z[b] = R(tokens[b, :valid_len[b]]; φ). tokens: [B,T] host (T ≤ cfg->ctx; positions
 * ≥ valid_len[b] are ignored); valid_len: [B] host, 1 ≤ valid_len[b] ≤ T; z: [B] host out. */
void rater_forward(const Backend *be, const RaterConfig *cfg, const real *phi, RaterActs *acts,
                   const int32_t *tokens, const int32_t *valid_len, int B, int T, real *z);
/* dphi += (∂z/∂φ)ᵀ dz for the batch of the last rater_forward. dz: [B] host. */
void rater_backward(const Backend *be, const RaterConfig *cfg, const real *phi, RaterActs *acts,
                    const real *dz, real *dphi);

#endif
