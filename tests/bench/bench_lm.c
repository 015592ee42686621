/* bench_lm.c — throughput of the LM on the CPU backend, against the machine's SGEMM.
 * Benchmark config: LM 4 layers, d 256, 8 heads, d_ff 1024, ctx 256, batch 16, vocab 8192.
 * Times (median of several runs after a warm-up):
 *   - a full training step: lm_forward + zeroing the gradient + lm_backward + AdamW
 *     (optim_step with clipping);
 *   - one forward-over-reverse pass (lm_forward_over_reverse: ℓ, g, H·u, d_i);
 *   - the two passes a meta-step's reverse sweep runs instead (docs/meta.md §1.4): the
 *     same pass without g (H·u, d_i: 8 GEMM units), and its replay from an activation
 *     tape recorded by the training step's backward (lm_forward_over_reverse_replay:
 *     the tangent halves only, 6 units);
 *   - cblas_sgemm 2048³ through OpenBLAS on the same number of threads.
 * FLOPs of a training step per token: 6·N + 6·L·d·ctx with N = ALL parameters (wte
 * included: as the tied output head it costs 2·V·d per token like any weight; wpe, a
 * lookup, is 1% of N), the formula the issue gives. Threads: OMP_NUM_THREADS.
 * Then one more run of each through a timed copy of the backend table gives the time
 * per op. Usage: bench_lm [reps]. Prints numbers and ratios; never pass/fail (DESIGN §8). Targets, on 2 cores: training
 * ≥ 50% of SGEMM throughput; forward-over-reverse ≤ 2.5× a training step.
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include "backend.h"
#include "bench.h"
#include "check.h"
#include "lm.h"
#include "op_timer.h"
#include "optim.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* GFLOP/s of cblas_sgemm M=N=K=n on `threads` OpenBLAS threads (median of reps) */
static double sgemm_gflops(int n, int threads, int reps) {
    float *A = malloc((size_t)n * n * sizeof(float)), *Bm = malloc((size_t)n * n * sizeof(float));
    float *Cm = malloc((size_t)n * n * sizeof(float));
    CHECK(A && Bm && Cm, "out of memory");
    for (size_t i = 0; i < (size_t)n * n; i++) { A[i] = (float)(i % 7) * 0.1f; Bm[i] = (float)(i % 5) * 0.1f; Cm[i] = 0; }
    openblas_set_num_threads(threads);
    double t[16];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n, Bm, n, 0, Cm, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n, Bm, n, 0, Cm, n);
        t[r] = now() - t0;
    }
    openblas_set_num_threads(1);   /* the CPU backend runs BLAS single-threaded inside OpenMP */
    free(A); free(Bm); free(Cm);
    return 2.0 * n * n * (double)n / bench_median(t, reps) / 1e9;
}


/* Other processes make every number here meaningless: say so when the machine is busy. */
static void print_load(int threads) {
    FILE *f = fopen("/proc/loadavg", "r");
    double l1 = 0;
    if (!f) return;
    if (fscanf(f, "%lf", &l1) == 1)
        printf("load average %.2f%s\n", l1, l1 > 1.5 * threads ? "  (busy machine: timings are unreliable)" : "");
    fclose(f);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 3;   /* timed runs after one warm-up */
    if (reps < 1 || reps > 16) reps = 3;
    const Backend *be = &backend_cpu;
    LMConfig cfg = { .n_layer = 4, .d_model = 256, .n_head = 8, .d_ff = 1024, .vocab = 8192,
                     .ctx = 256, .init_std = 0.02 };
    const int B = 16, T = cfg.ctx, threads = omp_get_max_threads();
    const size_t NP = lm_num_params(&cfg);
    const double tokens = (double)B * T;
    const double flop_per_token = 6.0 * NP + 6.0 * cfg.n_layer * cfg.d_model * cfg.ctx;
    printf("bench_lm: L=%d d=%d heads=%d d_ff=%d ctx=%d B=%d V=%d, N=%.2fM params, %s, %d threads\n",
           cfg.n_layer, cfg.d_model, cfg.n_head, cfg.d_ff, cfg.ctx, B, cfg.vocab, NP / 1e6, REAL_NAME,
           threads);

    int32_t *inputs = xmalloc((size_t)B * T * sizeof(int32_t)), *targets = xmalloc((size_t)B * T * sizeof(int32_t));
    int32_t n_valid[16];
    uint64_t s = 1;
    for (int i = 0; i < B * T; i++) {
        inputs[i] = (int32_t)((s = s * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % cfg.vocab;
        targets[i] = (int32_t)((s = s * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % cfg.vocab;
    }
    for (int b = 0; b < B; b++) n_valid[b] = T;
    real dlosses[16], losses[16], dloss_dir[16];
    for (int b = 0; b < B; b++) dlosses[b] = (real)(1.0 / B);

    real *params = be->alloc(NP * sizeof(real)), *grads = be->alloc(NP * sizeof(real));
    real *u = be->alloc(NP * sizeof(real)), *hvp = be->alloc(NP * sizeof(real));
    lm_init_params(be, &cfg, params, 1);
    lm_init_params(be, &cfg, u, 2);
    LMActs *acts = lm_acts_new(be, &cfg, B, T, 1);
    printf("activations: %.0f MiB (with tangents)\n", lm_acts_bytes(acts) / 1048576.0);
    print_load(threads);
    OptimState st;
    optim_state_init(&st, be, OPTIM_ADAMW, NP);
    OptimHyper h = { .kind = OPTIM_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                     .weight_decay = 0.1, .clip = 1.0, .schedule = LR_CONSTANT };

    /* the training step as dr-train runs it (lm_forward_backward), then with the forward and
     * the backward as two calls, timed apart */
    double t_fwd[16], t_bwd[16], t_opt[16], t_step[16], t_two[16], t_for[16];
    for (int r = -1; r < reps; r++) {   /* r = -1: warm-up */
        double t0 = now();
        be->vec_zero(grads, NP);
        lm_forward_backward(be, &cfg, params, acts, inputs, targets, n_valid, B, T, dlosses,
                            losses, grads);
        double t1 = now();
        optim_step(be, &st, params, grads, &h, h.lr, NULL);
        double t2 = now();
        if (r >= 0) { t_opt[r] = t2 - t1; t_step[r] = t2 - t0; }
    }
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        lm_forward(be, &cfg, params, acts, inputs, targets, n_valid, B, T, losses);
        double t1 = now();
        be->vec_zero(grads, NP);
        lm_backward(be, &cfg, params, acts, dlosses, grads);
        double t2 = now();
        optim_step(be, &st, params, grads, &h, h.lr, NULL);
        if (r >= 0) { t_fwd[r] = t1 - t0; t_bwd[r] = t2 - t1; t_two[r] = now() - t0; }
    }
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        be->vec_zero(grads, NP);
        be->vec_zero(hvp, NP);
        lm_forward_over_reverse(be, &cfg, params, u, acts, inputs, targets, n_valid, B, T, dlosses,
                                losses, grads, hvp, dloss_dir);
        if (r >= 0) t_for[r] = now() - t0;
    }
    /* without g: what a reverse step runs when its step is on no tape */
    double t_nog[16], t_replay[16];
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        be->vec_zero(hvp, NP);
        lm_forward_over_reverse(be, &cfg, params, u, acts, inputs, targets, n_valid, B, T, dlosses,
                                NULL, NULL, hvp, dloss_dir);
        if (r >= 0) t_nog[r] = now() - t0;
    }
    /* the replay from a tape that one training step's backward recorded */
    LMTape *tape = lm_tape_new(be, &cfg, B, T);
    lm_forward(be, &cfg, params, acts, inputs, targets, n_valid, B, T, losses);
    be->vec_zero(grads, NP);
    lm_backward_record(be, &cfg, params, acts, dlosses, grads, tape);
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        be->vec_zero(hvp, NP);
        lm_forward_over_reverse_replay(be, &cfg, params, u, acts, tape, dlosses, hvp, dloss_dir);
        if (r >= 0) t_replay[r] = now() - t0;
    }
    const double tape_mib = lm_tape_bytes(tape) / 1048576.0;
    lm_tape_free(be, tape);

    double step = bench_median(t_step, reps), fwd = bench_median(t_fwd, reps), bwd = bench_median(t_bwd, reps);
    double opt = bench_median(t_opt, reps), fr = bench_median(t_for, reps);
    double nog = bench_median(t_nog, reps), replay = bench_median(t_replay, reps);
    double gflops = tokens * flop_per_token / step / 1e9;
    double sg = sgemm_gflops(2048, threads, reps);

    printf("FLOPs per token (6·N + 6·L·d·ctx, N = all %zu params incl. tied wte): %.1f MFLOP\n", NP,
           flop_per_token / 1e6);
    printf("train step (fwd+bwd+AdamW): %8.1f ms  (AdamW %.1f)  %8.0f tokens/s  %6.1f GFLOP/s\n",
           step * 1e3, opt * 1e3, tokens / step, gflops);
    printf("  as two calls:             %8.1f ms  (fwd %.1f, bwd %.1f)\n",
           bench_median(t_two, reps) * 1e3, fwd * 1e3, bwd * 1e3);
    printf("forward-over-reverse:       %8.1f ms  %8.0f tokens/s  ratio to a train step %.2f (target <= 2.5)\n",
           fr * 1e3, tokens / fr, fr / step);
    printf("  the same without g:       %8.1f ms  ratio %.2f  (a meta-step's reverse step off the tapes)\n",
           nog * 1e3, nog / step);
    printf("  its replay from a tape:   %8.1f ms  ratio %.2f  (a reverse step on a tape; tape %.0f MiB)\n",
           replay * 1e3, replay / step, tape_mib);
    printf("SGEMM 2048^3 (OpenBLAS %s kernels, %d threads): %6.1f GFLOP/s; training at %.0f%% of it (target >= 50%%)\n",
           openblas_get_corename(),
           threads, sg, 100 * gflops / sg);
    printf("GEMM work of forward-over-reverse / training step = 9/3 = 3.0 (per weight: forward 1 +\n"
           "  tangent 2, backward 2 + its tangent 4): the ratio above sits near 3 when GEMMs dominate;\n"
           "  without g 8/3, replayed 6/3\n");
    print_load(threads);

    /* where the time goes: the same passes through a timed copy of the backend */
    Backend tb = op_timer_backend(&backend_cpu);
    double t0 = now();
    tb.vec_zero(grads, NP);
    lm_forward_backward(&tb, &cfg, params, acts, inputs, targets, n_valid, B, T, dlosses, losses,
                        grads);
    optim_step(&tb, &st, params, grads, &h, h.lr, NULL);
    const double prof_step = now() - t0;
    /* The pass's floor at the training step's own speeds: it does 3× the GEMM work of the
     * ops that hold the GEMMs (matmul, attention) and at least once every other op of the
     * forward and backward (the optimizer it does not run). */
    const double gemm_ops = op_timer_seconds("matmul_") + op_timer_seconds("attention_");
    const double optimizer = op_timer_seconds("adamw_") + op_timer_seconds("vec_sumsq");
    const double floor_s = 3 * gemm_ops + (prof_step - gemm_ops - optimizer);
    op_timer_print("training step", prof_step, 1);
    t0 = now();
    lm_forward_over_reverse(&tb, &cfg, params, u, acts, inputs, targets, n_valid, B, T, dlosses,
                            losses, grads, hvp, dloss_dir);
    op_timer_print("forward-over-reverse", now() - t0, 1);
    printf("  floor of forward-over-reverse at the training step's speeds: 3 x its matmul and attention\n"
           "  ops (%.1f ms) + its other ops but the optimizer once (%.1f ms) = %.1f ms = %.2f x the\n"
           "  profiled step: below the 2.5 target only if the pass's GEMMs ran faster than the step's\n",
           1e3 * gemm_ops, 1e3 * (prof_step - gemm_ops - optimizer), 1e3 * floor_s, floor_s / prof_step);

    optim_state_free(&st, be);
    lm_acts_free(be, acts);
    be->free(params); be->free(grads); be->free(u); be->free(hvp);
    free(inputs); free(targets);
    return 0;
}
