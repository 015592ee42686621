/* optim.h — what turns a gradient into an update (DESIGN §4.2): global-norm clipping,
 * the learning-rate schedule, and the optimizer state (AdamW moments / SGD momentum)
 * around the backend's adamw_forward / sgd_forward.
 *
 * Clip: ĝ = g·c/‖g‖ when ‖g‖ > c (no epsilon), else ĝ = g; ‖·‖ is the global L2 norm
 * over the whole flat gradient, computed in double. clip_backward is its exact reverse
 * (the meta-gradient needs it). The optimizer state lives in backend memory, one flat
 * buffer per moment with the parameters' layout. Nothing here allocates per step.
 */
#ifndef DR_OPTIM_H
#define DR_OPTIM_H

#include <stddef.h>
#include "backend.h"
#include "config.h"
#include "real.h"

enum optim_kind { OPTIM_ADAMW = 0, OPTIM_SGD = 1 };
enum lr_schedule { LR_COSINE = 0, LR_CONSTANT = 1 };

typedef struct {
    int kind;                    /* enum optim_kind */
    double lr;                   /* peak learning rate */
    double beta1, beta2, eps;    /* AdamW */
    double momentum;             /* SGD */
    double weight_decay;
    double clip;                 /* global-norm threshold c; 0 = no clipping */
    int schedule;                /* enum lr_schedule */
    long warmup_steps;           /* linear warmup from lr/warmup to lr */
    long total_steps;            /* cosine reaches min_lr_frac·lr at this step */
    double min_lr_frac;
} OptimHyper;

/* From the config's lm section (kind from lm.optimizer) / rater section (AdamW,
 * constant schedule, no warmup). total_steps: the run's length (cosine horizon). */
OptimHyper optim_hyper_lm(const Config *cfg, long total_steps);
OptimHyper optim_hyper_rater(const Config *cfg, long total_steps);

/* Learning rate of step `step` (0-based): lr·(step+1)/warmup during warmup, then lr
 * (constant) or min_lr + ½(lr − min_lr)(1 + cos(π·p)), p = (step − warmup)/(total − warmup)
 * clamped to [0, 1] (cosine; total_steps ≤ warmup gives lr). */
double lr_at(const OptimHyper *h, long step);

/* Global norm of g (written to *norm_out if non-NULL) and the clip factor s:
 * s = clip/‖g‖ when clip > 0 and ‖g‖ > clip, else 1. ĝ = s·g. */
double clip_factor(const Backend *be, const real *g, size_t n, double clip, double *norm_out);
/* Reverse of ĝ = s(g)·g: given the cotangent dghat of ĝ, writes (=) the cotangent of g:
 * dg = s·(dghat − g·⟨g, dghat⟩/‖g‖²) when the clip is active, else dg = dghat.
 * dg may alias dghat. */
void clip_backward(const Backend *be, real *dg, const real *dghat, const real *g, size_t n,
                   double clip);

/* AdamW: m, v. SGD: m = momentum buffer (v NULL). step = updates done so far. */
typedef struct {
    int kind;
    size_t n;
    real *m, *v;
    long step;
} OptimState;

void optim_state_init(OptimState *st, const Backend *be, int kind, size_t n);   /* zeros */
void optim_state_free(OptimState *st, const Backend *be);
void optim_state_zero(OptimState *st, const Backend *be);     /* moments 0, step 0 */
void optim_state_copy(OptimState *dst, const OptimState *src, const Backend *be);

/* The backend hyper-parameters of the next update (AdamW's step k = st->step + 1). */
AdamWHyper optim_adamw_hyper(const OptimHyper *h, double lr, long k);
SGDHyper optim_sgd_hyper(const OptimHyper *h, double lr);

typedef struct {
    double grad_norm;   /* ‖g‖ before clipping */
    double clip_scale;  /* s */
    double lr;
} OptimStepInfo;

/* One update: s = clip_factor(g), then θ, state ← U(θ, state, s·g) with learning rate
 * lr (from lr_at), st->step += 1. grads is not modified. info may be NULL. */
void optim_step(const Backend *be, OptimState *st, real *params, const real *grads,
                const OptimHyper *h, double lr, OptimStepInfo *info);

#endif
