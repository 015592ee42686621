/* config.c — the experiment configuration: one schema table, a YAML loader (libyaml),
 * `--set section.key=value` overrides, cross-field validation, and writers (YAML with
 * comments, JSON for checkpoint metadata).
 *
 * Every key is a row of `schema` below: its dotted name, type, place in Config, range,
 * default (as text, parsed by the same code as a YAML value, so defaults and files can
 * never disagree on format) and a one-line doc. Values from a file, from --set and from
 * JSON metadata all go through set_value(), so all three are validated identically.
 * Errors name where the value came from ("configs/x.yaml:12", "--set lm.lr=abc") and
 * the key. Derived values (filled after loading, never keys of their own):
 *   lm.shape.ctx = data.seq_len, rater.shape.ctx = data.seq_len_rater,
 *   data.seq_len_rater 0 → data.seq_len, d_ff 0 → 4·d_model.
 * No global mutable state: the per-load bookkeeping (where each key was set) lives in a
 * LoadCtx on the caller's stack.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "check.h"
#include "json.h"
#include "lm.h"   /* DR_MAX_LAYERS */

/* ---- schema -------------------------------------------------------------------- */

typedef enum { T_INT, T_LONG, T_U64, T_DOUBLE, T_BOOL, T_ENUM, T_STR, T_PAIR } KeyType;

enum { MIN_OPEN = 1, MAX_OPEN = 2 };   /* exclusive bounds for doubles */

typedef struct {
    const char *key;       /* "section.name" */
    KeyType type;
    size_t off, off2;      /* offsetof in Config; off2: second double of a T_PAIR */
    size_t size;           /* char buffer size (T_ENUM, T_STR) */
    double min, max;       /* numeric range (each element of a T_PAIR) */
    int open;              /* MIN_OPEN | MAX_OPEN */
    const char *allowed;   /* T_ENUM: "a|b|c"; T_BOOL: "auto" where auto (-1) is allowed */
    const char *def;       /* default, as YAML text */
    const char *doc;
} KeyDef;

#define OFF(f) offsetof(Config, f)
#define SZ(f) sizeof(((Config *)0)->f)
#define INT(k, f, lo, hi, d, doc) {k, T_INT, OFF(f), 0, 0, lo, hi, 0, NULL, d, doc}
#define LONG(k, f, lo, hi, d, doc) {k, T_LONG, OFF(f), 0, 0, lo, hi, 0, NULL, d, doc}
#define DBL(k, f, lo, hi, open, d, doc) {k, T_DOUBLE, OFF(f), 0, 0, lo, hi, open, NULL, d, doc}
#define BOOL(k, f, d, doc) {k, T_BOOL, OFF(f), 0, 0, 0, 1, 0, NULL, d, doc}
#define BOOL_AUTO(k, f, d, doc) {k, T_BOOL, OFF(f), 0, 0, -1, 1, 0, "auto", d, doc}   /* auto = -1 */
#define ENUM(k, f, allowed, d, doc) {k, T_ENUM, OFF(f), 0, SZ(f), 0, 0, 0, allowed, d, doc}
#define PAIR(k, f1, f2, lo, hi, open, d, doc) {k, T_PAIR, OFF(f1), OFF(f2), 0, lo, hi, open, NULL, d, doc}

#define BIG 1e300
#define IMAX 2147483647.0
#define LMAX 9.2e18

static const KeyDef schema[] = {
    {"experiment.name", T_STR, OFF(name), 0, SZ(name), 0, 0, 0, NULL, "datarater",
     "run name, recorded in logs and checkpoint metadata"},
    {"experiment.seed", T_U64, OFF(seed), 0, 0, 0, 0, 0, NULL, "0",
     "master seed: initialisation, data order, population"},
    ENUM("experiment.device", device, "auto|cpu|cuda", "auto", "auto = CUDA when a GPU is present, else CPU"),
    ENUM("experiment.precision", precision, "fp32|bf16", "fp32", "bf16 = CUDA autocast with fp32 master weights"),
    INT("experiment.threads", threads, 0, 4096, "0", "CPU threads; 0 = all cores"),

    INT("data.seq_len", data.seq_len, 1, 1 << 20, "1024",
        "LM context; an example is a window of up to seq_len + 1 tokens (LM ctx = this)"),
    INT("data.seq_len_rater", data.seq_len_rater, 0, (1 << 20) + 1, "0",
        "tokens of each window the rater sees (rater ctx = this); 0 = seq_len"),
    INT("data.min_tokens", data.min_tokens, 2, (1 << 20) + 1, "2", "windows shorter than this are dropped"),
    INT("data.batch_size", data.batch_size, 1, 1 << 20, "64", "examples per batch (LM and rater)"),
    BOOL("data.shuffle", data.shuffle, "true", "shuffle examples each epoch (seeded)"),
    BOOL("data.bucket_by_length", data.bucket_by_length, "false", "batch examples of similar length together"),
    INT("data.prefetch", data.prefetch, 0, 1024, "2", "batches read ahead on a second thread"),

    INT("lm.n_layer", lm.shape.n_layer, 1, DR_MAX_LAYERS, "12", "transformer blocks"),
    INT("lm.d_model", lm.shape.d_model, 1, 1 << 16, "512", "residual width"),
    INT("lm.n_head", lm.shape.n_head, 1, 4096, "8", "attention heads (must divide d_model)"),
    INT("lm.d_ff", lm.shape.d_ff, 0, 1 << 20, "0", "MLP hidden width; 0 = 4 * d_model"),
    DBL("lm.init_std", lm.shape.init_std, 0, 1, MIN_OPEN, "0.02", "std of the normal initialisation"),
    BOOL_AUTO("lm.checkpointing", lm.shape.checkpointing, "false",
              "activation recomputation: keep block outputs only, rebuild each block in the backward; "
              "auto: dr-train recomputes only when the activations would not fit, the other tools always"),
    INT("lm.head_chunk", lm.shape.head_chunk, 0, 1 << 20, "0",
        "examples per chunk of the [rows, vocab] logits; 0 = the whole batch (chunks: less memory)"),
    INT("lm.vocab_size", lm.vocab_size, 0, 1 << 24, "50257", "token ids; 0 = take it from the shards"),
    ENUM("lm.optimizer", lm.optimizer, "adamw|sgd", "adamw", "inner optimizer (exactly as torch.optim)"),
    DBL("lm.lr", lm.lr, 0, 1000, MIN_OPEN, "1e-3", "peak learning rate"),
    DBL("lm.weight_decay", lm.weight_decay, 0, 1000, 0, "0.01", "decoupled weight decay (AdamW) / L2 (SGD)"),
    PAIR("lm.betas", lm.beta1, lm.beta2, 0, 1, MAX_OPEN, "[0.9, 0.95]", "AdamW (beta1, beta2)"),
    DBL("lm.eps", lm.eps, 0, 1, MIN_OPEN, "1e-8", "AdamW epsilon"),
    DBL("lm.momentum", lm.momentum, 0, 1, MAX_OPEN, "0.9", "SGD momentum (dampening 0)"),
    DBL("lm.clip", lm.clip, 0, BIG, 0, "1.0", "global gradient-norm clip; 0 = off"),
    ENUM("lm.schedule", lm.schedule, "cosine|constant", "cosine", "learning-rate schedule after warmup"),
    INT("lm.warmup_steps", lm.warmup_steps, 0, IMAX, "0", "linear warmup steps"),
    DBL("lm.min_lr_frac", lm.min_lr_frac, 0, 1, 0, "0.1", "cosine floor as a fraction of lr"),

    INT("rater.n_layer", rater.shape.n_layer, 1, DR_MAX_LAYERS, "8", "transformer blocks (non-causal)"),
    INT("rater.d_model", rater.shape.d_model, 1, 1 << 16, "384", "residual width"),
    INT("rater.n_head", rater.shape.n_head, 1, 4096, "6", "attention heads (must divide d_model)"),
    INT("rater.d_ff", rater.shape.d_ff, 0, 1 << 20, "0", "MLP hidden width; 0 = 4 * d_model"),
    DBL("rater.init_std", rater.shape.init_std, 0, 1, MIN_OPEN, "0.02", "std of the normal initialisation"),
    BOOL("rater.checkpointing", rater.shape.checkpointing, "false",
         "activation recomputation for the rater (as lm.checkpointing)"),
    ENUM("rater.normalize", rater.normalize, "sigmoid|softmax", "sigmoid",
         "sigmoid: w = clamp(sigmoid(z/tau)); softmax: w = B * softmax(z/tau)"),
    DBL("rater.tau", rater.tau, 0, 1e6, MIN_OPEN, "1.0", "temperature of the logits"),
    PAIR("rater.clamp", rater.clamp_min, rater.clamp_max, 0, 1, 0, "[0.05, 1.0]",
         "[w_min, w_max] for sigmoid weights"),
    BOOL("rater.mean_normalize", rater.mean_normalize, "false", "divide the weights by their batch mean"),
    DBL("rater.lr", rater.lr, 0, 1000, MIN_OPEN, "1e-4", "outer (meta) AdamW learning rate"),
    DBL("rater.weight_decay", rater.weight_decay, 0, 1000, 0, "0.01", "outer AdamW weight decay"),
    PAIR("rater.betas", rater.beta1, rater.beta2, 0, 1, MAX_OPEN, "[0.9, 0.95]", "outer AdamW (beta1, beta2)"),
    DBL("rater.eps", rater.eps, 0, 1, MIN_OPEN, "1e-8", "outer AdamW epsilon"),
    DBL("rater.clip", rater.clip, 0, BIG, 0, "1.0", "meta-gradient global-norm clip; 0 = off"),
    DBL("rater.entropy_penalty", rater.entropy_penalty, 0, BIG, 0, "0",
        "λ_H: J += λ_H·mean(−H(s)), s = sigmoid(z/τ) (keeps scores off 0/1); 0 = off"),
    DBL("rater.l2_to_mean", rater.l2_to_mean, 0, BIG, 0, "0",
        "λ_2: J += λ_2·mean((s − 0.5)²), s = sigmoid(z/τ); 0 = off"),

    INT("meta.rounds", meta.rounds, 1, IMAX, "5", "meta-steps (outer updates)"),
    INT("meta.population_K", meta.population_K, 1, 4096, "2", "inner models in the population"),
    INT("meta.T", meta.T, 1, 100000000, "1500", "differentiable inner steps per meta-step"),
    INT("meta.val_batches", meta.val_batches, 1, IMAX, "8", "Val batches in the outer loss"),
    INT("meta.checkpoint_every", meta.checkpoint_every, 0, IMAX, "0",
        "inner states kept every c steps for the reverse pass; 0 = round(sqrt(T))"),
    BOOL("meta.host_checkpoints", meta.host_checkpoints, "false",
         "keep those states in host memory (a GPU then holds one of them at a time)"),
    INT("meta.keep_activations", meta.keep_activations, -1, IMAX, "-1",
        "inner steps whose LM activations are kept for the reverse pass (each saves it a "
        "forward and a backward); -1 = auto: min(c, 4), within half the free memory"),
    INT("meta.reset_every", meta.reset_every, 1, IMAX, "1",
        "meta-steps between re-initialisations of a member (staggered)"),
    ENUM("meta.combine", meta.combine, "mean|per_member_adam", "mean",
         "mean of member meta-gradients, or one Adam per member (the paper)"),
    DBL("meta.ema", meta.ema, 0, 1, MAX_OPEN, "0.99", "EMA decay of the rater weights; 0 = off"),
    BOOL("meta.hvp", meta.hvp, "true", "false = first order (drop the Hessian-vector term)"),
    INT("meta.backprop_steps", meta.backprop_steps, 0, IMAX, "0",
        "truncate the reverse pass to the last N inner steps; 0 = all T"),
    ENUM("meta.mode", meta.mode, "full|detach|shuffle|constant|classifier", "full",
         "ablations: detach, shuffle, constant (w = 1), classifier (auxiliary loss)"),
    BOOL("meta.track_uniform", meta.track_uniform, "true", "also log L_val of an unweighted inner model"),
    INT("meta.log_every", meta.log_every, 1, IMAX, "1", "meta-steps between metric lines"),
    INT("meta.save_every", meta.save_every, 0, IMAX, "0",
        "meta-steps between saves of the rater, its EMA and the state for --resume; 0 = off"),
    DBL("meta.save_minutes", meta.save_minutes, 0, BIG, 0, "10",
        "also save them after the first meta-step that ends this many minutes after the last "
        "save; 0 = off (the end and Ctrl-C always save)"),

    LONG("train.steps", train.steps, 0, LMAX, "0", "optimizer steps; 0 = use train.tokens"),
    LONG("train.tokens", train.tokens, 0, LMAX, "0",
         "training tokens; with steps also 0: one pass over the training data"),
    INT("train.eval_every", train.eval_every, 0, IMAX, "100", "steps between Val evaluations; 0 = at the end only"),
    INT("train.eval_batches", train.eval_batches, 0, IMAX, "0", "Val batches per evaluation, spread evenly over the split; 0 = the whole split"),
    INT("train.log_every", train.log_every, 1, IMAX, "10", "steps between metric lines"),
    INT("train.checkpoint_every", train.checkpoint_every, 0, IMAX, "0",
        "steps between checkpoints; 0 = off"),
    DBL("train.save_minutes", train.save_minutes, 0, BIG, 0, "10",
        "also checkpoint after the first step that ends this many minutes after the last "
        "checkpoint; 0 = off (the end and Ctrl-C always save)"),

    DBL("deploy.keep", deploy.keep, 0, 1, MIN_OPEN, "0.6", "fraction of examples kept"),
    ENUM("deploy.policy", deploy.policy, "filter|per_batch|cdf|keep_middle|random|reweight|online", "filter",
         "dr-filter's policy when it is given none"),
    INT("deploy.batch", deploy.batch, 1, 1 << 20, "64", "batch size B of the per_batch policy"),
};
#define N_KEYS ((int)(sizeof schema / sizeof *schema))

static const char *const sections[] = {"experiment", "data", "lm", "rater", "meta", "train", "deploy"};
#define N_SECTIONS ((int)(sizeof sections / sizeof *sections))

static int find_key(const char *key) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(schema[i].key, key) == 0) return i;
    return -1;
}

static int find_section(const char *name, size_t len) {
    for (int i = 0; i < N_SECTIONS; i++)
        if (strlen(sections[i]) == len && memcmp(sections[i], name, len) == 0) return i;
    return -1;
}

/* ---- "did you mean" ---------------------------------------------------------------- */

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int sub = prev + (a[i - 1] != b[j - 1]);
            int del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}

/* The closest name among the keys (or the sections), or NULL if none is close. */
static const char *suggest(const char *name, int want_sections) {
    const char *best = NULL;
    int best_d = 99;
    int n = want_sections ? N_SECTIONS : N_KEYS;
    for (int i = 0; i < n; i++) {
        const char *cand = want_sections ? sections[i] : schema[i].key;
        int d = edit_distance(name, cand);
        if (d < best_d) { best_d = d; best = cand; }
    }
    int limit = (int)strlen(name) / 4;
    if (limit < 2) limit = 2;
    if (limit > 3) limit = 3;
    return best_d <= limit ? best : NULL;
}

/* ---- where each key was set --------------------------------------------------------- */

typedef struct {
    char where[160];   /* "configs/x.yaml:12", "--set lm.lr=3", "" = default */
    int seq;           /* order of assignment, 0 = default */
} Origin;

typedef struct {
    Origin orig[N_KEYS];
    int seq;
} LoadCtx;

/* ---- values from text ------------------------------------------------------------- */

static void copy_str(char *dst, size_t size, const char *src) {
    memset(dst, 0, size);
    memcpy(dst, src, strlen(src));
}

/* Integer: [-+]?digits with optional '_' between digits, or an integral number in
 * exponent notation ("2e6"). */
static int parse_integer(const char *s, long double *out) {
    const char *p = s;
    char digits[64];
    size_t n = 0;
    if (*p == '+' || *p == '-') digits[n++] = *p++;
    if (!isdigit((unsigned char)*p)) goto try_float;
    for (; *p; p++) {
        if (isdigit((unsigned char)*p)) {
            if (n + 1 >= sizeof digits) return -1;
            digits[n++] = *p;
        } else if (*p == '_' && isdigit((unsigned char)p[-1]) && isdigit((unsigned char)p[1])) {
            continue;
        } else {
            goto try_float;
        }
    }
    digits[n] = 0;
    errno = 0;
    *out = strtold(digits, NULL);
    return 0;
try_float:
    for (p = s; *p; p++)
        if (*p == 'x' || *p == 'X' || *p == 'n' || *p == 'N' || *p == 'i' || *p == 'I') return -1;
    {
        char *end;
        long double v = strtold(s, &end);
        if (end == s || *end || !isfinite(v) || v != floorl(v)) return -1;
        *out = v;
        return 0;
    }
}

static int parse_real(const char *s, double *out) {
    for (const char *p = s; *p; p++)
        if (*p == 'x' || *p == 'X' || *p == 'n' || *p == 'N' || *p == 'i' || *p == 'I' || *p == '_') return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static void fmt_num(char *buf, size_t n, double v, int integer) {
    if (integer) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%g", v);
}

/* "an integer ≥ 1", "a number in (0, 1]", … */
static void describe_range(const KeyDef *k, char *buf, size_t n) {
    char lo[32], hi[32];
    int integer = k->type == T_INT || k->type == T_LONG;
    fmt_num(lo, sizeof lo, k->min, integer);
    fmt_num(hi, sizeof hi, k->max, integer);
    const char *what = integer ? "an integer" : "a number";
    /* BIG and INT_MAX read as "no bound"; LMAX does not (a value past it is refused, and
     * "≥ 0" would be a strange reason to refuse 9223372036854775807) */
    int unbounded = k->max >= BIG || ((k->type == T_INT) && k->max >= IMAX);
    if (unbounded)
        snprintf(buf, n, "%s %s %s", what, (k->open & MIN_OPEN) ? ">" : "≥", lo);
    else
        snprintf(buf, n, "%s in %c%s, %s%c", what, (k->open & MIN_OPEN) ? '(' : '[', lo, hi,
                 (k->open & MAX_OPEN) ? ')' : ']');
}

static int in_range(const KeyDef *k, long double v) {
    if ((k->open & MIN_OPEN) ? !(v > k->min) : !(v >= k->min)) return 0;
    if ((k->open & MAX_OPEN) ? !(v < k->max) : !(v <= k->max)) return 0;
    return 1;
}

/* The length of s cut to at most max bytes, not inside a UTF-8 character (so that a
 * message quoting it stays valid text). */
static int utf8_cut(const char *s, size_t max) {
    size_t len = strlen(s);
    if (len <= max) return (int)len;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
    return (int)max;
}

/* Quotes at most 60 characters of a bad value for a message. */
static const char *shown(const char *s, char *buf, size_t n) {
    size_t len = strlen(s);
    if (len + 1 <= n && len <= 60) return s;
    snprintf(buf, n, "%.*s...", utf8_cut(s, 57), s);
    return buf;
}

/* Sets one scalar key from text (pairs: from two texts). err gets "expected …". */
static int set_scalar(Config *cfg, const KeyDef *k, const char *text, char *err, size_t errlen) {
    char *base = (char *)cfg;
    char range[96], sb[80];
    switch (k->type) {
    case T_INT:
    case T_LONG: {
        long double v;
        if (parse_integer(text, &v) || !in_range(k, v)) {
            describe_range(k, range, sizeof range);
            snprintf(err, errlen, "expected %s, got '%s'", range, shown(text, sb, sizeof sb));
            return -1;
        }
        if (k->type == T_INT) *(int *)(base + k->off) = (int)v;
        else *(long *)(base + k->off) = (long)v;
        return 0;
    }
    case T_U64: {
        const char *p = text;
        int ok = isdigit((unsigned char)*p) != 0;
        for (; *p && ok; p++) ok = isdigit((unsigned char)*p);
        errno = 0;
        unsigned long long v = ok ? strtoull(text, NULL, 10) : 0;
        if (!ok || errno == ERANGE) {
            snprintf(err, errlen, "expected an integer in [0, 18446744073709551615], got '%s'", shown(text, sb, sizeof sb));
            return -1;
        }
        *(uint64_t *)(base + k->off) = (uint64_t)v;
        return 0;
    }
    case T_DOUBLE: {
        double v;
        if (parse_real(text, &v) || !in_range(k, v)) {
            describe_range(k, range, sizeof range);
            snprintf(err, errlen, "expected %s, got '%s'", range, shown(text, sb, sizeof sb));
            return -1;
        }
        *(double *)(base + k->off) = v;
        return 0;
    }
    case T_BOOL: {
        int v;
        if (!strcmp(text, "true") || !strcmp(text, "True") || !strcmp(text, "TRUE")) v = 1;
        else if (!strcmp(text, "false") || !strcmp(text, "False") || !strcmp(text, "FALSE")) v = 0;
        else if (k->allowed && !strcmp(text, k->allowed)) v = -1;
        else {
            snprintf(err, errlen, "expected %s, got '%s'", k->allowed ? "true, false or auto" : "true or false",
                     shown(text, sb, sizeof sb));
            return -1;
        }
        *(int *)(base + k->off) = v;
        return 0;
    }
    case T_ENUM: {
        size_t len = strlen(text);
        const char *a = k->allowed;
        while (*a) {
            const char *bar = strchr(a, '|');
            size_t al = bar ? (size_t)(bar - a) : strlen(a);
            if (al == len && memcmp(a, text, len) == 0) {
                copy_str(base + k->off, k->size, text);
                return 0;
            }
            a += al + (bar != NULL);
        }
        char opts[160];
        snprintf(opts, sizeof opts, "%s", k->allowed);
        for (char *q = opts; *q; q++)
            if (*q == '|') *q = ',';
        snprintf(err, errlen, "expected one of {%s}, got '%s'", opts, shown(text, sb, sizeof sb));
        return -1;
    }
    case T_STR: {
        size_t len = strlen(text);
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)text[i] < 0x20) {
                snprintf(err, errlen, "expected a string without control characters");
                return -1;
            }
        if (len + 1 > k->size) {
            snprintf(err, errlen, "expected at most %zu bytes, got %zu", k->size - 1, len);
            return -1;
        }
        copy_str(base + k->off, k->size, text);
        return 0;
    }
    case T_PAIR:
        break;
    }
    CHECK(0, "set_scalar on key %s of type %d", k->key, (int)k->type);
}

static int set_pair(Config *cfg, const KeyDef *k, const char *a, const char *b, char *err, size_t errlen) {
    double v[2];
    const char *t[2] = {a, b};
    char range[96], sb[80];
    for (int i = 0; i < 2; i++)
        if (parse_real(t[i], &v[i]) || !in_range(k, v[i])) {
            describe_range(k, range, sizeof range);
            snprintf(err, errlen, "expected [x, y] with each %s, got '%s' as %s value", range,
                     shown(t[i], sb, sizeof sb), i ? "second" : "first");
            return -1;
        }
    *(double *)((char *)cfg + k->off) = v[0];
    *(double *)((char *)cfg + k->off2) = v[1];
    return 0;
}

/* A pair written as text: "[a, b]" (brackets optional, as in --set rater.clamp=0.1,0.9). */
static int set_pair_text(Config *cfg, const KeyDef *k, const char *text, char *err, size_t errlen) {
    char *buf = xstrdup(text), *parts[3] = {0};   /* whole: a fixed buffer would cut a long one */
    char *s = buf;
    while (isspace((unsigned char)*s)) s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1])) s[--len] = 0;
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s[len - 1] = 0;
        s++;
    }
    int n = 0;
    for (char *tok = s;; n++) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = 0;
        while (isspace((unsigned char)*tok)) tok++;
        size_t tl = strlen(tok);
        while (tl && isspace((unsigned char)tok[tl - 1])) tok[--tl] = 0;
        if (n < 3) parts[n] = tok;
        if (!comma) break;
        tok = comma + 1;
    }
    int rc;
    if (n != 1) {
        char sb[80];
        snprintf(err, errlen, "expected a pair [x, y], got '%s'", shown(text, sb, sizeof sb));
        rc = -1;
    } else {
        rc = set_pair(cfg, k, parts[0], parts[1], err, errlen);
    }
    free(buf);
    return rc;
}

static int set_text(Config *cfg, const KeyDef *k, const char *text, char *err, size_t errlen) {
    return k->type == T_PAIR ? set_pair_text(cfg, k, text, err, errlen) : set_scalar(cfg, k, text, err, errlen);
}

static void note_origin(LoadCtx *ctx, int ki, const char *where) {
    if (!ctx) return;
    snprintf(ctx->orig[ki].where, sizeof ctx->orig[ki].where, "%s", where);
    ctx->orig[ki].seq = ++ctx->seq;
}

/* ---- defaults and derived values ----------------------------------------------------- */

/* The schema's default texts, before derivation (d_ff and seq_len_rater still 0):
 * files and --set are applied over this, then derive() fills in what is left at 0. */
static void raw_defaults(Config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    char err[256];
    for (int i = 0; i < N_KEYS; i++)
        CHECK(set_text(cfg, &schema[i], schema[i].def, err, sizeof err) == 0, "default of %s: %s", schema[i].key, err);
}

static void derive(Config *c) {
    if (c->data.seq_len_rater == 0) c->data.seq_len_rater = c->data.seq_len;
    if (c->lm.shape.d_ff == 0) c->lm.shape.d_ff = 4 * c->lm.shape.d_model;
    if (c->rater.shape.d_ff == 0) c->rater.shape.d_ff = 4 * c->rater.shape.d_model;
    c->lm.shape.ctx = c->data.seq_len;
    c->rater.shape.ctx = c->data.seq_len_rater;
}

void config_defaults(Config *cfg) {
    raw_defaults(cfg);
    derive(cfg);
}

/* ---- validation ------------------------------------------------------------------- */

/* Reports a cross-field problem at the most recently set of the keys involved. */
static int cross_fail(const LoadCtx *ctx, const char *key_a, const char *key_b, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cross_fail(const LoadCtx *ctx, const char *key_a, const char *key_b, const char *fmt, ...) {
    int a = find_key(key_a), b = key_b ? find_key(key_b) : -1;
    CHECK(a >= 0, "unknown key %s", key_a);
    int k = a;
    if (b >= 0 && ctx->orig[b].seq > ctx->orig[a].seq) k = b;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *where = ctx->orig[k].where[0] ? ctx->orig[k].where : "defaults";
    return dr_seterr("%s: %s: %s", where, schema[k].key, msg);
}

static int derive_and_validate(Config *c, const LoadCtx *ctx) {
    derive(c);

    if (c->lm.shape.d_model % c->lm.shape.n_head)
        return cross_fail(ctx, "lm.n_head", "lm.d_model", "d_model %d is not divisible by n_head %d",
                          c->lm.shape.d_model, c->lm.shape.n_head);
    if (c->rater.shape.d_model % c->rater.shape.n_head)
        return cross_fail(ctx, "rater.n_head", "rater.d_model", "d_model %d is not divisible by n_head %d",
                          c->rater.shape.d_model, c->rater.shape.n_head);
    if (c->rater.clamp_min > c->rater.clamp_max)
        return cross_fail(ctx, "rater.clamp", NULL, "w_min %g is greater than w_max %g", c->rater.clamp_min,
                          c->rater.clamp_max);
    if (c->rater.clamp_max <= 0 && strcmp(c->rater.normalize, "sigmoid") == 0)
        return cross_fail(ctx, "rater.clamp", NULL, "w_max %g makes every sigmoid weight 0: nothing would train",
                          c->rater.clamp_max);
    if (c->data.seq_len_rater > c->data.seq_len + 1)
        return cross_fail(ctx, "data.seq_len_rater", "data.seq_len",
                          "the rater sees at most the seq_len + 1 = %d tokens of a window, not %d",
                          c->data.seq_len + 1, c->data.seq_len_rater);
    if (c->data.min_tokens > c->data.seq_len + 1)
        return cross_fail(ctx, "data.min_tokens", "data.seq_len",
                          "%d is more than a window holds (seq_len + 1 = %d)", c->data.min_tokens,
                          c->data.seq_len + 1);
    if (c->meta.backprop_steps > c->meta.T)
        return cross_fail(ctx, "meta.backprop_steps", "meta.T", "backprop_steps = %d is more than the T = %d inner steps",
                          c->meta.backprop_steps, c->meta.T);
    if (c->meta.keep_activations > c->meta.T)
        return cross_fail(ctx, "meta.keep_activations", "meta.T", "keep_activations = %d is more than the T = %d inner steps",
                          c->meta.keep_activations, c->meta.T);
    if (c->meta.keep_activations > 0 && (c->lm.shape.checkpointing || c->lm.shape.head_chunk > 0))
        return cross_fail(ctx, "meta.keep_activations", c->lm.shape.checkpointing ? "lm.checkpointing" : "lm.head_chunk",
                          "%d: kept activations are whole passes, which lm.checkpointing and "
                          "lm.head_chunk exist to avoid; use 0 (or -1, auto)", c->meta.keep_activations);
    if (c->meta.checkpoint_every > c->meta.T)
        return cross_fail(ctx, "meta.checkpoint_every", "meta.T", "checkpoint_every = %d is more than the T = %d inner steps",
                          c->meta.checkpoint_every, c->meta.T);
    if (c->train.steps > 0 && c->train.tokens > 0)
        return cross_fail(ctx, "train.tokens", "train.steps", "train.steps (%ld) and train.tokens (%ld) are both set; set one",
                          c->train.steps, c->train.tokens);
    /* precision bf16 with device cpu is refused by backend_set_precision, once the tool's
     * --device has picked the backend (a config saying cpu may run with --device cuda) */
    if (c->lm.vocab_size == 1)
        return cross_fail(ctx, "lm.vocab_size", NULL, "a vocabulary needs at least 2 tokens (or 0 = from the shards)");
    return 0;
}

/* ---- YAML ----------------------------------------------------------------------- */

static const char *node_text(yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static int node_is_null(yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *s = node_text(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* The line of a YAML error. A reader error (invalid UTF-8, a control character) leaves
 * problem_mark at 0 and gives the byte offset instead: its line is counted in the file. */
static size_t yaml_error_line(const yaml_parser_t *parser, FILE *f) {
    if (parser->error != YAML_READER_ERROR) return parser->problem_mark.line + 1;
    size_t line = 1;
    rewind(f);
    for (size_t i = 0; i < parser->problem_offset; i++) {
        int c = getc(f);
        if (c == EOF) break;
        line += c == '\n';
    }
    return line;
}

/* A config nests three levels (sections, keys, a pair's list). libyaml's scanner spends
 * time proportional to the flow nesting depth on every token, so a file of d nested
 * '[' or '{' takes d^2 (d = 100000: minutes) before yaml_parser_load returns: the
 * events are read first, and a file nested deeper than this is refused at once. A
 * syntax error is left to yaml_parser_load, which reports it. */
#define CONFIG_MAX_DEPTH 32

static int yaml_depth_ok(const char *path, FILE *f) {
    yaml_parser_t parser;
    CHECK(yaml_parser_initialize(&parser), "yaml_parser_initialize failed");
    yaml_parser_set_input_file(&parser, f);
    int depth = 0, rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) break;
        yaml_event_type_t type = ev.type;
        size_t line = ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT) break;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > CONFIG_MAX_DEPTH) {
                rc = dr_seterr("%s:%zu: nested more than %d levels deep: not a config file (sections of keys)",
                               path, line, CONFIG_MAX_DEPTH);
                break;
            }
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
    }
    yaml_parser_delete(&parser);
    rewind(f);
    return rc;
}

static int load_yaml(Config *cfg, const char *path, LoadCtx *ctx) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return dr_seterr("%s: is a directory, not a config file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return dr_seterr("%s: cannot open: %s", path, strerror(errno));
    struct stat fst;   /* the check reads the file twice: a regular file only (not a FIFO) */
    if (fstat(fileno(f), &fst) == 0 && S_ISREG(fst.st_mode) && yaml_depth_ok(path, f) != 0) {
        fclose(f);
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    CHECK(yaml_parser_initialize(&parser), "yaml_parser_initialize failed");
    yaml_parser_set_input_file(&parser, f);
    int rc = -1, have_doc = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        dr_seterr("%s:%zu: YAML syntax error: %s%s%s", path, yaml_error_line(&parser, f),
                  parser.problem ? parser.problem : "malformed", parser.context ? " " : "",
                  parser.context ? parser.context : "");
        goto out;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || node_is_null(root)) {   /* empty file: defaults */
        rc = 0;
        goto check_more;
    }
    if (root->type != YAML_MAPPING_NODE) {
        dr_seterr("%s:%zu: expected a mapping of sections (experiment:, data:, lm:, …)", path,
                  root->start_mark.line + 1);
        goto out;
    }
    int key_line[N_KEYS] = {0};
    int section_line[N_SECTIONS] = {0};
    for (yaml_node_pair_t *sp = root->data.mapping.pairs.start; sp < root->data.mapping.pairs.top; sp++) {
        yaml_node_t *sk = yaml_document_get_node(&doc, sp->key), *sv = yaml_document_get_node(&doc, sp->value);
        size_t sline = sk->start_mark.line + 1;
        if (sk->type != YAML_SCALAR_NODE) {
            dr_seterr("%s:%zu: expected a section name", path, sline);
            goto out;
        }
        if (strlen(node_text(sk)) != sk->data.scalar.length) {
            dr_seterr("%s:%zu: a section name contains a NUL character", path, sline);
            goto out;
        }
        const char *sname = node_text(sk);
        int si = find_section(sname, sk->data.scalar.length);
        if (si < 0 && find_key(sname) >= 0) {
            const char *dot = strchr(sname, '.');
            dr_seterr("%s:%zu: '%s' must be written under its section (%.*s:, then   %s: …)", path, sline, sname,
                      (int)(dot - sname), sname, dot + 1);
            goto out;
        }
        if (si < 0) {
            const char *s = suggest(sname, 1);
            dr_seterr("%s:%zu: unknown section '%s'%s%s%s (sections: experiment, data, lm, rater, meta, train, deploy)",
                      path, sline, sname, s ? " (did you mean " : "", s ? s : "", s ? "?)" : "");
            goto out;
        }
        if (section_line[si]) {
            dr_seterr("%s:%zu: section '%s' appears twice (first at line %d)", path, sline, sname, section_line[si]);
            goto out;
        }
        section_line[si] = (int)sline;
        if (node_is_null(sv)) continue;   /* "lm:" with nothing under it */
        if (sv->type != YAML_MAPPING_NODE) {
            dr_seterr("%s:%zu: section '%s' must be a mapping of keys to values", path, sv->start_mark.line + 1, sname);
            goto out;
        }
        for (yaml_node_pair_t *kp = sv->data.mapping.pairs.start; kp < sv->data.mapping.pairs.top; kp++) {
            yaml_node_t *kn = yaml_document_get_node(&doc, kp->key), *vn = yaml_document_get_node(&doc, kp->value);
            size_t line = kn->start_mark.line + 1;
            if (kn->type != YAML_SCALAR_NODE) {
                dr_seterr("%s:%zu: expected a key name in section '%s'", path, line, sname);
                goto out;
            }
            if (strlen(node_text(kn)) != kn->data.scalar.length) {   /* "keep\0x" is not keep */
                dr_seterr("%s:%zu: a key name in section '%s' contains a NUL character", path, line, sname);
                goto out;
            }
            char full[192];
            snprintf(full, sizeof full, "%s.%s", sname, node_text(kn));
            int ki = find_key(full);
            if (ki < 0) {
                const char *s = suggest(full, 0);
                dr_seterr("%s:%zu: unknown key '%s'%s%s%s", path, line, full, s ? " (did you mean " : "", s ? s : "",
                          s ? "?)" : "");
                goto out;
            }
            if (key_line[ki]) {
                dr_seterr("%s:%zu: %s: set twice (first at line %d)", path, line, full, key_line[ki]);
                goto out;
            }
            key_line[ki] = (int)line;
            const KeyDef *k = &schema[ki];
            char err[384];
            size_t vline = vn->start_mark.line + 1;
            int r;
            if (k->type == T_PAIR) {
                yaml_node_t *a = NULL, *b = NULL;
                int n = 0;
                if (vn->type == YAML_SEQUENCE_NODE) {
                    n = (int)(vn->data.sequence.items.top - vn->data.sequence.items.start);
                    if (n == 2) {
                        a = yaml_document_get_node(&doc, vn->data.sequence.items.start[0]);
                        b = yaml_document_get_node(&doc, vn->data.sequence.items.start[1]);
                    }
                }
                if (!a || !b || a->type != YAML_SCALAR_NODE || b->type != YAML_SCALAR_NODE) {
                    dr_seterr("%s:%zu: %s: expected a pair [x, y]%s", path, vline, full,
                              vn->type == YAML_SEQUENCE_NODE ? "" : ", got a single value");
                    goto out;
                }
                r = set_pair(cfg, k, node_text(a), node_text(b), err, sizeof err);
            } else {
                if (vn->type != YAML_SCALAR_NODE) {
                    dr_seterr("%s:%zu: %s: expected a single value, got a %s", path, vline, full,
                              vn->type == YAML_MAPPING_NODE ? "mapping" : "list");
                    goto out;
                }
                if (strlen(node_text(vn)) != vn->data.scalar.length) {
                    dr_seterr("%s:%zu: %s: value contains a NUL character", path, vline, full);
                    goto out;
                }
                r = set_scalar(cfg, k, node_text(vn), err, sizeof err);
            }
            if (r) {
                dr_seterr("%s:%zu: %s: %s", path, vline, full, err);
                goto out;
            }
            char where[160];
            snprintf(where, sizeof where, "%s:%zu", path, vline);
            note_origin(ctx, ki, where);
        }
    }
    rc = 0;
check_more:
    /* Only one document: a second "---" document would be silently ignored otherwise. */
    yaml_document_delete(&doc);
    have_doc = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        dr_seterr("%s:%zu: YAML syntax error: %s", path, yaml_error_line(&parser, f),
                  parser.problem ? parser.problem : "malformed");
        rc = -1;
        goto out;
    }
    have_doc = 1;
    if (yaml_document_get_root_node(&doc)) {
        dr_seterr("%s: expected a single YAML document, found a second one", path);
        rc = -1;
    }
out:
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* ---- --set -------------------------------------------------------------------------- */

static int apply_set(Config *cfg, const char *arg, LoadCtx *ctx) {
    const char *eq = strchr(arg, '=');
    char where[160];
    const int cut = utf8_cut(arg, sizeof where - 10);
    snprintf(where, sizeof where, "--set %.*s%s", cut, arg, arg[cut] ? "..." : "");
    if (!eq || eq == arg) return dr_seterr("%s: expected section.key=value", where);
    char key[128];
    size_t kl = (size_t)(eq - arg);
    while (kl && isspace((unsigned char)arg[kl - 1])) kl--;
    size_t k0 = 0;
    while (k0 < kl && isspace((unsigned char)arg[k0])) k0++;
    if (kl - k0 >= sizeof key) return dr_seterr("%s: key too long", where);
    memcpy(key, arg + k0, kl - k0);
    key[kl - k0] = 0;
    int ki = find_key(key);
    if (ki < 0) {
        const char *dot = strchr(key, '.');
        if (!dot) return dr_seterr("%s: expected section.key=value", where);
        const char *s = suggest(key, 0);
        return dr_seterr("%s: unknown key '%s'%s%s%s", where, key, s ? " (did you mean " : "", s ? s : "",
                         s ? "?)" : "");
    }
    const char *v = eq + 1;
    while (isspace((unsigned char)*v)) v++;
    char *val = xstrdup(v);   /* whole: a fixed buffer would cut a long value into another one */
    size_t vl = strlen(val);
    while (vl && isspace((unsigned char)val[vl - 1])) val[--vl] = 0;
    /* YAML-style quotes around a string value are removed. */
    if (vl >= 2 && ((val[0] == '"' && val[vl - 1] == '"') || (val[0] == '\'' && val[vl - 1] == '\''))) {
        memmove(val, val + 1, vl - 2);
        val[vl - 2] = 0;
    }
    char err[384];
    int rc = set_text(cfg, &schema[ki], val, err, sizeof err);
    free(val);
    if (rc) return dr_seterr("%s: %s: %s", where, key, err);
    note_origin(ctx, ki, where);
    return 0;
}

/* c (defaults, or a file's or a checkpoint's config) with the --set overrides, validated
 * into *cfg; path: a YAML file read first (its keys' lines in ctx), or NULL */
static int load_over(Config *cfg, Config c, const char *path, int n_sets, char **sets) {
    LoadCtx *ctx = xcalloc(1, sizeof *ctx);
    int rc = 0;
    if (path && load_yaml(&c, path, ctx)) rc = -1;
    for (int i = 0; rc == 0 && i < n_sets; i++)
        if (apply_set(&c, sets[i], ctx)) rc = -1;
    if (rc == 0) rc = derive_and_validate(&c, ctx);
    free(ctx);
    if (rc == 0) *cfg = c;
    return rc;
}

int config_load(Config *cfg, const char *path, int n_sets, char **sets) {
    Config c;
    raw_defaults(&c);
    return load_over(cfg, c, path, n_sets, sets);
}

int config_apply_sets(Config *cfg, int n_sets, char **sets) { return load_over(cfg, *cfg, NULL, n_sets, sets); }

/* ---- JSON in (checkpoint metadata) --------------------------------------------------- */

int config_load_json(Config *cfg, const char *json, size_t len, const char *origin) {
    JsonDoc *doc = json_parse(json, len, 0);
    if (!doc) return dr_seterr("%s: config is not valid JSON: %s", origin, dr_lasterr());
    LoadCtx *ctx = xcalloc(1, sizeof *ctx);
    Config c;
    raw_defaults(&c);
    int rc = -1;
    const JsonValue *root = json_root(doc);
    if (root->type != JSON_OBJECT) {
        dr_seterr("%s: config: expected a JSON object of sections", origin);
        goto out;
    }
    for (size_t s = 0; s < root->len; s++) {
        const JsonValue *sec = &root->items[s];
        const char *sname = root->keys[s];
        if (find_section(sname, root->key_lens[s]) < 0) {
            dr_seterr("%s: config: unknown section '%s'", origin, sname);
            goto out;
        }
        if (sec->type != JSON_OBJECT) {
            dr_seterr("%s: config: section '%s' must be an object", origin, sname);
            goto out;
        }
        for (size_t i = 0; i < sec->len; i++) {
            char full[192], err[384], text[2][64];
            snprintf(full, sizeof full, "%s.%s", sname, sec->keys[i]);
            int ki = find_key(full);
            if (ki < 0) {
                dr_seterr("%s: config: unknown key '%s'", origin, full);
                goto out;
            }
            const JsonValue *v = &sec->items[i];
            const KeyDef *k = &schema[ki];
            int r;
            /* Every value goes through the text path, as if read from YAML. */
            const JsonValue *vals[2] = {v, NULL};
            int nv = 1;
            if (k->type == T_PAIR) {
                if (v->type != JSON_ARRAY || v->len != 2) {
                    dr_seterr("%s: config: %s: expected [x, y]", origin, full);
                    goto out;
                }
                vals[0] = &v->items[0];
                vals[1] = &v->items[1];
                nv = 2;
            }
            const char *t[2];
            for (int j = 0; j < nv; j++) {
                const JsonValue *x = vals[j];
                if (x->type == JSON_STRING) t[j] = x->str;
                else if (x->type == JSON_TRUE) t[j] = "true";
                else if (x->type == JSON_FALSE) t[j] = "false";
                else if (x->type == JSON_NUMBER) {
                    snprintf(text[j], sizeof text[j], "%.17g", x->number);
                    t[j] = text[j];
                } else {
                    dr_seterr("%s: config: %s: unexpected JSON value", origin, full);
                    goto out;
                }
            }
            r = nv == 2 ? set_pair(&c, k, t[0], t[1], err, sizeof err) : set_scalar(&c, k, t[0], err, sizeof err);
            if (r) {
                dr_seterr("%s: config: %s: %s", origin, full, err);
                goto out;
            }
            note_origin(ctx, ki, origin);
        }
    }
    rc = derive_and_validate(&c, ctx);
out:
    json_free(doc);
    free(ctx);
    if (rc == 0) *cfg = c;
    return rc;
}

/* ---- writers -------------------------------------------------------------------- */

/* Shortest "%.Ng" that reads back as exactly v. */
static void fmt_double(char *buf, size_t n, double v) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* Value of key k as YAML/JSON text (pairs: "[a, b]"); strings are not quoted here. */
static void value_text(const Config *cfg, const KeyDef *k, char *buf, size_t n) {
    const char *base = (const char *)cfg;
    char a[40], b[40];
    switch (k->type) {
    case T_INT: snprintf(buf, n, "%d", *(const int *)(base + k->off)); break;
    case T_LONG: snprintf(buf, n, "%ld", *(const long *)(base + k->off)); break;
    case T_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)(base + k->off)); break;
    case T_DOUBLE: fmt_double(buf, n, *(const double *)(base + k->off)); break;
    case T_BOOL: {
        const int v = *(const int *)(base + k->off);
        snprintf(buf, n, "%s", v < 0 ? "auto" : v ? "true" : "false");
        break;
    }
    case T_ENUM:
    case T_STR: snprintf(buf, n, "%s", base + k->off); break;
    case T_PAIR:
        fmt_double(a, sizeof a, *(const double *)(base + k->off));
        fmt_double(b, sizeof b, *(const double *)(base + k->off2));
        snprintf(buf, n, "[%s, %s]", a, b);
        break;
    }
}

const char *config_diff(const Config *a, const Config *b, const char *const *skip, char *va,
                        char *vb, size_t n) {
    for (int i = 0; i < N_KEYS; i++) {
        const KeyDef *k = &schema[i];
        int skipped = 0;
        for (const char *const *s = skip; s && *s && !skipped; s++) {
            size_t len = strlen(*s);
            skipped = len && (*s)[len - 1] == '.' ? strncmp(k->key, *s, len) == 0 : strcmp(k->key, *s) == 0;
        }
        if (skipped) continue;
        value_text(a, k, va, n);
        value_text(b, k, vb, n);
        if (strcmp(va, vb) != 0) return k->key;
    }
    return NULL;
}

void config_write_yaml(const Config *cfg, FILE *f) {
    const char *prev = "";
    size_t prev_len = 0;
    for (int i = 0; i < N_KEYS; i++) {
        const KeyDef *k = &schema[i];
        const char *dot = strchr(k->key, '.');
        size_t sl = (size_t)(dot - k->key);
        if (sl != prev_len || memcmp(prev, k->key, sl) != 0) {
            fprintf(f, "%s%.*s:\n", i ? "\n" : "", (int)sl, k->key);
            prev = k->key;
            prev_len = sl;
        }
        char val[256], line[320];
        if (k->type == T_STR) {
            /* Double-quoted YAML is a superset of JSON strings. */
            char *q = NULL;
            size_t ql = 0;
            FILE *m = open_memstream(&q, &ql);
            const char *s = (const char *)cfg + k->off;
            json_write_string(m, s, strlen(s));
            fclose(m);
            snprintf(val, sizeof val, "%s", q);
            free(q);
        } else {
            value_text(cfg, k, val, sizeof val);
        }
        int w = snprintf(line, sizeof line, "  %s: %s", dot + 1, val);
        fprintf(f, "%s%*s# %s\n", line, w < 40 ? 40 - w : 1, "", k->doc);
    }
}

char *config_to_json(const Config *cfg) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    CHECK(f, "open_memstream failed");
    fputc('{', f);
    const char *prev = "";
    size_t prev_len = 0;
    for (int i = 0; i < N_KEYS; i++) {
        const KeyDef *k = &schema[i];
        const char *dot = strchr(k->key, '.');
        size_t sl = (size_t)(dot - k->key);
        int new_section = sl != prev_len || memcmp(prev, k->key, sl) != 0;
        if (new_section) {
            if (i) fputs("},", f);
            fprintf(f, "\"%.*s\":{", (int)sl, k->key);
            prev = k->key;
            prev_len = sl;
        } else {
            fputc(',', f);
        }
        fprintf(f, "\"%s\":", dot + 1);
        char val[256];
        value_text(cfg, k, val, sizeof val);
        if (k->type == T_ENUM || k->type == T_STR ||
            (k->type == T_BOOL && *(const int *)((const char *)cfg + k->off) < 0)) {   /* "auto" */
            json_write_string(f, val, strlen(val));
        } else if (k->type == T_U64 && *(const uint64_t *)((const char *)cfg + k->off) > (1ull << 53)) {
            fprintf(f, "\"%s\"", val);   /* beyond a double's exact integers: keep it exact */
        } else if (k->type == T_PAIR) {
            /* "[a, b]" → "[a,b]" */
            for (char *p = val; *p; p++)
                if (*p != ' ') fputc(*p, f);
        } else {
            fputs(val, f);
        }
    }
    fputs("}}", f);
    CHECK(fclose(f) == 0, "writing config JSON failed");
    return out;
}

void config_write_schema(FILE *f) {
    for (int i = 0; i < N_KEYS; i++) {
        const KeyDef *k = &schema[i];
        char range[128] = "";
        switch (k->type) {
        case T_INT:
        case T_LONG:
        case T_DOUBLE: describe_range(k, range, sizeof range); break;
        case T_PAIR: {
            char each[80];
            describe_range(k, each, sizeof each);
            snprintf(range, sizeof range, "[x, y], each %s", each);
            break;
        }
        case T_U64: snprintf(range, sizeof range, "an integer ≥ 0"); break;
        case T_BOOL: snprintf(range, sizeof range, k->allowed ? "true, false or auto" : "true or false"); break;
        case T_ENUM: snprintf(range, sizeof range, "one of %s", k->allowed); break;
        case T_STR: snprintf(range, sizeof range, "a string"); break;
        }
        fprintf(f, "  %-26s %s (default %s): %s\n", k->key, range, k->def, k->doc);
    }
}
