/* test_checkpoint.c — LM / rater / optimizer-state checkpoints (DESIGN §2.5), and the
 * deterministic init they start from.
 *  - an LM file lists exactly the Hugging Face GPT-2 tensors (names, shapes, dtype F32,
 *    file order) written out by hand below, with "format": "pt" and a GPT-2 config;
 *  - load gives back the config and bit-identical parameters; the rater likewise;
 *  - a file with a wrong shape, a missing or an extra tensor, or of the other model kind
 *    is refused with a message naming the problem;
 *  - the optimizer state round-trips (moments bit-identical, step);
 *  - init: LN weights 1, biases 0, normal std init_std and init_std/sqrt(2L) for the
 *    residual projections, same seed → same bits, and golden values of the generator
 *    (computed independently in Python), so float and double builds agree by design.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "check.h"
#include "checkpoint.h"
#include "json.h"
#include "safetensors.h"
#include "test.h"

static const Backend *be = &backend_cpu;
static char dir[256];

static const char *tmp(const char *name) {
    static char path[32][512];   /* distinct names stay valid: one slot per call */
    static int k;
    k = (k + 1) % 32;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

typedef struct { char name[96]; int ndim; int64_t d0, d1; } Expect;

/* The GPT-2 state dict of GPT2LMHeadModel (minus the tied lm_head), spelled out. */
static int expected_tensors(Expect *e, const char *prefix, int L, int V, int ctx, int C, int F) {
    int n = 0;
#define E(nm, nd, a, b) do { snprintf(e[n].name, sizeof e[n].name, "%s%s", prefix, nm); \
                             e[n].ndim = nd; e[n].d0 = a; e[n].d1 = b; n++; } while (0)
    E("wte.weight", 2, V, C);
    E("wpe.weight", 2, ctx, C);
    for (int i = 0; i < L; i++) {
        char nm[80];
#define EL(suffix, nd, a, b) do { snprintf(nm, sizeof nm, "h.%d.%s", i, suffix); E(nm, nd, a, b); } while (0)
        EL("ln_1.weight", 1, C, 0);
        EL("ln_1.bias", 1, C, 0);
        EL("attn.c_attn.weight", 2, C, 3 * C);
        EL("attn.c_attn.bias", 1, 3 * C, 0);
        EL("attn.c_proj.weight", 2, C, C);
        EL("attn.c_proj.bias", 1, C, 0);
        EL("ln_2.weight", 1, C, 0);
        EL("ln_2.bias", 1, C, 0);
        EL("mlp.c_fc.weight", 2, C, F);
        EL("mlp.c_fc.bias", 1, F, 0);
        EL("mlp.c_proj.weight", 2, F, C);
        EL("mlp.c_proj.bias", 1, C, 0);
#undef EL
    }
    E("ln_f.weight", 1, C, 0);
    E("ln_f.bias", 1, C, 0);
#undef E
    return n;
}

static void check_listing(const char *path, const Expect *e, int n) {
    SafeTensors *st = st_open(path);
    TEST_CHECK(st != NULL, "st_open %s: %s", path, dr_lasterr());
    if (!st) return;
    TEST_CHECK(st_count(st) == (size_t)n, "%s: %zu tensors, expected %d", path, st_count(st), n);
    for (int i = 0; i < n && i < (int)st_count(st); i++) {
        const StTensor *t = st_tensor(st, i);
        int ok = strcmp(t->name, e[i].name) == 0 && t->ndim == e[i].ndim && t->shape[0] == e[i].d0 &&
                 (e[i].ndim == 1 || t->shape[1] == e[i].d1) && t->dtype == (sizeof(real) == 4 ? ST_F32 : ST_F64);
        TEST_CHECK(ok, "tensor %d: got %s ndim %d [%lld, %lld], expected %s ndim %d [%lld, %lld]", i,
                   t->name, t->ndim, (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0),
                   e[i].name, e[i].ndim, (long long)e[i].d0, (long long)e[i].d1);
    }
    const char *fmt = st_metadata(st, "format");
    TEST_CHECK(fmt && strcmp(fmt, "pt") == 0, "%s: __metadata__ format is %s", path, fmt ? fmt : "missing");
    st_close(st);
}

/* the "config" metadata holds the shape under GPT-2's keys */
static void check_config_meta(const char *path, const LMConfig *c, const char *model_type) {
    SafeTensors *st = st_open(path);
    if (!st) return;
    const char *text = st_metadata(st, "config");
    TEST_CHECK(text != NULL, "%s: no config metadata", path);
    JsonDoc *doc = text ? json_parse(text, strlen(text), 0) : NULL;
    TEST_CHECK(doc != NULL, "%s: config metadata is not JSON", path);
    if (doc) {
        const JsonValue *r = json_root(doc);
        struct { const char *key; int want; } k[] = {
            { "n_layer", c->n_layer }, { "n_embd", c->d_model }, { "n_head", c->n_head },
            { "n_inner", c->d_ff }, { "vocab_size", c->vocab }, { "n_positions", c->ctx },
        };
        for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
            const JsonValue *v = json_get(r, k[i].key);
            TEST_CHECK(v && v->type == JSON_NUMBER && v->number == k[i].want, "config %s: want %d",
                       k[i].key, k[i].want);
        }
        const JsonValue *mt = json_get(r, "model_type");
        TEST_CHECK(mt && mt->type == JSON_STRING && strcmp(mt->str, model_type) == 0, "model_type");
        const JsonValue *act = json_get(r, "activation_function");
        TEST_CHECK(act && act->type == JSON_STRING && strcmp(act->str, "gelu_new") == 0,
                   "activation_function must be gelu_new (tanh GELU)");
        json_free(doc);
    }
    const char *dr = st_metadata(st, "datarater");
    TEST_CHECK(dr && strcmp(dr, "{\"run\":\"test\"}") == 0, "caller metadata not kept: %s", dr ? dr : "none");
    st_close(st);
}

static int same_config(const LMConfig *a, const LMConfig *b) {
    return a->n_layer == b->n_layer && a->d_model == b->d_model && a->n_head == b->n_head &&
           a->d_ff == b->d_ff && a->vocab == b->vocab && a->ctx == b->ctx && a->init_std == b->init_std;
}

/* writes a copy of src with tensor `victim` changed: mode 0 reshaped, 1 dropped, 2 duplicated
 * under a new name */
static void tamper(const char *src, const char *dst, const char *victim, int mode) {
    SafeTensors *st = st_open(src);
    CHECK(st, "%s", dr_lasterr());
    StWriter *w = st_writer_new();
    for (size_t i = 0; i < st_count(st); i++) {
        const StTensor *t = st_tensor(st, i);
        int64_t shape[8];
        memcpy(shape, t->shape, sizeof shape);
        if (strcmp(t->name, victim) == 0) {
            if (mode == 1) continue;
            if (mode == 0 && t->ndim == 2) { int64_t s = shape[0]; shape[0] = shape[1]; shape[1] = s; }
            if (mode == 2) st_writer_add(w, "transformer.extra", t->dtype, t->ndim, shape, st_data(st, t));
        }
        st_writer_add(w, t->name, t->dtype, t->ndim, shape, st_data(st, t));
    }
    const char *keys[] = { "format", "config", "datarater" };
    for (int k = 0; k < 3; k++)
        if (st_metadata(st, keys[k])) st_writer_metadata(w, keys[k], st_metadata(st, keys[k]));
    CHECK(st_writer_save(w, dst) == 0, "%s", dr_lasterr());
    st_writer_free(w);
    st_close(st);
}

static void expect_refused(int rc, const char *what, const char *needle) {
    TEST_CHECK(rc != 0, "%s was accepted", what);
    if (rc) TEST_CHECK(strstr(dr_lasterr(), needle) != NULL, "%s: message '%s' lacks '%s'", what,
                       dr_lasterr(), needle);
}

static void test_lm_roundtrip(void) {
    LMConfig cfg = { .n_layer = 2, .d_model = 16, .n_head = 2, .d_ff = 64, .vocab = 50, .ctx = 12,
                     .init_std = 0.02 };
    size_t n = lm_num_params(&cfg);
    real *p = be->alloc(n * sizeof(real));
    lm_init_params(be, &cfg, p, 42);
    const char *path = tmp("lm.safetensors");
    TEST_CHECK(lm_save(path, &cfg, p, "{\"run\":\"test\"}", NULL) == 0, "lm_save: %s", dr_lasterr());

    Expect e[64];
    int ne = expected_tensors(e, "transformer.", 2, 50, 12, 16, 64);
    TEST_CHECK(ne == lm_num_tensors(&cfg), "lm_num_tensors %d, expected %d", lm_num_tensors(&cfg), ne);
    check_listing(path, e, ne);
    check_config_meta(path, &cfg, "gpt2");

    LMConfig c2;
    real *q = NULL;
    TEST_CHECK(lm_load(path, &c2, &q) == 0, "lm_load: %s", dr_lasterr());
    if (q) {
        TEST_CHECK(same_config(&cfg, &c2), "config not restored");
        TEST_CHECK(memcmp(p, q, n * sizeof(real)) == 0, "LM parameters not bit-identical after load");
        free(q);
    }

    /* refusals */
    tamper(path, tmp("bad_shape.safetensors"), "transformer.h.1.attn.c_attn.weight", 0);
    expect_refused(lm_load(tmp("bad_shape.safetensors"), &c2, &q), "reshaped c_attn", "shape");
    tamper(path, tmp("missing.safetensors"), "transformer.h.0.ln_2.bias", 1);
    expect_refused(lm_load(tmp("missing.safetensors"), &c2, &q), "missing ln_2.bias", "transformer.h.0.ln_2.bias");
    tamper(path, tmp("extra.safetensors"), "transformer.ln_f.bias", 2);
    expect_refused(lm_load(tmp("extra.safetensors"), &c2, &q), "extra tensor", "transformer.extra");
    RaterConfig rc2;
    expect_refused(rater_load(path, &rc2, &q), "an LM loaded as a rater", "model_type");
    expect_refused(lm_load(tmp("does_not_exist.safetensors"), &c2, &q), "a missing file", "does_not_exist");

    /* optimizer state round trip */
    int nt = lm_num_tensors(&cfg);
    ParamInfo *tab = xmalloc((size_t)nt * sizeof *tab);
    lm_param_table(&cfg, tab);
    real *m = xmalloc(n * sizeof(real)), *v = xmalloc(n * sizeof(real));
    real *m2 = xcalloc(n, sizeof(real)), *v2 = xcalloc(n, sizeof(real));
    for (size_t i = 0; i < n; i++) { m[i] = (real)dr_normal(1, i); v[i] = (real)fabs(dr_normal(2, i)); }
    const char *sp = tmp("lm.state");
    TEST_CHECK(optim_state_save(sp, tab, nt, OPTIM_ADAMW, m, v, 17, "{\"rng\":5}") == 0, "state save: %s",
               dr_lasterr());
    long step = 0;
    char *meta = NULL;
    TEST_CHECK(optim_state_load(sp, tab, nt, OPTIM_ADAMW, m2, v2, &step, &meta) == 0, "state load: %s",
               dr_lasterr());
    TEST_CHECK(step == 17 && meta && strcmp(meta, "{\"rng\":5}") == 0, "state step %ld / metadata %s", step,
               meta ? meta : "none");
    TEST_CHECK(memcmp(m, m2, n * sizeof(real)) == 0 && memcmp(v, v2, n * sizeof(real)) == 0,
               "moments not bit-identical");
    expect_refused(optim_state_load(sp, tab, nt, OPTIM_SGD, m2, v2, &step, NULL), "adamw state as sgd", "adamw");
    free(meta);
    free(m); free(v); free(m2); free(v2); free(tab);
    be->free(p);
}

static void test_rater_roundtrip(void) {
    RaterConfig cfg = { .n_layer = 1, .d_model = 8, .n_head = 2, .d_ff = 24, .vocab = 30, .ctx = 10,
                        .init_std = 0.02 };
    size_t n = rater_num_params(&cfg);
    real *p = be->alloc(n * sizeof(real));
    rater_init_params(be, &cfg, p, 3);
    const char *path = tmp("rater.safetensors");
    TEST_CHECK(rater_save(path, &cfg, p, "{\"run\":\"test\"}", NULL) == 0, "rater_save: %s", dr_lasterr());

    Expect e[64];
    int ne = expected_tensors(e, "rater.", 1, 30, 10, 8, 24);
    const struct { const char *nm; int nd; int64_t a, b; } head[] = {
        { "rater.head.fc.weight", 2, 8, 8 }, { "rater.head.fc.bias", 1, 8, 0 },
        { "rater.head.out.weight", 2, 8, 1 }, { "rater.head.out.bias", 1, 1, 0 },
    };
    for (int i = 0; i < 4; i++) {
        snprintf(e[ne].name, sizeof e[ne].name, "%s", head[i].nm);
        e[ne].ndim = head[i].nd; e[ne].d0 = head[i].a; e[ne].d1 = head[i].b; ne++;
    }
    TEST_CHECK(ne == rater_num_tensors(&cfg), "rater_num_tensors %d, expected %d", rater_num_tensors(&cfg), ne);
    check_listing(path, e, ne);
    check_config_meta(path, &cfg, "datarater");

    RaterConfig c2;
    real *q = NULL;
    TEST_CHECK(rater_load(path, &c2, &q) == 0, "rater_load: %s", dr_lasterr());
    if (q) {
        TEST_CHECK(same_config(&cfg, &c2), "rater config not restored");
        TEST_CHECK(memcmp(p, q, n * sizeof(real)) == 0, "rater parameters not bit-identical after load");
        free(q);
    }
    LMConfig lc;
    expect_refused(lm_load(path, &lc, &q), "a rater loaded as an LM", "model_type");

    /* the tokenizer tag: none recorded passes any shards; a recorded one passes only its own */
    TokenizerTag gpt2 = { 0x0123456789abcdefULL, "gpt2" }, byte = { 0xfedcba9876543210ULL, "byte" };
    TEST_CHECK(checkpoint_check_tokenizer(path, "--rater", &byte, "s.drs") == 0,
               "an untagged checkpoint was refused: %s", dr_lasterr());
    const char *tagged = tmp("rater_tagged.safetensors");
    TEST_CHECK(rater_save(tagged, &cfg, p, NULL, &gpt2) == 0, "rater_save: %s", dr_lasterr());
    SafeTensors *st = st_open(tagged);
    TEST_CHECK(st && st_metadata(st, "tokenizer") && !strcmp(st_metadata(st, "tokenizer"), "gpt2") &&
               st_metadata(st, "tokenizer_fingerprint") &&
               !strcmp(st_metadata(st, "tokenizer_fingerprint"), "0123456789abcdef"),
               "the tokenizer metadata is not recorded as written");
    if (st) st_close(st);
    TEST_CHECK(checkpoint_check_tokenizer(tagged, "--rater", &gpt2, "s.drs") == 0,
               "a checkpoint was refused on its own tokenizer's shards: %s", dr_lasterr());
    expect_refused(checkpoint_check_tokenizer(tagged, "--rater", &byte, "s.drs"),
                   "a gpt2 rater on byte shards", "--rater ");
    TEST_CHECK(strstr(dr_lasterr(), "\"gpt2\", fingerprint 0123456789abcdef") &&
               strstr(dr_lasterr(), "s.drs (\"byte\", fingerprint fedcba9876543210)"),
               "the refusal does not name both tokenizers: %s", dr_lasterr());
    expect_refused(checkpoint_check_tokenizer(tmp("none.safetensors"), NULL, &gpt2, "s.drs"),
                   "a missing checkpoint", "none.safetensors");
    be->free(p);
}

static double sample_std(const real *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s / n);
}

static void test_init(void) {
    /* golden draws of the generator, from an independent Python implementation */
    const struct { uint64_t seed, i; double z; } gold[] = {
        { 0, 0, 0.8652838380390243 }, { 1234, 0, -0.9672052574596478 }, { 1234, 1, -1.004105837794657 },
        { 1234, 1000000, -0.8386330299533742 }, { 9223372036854775813ULL, 7, 2.076936443624901 },
    };
    for (size_t k = 0; k < sizeof gold / sizeof *gold; k++)
        TEST_CHECK(fabs(dr_normal(gold[k].seed, gold[k].i) - gold[k].z) <= 1e-15,
                   "dr_normal(%llu, %llu) = %.17g, expected %.17g", (unsigned long long)gold[k].seed,
                   (unsigned long long)gold[k].i, dr_normal(gold[k].seed, gold[k].i), gold[k].z);

    LMConfig cfg = { .n_layer = 3, .d_model = 64, .n_head = 4, .d_ff = 256, .vocab = 1000, .ctx = 64,
                     .init_std = 0.02 };
    size_t n = lm_num_params(&cfg);
    real *a = be->alloc(n * sizeof(real)), *b = be->alloc(n * sizeof(real));
    lm_init_params(be, &cfg, a, 5);
    lm_init_params(be, &cfg, b, 5);
    TEST_CHECK(memcmp(a, b, n * sizeof(real)) == 0, "same seed, different init");
    lm_init_params(be, &cfg, b, 6);
    TEST_CHECK(memcmp(a, b, n * sizeof(real)) != 0, "different seeds, same init");
    LMParams P;
    lm_point_params(&P, a, &cfg);
    int ok_ln = 1, ok_bias = 1;
    for (int l = 0; l < cfg.n_layer; l++)
        for (int c = 0; c < cfg.d_model; c++) {
            ok_ln &= P.ln1_w[l][c] == 1 && P.ln2_w[l][c] == 1;
            ok_bias &= P.ln1_b[l][c] == 0 && P.ln2_b[l][c] == 0 && P.attn_proj_b[l][c] == 0 &&
                       P.fc_proj_b[l][c] == 0 && P.qkv_b[l][c] == 0;
        }
    TEST_CHECK(ok_ln && P.lnf_w[0] == 1, "LN weights must start at 1");
    TEST_CHECK(ok_bias && P.lnf_b[0] == 0 && P.fc_b[0][0] == 0, "biases must start at 0");
    double s_wte = sample_std(P.wte, (size_t)cfg.vocab * cfg.d_model);
    double s_fc = sample_std(P.fc_w[1], (size_t)cfg.d_model * cfg.d_ff);
    double s_proj = sample_std(P.attn_proj_w[2], (size_t)cfg.d_model * cfg.d_model);
    double s_mproj = sample_std(P.fc_proj_w[0], (size_t)cfg.d_ff * cfg.d_model);
    double want_res = 0.02 / sqrt(2.0 * cfg.n_layer);
    TEST_CHECK(fabs(s_wte / 0.02 - 1) < 0.03, "wte std %.5f, expected 0.02", s_wte);
    TEST_CHECK(fabs(s_fc / 0.02 - 1) < 0.03, "c_fc std %.5f, expected 0.02", s_fc);
    TEST_CHECK(fabs(s_proj / want_res - 1) < 0.05, "attn.c_proj std %.5f, expected %.5f", s_proj, want_res);
    TEST_CHECK(fabs(s_mproj / want_res - 1) < 0.03, "mlp.c_proj std %.5f, expected %.5f", s_mproj, want_res);
    /* the init is the table's: entry j of a normal tensor is std·dr_normal(seed, offset + j) */
    ParamInfo *tab = xmalloc((size_t)lm_num_tensors(&cfg) * sizeof *tab);
    lm_param_table(&cfg, tab);
    const ParamInfo *t = &tab[4];   /* transformer.h.0.attn.c_attn.weight */
    TEST_CHECK(strcmp(t->name, "transformer.h.0.attn.c_attn.weight") == 0, "table order: %s", t->name);
    TEST_CHECK(a[t->offset + 3] == (real)(0.02 * dr_normal(5, t->offset + 3)), "init is not the counter draw");
    free(tab);
    be->free(a);
    be->free(b);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/dr_test_checkpoint.XXXXXX");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp %s failed", dir);
    test_init();
    test_lm_roundtrip();
    test_rater_roundtrip();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_checkpoint");
}
