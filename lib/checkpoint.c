/* checkpoint.c — LM / rater / optimizer-state checkpoints as safetensors (DESIGN §2.5).
 * The tensor tables of lm.c and rater.c decide the names, shapes and order; this file
 * only maps them to and from files, and checks a loaded file against its own config so
 * a wrong or corrupted checkpoint is refused with a message, never half-loaded.
 */
#include "checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "data.h"
#include "json.h"
#include "safetensors.h"

/* ---- config <-> JSON (GPT-2 config keys, so GPT2Config(**json) works) ---------------- */

static char *config_json(const LMConfig *c, const char *model_type) {
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
        "{\"model_type\":\"%s\",\"architectures\":[\"%s\"],\"vocab_size\":%d,"
        "\"n_positions\":%d,\"n_ctx\":%d,\"n_embd\":%d,\"n_layer\":%d,\"n_head\":%d,"
        "\"n_inner\":%d,\"activation_function\":\"gelu_new\",\"layer_norm_epsilon\":1e-05,"
        "\"initializer_range\":%.17g,\"tie_word_embeddings\":true,"
        "\"resid_pdrop\":0.0,\"embd_pdrop\":0.0,\"attn_pdrop\":0.0}",
        model_type, strcmp(model_type, "gpt2") == 0 ? "GPT2LMHeadModel" : "DataRater",
        c->vocab, c->ctx, c->ctx, c->d_model, c->n_layer, c->n_head, c->d_ff, c->init_std);
    CHECK(n > 0 && (size_t)n < sizeof buf, "config JSON too long");
    return xstrdup(buf);
}

static int json_int(const JsonValue *obj, const char *key, int *out, const char *where) {
    const JsonValue *v = json_get(obj, key);
    /* range first: casting a double beyond int (1e300) to int is undefined */
    if (!v || v->type != JSON_NUMBER || !(v->number >= INT_MIN && v->number <= INT_MAX) ||
        v->number != (double)(int)v->number)
        return dr_seterr("%s has no integer \"%s\"", where, key);
    *out = (int)v->number;
    return 0;
}

/* The model the JSON describes must be the one lm.c computes: a config.json from
 * elsewhere can name another activation, LN epsilon or attention scaling. */
static int config_semantics(const JsonValue *root, const char *where) {
    const JsonValue *act = json_get(root, "activation_function");
    if (act && (act->type != JSON_STRING || strcmp(act->str, "gelu_new") != 0))
        return dr_seterr("%s: activation_function %s: only \"gelu_new\" (GELU, tanh form) is "
                         "supported", where, act->type == JSON_STRING ? act->str : "(not a string)");
    const JsonValue *eps = json_get(root, "layer_norm_epsilon");
    if (eps && (eps->type != JSON_NUMBER || fabs(eps->number - 1e-5) > 1e-12))
        return dr_seterr("%s: layer_norm_epsilon must be 1e-05", where);
    const JsonValue *tie = json_get(root, "tie_word_embeddings");
    if (tie && tie->type == JSON_FALSE)
        return dr_seterr("%s: tie_word_embeddings is false: only a head tied to wte is supported", where);
    static const char *const off[] = { "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn" };
    for (int i = 0; i < 2; i++) {
        const JsonValue *v = json_get(root, off[i]);
        if (v && v->type == JSON_TRUE) return dr_seterr("%s: %s is not supported", where, off[i]);
    }
    const JsonValue *scale = json_get(root, "scale_attn_weights");
    if (scale && scale->type == JSON_FALSE)
        return dr_seterr("%s: scale_attn_weights false is not supported (scale is 1/sqrt(d_head))", where);
    return 0;
}

/* Parses a GPT-2-style config JSON (the "config" metadata of a checkpoint made by
 * model_save, or a Hugging Face config.json); where names the JSON in messages, file
 * the file that holds it. */
static int config_parse_text(const char *text, const char *where, const char *file,
                             const char *model_type, LMConfig *c) {
    JsonDoc *doc = json_parse(text, strlen(text), 0);
    if (!doc) return dr_seterr("%s is not JSON (%s)", where, dr_lasterr());
    const JsonValue *root = json_root(doc);
    int rc = -1;
    memset(c, 0, sizeof *c);
    const JsonValue *mt = json_get(root, "model_type");
    if (root->type != JSON_OBJECT) { dr_seterr("%s is not an object", where); goto done; }
    if (!mt || mt->type != JSON_STRING || strcmp(mt->str, model_type) != 0) {
        dr_seterr("%s: model_type is %s%s%s, expected \"%s\"", file,
                  mt && mt->type == JSON_STRING ? "\"" : "",
                  mt && mt->type == JSON_STRING ? mt->str : "missing",
                  mt && mt->type == JSON_STRING ? "\"" : "", model_type);
        goto done;
    }
    if (json_int(root, "vocab_size", &c->vocab, where) || json_int(root, "n_positions", &c->ctx, where) ||
        json_int(root, "n_embd", &c->d_model, where) || json_int(root, "n_layer", &c->n_layer, where) ||
        json_int(root, "n_head", &c->n_head, where))
        goto done;
    const JsonValue *inner = json_get(root, "n_inner");
    if (!inner || inner->type == JSON_NULL) c->d_ff = 4 * c->d_model;   /* GPT-2's default */
    else if (json_int(root, "n_inner", &c->d_ff, where)) goto done;
    const JsonValue *std = json_get(root, "initializer_range");
    c->init_std = std && std->type == JSON_NUMBER ? std->number : 0.02;
    if (config_semantics(root, where)) goto done;
    if (lm_config_check(c)) { dr_seterr("%s: %s", where, dr_lasterr()); goto done; }
    rc = 0;
done:
    json_free(doc);
    return rc;
}

/* The config of a checkpoint: its "config" metadata, or for a GPT-2 LM without one (a
 * Hugging Face file) the config.json in its directory. */
static int config_parse(const SafeTensors *st, const char *path, const char *model_type,
                        LMConfig *c) {
    char where[1200];
    const char *text = st_metadata(st, "config");
    if (text) {
        snprintf(where, sizeof where, "%s: config in __metadata__", path);
        return config_parse_text(text, where, path, model_type, c);
    }
    if (strcmp(model_type, "gpt2") != 0)
        return dr_seterr("%s: no \"config\" in the safetensors __metadata__", path);
    const char *slash = strrchr(path, '/');
    snprintf(where, sizeof where, "%.*sconfig.json", slash ? (int)(slash - path + 1) : 0, path);
    struct stat sb;
    if (stat(where, &sb) != 0)
        return dr_seterr("%s: no \"config\" in the safetensors __metadata__ and no readable "
                         "%s beside it (a Hugging Face GPT-2 directory has one)", path, where);
    /* a Hugging Face config.json is about 1 KB: 16 MiB is plenty, and /dev/zero or a
     * sparse file in its place is refused without filling the memory */
    size_t len;
    char *json = dr_read_file(where, (size_t)16 << 20, "a config.json", &len);
    if (!json) {
        char why[1024];
        snprintf(why, sizeof why, "%s", dr_lasterr());
        return dr_seterr("%s: no \"config\" in the safetensors __metadata__, and %s", path, why);
    }
    int rc = config_parse_text(json, where, where, model_type, c);
    free(json);
    return rc;
}

/* ---- shared save / load over a tensor table --------------------------------------- */

static int model_save(const char *path, const LMConfig *cfg, const char *model_type,
                      const ParamInfo *table, int n, const real *params, const char *metadata_json,
                      const TokenizerTag *tok) {
    StWriter *w = st_writer_new();
    for (int i = 0; i < n; i++)
        st_writer_add_real(w, table[i].name, table[i].ndim, table[i].shape, params + table[i].offset);
    char *cj = config_json(cfg, model_type);
    st_writer_metadata(w, "format", "pt");
    st_writer_metadata(w, "config", cj);
    if (metadata_json) st_writer_metadata(w, "datarater", metadata_json);
    if (tok) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, tok->fingerprint);
        st_writer_metadata(w, "tokenizer", tok->spec ? tok->spec : "");
        st_writer_metadata(w, "tokenizer_fingerprint", hex);
    }
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    free(cj);
    return rc;
}

TokenizerTag data_tokenizer_tag(const DataLoader *d) {
    return (TokenizerTag){ data_fingerprint(d), data_tokenizer_spec(d) };
}

int checkpoint_run_config(const char *path, Config *out) {
    SafeTensors *st = st_open(path);
    const char *meta = st ? st_metadata(st, "datarater") : NULL;
    int found = 0;   /* 1: read; -1: there but not a config (dr_seterr) */
    if (meta) {
        const char *cj = meta;
        size_t len = strlen(meta);
        const char *inner = strstr(meta, "\"config\":");   /* an LM's {"step", "tokens", "config"} */
        if (inner && strncmp(meta, "{\"step\"", 7) == 0) {
            cj = inner + strlen("\"config\":");
            len = strlen(cj);
            if (len > 0 && cj[len - 1] == '}') len--;   /* the enclosing object's brace */
        }
        found = config_load_json(out, cj, len, path) == 0 ? 1 : -1;
    }
    if (st) st_close(st);
    return found;
}

int checkpoint_check_tokenizer(const char *path, const char *option, const TokenizerTag *data,
                               const char *shard_path) {
    char who[1100];
    snprintf(who, sizeof who, "%s%s%s", option ? option : "", option ? " " : "", path);
    SafeTensors *st = st_open(path);
    if (!st) return option ? dr_seterr("%s: %s", option, dr_lasterr()) : -1;
    const char *hex = st_metadata(st, "tokenizer_fingerprint"), *spec = st_metadata(st, "tokenizer");
    int rc = 0;
    if (hex) {
        char *end;
        errno = 0;
        unsigned long long fp = strtoull(hex, &end, 16);
        if (strlen(hex) != 16 || *end || errno)
            rc = dr_seterr("%s: bad \"tokenizer_fingerprint\" in __metadata__: '%s' (16 hex digits "
                           "expected)", who, hex);
        else if ((uint64_t)fp != data->fingerprint)
            rc = dr_seterr("%s was trained on shards of another tokenizer (\"%s\", fingerprint %s) "
                           "than %s (\"%s\", fingerprint %016" PRIx64 "): its token ids would "
                           "mean other text", who, spec ? spec : "?", hex, shard_path,
                           data->spec ? data->spec : "?", data->fingerprint);
    }
    st_close(st);
    return rc;
}

static const char *dtype_name(StDtype d) {
    static const char *names[] = { "F32", "F64", "F16", "BF16", "I64", "I32", "U8", "U64" };
    return (unsigned)d < sizeof names / sizeof *names ? names[d] : "?";
}

/* Checks one tensor of the file against its table row: present, floating point (F32,
 * F64, or F16/BF16 from elsewhere, widened on load), its shape. */
static int check_tensor(const SafeTensors *st, const char *path, const char *name,
                        const ParamInfo *p) {
    const StTensor *t = st_find(st, name);
    if (!t) return dr_seterr("%s: missing tensor %s", path, name);
    if (t->dtype != ST_F32 && t->dtype != ST_F64 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return dr_seterr("%s: tensor %s has dtype %s, expected F32 or F64 (or F16, BF16)", path, name,
                         dtype_name(t->dtype));
    int same = t->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
    if (!same) {
        char got[128] = "", want[128] = "";
        for (int d = 0; d < t->ndim && d < 8; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%" PRId64, d ? "," : "", t->shape[d]);
        for (int d = 0; d < p->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%" PRId64, d ? "," : "", p->shape[d]);
        return dr_seterr("%s: tensor %s has shape [%s], the config says [%s]", path, name, got, want);
    }
    return 0;
}

/* check_tensor, then reads the tensor into dst (a NaN or an infinity is refused there). */
static int load_tensor(const SafeTensors *st, const char *path, const char *name,
                       const ParamInfo *p, real *dst) {
    if (check_tensor(st, path, name, p)) return -1;
    if (st_read_real(st, name, dst, p->numel)) return dr_seterr("%s", dr_lasterr());
    return 0;
}

/* Hugging Face GPT-2 files (GPT2LMHeadModel.save_pretrained, or the original gpt2
 * checkpoint without the "transformer." prefix) may hold tensors that are not
 * parameters here: the attention's causal-mask buffers h.{i}.attn.bias and
 * h.{i}.attn.masked_bias, and lm_head.weight, which must equal wte (tied). */
static int hf_extra_tensor(const char *name) {
    if (strcmp(name, "lm_head.weight") == 0) return 1;
    if (strncmp(name, "transformer.", 12) == 0) name += 12;
    int layer, end = 0;
    char tail[16];
    if (sscanf(name, "h.%d.attn.%15[a-z_]%n", &layer, tail, &end) == 2 && name[end] == 0)
        return strcmp(tail, "bias") == 0 || strcmp(tail, "masked_bias") == 0;
    return 0;
}

/* A tied lm_head.weight (if the file has one) must be wte, value for value. */
static int check_tied_head(const SafeTensors *st, const char *path, const ParamInfo *wte,
                           const real *wte_values) {
    if (!st_find(st, "lm_head.weight")) return 0;
    real *head = xmalloc(wte->numel * sizeof(real));
    int rc = load_tensor(st, path, "lm_head.weight", wte, head);
    if (rc == 0 && memcmp(head, wte_values, wte->numel * sizeof(real)) != 0)
        rc = dr_seterr("%s: lm_head.weight differs from wte: only a head tied to the token "
                       "embedding is supported", path);
    free(head);
    return rc;
}

/* Opens path, parses its config, checks every tensor of the table (naming a missing or
 * misshapen one) and refuses tensors the config does not have, then reads them: the
 * buffer is allocated only once the file is known to hold it (a config claiming a huge
 * model is refused by its tensors, not by running out of memory). An LM may also come
 * from Hugging Face: config.json beside it, names with or without "transformer.", and
 * the extra tensors of hf_extra_tensor. */
static int model_load(const char *path, const char *model_type, LMConfig *cfg_out,
                      real **params_out, int rater) {
    *params_out = NULL;
    SafeTensors *st = st_open(path);
    if (!st) return -1;
    LMConfig cfg;
    ParamInfo *table = NULL;
    real *params = NULL;
    int rc = -1;
    if (config_parse(st, path, model_type, &cfg)) goto done;
    int n = rater ? rater_num_tensors(&cfg) : lm_num_tensors(&cfg);
    size_t total = rater ? rater_num_params(&cfg) : lm_num_params(&cfg);
    table = xmalloc((size_t)n * sizeof *table);
    if (rater) rater_param_table(&cfg, table);
    else lm_param_table(&cfg, table);
    /* GPT2Model-style names: "wte.weight", "h.0.ln_1.weight", … */
    const size_t strip = !rater && !st_find(st, "transformer.wte.weight") && st_find(st, "wte.weight")
                             ? strlen("transformer.") : 0;
    for (int i = 0; i < n; i++)
        if (check_tensor(st, path, table[i].name + strip, &table[i])) goto done;
    size_t extra = 0;
    for (size_t i = 0; i < st_count(st); i++) {   /* name a tensor the config does not have */
        const char *name = st_tensor(st, i)->name;
        int known = 0;
        for (int j = 0; j < n && !known; j++) known = strcmp(table[j].name + strip, name) == 0;
        if (!known && !rater && hf_extra_tensor(name)) { extra++; continue; }
        if (!known) { dr_seterr("%s: unexpected tensor %s for this config", path, name); goto done; }
    }
    if (st_count(st) != (size_t)n + extra) {
        dr_seterr("%s: %zu tensors, the config needs %d", path, st_count(st), n);
        goto done;
    }
    params = xmalloc(total * sizeof(real));
    for (int i = 0; i < n; i++)
        if (load_tensor(st, path, table[i].name + strip, &table[i], params + table[i].offset))
            goto done;
    if (!rater && check_tied_head(st, path, &table[0], params + table[0].offset)) goto done;
    *cfg_out = cfg;
    *params_out = params;
    params = NULL;
    rc = 0;
done:
    free(params);
    free(table);
    st_close(st);
    return rc;
}

/* ---- LM and rater ------------------------------------------------------------------ */

int lm_save(const char *path, const LMConfig *cfg, const real *params, const char *metadata_json,
            const TokenizerTag *tok) {
    int n = lm_num_tensors(cfg);
    ParamInfo *table = xmalloc((size_t)n * sizeof *table);
    lm_param_table(cfg, table);
    int rc = model_save(path, cfg, "gpt2", table, n, params, metadata_json, tok);
    free(table);
    return rc;
}

int lm_load(const char *path, LMConfig *cfg_out, real **params_out) {
    return model_load(path, "gpt2", cfg_out, params_out, 0);
}

int rater_save(const char *path, const RaterConfig *cfg, const real *phi, const char *metadata_json,
               const TokenizerTag *tok) {
    int n = rater_num_tensors(cfg);
    ParamInfo *table = xmalloc((size_t)n * sizeof *table);
    rater_param_table(cfg, table);
    int rc = model_save(path, cfg, "datarater", table, n, phi, metadata_json, tok);
    free(table);
    return rc;
}

int rater_load(const char *path, RaterConfig *cfg_out, real **phi_out) {
    return model_load(path, "datarater", cfg_out, phi_out, 1);
}

/* ---- optimizer state --------------------------------------------------------------- */

int optim_state_save(const char *path, const ParamInfo *table, int n_tensors, int kind,
                     const real *m, const real *v, long step, const char *metadata_json) {
    StWriter *w = st_writer_new();
    char name[128], num[32];
    for (int moment = 0; moment < (kind == OPTIM_ADAMW ? 2 : 1); moment++)
        for (int i = 0; i < n_tensors; i++) {
            snprintf(name, sizeof name, "%s.%s", moment ? "v" : "m", table[i].name);
            st_writer_add_real(w, name, table[i].ndim, table[i].shape,
                               (moment ? v : m) + table[i].offset);
        }
    snprintf(num, sizeof num, "%ld", step);
    st_writer_metadata(w, "optimizer", kind == OPTIM_ADAMW ? "adamw" : "sgd");
    st_writer_metadata(w, "step", num);
    if (metadata_json) st_writer_metadata(w, "datarater", metadata_json);
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    return rc;
}

int optim_state_load(const char *path, const ParamInfo *table, int n_tensors, int kind,
                     real *m, real *v, long *step, char **metadata_out) {
    if (metadata_out) *metadata_out = NULL;
    SafeTensors *st = st_open(path);
    if (!st) return -1;
    int rc = -1;
    const char *opt = st_metadata(st, "optimizer"), *stp = st_metadata(st, "step");
    const char *want = kind == OPTIM_ADAMW ? "adamw" : "sgd";
    int n_moments = kind == OPTIM_ADAMW ? 2 : 1;
    char name[128], *end;
    if (!opt || strcmp(opt, want) != 0) {
        dr_seterr("%s: optimizer state is %s, expected %s", path, opt ? opt : "unmarked", want);
        goto done;
    }
    long s = stp ? strtol(stp, &end, 10) : -1;
    if (!stp || *end || s < 0) { dr_seterr("%s: bad or missing \"step\" in __metadata__", path); goto done; }
    if (st_count(st) != (size_t)n_moments * n_tensors) {
        dr_seterr("%s: %zu tensors, expected %d", path, st_count(st), n_moments * n_tensors);
        goto done;
    }
    for (int moment = 0; moment < n_moments; moment++)
        for (int i = 0; i < n_tensors; i++) {
            snprintf(name, sizeof name, "%s.%s", moment ? "v" : "m", table[i].name);
            if (load_tensor(st, path, name, &table[i], (moment ? v : m) + table[i].offset)) goto done;
        }
    *step = s;
    if (metadata_out) {
        const char *meta = st_metadata(st, "datarater");
        *metadata_out = meta ? xstrdup(meta) : NULL;
    }
    rc = 0;
done:
    st_close(st);
    return rc;
}
