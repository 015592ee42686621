/* test_config.c — the config loader: defaults are the seed's values, every YAML file
 * in configs/ loads (base.yaml to exactly the defaults), every kind of error names the file,
 * line and key, --set overrides are applied and validated, and write → load
 * (YAML and JSON) gives back the same struct. */
#include <dirent.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "json.h"
#include "test.h"

static char dir[64];
static char configs_dir[1024];

static const char *write_yaml_file(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text as a YAML file (plus sets); expects failure with all needles in the message. */
static void expect_error(const char *text, int n_sets, char **sets, const char *const *needles) {
    const char *path = text ? write_yaml_file("bad.yaml", text) : NULL;
    Config c;
    int rc = config_load(&c, path, n_sets, sets);
    TEST_CHECK(rc == -1, "should refuse:\n%s", text ? text : sets[0]);
    if (rc != -1) return;
    for (int i = 0; needles[i]; i++)
        TEST_CHECK(strstr(dr_lasterr(), needles[i]) != NULL, "message '%s' lacks '%s'", dr_lasterr(), needles[i]);
}
#define ERR(text, ...) expect_error(text, 0, NULL, (const char *const[]){__VA_ARGS__, NULL})
#define SET_ERR(set, ...) expect_error(NULL, 1, (char *[]){set}, (const char *const[]){__VA_ARGS__, NULL})

static void test_defaults(void) {
    Config c;
    config_defaults(&c);
    TEST_CHECK(c.seed == 0 && !strcmp(c.device, "auto") && !strcmp(c.precision, "fp32"), "experiment defaults");
    TEST_CHECK(c.rater.shape.n_layer == 8 && c.rater.shape.d_model == 384 && c.rater.shape.n_head == 6 &&
                   c.rater.shape.d_ff == 1536,
               "rater shape");
    TEST_CHECK(c.rater.tau == 1.0 && c.rater.clamp_min == 0.05 && c.rater.clamp_max == 1.0 &&
                   !strcmp(c.rater.normalize, "sigmoid"),
               "rater weights");
    TEST_CHECK(c.rater.lr == 1e-4 && c.rater.weight_decay == 0.01 && c.rater.clip == 1.0 && c.rater.beta1 == 0.9 &&
                   c.rater.beta2 == 0.95 && c.rater.eps == 1e-8,
               "rater optimizer");
    TEST_CHECK(c.lm.shape.n_layer == 12 && c.lm.shape.d_model == 512 && c.lm.shape.n_head == 8 &&
                   c.lm.shape.d_ff == 2048 && c.lm.shape.ctx == 1024 && c.lm.vocab_size == 50257,
               "lm shape");
    TEST_CHECK(c.lm.lr == 1e-3 && c.lm.weight_decay == 0.01 && c.lm.clip == 1.0 && !strcmp(c.lm.optimizer, "adamw") &&
                   c.lm.beta1 == 0.9 && c.lm.beta2 == 0.95 && c.lm.eps == 1e-8 && !strcmp(c.lm.schedule, "cosine") &&
                   c.lm.warmup_steps == 0,
               "lm optimizer");
    TEST_CHECK(c.lm.shape.init_std == 0.02 && c.rater.shape.init_std == 0.02, "init std");
    TEST_CHECK(c.meta.rounds == 5 && c.meta.population_K == 2 && c.meta.T == 1500 && c.meta.val_batches == 8 &&
                   c.meta.checkpoint_every == 0 && c.meta.reset_every == 1 && !strcmp(c.meta.combine, "mean") &&
                   c.meta.ema == 0.99 && c.meta.hvp == 1 && c.meta.backprop_steps == 0 &&
                   c.meta.keep_activations == -1 &&
                   !strcmp(c.meta.mode, "full") && c.meta.track_uniform == 1,
               "meta");
    TEST_CHECK(c.data.seq_len == 1024 && c.data.seq_len_rater == 1024 && c.rater.shape.ctx == 1024 &&
                   c.data.batch_size == 64 && c.data.shuffle == 1 && c.data.bucket_by_length == 0 &&
                   c.data.min_tokens == 2 && c.data.prefetch == 2,
               "data");
    TEST_CHECK(c.deploy.keep == 0.6 && !strcmp(c.deploy.policy, "filter") && c.deploy.batch == 64, "deploy");
    TEST_CHECK(c.train.steps == 0 && c.train.tokens == 0 && c.train.eval_every == 100 && c.train.eval_batches == 0 &&
                   c.train.log_every == 10 && c.train.checkpoint_every == 0,
               "train");
    Config d;
    TEST_CHECK(config_load(&d, NULL, 0, NULL) == 0, "load with no file: %s", dr_lasterr());
    TEST_CHECK(memcmp(&c, &d, sizeof c) == 0, "no file, no sets = defaults");
}

static void test_config_files(void) {
    char path[1200];
    Config def, c;
    config_defaults(&def);
    snprintf(path, sizeof path, "%s/base.yaml", configs_dir);
    TEST_CHECK(config_load(&c, path, 0, NULL) == 0, "base.yaml: %s", dr_lasterr());
    TEST_CHECK(memcmp(&c, &def, sizeof c) == 0, "base.yaml restates the defaults exactly");

    DIR *d = opendir(configs_dir);
    TEST_CHECK(d != NULL, "configs directory %s", configs_dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".yaml")) continue;
        snprintf(path, sizeof path, "%s/%s", configs_dir, e->d_name);
        TEST_CHECK(config_load(&c, path, 0, NULL) == 0, "%s loads: %s", path, dr_lasterr());
        n++;
    }
    if (d) closedir(d);
    TEST_CHECK(n >= 4, "found the config files (%d)", n);

    snprintf(path, sizeof path, "%s/tiny.yaml", configs_dir);
    if (config_load(&c, path, 0, NULL) == 0)
        TEST_CHECK(c.lm.shape.n_layer <= 2 && c.lm.shape.d_model == 32 && c.lm.shape.ctx == 32 &&
                       c.rater.shape.n_layer == 1 && c.data.batch_size == 4 && c.meta.rounds == 3 && c.meta.T == 4,
                   "tiny.yaml shape");
    snprintf(path, sizeof path, "%s/bench.yaml", configs_dir);
    if (config_load(&c, path, 0, NULL) == 0)
        TEST_CHECK(c.lm.shape.n_layer == 4 && c.lm.shape.d_model == 256 && c.lm.shape.n_head == 8 &&
                       c.lm.shape.ctx == 256 && c.data.batch_size == 16 && c.lm.vocab_size == 8192,
                   "bench.yaml shape");
}

static const char valid_yaml[] =
    "experiment:\n"
    "  name: 'my run: #1'\n"
    "  seed: 18446744073709551615\n"
    "  device: cpu\n"
    "data:\n"
    "  seq_len: 128\n"
    "  seq_len_rater: 64\n"
    "lm:\n"
    "  d_model: 256\n"
    "  lr: 3e-4\n"
    "  betas: [0.8, 0.99]\n"
    "rater:\n"
    "  clamp: [0.1, 0.9]\n"
    "  mean_normalize: True\n"
    "train:\n"
    "  tokens: 2_000_000\n"
    "meta:\n"
    "  T: 1e3\n"
    "deploy: {keep: 0.5, policy: per_batch}\n";

/* valid_yaml with one more line (line 20) appended. */
static const char *valid_plus(const char *line) {
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s%s", valid_yaml, line);
    return write_yaml_file("ok.yaml", buf);
}

static void test_values(void) {
    Config c;
    TEST_CHECK(config_load(&c, valid_plus("lm2: ~\n"), 0, NULL) == -1 &&
                   strstr(dr_lasterr(), "ok.yaml:20: unknown section 'lm2' (did you mean lm?)"),
               "unknown section with suggestion: %s", dr_lasterr());
    TEST_CHECK(config_load(&c, valid_plus("meta:\n"), 0, NULL) == -1 &&
                   strstr(dr_lasterr(), "ok.yaml:20: section 'meta' appears twice (first at line 17)"),
               "duplicate section: %s", dr_lasterr());
    const char *p = valid_plus("");
    TEST_CHECK(config_load(&c, p, 0, NULL) == 0, "valid file: %s", dr_lasterr());
    TEST_CHECK(!strcmp(c.name, "my run: #1"), "quoted name '%s'", c.name);
    TEST_CHECK(c.seed == UINT64_MAX, "u64 seed");
    TEST_CHECK(!strcmp(c.device, "cpu"), "device");
    TEST_CHECK(c.data.seq_len == 128 && c.lm.shape.ctx == 128 && c.data.seq_len_rater == 64 && c.rater.shape.ctx == 64,
               "ctx derived from seq_len / seq_len_rater");
    TEST_CHECK(c.lm.shape.d_model == 256 && c.lm.shape.d_ff == 1024, "d_ff = 4 d_model");
    TEST_CHECK(c.lm.lr == 3e-4 && c.lm.beta1 == 0.8 && c.lm.beta2 == 0.99, "lr, betas");
    TEST_CHECK(c.rater.clamp_min == 0.1 && c.rater.clamp_max == 0.9 && c.rater.mean_normalize == 1, "clamp, bool");
    TEST_CHECK(c.train.tokens == 2000000 && c.meta.T == 1000, "2_000_000 and 1e3");
    TEST_CHECK(c.deploy.keep == 0.5 && !strcmp(c.deploy.policy, "per_batch"), "flow mapping section");
    TEST_CHECK(c.rater.shape.d_model == 384, "untouched keys keep defaults");

    /* Empty file, comment-only file, null sections: defaults. */
    Config def;
    config_defaults(&def);
    p = write_yaml_file("empty.yaml", "");
    TEST_CHECK(config_load(&c, p, 0, NULL) == 0 && memcmp(&c, &def, sizeof c) == 0, "empty file: %s", dr_lasterr());
    p = write_yaml_file("empty.yaml", "# nothing\n\nlm:\nrater: ~\n");
    TEST_CHECK(config_load(&c, p, 0, NULL) == 0 && memcmp(&c, &def, sizeof c) == 0, "null sections: %s", dr_lasterr());
}

static void test_errors(void) {
    ERR("lm:\n  d_model: abc\n", "bad.yaml:2: lm.d_model: expected an integer in [1, 65536], got 'abc'");
    ERR("lm:\n  d_model: 0\n", "bad.yaml:2: lm.d_model: expected an integer in [1, 65536], got '0'");
    ERR("lm:\n  d_model: 1.5\n", ":2: lm.d_model: expected an integer");
    ERR("lm:\n  n_layer:\n", ":2: lm.n_layer: expected an integer in [1, 48], got ''");
    ERR("\n\nlm:\n  lr: fast\n", "bad.yaml:4: lm.lr: expected a number in (0, 1000], got 'fast'");
    ERR("lm:\n  lr: 0\n", ":2: lm.lr: expected a number in (0, 1000], got '0'");
    ERR("lm:\n  lr: .nan\n", ":2: lm.lr: expected a number");
    ERR("lm:\n  lr: inf\n", ":2: lm.lr: expected a number");
    ERR("lm:\n  clip: -1\n", ":2: lm.clip: expected a number ≥ 0, got '-1'");
    ERR("meta:\n  ema: 1\n", ":2: meta.ema: expected a number in [0, 1), got '1'");
    ERR("deploy:\n  keep: 0\n", ":2: deploy.keep: expected a number in (0, 1], got '0'");
    ERR("deploy:\n  keep: 1.5\n", ":2: deploy.keep: expected a number in (0, 1]");
    ERR("data:\n  shuffle: yes\n", ":2: data.shuffle: expected true or false, got 'yes'");
    ERR("experiment:\n  device: gpu\n", ":2: experiment.device: expected one of {auto,cpu,cuda}, got 'gpu'");
    ERR("experiment:\n  seed: -1\n", ":2: experiment.seed: expected an integer in [0, 18446744073709551615]");
    ERR("experiment:\n  seed: 18446744073709551616\n", ":2: experiment.seed: expected an integer");
    ERR("train:\n  steps: 99999999999999999999\n", ":2: train.steps: expected an integer in [0, 9200000000000000000]");
    ERR("train:\n  tokens: 9223372036854775807\n", ":2: train.tokens: expected an integer in [0, 9200000000000000000], got '9223372036854775807'");
    /* the models hold at most DR_MAX_LAYERS blocks: the key says so, not the model code later */
    ERR("lm:\n  n_layer: 49\n", ":2: lm.n_layer: expected an integer in [1, 48], got '49'");
    ERR("rater:\n  n_layer: 1024\n", ":2: rater.n_layer: expected an integer in [1, 48], got '1024'");
    ERR("experiment:\n  name: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
        ":2: experiment.name: expected at most 127 bytes");
    ERR("lm:\n  dmodel: 3\n", "bad.yaml:2: unknown key 'lm.dmodel' (did you mean lm.d_model?)");
    ERR("rater:\n  clmap: [0, 1]\n", ":2: unknown key 'rater.clmap' (did you mean rater.clamp?)");
    ERR("lm:\n  frobnicate: 3\n", ":2: unknown key 'lm.frobnicate'");
    ERR("rater:\n  d_model: 64\n  n_head: 4\n\nratr:\n  tau: 2\n", "bad.yaml:5: unknown section 'ratr' (did you mean rater?)");
    ERR("lm.d_model: 64\n", ":1: 'lm.d_model' must be written under its section");
    ERR("lm:\n  d_model: 64\n  d_model: 128\n", "bad.yaml:3: lm.d_model: set twice (first at line 2)");
    ERR("lm: 5\n", ":1: section 'lm' must be a mapping");
    ERR("- lm\n", ":1: expected a mapping of sections");
    ERR("lm:\n  d_model: [1, 2]\n", ":2: lm.d_model: expected a single value, got a list");
    ERR("lm:\n  d_model: {a: 1}\n", ":2: lm.d_model: expected a single value, got a mapping");
    ERR("rater:\n  clamp: 0.5\n", ":2: rater.clamp: expected a pair [x, y], got a single value");
    ERR("rater:\n  clamp: [0.1, 0.5, 0.9]\n", ":2: rater.clamp: expected a pair [x, y]");
    ERR("rater:\n  clamp: [0.1, 2]\n", ":2: rater.clamp: expected [x, y] with each a number in [0, 1], got '2' as second");
    ERR("lm:\n  betas: [0.9, 1.0]\n", ":2: lm.betas: expected [x, y] with each a number in [0, 1)");
    ERR("lm:\n  d_model: 64\n   n_head: 4\n", "bad.yaml:3: YAML syntax error");
    ERR("lm:\n\td_model: 64\n", "bad.yaml:2: YAML syntax error");
    ERR("lm:\n  name: \"unterminated\n", "YAML syntax error");
    ERR("lm:\n  d_model: 64\n---\nlm:\n  d_model: 32\n", "expected a single YAML document");
    /* Cross-field checks name the line of the last key involved. */
    ERR("lm:\n  d_model: 100\n  n_head: 8\n", "bad.yaml:3: lm.n_head: d_model 100 is not divisible by n_head 8");
    ERR("lm:\n  n_head: 8\n  d_model: 100\n", "bad.yaml:3: lm.d_model: d_model 100 is not divisible by n_head 8");
    ERR("lm:\n  n_head: 7\n", "bad.yaml:2: lm.n_head: d_model 512 is not divisible by n_head 7");
    ERR("rater:\n  n_head: 5\n", "bad.yaml:2: rater.n_head: d_model 384 is not divisible by n_head 5");
    ERR("rater:\n  clamp: [0.9, 0.1]\n", "bad.yaml:2: rater.clamp: w_min 0.9 is greater than w_max 0.1");
    ERR("rater:\n  clamp: [0, 0]\n", "bad.yaml:2: rater.clamp: w_max 0 makes every sigmoid weight 0: nothing would train");
    ERR("data:\n  seq_len: 64\n  seq_len_rater: 66\n", "bad.yaml:3: data.seq_len_rater: the rater sees at most");
    ERR("data:\n  seq_len: 16\n  min_tokens: 18\n", "bad.yaml:3: data.min_tokens: 18 is more than a window holds");
    ERR("meta:\n  T: 4\n  backprop_steps: 5\n", "bad.yaml:3: meta.backprop_steps: backprop_steps = 5 is more than the T = 4");
    ERR("meta:\n  checkpoint_every: 5\n  T: 4\n", "bad.yaml:3: meta.T: checkpoint_every = 5 is more than the T = 4");
    ERR("meta:\n  T: 4\n  keep_activations: 5\n", "bad.yaml:3: meta.keep_activations: keep_activations = 5 is more than the T = 4");
    ERR("meta:\n  keep_activations: -2\n", "meta.keep_activations");
    ERR("lm:\n  checkpointing: true\nmeta:\n  keep_activations: 2\n",
        "bad.yaml:4: meta.keep_activations: 2: kept activations are whole passes");
    ERR("meta:\n  keep_activations: 1\nlm:\n  head_chunk: 4\n", "bad.yaml:4: lm.head_chunk: 1: kept activations");
    ERR("lm:\n  checkpointing: sometimes\n", "bad.yaml:2: lm.checkpointing: expected true, false or auto, got 'sometimes'");
    ERR("rater:\n  checkpointing: auto\n", "bad.yaml:2: rater.checkpointing: expected true or false, got 'auto'");
    ERR("train:\n  steps: 10\n  tokens: 1000\n", "bad.yaml:3: train.tokens: train.steps (10) and train.tokens (1000) are both set");
    ERR("lm:\n  vocab_size: 1\n", "bad.yaml:2: lm.vocab_size: a vocabulary needs at least 2 tokens");

    Config c;
    TEST_CHECK(config_load(&c, "/nonexistent/x.yaml", 0, NULL) == -1 &&
                   strstr(dr_lasterr(), "/nonexistent/x.yaml: cannot open"),
               "missing file: %s", dr_lasterr());
}

static void test_sets(void) {
    Config c;
    const char *p = write_yaml_file("s.yaml", "lm:\n  d_model: 256\n  n_head: 4\n");
    char *sets[] = {"lm.d_model=128", "rater.clamp=[0.2, 0.8]", "experiment.name=\"quoted name\"", " meta.T = 100 ",
                    "data.shuffle=false", "lm.betas=0.5,0.6", "experiment.device=cpu"};
    TEST_CHECK(config_load(&c, p, 7, sets) == 0, "sets: %s", dr_lasterr());
    TEST_CHECK(c.lm.shape.d_model == 128 && c.lm.shape.n_head == 4 && c.lm.shape.d_ff == 512, "--set overrides the file");
    TEST_CHECK(c.rater.clamp_min == 0.2 && c.rater.clamp_max == 0.8, "pair via --set");
    TEST_CHECK(!strcmp(c.name, "quoted name"), "quoted string via --set: '%s'", c.name);
    TEST_CHECK(c.meta.T == 100 && c.data.shuffle == 0 && c.lm.beta1 == 0.5 && c.lm.beta2 == 0.6, "other sets");
    char *later[] = {"lm.lr=1", "lm.lr=2"};
    TEST_CHECK(config_load(&c, NULL, 2, later) == 0 && c.lm.lr == 2, "the last --set wins");

    SET_ERR("lm.d_model=abc", "--set lm.d_model=abc: lm.d_model: expected an integer in [1, 65536], got 'abc'");
    SET_ERR("lm.dmodel=64", "--set lm.dmodel=64: unknown key 'lm.dmodel' (did you mean lm.d_model?)");
    SET_ERR("lm.d_model", "--set lm.d_model: expected section.key=value");
    SET_ERR("lm.eps=0", "--set lm.eps=0: lm.eps: expected a number in (0, 1], got '0'");   /* Adam's 0/0 */
    SET_ERR("=3", "expected section.key=value");
    SET_ERR("d_model=3", "--set d_model=3: expected section.key=value");
    SET_ERR("rater.clamp=0.5", "--set rater.clamp=0.5: rater.clamp: expected a pair [x, y]");
    SET_ERR("rater.clamp=[0.9,0.1]", "--set rater.clamp=[0.9,0.1]: rater.clamp: w_min 0.9 is greater than w_max 0.1");
    SET_ERR("lm.n_head=7", "--set lm.n_head=7: lm.n_head: d_model 512 is not divisible by n_head 7");
    SET_ERR("meta.mode=fast", "--set meta.mode=fast: meta.mode: expected one of {full,detach,shuffle,constant,classifier}");

    /* A cross-field error names the --set when it came after the file's key. */
    char *bad[] = {"lm.n_head=3"};
    TEST_CHECK(config_load(&c, p, 1, bad) == -1 && strstr(dr_lasterr(), "--set lm.n_head=3: lm.n_head: d_model 256"),
               "cross-field blames --set: %s", dr_lasterr());
    char *bad2[] = {"lm.d_model=90"};
    TEST_CHECK(config_load(&c, p, 1, bad2) == -1 && strstr(dr_lasterr(), "--set lm.d_model=90: lm.d_model: d_model 90 is not divisible by n_head 4"),
               "cross-field blames the later key: %s", dr_lasterr());
    /* A failed load leaves cfg untouched. */
    Config before;
    config_defaults(&before);
    memcpy(&c, &before, sizeof c);
    TEST_CHECK(config_load(&c, p, 1, bad) == -1 && memcmp(&c, &before, sizeof c) == 0, "failed load leaves cfg alone");
}

/* Bad input the loader once took or described wrongly. */
static void test_adversarial(void) {
    /* a name with a NUL is not the name before it ("keep\0x" was taken as deploy.keep) */
    ERR("deploy:\n  \"keep\\0x\": 0.5\n", "bad.yaml:2: a key name in section 'deploy' contains a NUL character");
    ERR("\"deploy\\0x\":\n  keep: 0.5\n", "bad.yaml:1: a section name contains a NUL character");
    /* invalid UTF-8 and control characters: the line they are on (was always line 1) */
    ERR("# c\n\ndata:\n  seq_len: 32\xff\n", "bad.yaml:4: YAML syntax error: invalid leading UTF-8 octet");
    ERR("data:\n  seq_len: 32\n  min_tokens: 2\x01\n", "bad.yaml:3: YAML syntax error: control characters");
    ERR("lm:\n  d_model: 64\n---\nlm: \xc3\n", "bad.yaml:4: YAML syntax error");

    /* --set values longer than any fixed buffer: read whole, never cut into another value */
    Config c;
    char v1[400], v2[400], v3[400], v4[600];
    snprintf(v1, sizeof v1, "deploy.keep=0.5%0300d1", 0);           /* 0.5000…0001 */
    snprintf(v2, sizeof v2, "data.seq_len=1e%0300d2", 0);           /* 1e000…0002 = 100 */
    snprintf(v3, sizeof v3, "rater.clamp=[0.1,%250s0.9]", "");      /* spaces before 0.9 */
    snprintf(v4, sizeof v4, "experiment.name=%0300d", 0);
    char *sets[] = {v1, v2, v3};
    TEST_CHECK(config_load(&c, NULL, 3, sets) == 0, "long --set values: %s", dr_lasterr());
    TEST_CHECK(c.deploy.keep == strtod(v1 + 12, NULL) && c.data.seq_len == 100, "long --set values read whole: "
               "keep %.17g, seq_len %d (want 100)", c.deploy.keep, c.data.seq_len);
    TEST_CHECK(c.rater.clamp_min == 0.1 && c.rater.clamp_max == 0.9, "a long pair: [%g, %g]", c.rater.clamp_min, c.rater.clamp_max);
    SET_ERR(v4, "experiment.name: expected at most 127 bytes, got 300");
    /* a message quoting a long value cuts it between UTF-8 characters */
    char v5[600] = "experiment.name=";
    for (int i = 0; i < 200; i++) strcat(v5, "\xc3\xa9");
    char *s5[] = {v5};
    TEST_CHECK(config_load(&c, NULL, 1, s5) == -1, "a 400-byte name is refused");
    const char *msg = dr_lasterr();
    int valid = 1;   /* every 0xc3 lead byte followed by its continuation byte */
    for (const char *q = msg; *q; q++)
        if ((unsigned char)*q == 0xc3 && (unsigned char)q[1] != 0xa9) valid = 0;
    TEST_CHECK(valid && strstr(msg, "got 400"), "message cut inside a UTF-8 character or wrong: %s", msg);
}

static void test_round_trip(void) {
    Config c;
    char *sets[] = {"experiment.name=a \"quoted\": #name\\ with é", "experiment.seed=12345678901234567890",
                    "lm.lr=0.00031415926535897931", "rater.clamp=[0.1, 0.7]", "lm.d_model=96", "lm.n_head=3",
                    "train.tokens=123456789012", "meta.ema=0", "rater.tau=0.3", "data.seq_len=77",
                    "lm.optimizer=sgd", "lm.momentum=0.95", "rater.normalize=softmax", "meta.hvp=false",
                    "deploy.policy=keep_middle", "lm.weight_decay=1e-300", "lm.checkpointing=auto"};
    int n = (int)(sizeof sets / sizeof *sets);
    TEST_CHECK(config_load(&c, NULL, n, sets) == 0, "load: %s", dr_lasterr());
    const char *path = write_yaml_file("rt.yaml", "");
    FILE *f = fopen(path, "w");
    config_write_yaml(&c, f);
    fclose(f);
    Config d;
    TEST_CHECK(config_load(&d, path, 0, NULL) == 0, "written YAML loads: %s", dr_lasterr());
    TEST_CHECK(memcmp(&c, &d, sizeof c) == 0, "YAML write -> load gives the same struct");
    TEST_CHECK(!strcmp(d.name, "a \"quoted\": #name\\ with é") && d.seed == 12345678901234567890ull, "name, seed");
    TEST_CHECK(d.lm.shape.checkpointing == -1, "lm.checkpointing auto is -1");

    char *js = config_to_json(&c);
    JsonDoc *doc = json_parse(js, strlen(js), 0);
    TEST_CHECK(doc != NULL, "config JSON parses: %s", dr_lasterr());
    if (doc) {
        const JsonValue *lm = json_get(json_root(doc), "lm");
        TEST_CHECK(json_get(lm, "d_model") && json_get(lm, "d_model")->number == 96, "lm.d_model in JSON");
        const JsonValue *clamp = json_get(json_get(json_root(doc), "rater"), "clamp");
        TEST_CHECK(clamp && clamp->type == JSON_ARRAY && clamp->len == 2 && clamp->items[1].number == 0.7, "clamp in JSON");
        const JsonValue *ck = json_get(lm, "checkpointing");
        TEST_CHECK(ck && ck->type == JSON_STRING && !strcmp(ck->str, "auto"), "lm.checkpointing auto in JSON");
    }
    json_free(doc);
    Config e;
    TEST_CHECK(config_load_json(&e, js, strlen(js), "x.safetensors") == 0, "JSON loads back: %s", dr_lasterr());
    TEST_CHECK(memcmp(&c, &e, sizeof c) == 0, "JSON write -> load gives the same struct");
    free(js);

    /* Defaults round trip too, and JSON errors name the origin. */
    config_defaults(&c);
    js = config_to_json(&c);
    TEST_CHECK(config_load_json(&e, js, strlen(js), "m") == 0 && memcmp(&c, &e, sizeof c) == 0, "defaults via JSON");
    free(js);
    const char *badj = "{\"lm\":{\"d_model\":\"x\"}}";
    TEST_CHECK(config_load_json(&e, badj, strlen(badj), "rater.safetensors") == -1 &&
                   strstr(dr_lasterr(), "rater.safetensors: config: lm.d_model: expected an integer"),
               "JSON error: %s", dr_lasterr());
    badj = "{\"lm\":{\"dmodel\":1}}";
    TEST_CHECK(config_load_json(&e, badj, strlen(badj), "r") == -1 && strstr(dr_lasterr(), "unknown key 'lm.dmodel'"),
               "JSON unknown key: %s", dr_lasterr());

    /* The schema listing mentions every section. */
    char *buf = NULL;
    size_t len = 0;
    f = open_memstream(&buf, &len);
    config_write_schema(f);
    fclose(f);
    TEST_CHECK(strstr(buf, "lm.d_model") && strstr(buf, "deploy.policy") && strstr(buf, "rater.clamp"), "schema listing");
    free(buf);
}

/* config_diff (dr-meta --resume): the first differing key in schema order with both values
 * as text, skipped keys and sections ignored, a config read back from JSON equal to itself. */
static void test_diff(void) {
    Config a, b;
    char va[256], vb[256];
    char *sa[] = {"meta.T=4", "lm.lr=1e-3", "rater.clamp=[0.1, 0.7]", "experiment.seed=18446744073709551615"};
    TEST_CHECK(config_load(&a, NULL, 4, sa) == 0, "load: %s", dr_lasterr());
    char *js = config_to_json(&a);
    TEST_CHECK(config_load_json(&b, js, strlen(js), "s.state") == 0, "JSON: %s", dr_lasterr());
    free(js);
    TEST_CHECK(config_diff(&a, &b, NULL, va, vb, sizeof va) == NULL, "a config read back from JSON differs");
    char *sb[] = {"meta.T=3", "lm.lr=2e-3", "rater.clamp=[0.1, 0.75]", "experiment.seed=18446744073709551615",
                  "train.steps=7", "meta.rounds=9"};
    TEST_CHECK(config_load(&b, NULL, 6, sb) == 0, "load: %s", dr_lasterr());
    const char *k = config_diff(&a, &b, NULL, va, vb, sizeof va);
    TEST_CHECK(k && !strcmp(k, "lm.lr") && !strcmp(va, "0.001") && !strcmp(vb, "0.002"),
               "first difference: %s %s %s", k ? k : "none", va, vb);
    const char *skip1[] = {"lm.lr", NULL};
    k = config_diff(&a, &b, skip1, va, vb, sizeof va);
    TEST_CHECK(k && !strcmp(k, "rater.clamp") && !strcmp(va, "[0.1, 0.7]") && !strcmp(vb, "[0.1, 0.75]"),
               "pair: %s %s %s", k ? k : "none", va, vb);
    const char *skip2[] = {"lm.lr", "rater.clamp", NULL};
    k = config_diff(&a, &b, skip2, va, vb, sizeof va);
    TEST_CHECK(k && !strcmp(k, "meta.rounds"), "then meta.rounds: %s", k ? k : "none");
    const char *skip3[] = {"lm.lr", "rater.clamp", "meta.rounds", NULL};
    k = config_diff(&a, &b, skip3, va, vb, sizeof va);
    TEST_CHECK(k && !strcmp(k, "meta.T") && !strcmp(va, "4") && !strcmp(vb, "3"), "then meta.T: %s", k ? k : "none");
    const char *skip4[] = {"lm.", "rater.", "meta.", NULL};   /* train.steps is left */
    k = config_diff(&a, &b, skip4, va, vb, sizeof va);
    TEST_CHECK(k && !strcmp(k, "train.steps"), "a section skipped, train.steps left: %s", k ? k : "none");
    const char *skip5[] = {"lm.", "rater.", "meta.", "train.", NULL};
    TEST_CHECK(config_diff(&a, &b, skip5, va, vb, sizeof va) == NULL, "every difference skipped");
    const char *skip6[] = {"lm.l", "rater.clam", "meta.", "train.", NULL};   /* no prefixes of keys */
    k = config_diff(&a, &b, skip6, va, vb, sizeof va);
    TEST_CHECK(k && !strcmp(k, "lm.lr"), "a key's prefix does not skip it: %s", k ? k : "none");
}

static void cleanup(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    char path[512];
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%.200s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv) {
    (void)argc;
    snprintf(dir, sizeof dir, "/tmp/dr-test-config-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp failed");
    /* configs/ of the repository: from the working directory, or relative to the binary
     * (build/<precision>/tests/test_config). */
    if (access("configs/base.yaml", R_OK) == 0) {
        snprintf(configs_dir, sizeof configs_dir, "configs");
    } else {
        char exe[800];
        snprintf(exe, sizeof exe, "%s", argv[0]);
        snprintf(configs_dir, sizeof configs_dir, "%s/../../../configs", dirname(exe));
    }
    test_defaults();
    test_config_files();
    test_values();
    test_errors();
    test_sets();
    test_adversarial();
    test_round_trip();
    test_diff();
    cleanup();
    return test_finish("test_config");
}
