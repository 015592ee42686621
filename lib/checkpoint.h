/* checkpoint.h — LM and rater checkpoints as safetensors (DESIGN §2.5).
 *
 * LM: Hugging Face GPT-2 names and layouts (transformer.wte.weight [V,C], …,
 * transformer.ln_f.bias), so the file loads into transformers.GPT2LMHeadModel (tied
 * lm_head). __metadata__: "format": "pt" (what transformers checks), "config": a GPT-2
 * config JSON (model_type, vocab_size, n_positions, n_ctx, n_embd, n_layer, n_head,
 * n_inner, activation_function "gelu_new", layer_norm_epsilon, initializer_range,
 * tie_word_embeddings) so GPT2Config(**json.loads(config)) rebuilds the model, and
 * "datarater": the caller's metadata JSON (experiment config), if given.
 * Rater: "rater.…" names (rater.h), "config" with the same keys, model_type "datarater".
 *
 * Tensors are written as F32 in float builds and F64 in double builds; load accepts
 * either (and F16/BF16, widened) and checks every name, shape and the config against
 * each other. lm_load also reads a Hugging Face GPT-2 file: without "config" metadata
 * its config.json beside it gives the shape (a non-GPT-2 activation, LN epsilon or
 * attention scaling is refused); names with or without "transformer."; the attention
 * mask buffers (h.{i}.attn.bias, .masked_bias) are skipped and lm_head.weight, if
 * there, must equal wte. Parameters are HOST memory here (copy with be->to_host first).
 * Writes are atomic; failures return -1 with dr_seterr("path: what is wrong").
 */
#ifndef DR_CHECKPOINT_H
#define DR_CHECKPOINT_H

#include <stdint.h>

#include "config.h"
#include "lm.h"
#include "optim.h"
#include "rater.h"

/* The tokenizer of the shards a model was trained on. Its checkpoint records it
 * (__metadata__ "tokenizer": the shards' tokenizer spec, "tokenizer_fingerprint": the
 * fingerprint as 16 hex digits), and the tools that run a checkpoint on shards refuse
 * shards of another tokenizer (checkpoint_check_tokenizer): the same ids would be other
 * strings. NULL when saving: nothing recorded. */
typedef struct {
    uint64_t fingerprint;
    const char *spec;          /* "byte", "gpt2", "bpe:/abs/dir", … (drs_tokenizer_spec) */
} TokenizerTag;

int lm_save(const char *path, const LMConfig *cfg, const real *params,
            const char *metadata_json, const TokenizerTag *tok);
/* *params_out: malloc'd host buffer of lm_num_params(cfg_out) reals. */
int lm_load(const char *path, LMConfig *cfg_out, real **params_out);

int rater_save(const char *path, const RaterConfig *cfg, const real *phi,
               const char *metadata_json, const TokenizerTag *tok);
int rater_load(const char *path, RaterConfig *cfg_out, real **phi_out);

/* The run config a checkpoint of ours records in its "datarater" metadata (a rater's:
 * the config itself; an LM's: {"step", "tokens", "config"}): 1 with *out filled, 0 when
 * it records none (a Hugging Face file, an earlier version) or cannot be opened, -1 +
 * dr_seterr when what it records is not a valid config. */
int checkpoint_run_config(const char *path, Config *out);

/* The tag of a loader's shards (its first shard's spec; all its shards share the
 * fingerprint). */
typedef struct DataLoader DataLoader;
TokenizerTag data_tokenizer_tag(const DataLoader *d);

/* 0 when the checkpoint at path records no tokenizer (a Hugging Face file, or one saved
 * before the tag existed) or records `data`'s; -1 + dr_seterr("option path: trained on
 * … ; shard_path is …") when it records another, or when path cannot be read.
 * option: the command-line option that named path ("--rater"), or NULL. */
int checkpoint_check_tokenizer(const char *path, const char *option, const TokenizerTag *data,
                               const char *shard_path);

/* Optimizer state next to a model, in a "*.state" safetensors: tensors "m.<name>" and
 * "v.<name>" (SGD: "m." only) in the model's table layout, metadata "optimizer" and
 * "step". The caller
 * adds its own entries (RNG, data position) through metadata_json / state_meta_get.
 * table/n_tensors: lm_param_table or rater_param_table. m, v: HOST buffers (v NULL for SGD). */
int optim_state_save(const char *path, const ParamInfo *table, int n_tensors,
                     int kind, const real *m, const real *v, long step,
                     const char *metadata_json);
/* Reads into host buffers m, v (v ignored when kind is SGD); checks kind and shapes.
 * *metadata_out (malloc'd, may be NULL) receives the caller's metadata_json back. */
int optim_state_load(const char *path, const ParamInfo *table, int n_tensors,
                     int kind, real *m, real *v, long *step, char **metadata_out);

#endif
