/* config.h — the experiment configuration: YAML file + `--set section.key=value`.
 *
 * One typed struct, one schema table (config.c) listing every key with its type,
 * range and default. Loading refuses, naming the file, the line and the key: unknown
 * sections or keys, wrong types, values out of range, and inconsistent combinations
 * (d_model not divisible by n_head, clamp_min > clamp_max, …). Defaults are the
 * seed's values (configs/base.yaml restates them). `--set` overrides are validated
 * the same way and reported as "--set lm.d_model=…".
 *
 * File format: a mapping of sections to mappings of keys, e.g.
 *     lm:
 *       d_model: 512
 *     rater:
 *       clamp: [0.05, 1.0]      # pairs are flow sequences: rater.clamp, lm.betas, rater.betas
 * Values: integers (1024, 1_000_000, 2e6), numbers (1e-4), true/false, and the listed
 * words for enumerations. --set takes the same text (--set rater.clamp=[0.1,0.9]).
 * Errors: "configs/x.yaml:12: lm.d_model: expected an integer in [1, 65536], got 'abc'",
 * "configs/x.yaml:3: unknown key 'lm.dmodel' (did you mean lm.d_model?)",
 * "--set lm.n_head=7: lm.n_head: d_model 512 is not divisible by n_head 7"; a
 * cross-field error names the place where the last of the keys involved was set.
 *
 * Derived after loading (not keys): lm.shape.ctx = data.seq_len,
 * rater.shape.ctx = data.seq_len_rater; data.seq_len_rater 0 means seq_len, d_ff 0
 * means 4·d_model. After config_load these are always filled in (never 0).
 * `config_write_schema` lists every key with its range, default and meaning.
 */
#ifndef DR_CONFIG_H
#define DR_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    int n_layer, d_model, n_head, d_ff;   /* d_ff: key value 0 = 4·d_model (resolved) */
    int ctx;             /* max positions (LM: data.seq_len; rater: data.seq_len_rater), derived */
    double init_std;     /* 0.02 */
    int checkpointing;   /* recompute block activations in the backward (lm.checkpointing) */
    int head_chunk;      /* LM only: examples per chunk of the logits (lm.head_chunk; 0 = all) */
} ModelShape;

typedef struct {
    /* experiment */
    char name[128];
    uint64_t seed;
    char device[16];       /* auto | cpu | cuda */
    char precision[8];     /* fp32 | bf16 */
    int threads;           /* 0 = all cores */

    /* data */
    struct {
        int seq_len;           /* LM window: examples have up to seq_len + 1 tokens */
        int seq_len_rater;     /* rater sees the first seq_len_rater tokens (≤ seq_len + 1; key 0 = seq_len) */
        int min_tokens;        /* shorter windows are dropped */
        int batch_size;
        int shuffle;           /* bool */
        int bucket_by_length;  /* bool */
        int prefetch;          /* batches read ahead on a second thread */
    } data;

    /* inner LM and its optimizer */
    struct {
        ModelShape shape;
        int vocab_size;        /* 0 = take it from the shards */
        char optimizer[8];     /* adamw | sgd */
        double lr, weight_decay, beta1, beta2, eps, momentum, clip;   /* betas: key lm.betas [b1, b2] */
        char schedule[16];     /* cosine | constant */
        int warmup_steps;
        double min_lr_frac;    /* cosine floor, fraction of lr */
    } lm;

    /* rater and its (outer) optimizer */
    struct {
        ModelShape shape;
        char normalize[8];     /* sigmoid | softmax */
        double tau, clamp_min, clamp_max;   /* clamp: key rater.clamp [min, max] */
        int mean_normalize;    /* bool */
        double lr, weight_decay, beta1, beta2, eps, clip;
        double entropy_penalty, l2_to_mean;
    } rater;

    /* meta-learning (DESIGN §4) */
    struct {
        int rounds;            /* meta-steps */
        int population_K;
        int T;                 /* inner steps per meta-step */
        int val_batches;
        int checkpoint_every;  /* 0 = round(sqrt(T)) */
        int host_checkpoints;  /* bool: checkpoints in host memory */
        int keep_activations;  /* activation tapes; -1 = auto */
        int reset_every;       /* meta-steps between member re-initialisations */
        char combine[24];      /* mean | per_member_adam */
        double ema;            /* EMA decay of φ; 0 = off */
        int hvp;               /* bool */
        int backprop_steps;    /* 0 = all T */
        char mode[16];         /* full | detach | shuffle | constant | classifier */
        int track_uniform;     /* bool */
        int log_every;
        int save_every;        /* meta-steps between saves of rater, EMA and state; 0 = off */
        double save_minutes;   /* also save after a meta-step this long after the last save; 0 = off */
    } meta;

    /* final training (dr-train) */
    struct {
        long steps;            /* 0 = use tokens (both set is refused) */
        long tokens;           /* steps and tokens both 0: one pass over the training data */
        int eval_every;
        int eval_batches;      /* 0 = the whole Val split; E: E batches spread evenly over it */
        int log_every;
        int checkpoint_every;
        double save_minutes;   /* also save after a step this long after the last save; 0 = off */
    } train;

    /* deployment (dr-score / dr-filter / curated dr-train) */
    struct {
        double keep;           /* 0.6 */
        char policy[16];       /* filter | per_batch | cdf | keep_middle | random | reweight | online */
        int batch;             /* B for per_batch */
    } deploy;
} Config;

/* Fills cfg with the defaults. */
void config_defaults(Config *cfg);
/* Loads a YAML file over the defaults (path may be NULL), then applies the
 * "section.key=value" overrides in order, then validates. -1 + dr_seterr. */
int config_load(Config *cfg, const char *path, int n_sets, char **sets);
/* --set k=v overrides on a config already loaded (validated again); -1 + dr_seterr. */
int config_apply_sets(Config *cfg, int n_sets, char **sets);
/* Writes the whole config as YAML (for logs, checkpoint metadata and --print-config). */
void config_write_yaml(const Config *cfg, FILE *f);
/* The config as one JSON object string (malloc'd), for safetensors __metadata__:
 * {"experiment":{"name":…,"seed":…},"data":{…},…}, keys as in YAML. */
char *config_to_json(const Config *cfg);
/* Reads config_to_json's output back (e.g. from a checkpoint), over the defaults and
 * validated like a file; origin names the source in messages ("rater.safetensors"). */
int config_load_json(Config *cfg, const char *json, size_t len, const char *origin);
/* The first key, in schema order, whose value differs between a and b, skipping the keys
 * that `skip` lists (NULL-terminated; an entry ending in '.' skips a whole section:
 * "train."); NULL when none differs. va, vb (n bytes each) receive the two values as text. */
const char *config_diff(const Config *a, const Config *b, const char *const *skip, char *va,
                        char *vb, size_t n);
/* Prints every key: name, type and range, default, one-line doc (for --help-config). */
void config_write_schema(FILE *f);

#endif
