/* train.h — the LM training loop behind dr-train (and the evaluation of a checkpoint).
 *
 * One step: next batch of the Train stream (data.h) → lm_forward → per-example losses
 * ℓ_i → lm_backward with dℓ_i = 1/B (L = mean ℓ_i) → clip + AdamW/SGD (optim.h) at the
 * scheduled learning rate. Every train.eval_every steps and at the end: L_val = mean of
 * ℓ_i over the Val examples (all of them, or with train.eval_batches = E > 0 E batches of B
 * spread evenly over the whole split: of its nb batches in shard order, batch ⌊j·nb/E⌋
 * for j = 0 … E−1 — the same ones at every evaluation).
 *
 * Metrics (JSON lines, --log): at every train.log_every-th step and the last:
 *   step, tokens (training target tokens so far), lr, l_train (mean batch loss since the
 *   previous log line), grad_norm (of the step's gradient, before clipping), seconds;
 * at eval steps (and step 0 of a fresh run): l_val, val_tokens; on every line, last:
 *   flops, flops_lm, flops_rater (cumulative training compute, see below).
 *
 * Checkpoints (every train.checkpoint_every steps, at the end, on Ctrl-C/SIGTERM, at
 * --stop-at): <out> is the LM (checkpoint.h: Hugging Face GPT-2 names), <out>.state the
 * optimizer moments plus {step, total_steps, tokens, data position, the l_train
 * accumulator, seconds} as metadata, so --resume continues BIT-EXACTLY: the same
 * batches, the same updates and the same logged numbers as a run never interrupted.
 *
 * A non-finite training loss, gradient norm or Val loss stops the run: the last state
 * whose loss and gradient were finite is saved to <out> and the error names the step.
 * Data-dependent configuration errors (shard vocabulary > lm vocab, seq_len > ctx, no
 * Train or Val examples, mixed tokenizers) are refused before any training work.
 *
 * Curated training (docs/deploy.md), one of:
 *   weights  (--weights scores.tsv): the loss is L = (1/B) Σ w_i ℓ_i with w = the
 *            rater's weight normalization (rater.normalize, tau, clamp, mean_normalize,
 *            exactly as dr-meta's inner loop) applied to the batch's scores z_i. The
 *            scores must cover the Train examples exactly (scores.h).
 *   online   (--rater R --online-keep F): every step takes C = ceil(B/F) candidates from
 *            the Train stream, scores them with the rater (its first ctx tokens, as
 *            dr-score), and trains on the B highest-scored, in stream order (ties: the
 *            earlier one). F = 1 is plain training, bit for bit. The stream advances C
 *            examples per step; its position is in the checkpoint like any other. On the
 *            CPU the candidates are scored in sub-batches of 8, one per thread (as
 *            dr-score does): the logits do not depend on the thread count.
 * Compute (every log line): flops_lm = Σ over steps of train_flops_lm(B, T), flops_rater
 * = Σ train_flops_rater(C, T_rater) of the online scoring, flops = their sum. Online
 * log lines also carry z_kept / z_all (mean rater logit of the trained examples / of all
 * candidates since the previous line); weights lines carry w_mean.
 * A checkpoint records its curation (mode, keep, a hash of the scores or the rater):
 * --resume with another one is refused.
 */
#ifndef DR_TRAIN_H
#define DR_TRAIN_H

#include "config.h"
#include "inputs.h"
#include "lm.h"
#include "rater.h"

typedef struct {
    Config cfg;                 /* loaded and validated (config_load) */
    long steps;                 /* > 0: overrides train.steps / train.tokens */
    long tokens;                /* > 0 (and steps == 0): overrides train.tokens */
    long stop_at;               /* > 0: checkpoint and stop after this step, as Ctrl-C */
    const char *log_path;       /* metrics JSON lines; NULL = none */
    const char *out_path;       /* LM checkpoint; the state goes to <out_path>.state */
    int resume;                 /* continue from <out_path> + <out_path>.state */
    int restart;                /* start afresh over <out_path>.state of an unfinished run */
    const char *init_path;      /* --init: start from this LM's weights (an LM checkpoint
                                 * of the config's shape, ours or Hugging Face's), with a
                                 * fresh optimizer, schedule and data stream */
    const char *device;         /* NULL = cfg.device */
    ShardList train, val;       /* the Train and Val shards (train_resolve_inputs) */
    const char *weights_path;   /* --weights scores.tsv: re-weighted loss */
    const char *rater_path;     /* --rater: online filtering with this rater */
    double online_keep;         /* --online-keep F in (0, 1] (with rater_path) */
} TrainOptions;

/* FLOPs of one LM training step (forward + backward) on B examples of T positions, the
 * issue's formula per position: 6·N + 6·n_layer·d_model·T, N = ALL the LM's parameters
 * (wte is also the tied output head; wpe, a lookup, is ~1%). Padded positions count:
 * they are computed. */
double train_flops_lm(const LMConfig *lm, int B, int T);
/* FLOPs of the LM's forward pass alone: 2·N + 2·n_layer·d_model·T per position. */
double train_flops_lm_forward(const LMConfig *lm, int B, int T);
/* FLOPs of the rater's forward pass on n examples of T positions: per position
 * 2·N_trunk + 2·n_layer·d_model·T, N_trunk = the parameters of the blocks and the final
 * LN (the rater's embeddings are lookups: not counted), plus the head per example
 * 2·(d² + d). */
double train_flops_rater(const RaterConfig *rater, int n, int T);

/* Online filtering on the CPU backend scores the candidates in sub-batches of this many
 * (score_rater_split), one per thread. */
#define TRAIN_ONLINE_SUB 8

/* Return value of train_run besides 0 (done, or stopped at stop_at with a checkpoint)
 * and -1 (error, dr_seterr). */
#define TRAIN_INTERRUPTED 130   /* stopped by SIGINT/SIGTERM; checkpoint saved */

/* Sorts inputs into the Train and Val shard lists.
 * inputs (positional: shard files, directories, manifests, "-" = manifest on stdin):
 *   Train = the shards of split train_split, or if NULL: train_b when present, else
 *   train_a; Val = the shards of split val_split (NULL: "val"). Plain shards (no
 *   manifest, no split named) are all Train; Val then comes from --val.
 * train_inputs / val_inputs (--train / --val): all their shards, filtered by the split
 *   name when one is given. -1 + dr_seterr when a list ends up empty, naming the
 *   manifests that lack the split (shardlist_no_split). */
int train_resolve_inputs(TrainOptions *o, int n_inputs, char **inputs,
                         int n_train, char **train_inputs, int n_val, char **val_inputs,
                         const char *train_split, const char *val_split);

/* Trains (or resumes) as configured. 0 when done (or at stop_at), TRAIN_INTERRUPTED
 * after a signal (checkpoint saved), -1 + dr_seterr on bad input or a non-finite loss. */
int train_run(TrainOptions *o);

/* Val loss of the LM checkpoint `ckpt` on o->val, printed on stdout as one JSON line
 * {"l_val": …, "examples": …, "tokens": …}. -1 + dr_seterr. */
int train_eval_only(TrainOptions *o, const char *ckpt);

/* Frees the shard lists. */
void train_options_free(TrainOptions *o);

#endif
