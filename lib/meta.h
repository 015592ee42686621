/* meta.h — meta-learning the DataRater (DESIGN §4): the exact meta-gradient of one
 * population member's meta-step (meta.c) and the outer loop around it (meta_run.c).
 *
 * One member, one meta-step (meta_member_step), for t = 0 … T−1 on Train_A batch t:
 *   z_t = R(x_t; φ)                       rater logits of the batch
 *   w_t = weights(z_t)                    sigmoid+clamp or B·softmax (+ mean-normalize)
 *   g_t = ∇θ (1/B) Σ_i w_ti ℓ_i(θ_t)      LM forward + backward with dlosses = w_t/B
 *   ĝ_t = s_t g_t                         global-norm clip, s_t = clip_factor(g_t)
 *   (θ_{t+1}, state_{t+1}) = U(θ_t, state_t, ĝ_t)   AdamW (step k continues across
 *                                         meta-steps) or SGD + momentum
 * then J = L_val(θ_T) + regularizers(z), and φ̄ = ∂J/∂φ by the reverse pass of DESIGN
 * §4.2: through U's Jacobian and the clip (u = ḡ_t), one forward-over-reverse LM pass
 * (H_t u and d_i = ⟨∇ℓ_i, u⟩), then back through the weights and the rater. States are
 * checkpointed every c steps and each segment is recomputed once in the reverse pass:
 * memory O((T/c + c)·|θ|), never T × activations unless asked for: up to
 * meta.keep_activations steps keep their primal pass on an activation tape (lm.h) so
 * that their reverse step runs only the tangent halves (auto: min(c, 4) tapes).
 * docs/meta.md has the details.
 *
 * The objective, exactly (s = sigmoid(z/τ), H = binary entropy, means over every example
 * of every step the reverse pass covers, t ≥ T − backprop_steps):
 *   J = L_val + rater.entropy_penalty · mean(−H(s)) + rater.l2_to_mean · mean((s − ½)²)
 *
 * Memory: flat θ-sized buffers are backend memory (be->alloc); batches, per-example
 * vectors and statistics are host memory. Nothing here keeps global state.
 */
#ifndef DR_META_H
#define DR_META_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "data.h"
#include "inputs.h"
#include "lm.h"
#include "optim.h"
#include "rater.h"

enum meta_mode {
    META_FULL = 0,        /* the exact meta-gradient */
    META_DETACH = 1,      /* w used in the inner loop, no meta-gradient (φ never changes) */
    META_SHUFFLE = 2,     /* w permuted within each batch (seeded); gradient through it */
    META_CONSTANT = 3,    /* w = 1, the rater unused: uniform training, bit-exactly */
    META_CLASSIFIER = 4,  /* rater trained as a Val-vs-Train_A classifier (BCE on z) */
};
enum meta_combine { META_COMBINE_MEAN = 0, META_COMBINE_PER_MEMBER_ADAM = 1 };

/* What one member's meta-step needs, fixed for a run (from the config + vocabulary). */
typedef struct {
    LMConfig lm;
    RaterConfig rater;
    OptimHyper inner;          /* the member's optimizer; total_steps = T·reset_every
                                  (the cosine horizon is the member's lifetime) */
    WeightNormConfig weights;
    int T;                     /* inner steps per meta-step */
    int checkpoint_every;      /* c, resolved: 1 ≤ c ≤ T */
    int host_checkpoints;      /* the ⌈T/c⌉ checkpoints in host memory, copied to the
                                  backend one segment at a time */
    int keep_activations;      /* activation tapes (lm.h): 0 … T, or -1 = auto (resolved
                                  by meta_work_new: min(c, 4), within half of what the
                                  backend has available) */
    int backprop_steps;        /* N, resolved: 1 ≤ N ≤ T (reverse covers t ≥ T − N) */
    int hvp;                   /* 0: first order (H_t u dropped) */
    int mode;                  /* enum meta_mode */
    double entropy_penalty, l2_to_mean;
    int batch;                 /* B: the largest batch */
    int seq_len;               /* LM positions (data.seq_len) */
    int seq_len_rater;         /* rater positions */
} MetaSpec;

/* -1 + dr_seterr on a combination the meta-step cannot run. vocab: the LM's (and the
 * rater's) vocabulary size. */
int meta_spec_from_config(MetaSpec *s, const Config *cfg, int vocab);
const char *meta_mode_name(int mode);
/* c = round(sqrt(T)) for checkpoint_every 0, clamped to [1, T]. */
int meta_default_checkpoint_every(int T);

/* The batches of one meta-step. train(ctx, t) must give the same examples every time
 * it is called for the same t during the meta-step (the reverse pass rebuilds batch t
 * from it); val(ctx, j), j < n_val, the Val batches. Batches carry the LM view and the
 * rater view (data.h). NULL + dr_seterr on a read error. */
typedef struct {
    const DataBatch *(*train)(void *ctx, int t);
    const DataBatch *(*val)(void *ctx, int j);
    int n_val;
    void *ctx;
} MetaBatches;

/* Per meta-step numbers, summed so members merge (meta_stats_merge). */
typedef struct {
    int members;
    double l_train;           /* mean over the T batches of the mean example loss (Σ over members) */
    double l_val;             /* L_val(θ_T) (Σ over members) */
    double objective;         /* J, or the classifier's BCE (Σ over members) */
    double clip_frac;         /* fraction of inner steps whose gradient was clipped (Σ) */
    long n_scores;            /* examples scored */
    double score_sum, score_sumsq, score_min, score_max;   /* of the logits z */
    double entropy_sum;       /* Σ H(sigmoid(z/τ)), nats */
    long at_min, at_max;      /* sigmoid weights at the clamp bounds */
    /* wall seconds by phase (Σ): the unroll (rater + LM forward/backward + update), L_val
     * and its gradient, segment recomputation, the reverse steps (optimizer Jacobian +
     * forward-over-reverse) and the rater's backward (forward again + backward) */
    double sec_unroll, sec_val, sec_recompute, sec_reverse, sec_rater;
} MetaStats;

void meta_stats_clear(MetaStats *st);
void meta_stats_merge(MetaStats *into, const MetaStats *from);

/* Buffers of the meta-step, allocated once for a spec. */
typedef struct MetaWork MetaWork;
MetaWork *meta_work_new(const Backend *be, const MetaSpec *s);
void meta_work_free(MetaWork *w);
size_t meta_work_bytes(const MetaWork *w);       /* backend + host bytes held */
size_t meta_work_host_bytes(const MetaWork *w);  /* of which in host memory */
int meta_work_tapes(const MetaWork *w);          /* activation tapes held (resolved keep_activations) */

/* One member, one meta-step. theta, opt: the member's state, advanced in place by T
 * inner steps (θ_T, state_T; opt->step += T). phi: the rater. dphi: if non-NULL and the
 * mode has a meta-gradient (full, shuffle, classifier), ACCUMULATES (+=) ∂J/∂φ.
 * shuffle_key seeds the permutations of mode shuffle (a function of run seed, member
 * and meta-step). stats: accumulated (+=). -1 + dr_seterr on a data read error. */
int meta_member_step(MetaWork *w, real *theta, OptimState *opt, const real *phi,
                     const MetaBatches *data, uint64_t shuffle_key, real *dphi,
                     MetaStats *stats);

/* The uniform shadow: T inner steps with w = 1 on the same batches, then L_val(θ_T).
 * Writes L_val to *l_val. Bit-identical to meta_member_step in mode constant. */
int meta_uniform_step(MetaWork *w, real *theta, OptimState *opt, const MetaBatches *data,
                      double *l_val);

/* ---- the outer loop (meta_run.c) ------------------------------------------------ */

#define META_INTERRUPTED 130   /* stopped by Ctrl-C/SIGTERM, state saved */

typedef struct {
    Config cfg;                /* loaded and validated */
    const char *out_path;      /* rater; EMA next to it, state at <out>.state */
    const char *log_path;      /* metrics JSON lines, or NULL */
    int resume;
    int restart;               /* start afresh over <out>.state of an unfinished run */
    long stop_at;              /* > 0: save the state and stop after this meta-step */
    const char *device;        /* NULL = cfg.device */
    ShardList train, val;      /* Train_A and Val shards (meta_resolve_inputs) */
} MetaOptions;

/* Sorts inputs into Train_A and Val. Positional inputs (shards, directories, manifests,
 * "-" = manifest on stdin): split train_a → Train_A, val → Val. --train / --val lists: all
 * their shards (of a manifest: its train_a / val lines). -1 + dr_seterr when either ends
 * up empty, naming the manifests that lack the split (shardlist_no_split). */
int meta_resolve_inputs(MetaOptions *o, int n_inputs, char **inputs, int n_train,
                        char **train, int n_val, char **val);

/* The meta-training run of DESIGN §4.1: K members, cfg.meta.rounds meta-steps, outer
 * AdamW with clip, EMA, metrics, state for --resume. Writes <out> (rater), <out minus
 * .safetensors>.ema.safetensors and <out>.state. 0 when done (or stopped at --stop-at),
 * META_INTERRUPTED when stopped by a signal with the state saved, -1 + dr_seterr on bad
 * input or a non-finite meta-gradient (the last good rater is kept at <out>). */
int meta_run(MetaOptions *o);

/* dr-meta grad: the meta-gradient of one meta-step of one member from the LM and rater
 * checkpoints, fresh optimizer state, unshuffled data (batch t = Train_A examples tB …
 * tB+B−1 in shard order, Val batch j likewise). Writes ∂J/∂φ under the rater's tensor
 * names plus the scalars l_val and objective (F64, shape []). */
typedef struct {
    Config cfg;
    const char *lm_init, *rater_init, *out_path;
    const char *device;
    ShardList train, val;
} MetaGradOptions;
int meta_grad_run(MetaGradOptions *o);

void meta_options_free(MetaOptions *o);
void meta_grad_options_free(MetaGradOptions *o);

/* The rater dr-meta starts from: rater_init_params with a seed derived from the run's. */
void meta_rater_init(const Backend *be, const RaterConfig *rc, real *phi, uint64_t seed);

/* Path helpers: "<out minus .safetensors>.ema.safetensors" and "<out>.state" (malloc'd). */
char *meta_ema_path(const char *out);
char *meta_state_path(const char *out);

#endif
