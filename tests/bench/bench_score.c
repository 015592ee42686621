/* bench_score.c — what deployment costs on the CPU backend, with the shapes of a config
 * (default configs/cpu.yaml: rater 2 layers d 64 over 128 positions, LM 4 layers d 128
 * ctx 128, batch 16; vocabulary 4096 when the config takes it from the shards):
 *   - dr-score's engine (score_with_rater: read the windows, rater forward, write the
 *     rows, to /dev/null) on a generated shard of full windows: examples/s;
 *   - the same with the LM (score_with_lm, the perplexity filter's scoring), on an
 *     eighth of the examples;
 *   - one LM training step (lm_forward + lm_backward + AdamW with clipping) on batches
 *     of the same shard: ms per step and per example;
 *   - the rater's forward as dr-train --online-keep runs it: C = ceil(B/deploy.keep)
 *     candidates in sub-batches of TRAIN_ONLINE_SUB, one per thread (score_rater_split);
 *   - the rater's cost per example as a fraction of one LM training step's cost per
 *     example, measured (wall time, both on all threads) and by the FLOP formulas of
 *     train.h (what dr-train logs as flops_rater / flops_lm).
 * Threads: experiment.threads of the config, else OMP_NUM_THREADS (all cores).
 * Usage: bench_score [config.yaml] [examples]. Prints numbers; never pass/fail (DESIGN §8).
 */
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "bench.h"
#include "check.h"
#include "config.h"
#include "data.h"
#include "lm.h"
#include "optim.h"
#include "progress.h"
#include "rater.h"
#include "score.h"
#include "shard.h"
#include "train.h"

/* The engine's progress lines (stderr) are not the bench's output: silenced around it. */
static int quiet_begin(void) {
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    CHECK(saved >= 0 && null >= 0, "dup");
    dup2(null, 2);
    close(null);
    return saved;
}
static void quiet_end(int saved) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

/* n documents of exactly L + 1 random tokens < V: every example a full window. */
static void write_shard(const char *path, long n, int L, int V) {
    DrsWriter *w = drs_writer_open(path, (uint32_t)V, 0x5c0e, "bench");
    CHECK(w, "%s", dr_lasterr());
    uint32_t *tok = xmalloc(((size_t)L + 1) * sizeof *tok);
    uint64_t x = 88172645463325252ull;
    for (long d = 0; d < n; d++) {
        for (int t = 0; t <= L; t++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            tok[t] = (uint32_t)(x % (uint64_t)V);
        }
        CHECK(drs_writer_add(w, (uint64_t)d * 0x9e3779b97f4a7c15ull + 1, d % 2 ? "odd" : "even",
                             tok, (size_t)L + 1) == 0, "%s", dr_lasterr());
    }
    CHECK(drs_writer_close(w) == 0, "%s", dr_lasterr());
    free(tok);
}

int main(int argc, char **argv) {
    dr_set_progname("bench_score");
    const char *cfg_path = argc > 1 ? argv[1] : "configs/cpu.yaml";
    long n_ex = argc > 2 ? atol(argv[2]) : 4096;
    Config cfg;
    if (config_load(&cfg, cfg_path, 0, NULL) != 0) dr_die("%s", dr_lasterr());
    if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
    const Backend *be = &backend_cpu;
    int V = cfg.lm.vocab_size > 0 ? cfg.lm.vocab_size : 4096;
    int L = cfg.data.seq_len, B = cfg.data.batch_size;

    char dir[] = "/tmp/bench-score-XXXXXX";
    CHECK(mkdtemp(dir), "mkdtemp");
    char shard[96], small[96];
    snprintf(shard, sizeof shard, "%s/bench.drs", dir);
    snprintf(small, sizeof small, "%s/small.drs", dir);
    write_shard(shard, n_ex, L, V);
    long n_small = n_ex / 8 > 64 ? n_ex / 8 : 64;
    write_shard(small, n_small, L, V);
    ShardList sl = {0}, ss = {0};
    char *in[1] = { shard }, *in_small[1] = { small };
    CHECK(shardlist_add_inputs(&sl, 1, in) == 0, "%s", dr_lasterr());
    CHECK(shardlist_add_inputs(&ss, 1, in_small) == 0, "%s", dr_lasterr());

    RaterConfig rc = lm_config_from_shape(&cfg.rater.shape, V);
    LMConfig lc = lm_config_from_shape(&cfg.lm.shape, V);
    CHECK(lm_config_check(&rc) == 0 && lm_config_check(&lc) == 0, "%s", dr_lasterr());
    int threads = omp_get_max_threads();
    printf("bench_score: %s: rater %d layers d %d, %d positions (%.2fM parameters); LM %d layers "
           "d %d ctx %d vocab %d (%.2fM); batch %d; %d examples; %d threads\n", cfg_path,
           rc.n_layer, rc.d_model, rc.ctx, (double)rater_num_params(&rc) / 1e6, lc.n_layer,
           lc.d_model, lc.ctx, V, (double)lm_num_params(&lc) / 1e6, B, (int)n_ex, threads);

    /* ---- dr-score's engine: rater, then LM ------------------------------------------ */
    FILE *null = fopen("/dev/null", "w");
    CHECK(null, "/dev/null");
    size_t NR = rater_num_params(&rc), NL = lm_num_params(&lc);
    real *phi = be->alloc(NR * sizeof(real)), *h_phi = xmalloc(NR * sizeof(real));
    rater_init_params(be, &rc, phi, 1);
    be->to_host(h_phi, phi, NR * sizeof(real));
    real *theta = be->alloc(NL * sizeof(real)), *h_theta = xmalloc(NL * sizeof(real));
    lm_init_params(be, &lc, theta, 2);
    be->to_host(h_theta, theta, NL * sizeof(real));

    DataOptions o;
    data_options_from_config(&o, &cfg);
    o.shuffle = 0; o.bucket_by_length = 0; o.prefetch = 0; o.seq_len_rater = rc.ctx;
    DataLoader *d = data_open(&sl, &o);
    CHECK(d, "%s", dr_lasterr());
    ScoreStats warm, sr, sl_lm;
    int q = quiet_begin();
    CHECK(score_with_rater(be, d, &rc, h_phi, B, null, &warm) == 0, "%s", dr_lasterr());  /* warm-up */
    double tr[3];
    for (int r = 0; r < 3; r++) {
        CHECK(score_with_rater(be, d, &rc, h_phi, B, null, &sr) == 0, "%s", dr_lasterr());
        tr[r] = sr.seconds;
    }
    double t_rater = bench_median(tr, 3) / (double)sr.examples;          /* s per example */
    data_close(d);
    o.seq_len_rater = 0;
    d = data_open(&ss, &o);
    CHECK(d, "%s", dr_lasterr());
    CHECK(score_with_lm(be, d, &lc, h_theta, B, null, &sl_lm) == 0, "%s", dr_lasterr());
    double t_lmscore = sl_lm.seconds / (double)sl_lm.examples;
    quiet_end(q);
    data_close(d);

    /* ---- LM training steps on the same windows -------------------------------------- */
    o.shuffle = 1;
    d = data_open(&sl, &o);
    CHECK(d, "%s", dr_lasterr());
    DataBatch *b = data_batch_new(d);
    LMActs *acts = lm_acts_new(be, &lc, B, L, 0);
    real *grads = be->alloc(NL * sizeof(real));
    OptimHyper h = optim_hyper_lm(&cfg, 1000);
    OptimState st;
    optim_state_init(&st, be, h.kind, NL);
    real *losses = xmalloc((size_t)B * sizeof *losses), *dl = xmalloc((size_t)B * sizeof *dl);
    for (int i = 0; i < B; i++) dl[i] = (real)(1.0 / B);
    enum { STEPS = 7 };
    double ts[STEPS];
    for (int s = 0; s < STEPS + 1; s++) {
        CHECK(data_next(d, b) == 0, "%s", dr_lasterr());
        double t0 = dr_now();
        be->vec_zero(grads, NL);
        lm_forward_backward(be, &lc, theta, acts, b->inputs, b->targets, b->n_valid, b->B, b->T,
                            dl, losses, grads);   /* as dr-train runs it */
        optim_step(be, &st, theta, grads, &h, lr_at(&h, s), NULL);
        be->synchronize();
        if (s > 0) ts[s - 1] = dr_now() - t0;                     /* step 0: warm-up */
    }
    double t_step = bench_median(ts, STEPS), t_lm = t_step / B;

    /* ---- the rater as online filtering runs it: one batch of C, op-level threads ---- */
    int C = (int)ceil((double)B / cfg.deploy.keep - 1e-9);
    DataOptions oc = o;
    oc.batch_size = C;
    oc.seq_len_rater = rc.ctx;
    DataLoader *dc = data_open(&sl, &oc);
    CHECK(dc, "%s", dr_lasterr());
    DataBatch *cb = data_batch_new(dc);
    int n_acts = threads;
    RaterActs **ra = xcalloc((size_t)n_acts, sizeof *ra);
    for (int k = 0; k < n_acts; k++) ra[k] = rater_acts_new(be, &rc, TRAIN_ONLINE_SUB, rc.ctx);
    real *z = xmalloc((size_t)C * sizeof *z);
    double to[STEPS];
    for (int s = 0; s < STEPS + 1; s++) {
        CHECK(data_next(dc, cb) == 0, "%s", dr_lasterr());
        double t0 = dr_now();
        score_rater_split(be, &rc, phi, ra, n_acts, cb->rater_tokens, cb->rater_valid, cb->B,
                          cb->T_rater, TRAIN_ONLINE_SUB, z);
        be->synchronize();
        if (s > 0) to[s - 1] = dr_now() - t0;
    }
    double t_online = bench_median(to, STEPS) / C;
    free(z);
    for (int k = 0; k < n_acts; k++) rater_acts_free(be, ra[k]);
    free(ra);
    data_batch_free(cb);
    data_close(dc);

    double f_rater = train_flops_rater(&rc, 1, rc.ctx), f_lm = train_flops_lm(&lc, 1, L);
    double f_lmfwd = train_flops_lm_forward(&lc, 1, L);
    printf("  dr-score --rater: %8.0f examples/s  (%.3f ms per example, %.2f GFLOP/s, %d batch%s in flight)\n",
           1.0 / t_rater, 1e3 * t_rater, f_rater / t_rater / 1e9, sr.threads, sr.threads == 1 ? "" : "es");
    printf("  dr-score --lm:    %8.0f examples/s  (%.3f ms per example, %.2f GFLOP/s)\n",
           1.0 / t_lmscore, 1e3 * t_lmscore, f_lmfwd / t_lmscore / 1e9);
    printf("  LM training step: %8.1f ms per step of %d = %.3f ms per example (%.2f GFLOP/s)\n",
           1e3 * t_step, B, 1e3 * t_lm, f_lm / t_lm / 1e9);
    printf("  FLOPs per example: rater forward %.3g, LM forward %.3g, LM training %.3g\n",
           f_rater, f_lmfwd, f_lm);
    printf("  rater cost per example / LM training step cost per example: %.3f measured (time), "
           "%.3f by FLOPs\n", t_rater / t_lm, f_rater / f_lm);
    printf("  rater forward as dr-train --online-keep %g runs it (%d candidates, sub-batches of %d "
           "on %d threads): %.3f ms per example = %.3f of the LM step's cost per example\n",
           cfg.deploy.keep, C, TRAIN_ONLINE_SUB, threads, 1e3 * t_online, t_online / t_lm);
    printf("  online filtering at keep F adds (1/F)·%.3f of the LM's step time: keep %g → +%.1f%% "
           "(FLOPs: +%.1f%%)\n", t_online / t_lm, cfg.deploy.keep,
           100 * t_online / t_lm / cfg.deploy.keep, 100 * f_rater / f_lm / cfg.deploy.keep);

    free(losses); free(dl);
    optim_state_free(&st, be);
    be->free(grads);
    lm_acts_free(be, acts);
    data_batch_free(b);
    data_close(d);
    be->free(phi); be->free(theta);
    free(h_phi); free(h_theta);
    fclose(null);
    shardlist_free(&sl);
    shardlist_free(&ss);
    unlink(shard);
    unlink(small);
    rmdir(dir);
    return 0;
}
